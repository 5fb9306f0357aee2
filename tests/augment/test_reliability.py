"""Issue 20, augment side: concurrent processes, --out placement, bad bytes, secrets, exit codes, foreign files."""

from __future__ import annotations

import gzip
import json
import os
import socket
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from augment_helpers import corpus_rows, lab_rows, make_config, record_keys, run_cli, start_cli, write_jsonl

from tpt.augment.run import run_augment
from tpt.io.atomic import TEMP_MARK
from tpt.io.readers import InputError, Rejection, iter_range, parse_row, resolve_inputs


def lab_argv(corpus: Path, out: Path, *extra: str) -> list[str]:
    return [
        str(corpus),
        "--out",
        str(out),
        "--backend",
        "lab-expert",
        "--shard-bytes",
        "1500",
        "--checkpoint-records",
        "3",
        "--no-progress",
        *extra,
    ]


def test_two_processes_on_one_out_lose_nothing(tmp_path):
    rows = lab_rows(60)
    corpus = write_jsonl(tmp_path / "corpus.jsonl", rows)
    out = tmp_path / "run"
    argv = lab_argv(corpus, out, "--samples", "2")
    procs = [start_cli(argv) for _ in range(2)]
    logs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    counts = Counter(record_keys(out))
    assert set(counts) == {(r["id"], s) for r in rows for s in range(2)} and set(counts.values()) == {1}
    again = run_cli(argv)
    assert again.returncode == 0 and "already complete; nothing to do" in again.stderr


def test_cleanup_spares_live_processes_temps_and_users_files(tmp_path):
    corpus = write_jsonl(tmp_path / "corpus.jsonl", lab_rows(6))
    out = tmp_path / "run"
    assert run_cli(lab_argv(corpus, out, "--plan-only")).returncode == 0
    host = socket.gethostname()
    live = out / "data" / f".shard-00000.parquet{TEMP_MARK}-{host}-{os.getpid()}-x.tmp"  # this test process: alive
    dead = out / "data" / f".shard-00000.parquet{TEMP_MARK}-{host}-999999999-x.tmp"  # no such pid
    users = out / ".notes.tmp"
    for path in (live, dead, users):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
        os.utime(path, (time.time() - 3600, time.time() - 3600))  # old: the old cleanup deleted these
    assert run_cli(lab_argv(corpus, out)).returncode == 0
    assert live.exists() and users.exists() and not dead.exists()


def test_out_inside_an_input_folder_is_refused(tmp_path):
    folder = tmp_path / "corpus"
    write_jsonl(folder / "a.jsonl", lab_rows(4))
    proc = run_cli(lab_argv(folder, folder / "run"))
    assert proc.returncode == 2 and "inside the input folder" in proc.stderr
    assert not (folder / "run").exists()


def test_a_foreign_non_empty_folder_is_refused_before_writing(tmp_path):
    corpus = write_jsonl(tmp_path / "corpus.jsonl", lab_rows(4))
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    proc = run_cli(lab_argv(corpus, out))
    assert proc.returncode == 2 and "not a tpt augment run" in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["thesis.tex"]


def test_run_files_follow_the_umask(tmp_path):
    corpus = write_jsonl(tmp_path / "corpus.jsonl", lab_rows(4))
    out = tmp_path / "run"
    old = os.umask(0o022)
    try:
        run_augment(make_config(tmp_path, [corpus], backend="lab-expert", out=out))
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in out.rglob("*") if p.is_file() and "lock" not in p.name}
    assert modes and set(modes.values()) == {0o644}, modes


def parse_file(path: Path, **kw) -> list:
    (resolved,) = resolve_inputs([str(path)])
    from tpt.io.readers import file_kind

    return [parse_row(r, **kw) for r in iter_range(resolved, file_kind(resolved), 0, -1)]


def test_surrogates_are_rejected_naming_the_field(tmp_path):
    path = write_jsonl(
        tmp_path / "s.jsonl",
        [
            '{"id": "a", "text": "bad \\ud800 text"}',
            '{"id": "b\\udfff", "text": "fine"}',
            '{"id": "c", "text": "fine", "meta": {"x": ["\\udfff"]}}',
            '{"id": "d", "text": "fine"}',
        ],
    )
    out = parse_file(path)
    assert [(r.line, r.field) for r in out[:3]] == [(1, "text"), (2, "id"), (3, "meta")]
    assert all(isinstance(r, Rejection) and "lone surrogate" in r.reason for r in out[:3])
    assert out[3].id == "d"
    pq.write_table(pa.Table.from_pylist([r.to_row() for r in out[:3]]), tmp_path / "rej.parquet")  # storable


def test_bom_is_the_encoding_mark_not_part_of_the_first_row(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"id": "a", "text": "first"}).encode() + b"\n")
    (doc,) = parse_file(path)
    assert doc.id == "a" and doc.text == "first"


def test_truncated_gz_keeps_its_readable_rows_and_names_the_file(tmp_path):
    data = gzip.compress("".join(json.dumps(r) + "\n" for r in corpus_rows(400)).encode())
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    out = parse_file(path)
    docs = [d for d in out if not isinstance(d, Rejection)]
    assert 0 < len(docs) < 400
    assert isinstance(out[-1], Rejection) and out[-1].file == str(path) and "unreadable file" in out[-1].reason


def test_a_run_goes_on_past_a_corrupt_parquet_and_a_truncated_gz(tmp_path):
    folder = tmp_path / "in"
    write_jsonl(folder / "a.jsonl", lab_rows(5))
    (folder / "b.parquet").write_bytes(b"PAR1 this is not parquet")
    data = gzip.compress("".join(json.dumps(r) + "\n" for r in lab_rows(200, seed=9)).encode())
    (folder / "c.jsonl.gz").write_bytes(data[: len(data) // 2])
    out = tmp_path / "run"
    proc = run_cli([str(folder), "--out", str(out), "--backend", "lab-expert", "--no-progress"])
    assert proc.returncode == 1, proc.stderr
    rejected = [r for p in (out / "rejected").glob("*.parquet") for r in pq.read_table(p).to_pylist()]
    bad_files = {Path(r["file"]).name for r in rejected if "unreadable file" in r["reason"]}
    assert bad_files == {"b.parquet", "c.jsonl.gz"}
    stats = json.loads((out / "stats.json").read_text())
    assert stats["records"] > 5 and stats["rejected_by_reason"]["unreadable file"] == 2
    assert "unreadable file" in proc.stderr and "b.parquet" in proc.stderr


def test_iter_raw_rows_names_an_unreadable_file(tmp_path):
    from tpt.io.readers import iter_raw_rows

    (tmp_path / "x.parquet").write_bytes(b"garbage")
    with pytest.raises(InputError, match="x.parquet"):
        list(iter_raw_rows([tmp_path / "x.parquet"]))


def test_scrub_removes_any_piece_of_a_secret():
    from tpt.io.scrub import scrub

    key = "sk-LEAKCHECK-12345"
    assert "LEAK" not in scrub(f"echo: Bearer {key[:-1]}", [key])
    assert scrub(f"a {key} b {key[3:12]} c", [key]) == "a *** b *** c"
    assert scrub("nothing secret here", [key]) == "nothing secret here"


@contextmanager
def tmpfs(path: Path, options: str):
    """A small tmpfs at ``path`` (root only: skipped elsewhere), always unmounted."""
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    path.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_read_only_out_is_one_line_and_exit_code_3(tmp_path):
    corpus = write_jsonl(tmp_path / "corpus.jsonl", lab_rows(4))
    with tmpfs(tmp_path / "ro", "ro,size=1m") as out:
        proc = run_cli(lab_argv(corpus, out / "run"))
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr and "Read-only file system" in proc.stderr and str(out) in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_disk_full_is_one_line_and_exit_code_3(tmp_path):
    corpus = write_jsonl(tmp_path / "corpus.jsonl", lab_rows(300))
    with tmpfs(tmp_path / "full", "size=64k") as out:
        proc = run_cli(lab_argv(corpus, out / "run", "--shard-bytes", "100000000"))
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr and "No space left on device" in proc.stderr and str(out) in proc.stderr


def test_unhandled_errors_map_to_documented_exit_codes(monkeypatch, capsys):
    import types

    from tpt import cli

    def stage(exc):
        def main(argv):
            raise exc

        return types.SimpleNamespace(main=main)

    monkeypatch.setenv("MY_API_KEY", "sk-verysecretvalue")
    cases = [
        (OSError(28, "No space left on device", "/data/run/x.parquet"), 3, "/data/run/x.parquet"),
        (RuntimeError("boom sk-verysecretvalue"), 3, "crash"),
        (KeyboardInterrupt(), 130, "interrupted"),
    ]
    for exc, code, text in cases:
        monkeypatch.setattr(cli.importlib, "import_module", lambda name, exc=exc: stage(exc))
        assert cli.main(["prepare"]) == code
        err = capsys.readouterr().err
        assert text in err and "verysecret" not in err
    assert "disk is full" in one_line_of(OSError(28, "No space left on device", "/x"))


def one_line_of(exc) -> str:
    from tpt.exit_codes import one_line

    return one_line("train", exc)


class _EchoHeaders:
    """An OpenAI-shaped server that answers 500 with a body echoing the request's Authorization
    header after some padding, so that a cut at 300 characters falls inside the key."""

    def __enter__(self):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = ("x" * 270 + " auth=" + self.headers.get("Authorization", "")).encode()
                self.send_response(500)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __exit__(self, *exc):
        self.server.shutdown()


def test_no_piece_of_the_api_key_reaches_the_failed_table(tmp_path, monkeypatch, tiny_model_dir):
    key = "sk-LEAKCHECK-12345"
    monkeypatch.setenv("TPT_LEAK_KEY", key)
    corpus = write_jsonl(tmp_path / "c.jsonl", corpus_rows(2))
    with _EchoHeaders() as url:
        cfg = make_config(
            tmp_path,
            [corpus],
            backend="openai",
            base_url=url,
            model=str(tiny_model_dir),
            api_key_env="TPT_LEAK_KEY",
            server_sampling="native",
            max_retries=0,
        )
        summary = run_augment(cfg)
    assert summary.failed == 2
    stored = b"".join(p.read_bytes() for p in cfg.out.rglob("*") if p.is_file())
    errors = [r["error"] for p in (cfg.out / "failed").glob("*.parquet") for r in pq.read_table(p).to_pylist()]
    assert all("HTTP 500" in e and "auth=Bearer ***" in e for e in errors), errors
    for i in range(len(key) - 5):
        piece = key[i : i + 6]
        assert piece.encode() not in stored and not any(piece in e for e in errors), piece


def test_a_shard_locked_by_another_process_is_passed_over_then_waited_for(tmp_path):
    import threading

    from tpt.augment.run import prepare_run
    from tpt.io.lock import FileLock

    rows = lab_rows(12)
    cfg = make_config(tmp_path, [write_jsonl(tmp_path / "c.jsonl", rows)], backend="lab-expert", shard_bytes=400)
    specs = prepare_run(cfg)
    assert len(specs) >= 3
    held = FileLock(cfg.out / "state" / "locks" / "shard-00000.lock").acquire()  # "another process" runs shard 0
    result = {}
    worker = threading.Thread(target=lambda: result.update(summary=run_augment(cfg)))
    worker.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list((cfg.out / "state").glob("shard-*.done"))) < len(specs) - 1:
        time.sleep(0.1)
    time.sleep(0.5)
    assert worker.is_alive() and not (cfg.out / "state" / "shard-00000.done").exists()  # waiting, not redoing
    held.release()
    worker.join(120)
    assert result["summary"].records == 12 and result["summary"].stats["complete"]
    assert sorted(record_keys(cfg.out)) == sorted((r["id"], 0) for r in rows)
