"""``--out`` on object storage: ``memory://`` in one process, and ``objstore://`` (object-store
semantics: whole-object PUTs, exclusive create, no rename, no flock; tests/augment/objstore_fs.py)
shared by several processes, for the array-task, kill -9 and resume guarantees."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from augment_helpers import lab_rows, make_config, write_jsonl

from tpt.augment.run import load_backend, run_augment
from tpt.io.fs import filesystem

fsspec = pytest.importorskip("fsspec")

HERE = Path(__file__).parent


def remote_keys(url: str) -> list[tuple[str, int]]:
    fs, root = filesystem(url)
    keys = []
    for path in sorted(fs.glob(f"{root}/data/*.parquet")):
        with fs.open(path, "rb") as fh:
            keys += [(r["id"], r["sample"]) for r in pq.read_table(fh, columns=["id", "sample"]).to_pylist()]
    return keys


def remote_names(url: str, folder: str) -> list[str]:
    fs, root = filesystem(url)
    return sorted(p.rsplit("/", 1)[-1] for p in fs.find(f"{root}/{folder}"))


@pytest.fixture
def memory_out():
    url = "memory://tpt-remote-test/run"
    yield url
    fs, root = filesystem(url)
    if fs.exists("/tpt-remote-test"):
        fs.rm("/tpt-remote-test", recursive=True)


class DiesAfter:
    """The lab-expert backend, cut off after ``n`` results (a crash in the middle of a shard)."""

    parallelism = 2  # small calls, so that the crash comes between checkpoints

    def __init__(self, backend, n: int):
        self.inner, self.left = backend, n

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def generate(self, requests, sampling):
        if self.left <= 0:
            raise KeyboardInterrupt("simulated crash")
        self.left -= len(requests)
        return self.inner.generate(requests, sampling)


def test_memory_out_runs_resumes_and_reports(tmp_path, memory_out):
    rows = lab_rows(30, seed=7)
    write_jsonl(tmp_path / "in" / "a.jsonl", rows[:20] + [rows[0]])  # rows[0]'s id twice, in two shards
    write_jsonl(tmp_path / "in" / "b.jsonl", rows[20:] + ["{not json"])
    cfg = make_config(tmp_path, [tmp_path / "in"], out=memory_out, backend="lab-expert", shard_bytes=2000)
    cfg.sampling.samples, cfg.executor.checkpoint_records = 2, 3
    with pytest.raises(KeyboardInterrupt):
        run_augment(cfg, backend=DiesAfter(load_backend(cfg), 8))
    parts = remote_names(memory_out, "data/.parts")
    assert parts, "checkpoints reach the store while the shard runs"
    summary = run_augment(cfg)
    keys = Counter(remote_keys(memory_out))
    assert set(keys) == {(r["id"], s) for r in rows for s in range(2)} and set(keys.values()) == {1}
    assert summary.new_records < 60  # what was checkpointed before the crash was kept, not redone
    assert summary.rejected == 2 and summary.stats["rejected_by_reason"] == {"duplicate id": 1, "malformed JSON": 1}
    fs, root = filesystem(memory_out)
    stats = json.loads(fs.cat(f"{root}/stats.json"))
    assert stats["records"] == 60 and stats["complete"] and not remote_names(memory_out, "data/.parts")
    assert not fs.exists(f"{root}/state/locks") or not remote_names(memory_out, "state/locks")  # leases released
    again = run_augment(cfg)
    assert again.nothing_to_do and again.records == 60


def test_memory_out_refuses_what_it_cannot_do(tmp_path, memory_out):
    write_jsonl(tmp_path / "in" / "a.jsonl", lab_rows(4))
    cfg = make_config(tmp_path, [tmp_path / "in"], out=memory_out, backend="lab-expert", executor="ray")
    with pytest.raises(ValueError, match="object storage.*--executor ray"):
        run_augment(cfg)
    fs, root = filesystem(memory_out)
    fs.pipe(f"{root}/notes.txt", b"mine")
    cfg.executor.name = "local"
    with pytest.raises(ValueError, match="not a tpt augment run .*notes.txt"):
        run_augment(cfg)


def test_a_url_out_stays_a_url_on_the_command_line():
    from tpt.augment.config import AugmentConfig
    from tpt.config import parse

    assert parse(AugmentConfig, ["x.jsonl", "--out", "s3://bucket/run"], prog="t").out == "s3://bucket/run"
    assert parse(AugmentConfig, ["x.jsonl", "--out", "runs/a"], prog="t").out == Path("runs/a")


def test_lease_is_exclusive_expires_and_never_frees_a_successor(memory_out):
    from tpt.io.lock import LockHeld
    from tpt.io.objects import Lease, ObjectStore

    store = ObjectStore(memory_out)
    first = Lease(store, "state/locks/x.lock", "x", ttl=60).acquire()
    with pytest.raises(LockHeld, match="x is in use by pid"):
        Lease(store, "state/locks/x.lock", "x", wait=0).acquire()
    first._stop.set()  # the holder goes silent (frozen, or its node lost) ...
    record = json.loads(store.read_text("state/locks/x.lock"))
    store.put_bytes("state/locks/x.lock", json.dumps(dict(record, host="elsewhere", expires=0)).encode())
    second = Lease(store, "state/locks/x.lock", "x", wait=5, ttl=60).acquire()  # ... and is taken over
    assert second.held and json.loads(store.read_text("state/locks/x.lock"))["token"] == second.token
    first.release()  # the old holder wakes up: it must not delete its successor's lease
    assert store.exists("state/locks/x.lock")
    second.release()
    assert not store.exists("state/locks/x.lock")


def test_without_exclusive_create_the_store_falls_back_and_says_so(memory_out, monkeypatch, capsys):
    from tpt.io import objects

    store = objects.ObjectStore(memory_out)
    real_open = store.fs.open

    def no_exclusive_mode(path, mode="rb", **kw):
        if "x" in mode:
            raise ValueError(f"mode {mode!r} not supported")
        return real_open(path, mode, **kw)

    monkeypatch.setattr(store.fs, "open", no_exclusive_mode)
    monkeypatch.setattr(objects, "_NO_EXCLUSIVE_CREATE", set())
    assert store.create_once("plan.json", b"first") and not store.create_once("plan.json", b"second")
    assert store.read_bytes("plan.json") == b"first" and "no exclusive create" in capsys.readouterr().err


# -- several processes on one object store -------------------------------------------------------


def objstore_cli(root: Path, argv: list[str], crash_after: int | None = None) -> subprocess.Popen:
    """``tpt augment ARGV`` in a process that knows ``objstore://``; ``crash_after``: the backend
    ends the process with os._exit after that many results (as kill -9: no cleanup at all)."""
    script = f"""
import os, sys
sys.path.insert(0, {str(HERE)!r})
import objstore_fs
objstore_fs.register()
crash_after = {crash_after!r}
if crash_after is not None:
    import tpt.augment.run as run
    real = run.load_backend
    def load_backend(config):
        backend, seen = real(config), [0]
        backend.parallelism = 2  # small calls, so that the crash comes between checkpoints
        inner = backend.generate
        def generate(requests, sampling):
            if seen[0] >= crash_after:
                os._exit(9)
            seen[0] += len(requests)
            return inner(requests, sampling)
        backend.generate = generate
        return backend
    run.load_backend = load_backend
from tpt.cli import main
sys.exit(main(["augment", *sys.argv[1:]]))
"""
    env = dict(os.environ, PYTHONUNBUFFERED="1", TPT_OBJSTORE_ROOT=str(root), TPT_STAGE_DIR=str(root / "stage"))
    return subprocess.Popen(
        [sys.executable, "-c", script, *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def objstore_keys(root: Path) -> Counter:
    objects = root / "objects" / "bucket" / "run"
    return Counter(
        (r["id"], r["sample"])
        for p in sorted((objects / "data").glob("*.parquet"))
        for r in pq.read_table(p, columns=["id", "sample"]).to_pylist()
    )


def test_array_tasks_and_a_kill_9_on_an_object_store(tmp_path):
    rows = lab_rows(60, seed=8)
    write_jsonl(tmp_path / "in" / "a.jsonl", rows[:30])
    write_jsonl(tmp_path / "in" / "b.jsonl", rows[30:])
    root = tmp_path / "store"
    argv = [str(tmp_path / "in"), "--out", "objstore://bucket/run", "--backend", "lab-expert", "--shard-bytes", "1500"]
    argv += ["--samples", "2", "--checkpoint-records", "3", "--no-progress"]
    # 3 array tasks started together on an empty store (all plan at once); task 0 dies mid-shard
    procs = [
        objstore_cli(root, argv + ["--shard-range", f"{i}/3"], crash_after=5 if i == 0 else None) for i in range(3)
    ]
    logs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [9, 0, 0], logs
    objects = root / "objects" / "bucket" / "run"
    assert list((objects / "state" / "locks").glob("*.lock")), "the killed task left its lease"
    assert list((objects / "data" / ".parts").rglob("*.parquet")), "and its checkpoints"
    rerun = objstore_cli(root, argv + ["--shard-range", "0/3"])  # takes the dead task's lease over
    log = rerun.communicate(timeout=300)[0]
    assert rerun.returncode == 0 and "taking over shard-" in log and "its process is gone" in log, log
    keys = objstore_keys(root)
    assert set(keys) == {(r["id"], s) for r in rows for s in range(2)} and set(keys.values()) == {1}
    assert not list((objects / "data").rglob(".parts/*/*.parquet")) and not (objects / "state" / "locks").exists()
    final = objstore_cli(root, argv)
    out = final.communicate(timeout=300)[0]
    assert final.returncode == 0 and "already complete; nothing to do" in out, out
    assert json.loads((objects / "stats.json").read_text())["records"] == 120
    assert not list((root / "stage" / "tpt-stage").iterdir()), "every process removed its local stage"


def test_inputs_and_out_on_the_object_store_in_one_process(tmp_path, monkeypatch):
    import objstore_fs
    import pyarrow as pa

    monkeypatch.setenv("TPT_OBJSTORE_ROOT", str(tmp_path / "store"))
    monkeypatch.setenv("TPT_STAGE_DIR", str(tmp_path / "stage"))
    objstore_fs.register()
    fs, _ = filesystem("objstore://bucket")
    pool = lab_rows(200, seed=9)
    rows = [r for r in pool if r["family"] != "multiply"][:8] + [r for r in pool if r["family"] == "multiply"][:8]
    fs.pipe("bucket/corpus/a.jsonl", "".join(json.dumps(r) + "\n" for r in rows[:8]).encode())
    buf = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(rows[8:]), buf, row_group_size=4)
    fs.pipe("bucket/corpus/b.parquet", buf.getvalue().to_pybytes())
    cfg = make_config(tmp_path, ["objstore://bucket/corpus"], out="objstore://bucket/run", backend="lab-expert")
    summary = run_augment(cfg)
    assert summary.records == 16 and sorted(remote_keys(cfg.out)) == sorted((r["id"], 0) for r in rows)
    plan = json.loads(fs.cat("bucket/run/plan.json"))
    assert [f["path"] for f in plan["files"]] == [
        "objstore://bucket/corpus/a.jsonl",
        "objstore://bucket/corpus/b.parquet",
    ]
    assert len(plan["shards"]) > 2 and run_augment(cfg).nothing_to_do
