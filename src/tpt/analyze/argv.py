"""Small argv conveniences shared by `tpt analyze` and `tpt filter`.

argparse's ``nargs="*"`` keeps only the last occurrence of a repeated flag; users naturally
write ``--by domain --by audience`` or ``--by domain,audience``.  ``merge_list_flags`` turns
all of those into one ``--by domain audience`` before parsing.
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
    """Collect every value of each flag in ``flags`` into a single occurrence, placed last."""
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
        rest += [name, *found] if found else [name]
    return rest
