import json

import pyarrow.parquet as pq
import pytest
from analyze_helpers import record

from tpt.analyze.filter import FilterConfig, filter_run, read_removed
from tpt.analyze.filter_cli import main as filter_main
from tpt.analyze.quality import (
    QualityConfig,
    copy_fraction,
    flag_record,
    repeat_fraction,
    script_match,
    template_patterns,
)
from tpt.io.runs import iter_records, read_manifest
from tpt.records import THINKING_SCHEMA

PREFIX = " ".join(f"w{i}" for i in range(20))  # 20 distinct words
LOOP = " ".join(f"loop{i}" for i in range(10))  # a 10-word cycle
DOC = " ".join(f"d{i}" for i in range(30))
CLEAN = (
    "The document defines energy as the capacity to do work; a careful analysis asks why the "
    "conservation law holds and what symmetry it comes from, then checks a worked example."
)


def test_repeat_fraction_of_a_planted_loop_is_exact():
    # 20 distinct words then the cycle 5 times: 61 10-grams, of which those starting at 30..60 repeat
    assert repeat_fraction(PREFIX + " " + " ".join([LOOP] * 5), 10) == 31 / 61
    assert repeat_fraction(PREFIX, 10) == 0.0
    assert repeat_fraction("too short", 10) == 0.0


def test_copy_fraction_of_a_planted_copy_is_exact():
    # the first 20 document words then 20 new words: 33 8-grams, 13 lie entirely in the copied part
    thinking = " ".join(f"d{i}" for i in range(20)) + " " + " ".join(f"t{i}" for i in range(20))
    assert copy_fraction(thinking, DOC, 8) == 13 / 33
    assert copy_fraction(DOC, DOC, 8) == 1.0


def test_script_match():
    russian = "Мы внимательно анализируем этот документ и объясняем каждую идею простыми словами"
    assert script_match(russian, CLEAN) == ("latin", 0.0)
    assert script_match(CLEAN, CLEAN) == ("latin", 1.0)
    assert script_match("ok", CLEAN) is None  # too few letters to judge


def test_flag_record_names_each_planted_problem():
    cfg = QualityConfig()
    assert flag_record(DOC, CLEAN, "stop", cfg) == {}
    assert set(flag_record(DOC, CLEAN, "length", cfg)) == {"truncated"}
    assert set(flag_record(DOC, "  ok  ", "stop", cfg)) == {"empty"}
    assert set(flag_record(DOC, PREFIX + " " + " ".join([LOOP] * 5), "stop", cfg)) == {"repetition"}
    assert set(flag_record(DOC, DOC, "stop", cfg)) == {"copy"}
    leftover = CLEAN + " </think> ## End of the context"
    flags = flag_record(DOC, leftover, "stop", cfg)
    assert set(flags) == {"template"} and "'</think>'" in flags["template"]
    assert flag_record(DOC + " a post about </think> and ## End of the context", leftover, "stop", cfg) == {}  # quoted
    assert set(flag_record(CLEAN, "Мы внимательно анализируем этот документ и объясняем каждую идею", "stop", cfg)) == {
        "script"
    }


def test_thresholds_are_honoured():
    loop = PREFIX + " " + " ".join([LOOP] * 5)  # 31/61 = 0.508 repeated
    assert "repetition" not in flag_record(DOC, loop, "stop", QualityConfig(max_repeat_fraction=0.6))
    assert "empty" in flag_record(DOC, CLEAN, "stop", QualityConfig(min_thinking_chars=10_000))


def test_template_patterns_include_manifest_prompt_sentences():
    manifest = {
        "config": {
            "prompt_template": "{{CONTEXT}}\n\nPlease write a very thorough lecture about the material shown above. Go."
        }
    }
    patterns = template_patterns(QualityConfig(template_pattern=["XYZZY"]), manifest)
    assert "Please write a very thorough lecture about the material shown above." in patterns
    assert "XYZZY" in patterns and "Go." not in patterns  # short sentences could occur legitimately


def planted_run(make_run):
    rows = [
        record(0, 30, 30, {"domain": "math"}, text=DOC, thinking=CLEAN),
        record(1, 30, 30, {"domain": "math"}, text=DOC, thinking=CLEAN, finish_reason="length"),
        record(2, 70, 30, {"domain": "bio"}, text=DOC, thinking=PREFIX + " " + " ".join([LOOP] * 5)),
        record(3, 30, 30, {"domain": "bio"}, text=DOC, thinking=DOC),
        record(4, 1, 30, {"domain": "bio"}, text=DOC, thinking=""),
        record(5, 30, 30, {"domain": "math"}, text=DOC, thinking=CLEAN, sample=1),
    ]
    return make_run("src", [rows[:3], rows[3:]])


def test_filter_writes_clean_run_removed_table_and_manifest(make_run, tmp_path):
    src = planted_run(make_run)
    out = tmp_path / "clean"
    result = filter_run(FilterConfig(run=src, out=out))
    assert (result.records, result.kept, result.removed) == (6, 2, 4)
    assert result.flagged == {"truncated": 1, "empty": 1, "repetition": 1, "copy": 1, "template": 0, "script": 0}
    kept = sorted((r.id, r.sample) for r in iter_records(out))
    assert kept == [("doc-0", 0), ("doc-5", 1)]
    assert sorted(p.name for p in (out / "data").iterdir()) == ["part-00000.parquet", "part-00001.parquet"]
    assert pq.read_schema(out / "data" / "part-00000.parquet").equals(THINKING_SCHEMA, check_metadata=False)
    removed = {row["id"]: row for row in read_removed(out).to_pylist()}
    assert {k: v["flags"] for k, v in removed.items()} == {
        "doc-1": ["truncated"],
        "doc-2": ["repetition"],
        "doc-3": ["copy"],
        "doc-4": ["empty"],
    }
    assert "0.508 of 10-grams" in removed["doc-2"]["detail"]
    manifest = read_manifest(out)
    assert manifest["config"] == {"model": "test-model"}  # the source's manifest is kept
    assert manifest["filter"]["source"] == str(src.resolve())
    assert manifest["filter"]["config"]["quality"]["max_repeat_fraction"] == 0.3
    assert json.loads((out / "stats.json").read_text())["records"] == 2


def test_filter_remove_subset_only_counts_the_others(make_run, tmp_path, capsys):
    src = planted_run(make_run)
    out = tmp_path / "clean"
    assert filter_main(["--remove", "empty,repetition", str(src), "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["kept"] == 4 and printed["removed_by"] == {"empty": 1, "repetition": 1}
    assert printed["flagged"]["truncated"] == 1
    assert filter_main([str(src), "--out", str(out)]) == 2  # refuses to mix with an earlier output
    assert "--overwrite" in capsys.readouterr().err
    assert filter_main([str(src), "--out", str(out), "--overwrite"]) == 0
    assert len(list(iter_records(out))) == 2


def test_filter_in_parallel_processes_and_uncompressed_gives_the_same_run(make_run, tmp_path):
    src = planted_run(make_run)
    serial = filter_run(FilterConfig(run=src, out=tmp_path / "serial"))
    parallel = filter_run(FilterConfig(run=src, out=tmp_path / "parallel", workers=2, compression="none"))
    assert parallel == serial
    for sub in ("data", "removed"):
        for name in ("part-00000.parquet", "part-00001.parquet"):
            assert pq.read_table(tmp_path / "parallel" / sub / name).equals(
                pq.read_table(tmp_path / "serial" / sub / name)
            )
    codecs = {
        run: pq.ParquetFile(tmp_path / run / "data" / "part-00000.parquet").metadata.row_group(0).column(2).compression
        for run in ("serial", "parallel")
    }
    assert codecs == {"serial": "ZSTD", "parallel": "UNCOMPRESSED"}  # --compression: only the clean data files


def test_filter_rejects_unknown_flag(make_run, tmp_path):
    with pytest.raises(ValueError, match="unknown flag"):
        filter_run(FilterConfig(run=planted_run(make_run), out=tmp_path / "o", remove=["nope"]))


def test_stats_quality_counts_the_same_flags_as_the_filter(make_run, tmp_path, capsys):
    from tpt.analyze.cli import main as analyze_main

    src = planted_run(make_run)
    assert analyze_main(["stats", str(src), "--by", "domain", "--quality", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["overall"]["flags"] == {
        "truncated": 1,
        "empty": 1,
        "repetition": 1,
        "copy": 1,
        "template": 0,
        "script": 0,
    }
    groups = result["by"]["domain"]["groups"]
    assert groups["math"]["flags"] == {
        "truncated": 1,
        "empty": 0,
        "repetition": 0,
        "copy": 0,
        "template": 0,
        "script": 0,
    }
    assert groups["bio"]["flags"] == {
        "truncated": 0,
        "empty": 1,
        "repetition": 1,
        "copy": 1,
        "template": 0,
        "script": 0,
    }
    assert analyze_main(["stats", str(src), "--quality", "--out", str(tmp_path / "r")]) == 0
    assert "Quality flags" in (tmp_path / "r" / "report.md").read_text()


def test_batch_flags_equal_flag_record_on_varied_text():
    """quality_batch (what `tpt filter` runs) gives exactly flag_record's flags and details."""
    import random

    import pyarrow as pa

    from tpt.analyze.quality_batch import flag_batch

    rng = random.Random(3)
    vocab = [f"w{i}" for i in range(300)] + ["Énergie", "naïve", "Straße", "x_1", "42", "don't", "e-mail"]
    cjk = "能量守恒定律说明能量不会凭空产生也不会凭空消失只会从一种形式转化为另一种形式"
    docs, thinks, reasons = [], [], []
    for i in range(400):
        doc = " ".join(rng.choice(vocab) for _ in range(rng.randint(0, 60)))
        kind = i % 8
        think = {
            0: " ".join(rng.choice(vocab) for _ in range(rng.randint(5, 120))),
            1: " ".join([" ".join(rng.choice(vocab) for _ in range(8))] * rng.randint(2, 9)),
            2: doc + " " + " ".join(rng.choice(vocab) for _ in range(rng.randint(0, 30))),
            3: "Мы внимательно анализируем этот документ, " * rng.randint(1, 4),
            4: cjk[: rng.randint(5, len(cjk))] + "。" + cjk,
            5: "  \t\n " + "ok. " * rng.randint(0, 20),
            6: CLEAN + " <|im_end|> " + rng.choice(["## End of the context", ""]),
            7: "—«" + " ".join(rng.choice(vocab) for _ in range(40)) + "»!",
        }[kind]
        docs.append(cjk if kind == 4 and i % 16 == 4 else doc)
        thinks.append(think)
        reasons.append(rng.choice(["stop", "stop", "length"]))
    cfg, patterns = QualityConfig(), template_patterns(QualityConfig())
    batch = flag_batch(pa.array(docs), pa.array(thinks), pa.array(reasons), cfg, patterns)
    for row, (doc, think, reason) in enumerate(zip(docs, thinks, reasons)):
        assert batch.details(row, cfg) == flag_record(doc, think, reason, cfg, patterns), (row, think[:80])
    assert all(batch.raised[f].any() for f in ("truncated", "empty", "repetition", "copy", "template", "script"))
    part = flag_batch(
        pa.array(docs).slice(150), pa.array(thinks).slice(150), pa.array(reasons).slice(150), cfg, patterns
    )
    assert [part.details(r, cfg) for r in range(250)] == [batch.details(r, cfg) for r in range(150, 400)]  # slices too


def test_batch_words_split_at_record_edges_and_hash_long_words():
    """Word hashing reads 8 bytes at a time over the whole batch: words of 1..40 bytes, upper case,
    words touching the next record's first word, empty and null rows, large_string columns."""
    import pyarrow as pa

    from tpt.analyze.quality_batch import _word_hashes, flag_batch

    long_words = ["Supercalifragilistic_expialidocious42", "ABCDEFGH", "abcdefghi", "x" * 16, "x" * 17, "a"]
    thinks = [" ".join(long_words * 12), "tail" * 30, "", None, "abcdefgh " * 20 + "ABCDEFGHI"]
    docs = ["head " + " ".join(long_words * 3), "", None, "  ", "abcdefgh"]
    cfg, patterns = QualityConfig(), template_patterns(QualityConfig())
    for kind in (pa.string(), pa.large_string()):
        batch = flag_batch(pa.array(docs, kind), pa.array(thinks, kind), pa.array(["stop"] * 5), cfg, patterns)
        for row, (doc, think) in enumerate(zip(docs, thinks)):
            assert batch.details(row, cfg) == flag_record(doc, think, "stop", cfg, patterns), row
    hashes, counts = _word_hashes(pa.array(["ab", "ab", "Ab_c", "ab c", "abcdefghi", "abcdefghI"]))
    assert counts.tolist() == [1, 1, 1, 2, 1, 1] and len(hashes) == 7
    assert hashes[0] == hashes[1] == hashes[3] and hashes[2] != hashes[0] and hashes[5] == hashes[6]
    assert len(set(hashes[[0, 2, 4, 5]].tolist())) == 4  # "ab", "ab_c", "c", "abcdefghi" differ


def test_batch_word_hashes_match_words_on_random_rows():
    """Random rows of word bytes, separators, upper case and empty rows, glued back to back: every
    record's word count is len(words()), and two words hash alike exactly when they are equal."""
    import random

    import pyarrow as pa

    from tpt.analyze.quality import words
    from tpt.analyze.quality_batch import _word_hashes

    rng = random.Random(7)
    alphabet = "abcXYZ019_ .,-\n"
    rows = ["".join(rng.choice(alphabet) for _ in range(rng.choice([0, 0, 1, 3, 12, 40]))) for _ in range(400)]
    hashes, counts = _word_hashes(pa.array(rows))
    expected = [words(row) for row in rows]
    assert counts.tolist() == [len(w) for w in expected] and len(hashes) == sum(counts)
    flat = [word for w in expected for word in w]
    by_word = dict(zip(flat, hashes.tolist()))
    assert [by_word[word] for word in flat] == hashes.tolist()  # equal words, equal hashes
    assert len(set(by_word.values())) == len(by_word)  # different words, different hashes


def test_remove_flag_takes_repeats_and_commas_and_keeps_the_run_positional(tmp_path):
    from tpt.analyze.filter import FilterConfig
    from tpt.config import parse

    run = tmp_path / "run"
    (run / "data").mkdir(parents=True)
    argv = ["--remove", "empty,repetition", str(run), "--remove", "copy", "--out", str(tmp_path / "out")]
    cfg = parse(FilterConfig, argv, "tpt filter", "")
    assert cfg.remove == ["empty", "repetition", "copy"]
    assert cfg.run == run
    assert parse(
        FilterConfig, [str(run), "--out", "o", "--template-pattern", "a,b"], "tpt filter", ""
    ).quality.template_pattern == ["a,b"]


@pytest.mark.parametrize("repeat_n, copy_n", [(1, 1), (2, 3), (4, 25)])
def test_batch_fractions_equal_the_reference_for_other_ngram_sizes(repeat_n, copy_n):
    """The compiled n-gram pass (per-record prefix sums, hash sets) for n from 1 to more words than
    some records hold: the same repetition and copy fractions as quality.py's per-record sets."""
    import random

    import pyarrow as pa

    from tpt.analyze.quality_batch import flag_batch

    rng = random.Random(11)
    vocab = [f"v{i}" for i in range(12)] + ["Ab", "ab", "x" * 9, "x" * 17]  # few words: many repeats and copies

    def text(most: int) -> str:
        some = vocab[: rng.randint(2, len(vocab))]
        return " ".join(rng.choice(some) for _ in range(rng.randint(0, most)))

    docs = [text(40) for _ in range(120)]
    thinks = [text(60) + (" " + doc if row % 3 == 0 else "") for row, doc in enumerate(docs)]
    cfg = QualityConfig(repeat_ngram=repeat_n, copy_ngram=copy_n)
    batch = flag_batch(pa.array(docs), pa.array(thinks), pa.array(["stop"] * 120), cfg, [])
    assert batch.repeat.tolist() == [repeat_fraction(t, repeat_n) for t in thinks]
    assert batch.copy.tolist() == [copy_fraction(t, d, copy_n) for t, d in zip(thinks, docs)]
    assert 0 < sum(batch.copy > 0) < 120 and 0 < sum(batch.repeat > 0) < 120


def test_a_large_shard_is_filtered_in_row_group_pieces_the_same_for_any_worker_count(tmp_path, monkeypatch):
    """Past PIECE_ROWS rows a file is split by row groups, one job each: the pieces' files, in name
    order, hold exactly the unsplit filter's kept and removed rows, and do not depend on --workers."""
    import pyarrow as pa

    import tpt.analyze.filter as filter_module

    rows = [
        record(i, 5, 5, text=DOC, thinking=[CLEAN, DOC, PREFIX + (" " + LOOP) * 5][i % 3], finish_reason="stop")
        for i in range(1000)
    ]
    (tmp_path / "run" / "data").mkdir(parents=True)
    table = pa.Table.from_pylist(rows).cast(THINKING_SCHEMA.remove(THINKING_SCHEMA.get_field_index("doc_cut_chars")))
    pq.write_table(table, tmp_path / "run" / "data" / "part-00000.parquet", row_group_size=100)

    def filtered(name: str, workers: int) -> tuple[list[str], pa.Table, pa.Table]:
        out = tmp_path / name
        filter_run(FilterConfig(run=tmp_path / "run", out=out, workers=workers))
        names = sorted(p.name for p in (out / "data").iterdir())
        kept = pa.concat_tables(pq.read_table(out / "data" / n) for n in names)
        return names, kept, read_removed(out)

    whole = filtered("whole", 2)
    monkeypatch.setattr(filter_module, "PIECE_ROWS", 300)
    one, two = filtered("one", 1), filtered("two", 2)
    assert whole[0] == ["part-00000.parquet"]
    assert one[0] == two[0] == [f"part-00000.rg{g:05d}.parquet" for g in (0, 3, 6, 9)]
    for pieces in (one, two):
        assert pieces[1].equals(whole[1]) and pieces[2].equals(whole[2])
    assert whole[1].num_rows == 334 and whole[2].num_rows == 666  # CLEAN kept; copies and loops removed
