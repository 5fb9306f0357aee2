"""`tpt lab tune`'s selection rules, on results files written by hand (the sweep itself runs the
real `tpt lab run --dev`, covered by the quick runs): vanilla and TPT each get their own lr, and
an SFT lr that destroys what the arm knew is not chosen however well it does in the chat format."""

from __future__ import annotations

import json

from tpt.lab.tune import TuneConfig, choose_sft_lr, pretrain_table, render


def _point(tokens: int, acc: float) -> dict:
    cell = {"acc": acc, "ci": [max(acc - 0.1, 0.0), min(acc + 0.1, 1.0)]}
    return {"tokens": tokens, "overall": cell, "chain_mod10": cell}


def _write(out, lr: float, vanilla: list[float], tpt: list[float]) -> None:
    folder = out / f"lr-{lr:g}"
    folder.mkdir(parents=True)
    curves = {
        "vanilla": [_point(1000 * (i + 1), a) for i, a in enumerate(vanilla)],
        "tpt": [_point(1000 * (i + 1), a) for i, a in enumerate(tpt)],
    }
    results = {"curves": curves, "profile": {"tokens": 2000}, "families": ["chain_mod10"]}
    (folder / "results.json").write_text(json.dumps(results))


def test_each_arm_gets_the_lr_with_the_best_curve(tmp_path):
    # vanilla is best at the high lr (area under its curve), TPT at the low one; 0.004 ties 0.008 for TPT
    _write(tmp_path, 0.002, vanilla=[0.1, 0.1, 0.2, 0.3], tpt=[0.3, 0.5])
    _write(tmp_path, 0.004, vanilla=[0.1, 0.2, 0.3, 0.4], tpt=[0.2, 0.4])
    _write(tmp_path, 0.008, vanilla=[0.2, 0.4, 0.6, 0.6], tpt=[0.1, 0.5])
    table = pretrain_table(TuneConfig(out=tmp_path, lrs=[0.002, 0.004, 0.008]))
    assert table["vanilla"]["chosen"] == 0.008 and table["tpt"]["chosen"] == 0.002
    assert [r["curve_mean"] for r in table["tpt"]["rows"]] == [0.4, 0.30000000000000004, 0.3]
    _write(tmp_path, 0.016, vanilla=[0.2, 0.4, 0.6, 0.6], tpt=[0.0, 0.0])  # a tie goes to the smaller lr
    table = pretrain_table(TuneConfig(out=tmp_path, lrs=[0.016, 0.008]))
    assert table["vanilla"]["chosen"] == 0.008
    # an interrupted run: its curve stops at 2,000 tokens, so every lr is compared on the first two points
    _write(tmp_path, 0.001, vanilla=[0.3, 0.5], tpt=[0.0, 0.0])
    table = pretrain_table(TuneConfig(out=tmp_path, lrs=[0.001, 0.008]))
    assert table["vanilla"]["points"] == [1000, 2000] and table["vanilla"]["chosen"] == 0.001
    assert "| vanilla | 0.008 |" in render(table, None)


def test_sft_lr_must_not_destroy_what_the_arm_knew():
    rows = [
        {"lr": 1e-4, "reflect_before": 0.50, "reflect_after": 0.49, "chat_after": 0.30},
        {"lr": 5e-4, "reflect_before": 0.50, "reflect_after": 0.46, "chat_after": 0.45},
        {"lr": 2e-3, "reflect_before": 0.50, "reflect_after": 0.10, "chat_after": 0.90},  # best chat, destroys
    ]
    assert choose_sft_lr(rows) == (5e-4, True)
    ruined = [r | {"reflect_after": 0.2 + r["lr"]} for r in rows]  # none keeps it: the best reflect after
    assert choose_sft_lr(ruined) == (2e-3, False)


def test_sft_only_sweeps_from_the_profile_arm_lrs(tmp_path):
    # --sft-only: one dev run, at the per-arm lrs the earlier sweep chose (config.PROFILES), not a shared --lr
    from tpt.lab.config import PROFILES
    from tpt.lab.tune import dev_config

    lab = dev_config(TuneConfig(out=tmp_path, sft_only=True), None)
    prof = lab.profile()
    assert lab.out == tmp_path / "profile" and lab.dev and lab.seeds(prof) == [prof.dev_seed]
    chosen = dict(PROFILES["default"].arm_lr)
    assert prof.lr_for("vanilla") == chosen["vanilla"] and prof.lr_for("tpt") == chosen["tpt"]
    assert dev_config(TuneConfig(out=tmp_path), 0.004).profile().lr_for("vanilla") == 0.004
    assert "Pre-training lr" not in render({}, {"tpt-think": {"rows": [], "chosen": 1e-3}})


def test_sft_before_comes_from_the_saved_curve_of_a_stopped_dev_run(tmp_path):
    # --dev-saved: vanilla's dev run stopped after its checkpoint at B; its curve is curve-saved.json
    from tpt.lab.tune import arm_curve

    (tmp_path / "curve-saved.json").write_text(json.dumps([_point(1000, 0.2)]))
    assert arm_curve(tmp_path)[0]["overall"]["acc"] == 0.2
    (tmp_path / "curve.json").write_text(json.dumps([_point(1000, 0.3)]))  # a finished run's curve wins
    assert arm_curve(tmp_path)[0]["overall"]["acc"] == 0.3
