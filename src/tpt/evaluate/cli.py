"""`tpt eval`: a thin CLI over ``tpt.evaluate.runner.evaluate``."""

from __future__ import annotations

import sys

from tpt.config import parse as parse_config
from tpt.evaluate.catalog import SUITES, TASKS, UNAVAILABLE, UnknownTask
from tpt.evaluate.config import EvalConfig
from tpt.evaluate.datacheck import BadDataFile
from tpt.evaluate.models import ModelNotLoadable
from tpt.evaluate.render import DataFileMissing

EPILOG = (
    "tasks:\n"
    + "\n".join(f"  {name:<9} {spec.summary}" for name, spec in TASKS.items())
    + "\nsuites:\n"
    + "\n".join(f"  {name:<10} {', '.join(tasks)}" for name, tasks in SUITES.items())
    + "\nunavailable offline: "
    + ", ".join(UNAVAILABLE)
)


def parse(argv: list[str]) -> EvalConfig:
    return parse_config(EvalConfig, argv, "tpt eval", (EvalConfig.__doc__ or "") + "\n\n" + EPILOG)


def main(argv: list[str]) -> int:
    cfg = parse(argv)
    from tpt.evaluate.models import check_folders

    try:
        check_folders(cfg)  # before torch and lm-eval load: a wrong path fails in a fraction of a second
    except ModelNotLoadable as err:
        print(f"tpt eval: error: {err}", file=sys.stderr)
        return 2
    from tpt.evaluate.runner import evaluate

    try:
        results = evaluate(cfg)
    except (UnknownTask, DataFileMissing, BadDataFile, ModelNotLoadable) as err:
        print(f"tpt eval: error: {err}", file=sys.stderr)
        return 2
    print((cfg.out / "comparison.md").read_text())
    print(f"wrote {', '.join(str(cfg.out / f'{name}.json') for name in results)} and {cfg.out / 'comparison.md'}")
    return 0
