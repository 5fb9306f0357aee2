import subprocess
import sys

import pytest

from tpt.cli import COMMANDS, main


def test_top_level_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_unknown_command_is_an_error(capsys):
    assert main(["nope"]) == 2
    assert "unknown command" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_subcommand_has_help(name):
    proc = subprocess.run([sys.executable, "-m", "tpt", name, "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "usage" in proc.stdout.lower()


# --- fast failure: a wrong path or config key fails before any heavy import ---------------------

PROBE = """
import contextlib, io, json, resource, sys, time
from tpt.cli import main
HEAVY = ("torch", "transformers", "lm_eval", "vllm")

def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime

out = []
for argv in json.loads(sys.argv[1]):
    err, c0, t0 = io.StringIO(), cpu(), time.perf_counter()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = main(argv)
        except SystemExit as e:
            rc = e.code
    heavy = [m for m in HEAVY if m in sys.modules]
    out.append({"argv": argv, "rc": rc, "err": err.getvalue(), "cpu": cpu() - c0, "wall": time.perf_counter() - t0,
                "heavy": heavy})
print(json.dumps(out))
"""


def fast_failure_cases(tmp_path):
    bad = str(tmp_path / "no-such-input")
    key = tmp_path / "bad.yaml"
    key.write_text("no_such_option: 1\n")
    wrong_path = {
        "augment": ["augment", bad, "--out", str(tmp_path / "a"), "--backend", "lab-expert"],
        "augment-model": ["augment", bad, "--out", str(tmp_path / "a2"), "--model", bad],
        "prepare": ["prepare", "--source", f"{bad}:tpt", "--tokenizer", bad, "--out", str(tmp_path / "p")],
        "tokenizer": ["tokenizer", "train", bad, "--out", str(tmp_path / "t")],
        "train": ["train", "--data", bad, "--out", str(tmp_path / "tr")],
        "eval": ["eval", bad, "--out", str(tmp_path / "e")],
        "analyze": ["analyze", "stats", bad],
        "filter": ["filter", bad, "--out", str(tmp_path / "f")],
    }
    wrong_key = {
        name: [*argv, "--config", str(key)]
        for name, argv in {
            "augment": ["augment", "c.jsonl", "--out", "o"],
            "prepare": ["prepare", "--source", "r:tpt", "--out", "o"],
            "tokenizer": ["tokenizer", "train", "c.jsonl", "--out", "o"],
            "train": ["train", "--data", "d", "--out", "o"],
            "eval": ["eval", "m"],
            "analyze": ["analyze", "stats", "r"],
            "filter": ["filter", "r", "--out", "o"],
            "lab": ["lab", "run"],
        }.items()
    }
    return wrong_path, wrong_key


def test_every_stage_fails_fast_on_a_wrong_path_or_config_key(tmp_path):
    """Clear error, exit 2, no torch/transformers/lm-eval/vLLM import, well under a second of CPU per
    case (CPU time, not wall: the test machine is shared; wall is printed for the report)."""
    import json

    wrong_path, wrong_key = fast_failure_cases(tmp_path)
    cases = [*wrong_path.values(), *wrong_key.values()]
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(cases)], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    for name, r in zip([*wrong_path, *(f"{k} --config" for k in wrong_key)], results):
        print(f"{name:<20} rc={r['rc']} cpu={r['cpu']:.2f}s wall={r['wall']:.2f}s")
        assert r["rc"] == 2, (name, r)
        assert not r["heavy"], (name, r["heavy"])
        assert r["cpu"] < 1.0, (name, r)
        if name.endswith("--config"):
            assert "unknown option 'no_such_option'" in r["err"], (name, r["err"])
        else:
            assert "no-such-input" in r["err"] and ("exist" in r["err"] or "no such" in r["err"]), (name, r["err"])
    assert not any((tmp_path / d).exists() for d in ("a", "a2", "p", "t", "tr", "f"))  # nothing left behind


def test_a_failed_start_does_not_block_the_corrected_rerun(tmp_path):
    """A start that wrote its manifest and plan but generated nothing (a server that never came up, a
    wrong model) does not make the corrected command 'a different config'; a run with output does."""
    from tpt.augment.config import AugmentConfig
    from tpt.augment.run import ConfigMismatch, check_manifest
    from tpt.augment.specs import InputSpec
    from tpt.config import build

    out = tmp_path / "run"
    (out / "state").mkdir(parents=True)
    (out / "plan.json").write_text("{}")
    check_manifest(build(AugmentConfig, inputs=[InputSpec("c.jsonl")], out=out, backend="openai", model="typo"), "T")
    fixed = build(AugmentConfig, inputs=[InputSpec("c.jsonl")], out=out, backend="openai", model="right")
    check_manifest(fixed, "T")  # replaced, with its stale plan
    assert '"right"' in (out / "manifest.json").read_text() and not (out / "plan.json").exists()
    (out / "state" / "shard-00000.done").write_text("{}")
    with pytest.raises(ConfigMismatch, match="model"):
        check_manifest(
            build(AugmentConfig, inputs=[InputSpec("c.jsonl")], out=out, backend="openai", model="other"), "T"
        )
