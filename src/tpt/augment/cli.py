"""``tpt augment``: a thin CLI over ``tpt.augment.run.run_augment`` (and ``--dry-run``, ``--plan-only``)."""

from __future__ import annotations

import sys

from tpt.augment.config import AugmentConfig
from tpt.config import parse
from tpt.exit_codes import EXIT_CODES_HELP, EXIT_ENVIRONMENT, EXIT_USAGE, one_line


def main(argv: list[str]) -> int:
    config = parse(
        AugmentConfig, argv, prog="tpt augment", description=(AugmentConfig.__doc__ or "") + "\n\n" + EXIT_CODES_HELP
    )
    # Imported after parsing: `tpt augment --help` and usage errors answer before pyarrow loads.
    from tpt.augment.planning import PlanMismatch
    from tpt.augment.run import ConfigMismatch, EngineStopped, print_summary, run_augment
    from tpt.io.lock import LockHeld

    try:
        if config.dry_run:
            return _dry_run(config)
        if config.plan_only:
            return _plan_only(config)
        summary = run_augment(config)
    except (ConfigMismatch, PlanMismatch, ValueError, FileNotFoundError) as exc:
        print(one_line("augment", exc, _key(config)), file=sys.stderr)
        return EXIT_USAGE
    except LockHeld as exc:
        print(one_line("augment", exc, _key(config)), file=sys.stderr)
        return EXIT_ENVIRONMENT
    except EngineStopped as exc:
        died = one_line("augment", exc, _key(config)).replace("error: ", "the generation engine died: ", 1)
        print(died, file=sys.stderr)  # with the engine's last log lines
        return EXIT_ENVIRONMENT
    except KeyboardInterrupt:
        print("tpt augment: interrupted; run the same command again to resume.", file=sys.stderr)
        return 130
    print_summary(config, summary)
    return summary.exit_code


def _key(config: AugmentConfig) -> tuple[str, ...]:
    """The run's API key (whatever its variable is called), scrubbed from every message."""
    import os

    value = os.environ.get(config.backend.openai.api_key_env, "")
    return (value,) if value else ()


def _dry_run(config: AugmentConfig) -> int:
    from tpt.augment.estimate import estimate, format_estimate

    print(format_estimate(estimate(config)))
    print("tpt augment: dry run; nothing generated, nothing written.", file=sys.stderr)
    return 0


def _plan_only(config: AugmentConfig) -> int:
    from tpt.augment.run import prepare_run

    specs = prepare_run(config)
    files = len({s.file for s in specs})
    print(
        f"tpt augment: planned {len(specs)} shards over {files} files in {config.out}/plan.json; nothing generated.",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
