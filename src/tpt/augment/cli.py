"""``tpt augment``: a thin CLI over ``tpt.augment.run.run_augment``."""

from __future__ import annotations

import sys

from tpt.augment.config import AugmentConfig
from tpt.augment.run import ConfigMismatch, EngineStopped, print_summary, run_augment
from tpt.config import parse

EPILOG_EXIT = ("exit codes: 0 all done; 1 rows were rejected or generations failed (see the tables); 2 bad usage/config; "
               "3 the engine died (finished records kept: rerun to carry on)")


def main(argv: list[str]) -> int:
    config = parse(AugmentConfig, argv, prog="tpt augment")
    try:
        summary = run_augment(config)
    except (ConfigMismatch, ValueError, FileNotFoundError) as exc:
        print(f"tpt augment: error: {exc}", file=sys.stderr)
        return 2
    except EngineStopped as exc:
        print(f"tpt augment: the generation engine died: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("tpt augment: interrupted; run the same command again to resume.", file=sys.stderr)
        return 130
    print_summary(config, summary)
    return summary.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
