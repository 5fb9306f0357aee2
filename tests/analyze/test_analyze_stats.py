import json
import math

import numpy as np
import pytest
from analyze_helpers import record

from tpt.analyze.cli import main
from tpt.analyze.histograms import EXACT_CAP, CountHistogram, LogHistogram
from tpt.analyze.quality import QualityConfig
from tpt.analyze.stats import compute_stats


def brute_spearman(x, y):
    def ranks(a):
        a = np.asarray(a, dtype=float)
        return np.array([(a < v).sum() + ((a == v).sum() + 1) / 2 for v in a])

    return float(np.corrcoef(ranks(x), ranks(y))[0, 1])


def test_count_histogram_quantiles_exact_below_cap_and_close_above():
    h = CountHistogram()
    h.add(np.array([5, 1, 3, 3, 9]))
    h.add(np.array([7]))
    assert h.total == 6
    assert [h.quantile(q) for q in (0.0, 0.5, 1.0)] == [1, 3, 9]  # lower nearest rank: 3rd of 6 is 3
    big = CountHistogram()
    big.add(np.array([EXACT_CAP * 3]))
    assert big.quantile(0.5) == pytest.approx(EXACT_CAP * 3, rel=0.01)


def test_log_histogram_quantile_within_half_percent():
    h = LogHistogram()
    h.add(np.array([0.5, 2.0, 4.0]))
    assert h.quantile(0.5) == pytest.approx(2.0, rel=0.005)
    h.add(np.array([0.0, 0.0]))  # empty thinking: ratio 0 is a value, not dropped
    assert h.total == 5 and h.quantile(0.4) == 0.0 and h.quantile(0.6) == pytest.approx(0.5, rel=0.005)


def test_overall_and_grouped_statistics_are_exact(make_run):
    # math: thinking 100, 200, 300 on docs of 100 tokens; bio: thinking 50 on a 200-token doc (truncated)
    rows = [
        record(0, 100, 100, {"domain": "math"}),
        record(1, 200, 100, {"domain": "math"}),
        record(2, 300, 100, {"domain": "math"}),
        record(3, 50, 200, {"domain": "bio"}, finish_reason="length"),
    ]
    run = make_run("run", [rows[:2], rows[2:]])  # two shards
    result = compute_stats([run], by=["domain", "finish_reason"], batch_size=1).to_dict()
    overall = result["overall"]
    assert overall["records"] == 4 and result["files"] == 2
    assert overall["length_finish_rate"] == 0.25
    t = overall["thinking_tokens"]
    assert (t["mean"], t["min"], t["p50"], t["max"], t["total"]) == (162.5, 50, 100, 300, 650)
    assert t["std"] == pytest.approx(math.sqrt(np.var([100, 200, 300, 50])))
    assert overall["ratio"]["of_totals"] == 650 / 500
    assert overall["ratio"]["upsampling_factor"] == 1150 / 500
    assert overall["ratio"]["mean"] == pytest.approx((1 + 2 + 3 + 0.25) / 4)
    math_group = result["by"]["domain"]["groups"]["math"]
    assert math_group["records"] == 3 and math_group["thinking_tokens"]["mean"] == 200
    assert math_group["thinking_tokens"]["p50"] == 200 and math_group["length_finish_rate"] == 0
    bio = result["by"]["domain"]["groups"]["bio"]
    assert bio["records"] == 1 and bio["doc_tokens"]["mean"] == 200 and bio["length_finish_rate"] == 1
    assert result["by"]["finish_reason"]["groups"]["length"]["records"] == 1


def test_spearman_matches_brute_force_with_ties(make_run):
    rng = np.random.default_rng(7)
    levels = ["none", "basic", "intermediate", "advanced"]
    rows, xs, ys = [], [], []
    for i in range(400):
        level = int(rng.integers(0, 4))
        tokens = int(rng.integers(0, 40)) * 10 + 25 * level  # many ties on purpose
        rows.append(record(i, tokens, 100, {"reasoning_intensity": level, "intensity_name": levels[level]}))
        xs.append(level)
        ys.append(tokens)
    run = make_run("run", [rows])
    expected = brute_spearman(xs, ys)
    stats = compute_stats(
        [run], by=["reasoning_intensity", "intensity_name"], orders={"intensity_name": levels}, batch_size=64
    )
    numeric = stats.spearman("reasoning_intensity")
    named = stats.spearman("intensity_name")
    assert numeric["rho"] == pytest.approx(expected, abs=1e-12)
    assert named["rho"] == pytest.approx(expected, abs=1e-12)
    assert named["levels"] == levels and numeric["levels"] == ["0", "1", "2", "3"]


def test_non_ordinal_field_says_how_to_order_it(make_run):
    run = make_run("run", [[record(0, 10, 10, {"domain": "math"}), record(1, 20, 10, {"domain": "bio"})]])
    rho = compute_stats([run], by=["domain"]).spearman("domain")
    assert rho["available"] is False and "--order domain=" in rho["reason"]


def test_bad_rows_are_counted_and_located_not_dropped_silently(make_run):
    # a skipped row (0) before the bad meta (2) must not shift the row reported for the latter
    rows = [
        {**record(0, 0, 10), "thinking_tokens": None},
        record(1, 10, 10, {"domain": "math"}),
        record(2, 20, 10, "{not json"),
        record(3, 30, 10, None),
        {**record(4, 5, 10), "doc_tokens": -3},
    ]
    run = make_run("run", [rows])
    result = compute_stats([run], by=["domain"]).to_dict()
    assert result["overall"]["records"] == 3
    groups = result["by"]["domain"]["groups"]
    assert {k: v["records"] for k, v in groups.items()} == {"math": 1, "(bad meta)": 1, "(missing)": 1}
    examples = sorted((e["row"], e["field"]) for e in result["problems"]["examples"])
    assert examples == [(0, "thinking_tokens/doc_tokens"), (2, "meta"), (4, "thinking_tokens/doc_tokens")]
    assert sum(result["problems"]["counts"].values()) == 3


def test_groups_are_bounded_and_runs_are_a_field(make_run):
    a = make_run("a", [[record(i, 10 * i, 10, {"url": f"u{i}"}) for i in range(5)]])
    b = make_run("b", [[record(9, 7, 10, {"url": "u9"})]])
    result = compute_stats([a, b], by=["url", "run"], max_groups=3).to_dict()
    urls = result["by"]["url"]["groups"]
    assert list(urls) == ["u0", "u1", "u2", "(other)"] and urls["(other)"]["records"] == 3
    assert {k: v["records"] for k, v in result["by"]["run"]["groups"].items()} == {"a": 5, "b": 1}


def test_missing_column_is_a_clear_error(make_run, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    run = tmp_path / "broken"
    (run / "data").mkdir(parents=True)
    pq.write_table(pa.table({"id": ["x"], "thinking_tokens": [3]}), run / "data" / "part-0.parquet")
    with pytest.raises(ValueError, match=r"part-0.parquet: missing column\(s\) doc_tokens"):
        compute_stats([run])


def test_cli_writes_json_report_and_plots(make_run, tmp_path, capsys):
    rows = [
        record(i, 100 + 50 * (i % 3), 100, {"audience": ["general", "undergraduate", "expert"][i % 3]})
        for i in range(30)
    ]
    run = make_run("run", [rows])
    out = tmp_path / "report"
    assert (
        main(
            [
                "stats",
                "--by",
                "audience",
                str(run),
                "--order",
                "general,undergraduate,expert",
                "--out",
                str(out),
                "--json",
            ]
        )
        == 0
    )
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads((out / "stats.json").read_text())
    assert printed == saved
    assert saved["by"]["audience"]["spearman_thinking_tokens"]["rho"] == pytest.approx(
        brute_spearman([i % 3 for i in range(30)], [100 + 50 * (i % 3) for i in range(30)])
    )
    assert saved["by"]["audience"]["spearman_thinking_tokens"]["last_over_first"] == 2.0
    for name in ("report.md", "report.html", "plots/lengths.png", "plots/ratio.png", "plots/by_audience.png"):
        assert (out / name).stat().st_size > 0
    assert "plots/by_audience.png" in (out / "report.md").read_text()


def test_cli_rejects_order_for_a_field_not_grouped_and_out_in_a_run(make_run, capsys):
    run = make_run("run", [[record(0, 1, 1)]])
    assert main(["stats", str(run), "--order", "audience=a,b"]) == 2
    assert "--order" in capsys.readouterr().err
    assert main(["stats", str(run), "--out", str(run)]) == 2
    assert "is an augment run" in capsys.readouterr().err


def test_parallel_workers_give_the_same_statistics(make_run):
    rng = np.random.default_rng(3)
    shards = [
        [
            record(
                10 * k + i,
                int(rng.integers(0, 500)),
                int(rng.integers(1, 300)),
                {"domain": ["math", "bio", "law"][(i + k) % 3], "level": i % 4},
                finish_reason="length" if i % 5 == 0 else "stop",
            )
            for i in range(10)
        ]
        for k in range(4)
    ]
    shards[2].append({**record(99, 1, 1), "doc_tokens": -1})
    run = make_run("run", shards)
    quality = QualityConfig()
    serial = compute_stats([run], by=["domain", "level"], workers=1, quality=quality).to_dict()
    parallel = compute_stats([run], by=["domain", "level"], workers=2, quality=quality).to_dict()
    assert parallel == serial
    assert serial["overall"]["records"] == 40 and serial["problems"]["examples"][0]["row"] == 10
    assert serial["overall"]["flags"]["empty"] == 40 and serial["overall"]["flags"]["truncated"] == 8


def test_ordinal_groups_are_listed_in_level_order(make_run):
    rows = [record(i, 10 * i, 10, {"intensity": ["high", "low", "mid"][i % 3], "n": 3 - i % 3}) for i in range(6)]
    stats = compute_stats(
        [make_run("run", [rows])], by=["intensity", "n"], orders={"intensity": ["low", "mid", "high"]}
    )
    result = stats.to_dict()
    assert list(result["by"]["intensity"]["groups"]) == ["low", "mid", "high"]
    assert list(result["by"]["n"]["groups"]) == ["1", "2", "3"]


def test_order_is_a_record_read_at_the_boundary():
    from tpt.analyze.cli import OrderSpec, parse_order, resolve_orders

    assert parse_order("audience=a, b") == OrderSpec("audience", ("a", "b"))
    assert parse_order({"name": None, "labels": ["lo", "hi"]}) == parse_order("lo,hi") == OrderSpec(None, ("lo", "hi"))
    assert resolve_orders([parse_order("lo,hi"), parse_order("y=1,2")], ["x"]) == {"x": ["lo", "hi"], "y": ["1", "2"]}
    with pytest.raises(ValueError, match="name the field"):
        resolve_orders([parse_order("lo,hi")], ["x", "y"])
    for bad in ("=a,b", "audience=", ","):
        with pytest.raises(ValueError, match="FIELD=low"):
            parse_order(bad)
