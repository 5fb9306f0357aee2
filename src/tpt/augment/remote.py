"""``--out`` on object storage (``s3://``, ``gs://``, ``memory://``...): the same run folder layout,
the same exactly-once and resume guarantees, without rename or flock (docs/scale.md, "Remote --out").

Each process works in a private local *stage* folder and publishes whole objects:

* ``plan.json`` and the first ``manifest.json`` are created once (exclusive create): concurrent
  planners agree, as locally.
* A shard is claimed by a lease object ``state/locks/shard-k.lock`` (``tpt.io.objects.Lease``).
  Its earlier checkpoints (``data/.parts/shard-k/*``) are downloaded, the shard runs in the stage by
  the local ``run_shard`` code, and every checkpoint chunk is uploaded as soon as it is written
  (each under a name of its own, so no writer ever replaces another's chunk). At the end the
  shard's ``rejected``, ``failed``, ids and ``data`` objects are uploaded, the ``done`` marker
  **last**, then its checkpoints are deleted. A reader that sees the marker sees the whole shard.
* Every output is one object per shard under a name fixed by the plan, uploaded whole. So even
  two processes running one shard (a lease taken over from a live but silent holder) leave one
  complete record set for it: duplicated work, never a duplicated or lost record.
* Resume lists the markers (``state/*.done``) and the checkpoints of unfinished shards.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from tpt.augment.duplicates import DONE as MERGED
from tpt.augment.duplicates import find_duplicates, ids_path, merge_duplicates
from tpt.augment.markers import file_sums
from tpt.augment.planning import check_plan, compute_plan, plan_from_text, specs_of
from tpt.augment.shards import ShardContext, ShardResult, ShardSpec, _run_locked, parts_dir
from tpt.augment.specs import manifest_fingerprint
from tpt.formats import RUN_ENTRIES
from tpt.io.atomic import remove_stale_temps, temp_name
from tpt.io.lock import LockHeld
from tpt.io.objects import Lease, ObjectStore

RUN_LOCK = "state/run.lock"


def refuse_unsupported(config) -> None:
    problems = []
    if config.executor.name != "local":
        problems.append(
            f"--executor {config.executor.name} (use --shard-range i/n array tasks, or a shared local folder)"
        )
    if config.regenerate_length:
        problems.append("--regenerate-length (run it on a local copy of the run folder)")
    if problems:
        raise ValueError(f"--out {config.out} is on object storage, which does not support " + "; ".join(problems))


def stage_base() -> Path:
    return Path(os.environ.get("TPT_STAGE_DIR") or tempfile.gettempdir()) / "tpt-stage"


@contextmanager
def staged(url: str) -> Iterator[Path]:
    """A private local folder for this process's work on ``url`` (``$TPT_STAGE_DIR``, else the temp
    folder); named like tpt's temps, so one left by a killed process is removed by the next run."""
    base = stage_base()
    base.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(base)
    digest = hashlib.sha1(url.encode()).hexdigest()[:12]
    folder = Path(tempfile.mkdtemp(prefix=temp_name(base / digest) + "-", dir=base))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def check_remote_folder(store: ObjectStore) -> None:
    """A non-empty remote --out must be a tpt augment run (as for a local one)."""
    text = store.read_text("manifest.json")
    if text is not None:
        stage = json.loads(text).get("stage", "?")
        if stage != "augment":
            raise ValueError(f"--out {store.url} is a tpt {stage} folder; refusing to write into it")
        return
    try:
        entries = {p.rstrip("/").rsplit("/", 1)[-1] for p in store.fs.ls(store.root, detail=False)}
    except FileNotFoundError:
        return
    foreign = sorted(entries - RUN_ENTRIES)
    if foreign:
        raise ValueError(
            f"--out {store.url} is not a tpt augment run (it holds {', '.join(foreign[:5])}); refusing to write into it"
        )


def prepare_remote(config, template: str, compare) -> list[ShardSpec]:
    """Folder check, manifest (``compare(old_fingerprint)`` raises on a different config), plan."""
    refuse_unsupported(config)
    store = ObjectStore(str(config.out))
    check_remote_folder(store)
    manifest = json.dumps(compare(None), indent=2, ensure_ascii=False, default=str).encode()
    if not store.create_once("manifest.json", manifest):
        old = manifest_fingerprint(json.loads(store.read_text("manifest.json") or "{}"), f"{store.url}/manifest.json")
        store.put_bytes("manifest.json", json.dumps(compare(old), indent=2, default=str).encode())
    if not store.exists("plan.json"):
        store.create_once("plan.json", (json.dumps(compute_plan(config), ensure_ascii=False) + "\n").encode())
    where = f"{store.url}/plan.json"
    plan = plan_from_text(store.read_text("plan.json"), where)
    check_plan(plan, config, where)
    return specs_of(plan, config.executor.shard_range)


def done_names(url: str) -> set[str]:
    """Shards whose marker exists: one listing, not one request per shard."""
    return {n[: -len(".done")] for n in ObjectStore(url).names("state", ".done")}


def marker_rel(spec: ShardSpec) -> str:
    return f"state/{spec.name}.done"


def parts_rel(spec: ShardSpec) -> str:
    return f"data/.parts/{spec.name}"


def run_remote_shard(spec: ShardSpec, ctx: ShardContext, rows, wait: float | None) -> ShardResult:
    """``run_shard`` for a remote --out: claim, pull checkpoints, run in the stage, publish, release."""
    store = ObjectStore(str(ctx.config.out))
    if store.exists(marker_rel(spec)):
        return _done_result(store, spec)
    lease = Lease(store, f"state/locks/{spec.name}.lock", what=f"{spec.name} of {store.url}", wait=wait)
    lease.acquire(give_up=lambda: store.exists(marker_rel(spec)))
    try:
        if not lease.held or store.exists(marker_rel(spec)):  # finished by the holder meanwhile
            return _done_result(store, spec)
        with staged(store.url) as stage:
            _pull_parts(store, spec, stage)
            tag = lease.token[:12]
            local = replace(
                ctx,
                config=replace(ctx.config, out=stage),
                on_part=lambda path: store.put_file(path, f"{parts_rel(spec)}/{path.stem}-{tag}.parquet"),
            )
            result = _run_locked(spec, local, stage, rows)
            _publish(store, spec, stage)
        return result
    finally:
        lease.release()


def _done_result(store: ObjectStore, spec: ShardSpec) -> ShardResult:
    marker = json.loads(store.read_text(marker_rel(spec)) or "{}")
    return ShardResult(spec, records=int(marker.get("records", 0)), skipped=True)


def _pull_parts(store: ObjectStore, spec: ShardSpec, stage: Path) -> None:
    """The shard's uploaded checkpoints, renumbered locally (chunk-00000, ...) for the local code."""
    folder = parts_dir(stage, spec)
    for number, name in enumerate(store.names(parts_rel(spec), ".parquet")):
        store.get_file(f"{parts_rel(spec)}/{name}", folder / f"chunk-{number:05d}.parquet")


def _publish(store: ObjectStore, spec: ShardSpec, stage: Path) -> None:
    """Upload the shard's outputs whole, the done marker last; then drop its checkpoints."""
    for rel in (f"rejected/{spec.name}.parquet", f"failed/{spec.name}.parquet", f"data/{spec.name}.parquet"):
        local = stage / rel
        if local.exists():
            store.put_file(local, rel)
        else:
            store.delete(rel)  # e.g. failures of an earlier attempt, generated now
    store.put_file(ids_path(stage, spec.name), f"state/ids/{spec.name}.parquet")
    marker = stage / marker_rel(spec)
    if marker.exists():
        store.put_file(marker, marker_rel(spec))
        store.delete_folder(parts_rel(spec))


def finalize_remote(config, wait: float, make_stats) -> tuple[dict, bool]:
    """(stats, written): the duplicate merge once every shard is done and ``stats.json``, under the
    run lease; without it (another process is merging) the stats are reported, not written.
    ``make_stats(data_sums, rejected_files, failed_files, complete)`` builds them (run.py's)."""
    store = ObjectStore(str(config.out))
    lease = Lease(store, RUN_LOCK, what=f"run folder {store.url}", wait=wait)
    try:
        lease.acquire()
    except LockHeld as exc:
        print(f"tpt augment: {exc}; reporting without writing stats.json", file=sys.stderr)
    try:
        with staged(store.url) as stage:
            specs = specs_of(plan_from_text(store.read_text("plan.json"), f"{store.url}/plan.json"))
            complete = {s.name for s in specs} <= done_names(store.url)
            if complete and lease.held and not store.exists(f"state/{MERGED}"):
                _merge_remote(store, stage, specs)
            stats = make_stats(*_remote_sums(store, stage), complete)
        if lease.held:
            text = json.dumps(stats, indent=2, ensure_ascii=False, default=str) + "\n"
            store.put_bytes("stats.json", text.encode())
        return stats, lease.held
    finally:
        lease.release()


def _merge_remote(store: ObjectStore, stage: Path, specs: list[ShardSpec]) -> None:
    """The local merge on downloaded id files; only shards holding duplicates are fetched and re-uploaded."""
    for name in store.names("state/ids", ".parquet"):
        store.get_file(f"state/ids/{name}", stage / "state" / "ids" / name)
    found = find_duplicates(stage, specs)
    by_index = {s.index: s for s in specs}
    for index in found:
        rel = f"data/{by_index[index].name}.parquet"
        if store.exists(rel):
            store.get_file(rel, stage / rel)
    merge_duplicates(stage, specs, found)
    for index in sorted(found):  # rejections, data, marker: the same order as locally
        name = by_index[index].name
        for rel in (f"rejected/{name}.duplicates.parquet", f"data/{name}.parquet", f"state/{name}.done"):
            if (stage / rel).exists():
                store.put_file(stage / rel, rel)
    store.put_file(stage / "state" / MERGED, f"state/{MERGED}")


def _remote_sums(store: ObjectStore, stage: Path) -> tuple[list[dict], list[Path], list[Path]]:
    """What stats.json needs: each data object's sums, from its marker (a shard without one: from the
    object), and the rejected and failed tables (downloaded to the stage: small)."""
    markers = store.read_many([f"state/{n}" for n in store.names("state", ".done")])
    data: list[dict] = []
    for name in store.names("data", ".parquet"):
        stem = name[: -len(".parquet")]
        sums = json.loads(markers.get(f"state/{stem}.done", b"{}") or b"{}").get("sums")
        if sums is None:
            store.get_file(f"data/{name}", stage / "data" / name)
            sums = file_sums(stage / "data" / name)
        data.append(sums)
    tables = {}
    for folder in ("rejected", "failed"):
        for name in store.names(folder, ".parquet"):
            store.get_file(f"{folder}/{name}", stage / folder / name)
        tables[folder] = sorted((stage / folder).glob("*.parquet"))
    return data, tables["rejected"], tables["failed"]
