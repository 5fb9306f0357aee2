"""The exit codes every ``tpt`` stage uses, and one-line error messages for OS errors.

0 ok; 1 the run finished but set rows aside (rejected input rows, failed generations: see the run's
tables); 2 usage or input error (bad flags, missing or unusable inputs, a folder holding another
run); 3 environment error or crash (disk full, read-only or unwritable folder, permission denied,
a lock held too long, an unexpected exception: a bug, please report it); 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import errno
import os
import re

EXIT_OK, EXIT_ROWS_SET_ASIDE, EXIT_USAGE, EXIT_ENVIRONMENT, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

EXIT_CODES_HELP = (
    "exit codes: 0 ok; 1 rows were rejected or generations failed (see the run's tables); 2 usage or input error; "
    "3 environment error (disk full, read-only, permission, lock) or crash; 130 interrupted"
)

_HINTS = {
    errno.ENOSPC: "the disk is full: free space (or use another --out) and rerun; finished work is kept",
    errno.EDQUOT: "the disk quota is exceeded: free space and rerun; finished work is kept",
    errno.EROFS: "the filesystem is read-only: choose a writable --out",
    errno.EACCES: "permission denied: check the folder's owner and mode",
    errno.EPERM: "operation not permitted: check the folder's owner and mode",
}
_SECRET_ENV = re.compile(r"(API_KEY|TOKEN|SECRET|PASSWORD)", re.IGNORECASE)


def secrets_in_env() -> list[str]:
    """Values of environment variables that look like credentials (scrubbed from every message)."""
    return [v for k, v in os.environ.items() if _SECRET_ENV.search(k) and len(v) >= 6]


def one_line(stage: str, exc: BaseException, secrets: tuple[str, ...] = ()) -> str:
    """``tpt STAGE: error: ...`` on one line, naming the path for OS errors, with secrets scrubbed."""
    from tpt.io.scrub import scrub

    if isinstance(exc, OSError) and exc.strerror:
        where = " -> ".join(str(p) for p in (exc.filename, exc.filename2) if p)
        text = f"{exc.strerror}: {where}" if where else exc.strerror
        hint = _HINTS.get(exc.errno or 0)
        text += f" ({hint})" if hint else ""
    else:
        text = str(exc).strip() or type(exc).__name__
    return scrub(f"tpt {stage}: error: {text}", [*secrets_in_env(), *secrets])
