"""Left for `tpt filter` only, until its ``FilterConfig`` marks ``--remove`` ``split=True``.

The config generator now does what this did (tpt.config: ``split`` lists take comma-separated items,
one value per occurrence, so a run folder after ``--by a,b`` stays positional; ``repeat`` lists take
one value per occurrence), and `tpt analyze` uses it.  ``merge_list_flags`` splits the commas of
``split_commas`` flags and writes every value as its own occurrence, which both list kinds accept.
"""

from __future__ import annotations

from collections.abc import Callable

from tpt.formats import is_run_folder  # a run folder after a list flag is a positional, not the flag's value


def merge_list_flags(
    argv: list[str],
    flags: set[str],
    split_commas: set[str] = frozenset(),
    positional: Callable[[str], bool] = is_run_folder,
) -> list[str]:
    """Every value of each flag in ``flags``, one occurrence each, placed last."""
    values: dict[str, list[str]] = {}
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, inline = arg.partition("=")
        if name in flags:
            found = values.setdefault(name, [])
            taken = [inline] if eq else []
            i += 1
            if not eq:
                while i < len(argv) and not argv[i].startswith("--") and not positional(argv[i]):
                    taken.append(argv[i])
                    i += 1
            for value in taken:
                found.extend(v for v in value.split(",") if v) if name in split_commas else found.append(value)
            continue
        rest.append(arg)
        i += 1
    for name, found in values.items():
        rest += [item for value in found for item in (name, value)] if found else [name]
    return rest
