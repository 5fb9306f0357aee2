"""The contracts between stages that are files: names, versions, fields, and their readers and writers.

``records.py`` holds the row schemas (documents, thinking records); this module holds the files one
stage writes and another reads, so no stage re-derives another's file names or guesses its fields:

===================  ==============================  =========================================
format               file                            written by -> read by
===================  ==============================  =========================================
checkpoint info v1   CKPT/tpt_checkpoint.json        tpt train -> tpt eval (into its results)
metrics rows v1      TRAIN_OUT/metrics.jsonl         tpt train -> tpt analyze curves
eval result v1       EVAL_OUT/<model>.json           tpt eval -> tpt analyze curves
augment run v1       RUN/{data,rejected,failed}/...  tpt augment -> analyze, filter, prepare
augment manifest v2  RUN/manifest.json               tpt augment -> its resume, --config replay
===================  ==============================  =========================================

A JSON file carries its format as ``"format": "NAME/VERSION"``; a file without the tag is version 1
(tpt wrote them before the tag existed).  A reader refuses a version newer than it knows, naming the
file, instead of misreading it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from tpt.io.atomic import atomic_write_text

FORMAT_KEY = "format"


class FormatError(ValueError):
    """A file that does not follow its format: names the file, the field and what is wrong."""


@dataclass(frozen=True)
class Format:
    name: str
    version: int

    @property
    def tag(self) -> str:
        return f"{self.name}/{self.version}"

    def stamp(self, obj: dict) -> dict:
        """``obj`` with this format's tag first (what writers store)."""
        return {FORMAT_KEY: self.tag, **{k: v for k, v in obj.items() if k != FORMAT_KEY}}

    def is_tagged(self, obj: dict) -> bool:
        return str(obj.get(FORMAT_KEY, "")).split("/")[0] == self.name

    def check(self, obj: Any, path: str | Path) -> dict:
        """``obj`` if it is an object of this format at a version this reader knows; else FormatError."""
        if not isinstance(obj, dict):
            raise FormatError(f"{path}: expected a JSON object ({self.tag})")
        tag = obj.get(FORMAT_KEY)
        if tag is None:
            return obj  # written before formats were tagged: version 1
        name, _, version = str(tag).partition("/")
        if name != self.name or not version.isdigit():
            raise FormatError(f"{path}: field 'format' is {tag!r}, expected {self.tag}")
        if int(version) > self.version:
            raise FormatError(f"{path}: {tag} is newer than this tpt reads ({self.tag}); upgrade tpt")
        return obj


def read_json(path: str | Path, fmt: Format) -> dict:
    path = Path(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise FormatError(f"{path}: not valid JSON ({err.msg}, line {err.lineno})") from None
    return fmt.check(obj, path)


def write_json(path: str | Path, obj: dict, fmt: Format) -> Path:
    """Atomically (temp + fsync + rename): a reader never sees half a file."""
    return atomic_write_text(path, json.dumps(fmt.stamp(obj), indent=2, default=str) + "\n")


# --- checkpoint info: where a checkpoint sits on the training curve --------------------------------
CHECKPOINT_INFO = Format("tpt.checkpoint_info", 1)
CHECKPOINT_INFO_FILE = "tpt_checkpoint.json"


@dataclass
class CheckpointInfo:
    step: int  # optimizer steps taken
    tokens_seen: int  # training tokens seen
    val_loss: float | None = None  # final checkpoint: the last held-out loss
    parameters: int | None = None  # final checkpoint: model size
    requested_tokens: int | None = None  # --save-at snapshot: the budget it was asked for

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, obj: dict, path: str | Path = "<checkpoint info>") -> CheckpointInfo:
        for name in ("step", "tokens_seen"):
            if not isinstance(obj.get(name), int) or isinstance(obj.get(name), bool):
                raise FormatError(f"{path}: field {name!r} must be an integer, got {obj.get(name)!r}")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in obj.items() if k in known})


def write_checkpoint_info(folder: str | Path, info: CheckpointInfo) -> Path:
    return write_json(Path(folder) / CHECKPOINT_INFO_FILE, info.to_dict(), CHECKPOINT_INFO)


def read_checkpoint_info(folder: str | Path) -> CheckpointInfo | None:
    """The info of a tpt checkpoint folder; None for a folder tpt train did not write (an HF model)."""
    path = Path(folder) / CHECKPOINT_INFO_FILE
    if not path.is_file():
        return None
    return CheckpointInfo.from_dict(read_json(path, CHECKPOINT_INFO), path)


# --- metrics rows: one JSON object per line, appended while training --------------------------------
METRICS_FILE = "metrics.jsonl"
# Version 1; rows are not stamped (one tag per line would be noise): a v2 gets a new file name.
METRICS_TOKENS = "tokens"  # required: training tokens seen so far
METRICS_STEP = "step"  # optimizer step
METRICS_DOCS = "unique_docs"  # distinct documents seen so far (the lab's runs log it)
# Other numeric fields are measurements: loss, val_loss, lr, grad_norm, tokens_per_s, score.


# --- eval results: OUT/<model>.json, one per evaluated model ---------------------------------------
EVAL_RESULT = Format("tpt.eval_result", 1)
EVAL_SCORES = "scores"  # {task: headline score}
EVAL_CHECKPOINT = "checkpoint"  # the model's checkpoint info (or None, or {"error": ...})


def eval_result_file(out: str | Path, model_name: str) -> Path:
    return Path(out) / f"{model_name}.json"


def write_eval_result(out: str | Path, model_name: str, result: dict) -> Path:
    return write_json(eval_result_file(out, model_name), result, EVAL_RESULT)


def is_eval_result(obj: Any) -> bool:
    """A tpt eval result: tagged, or (written before the tag) untagged with a ``scores`` object."""
    if not isinstance(obj, dict):
        return False
    return EVAL_RESULT.is_tagged(obj) or (FORMAT_KEY not in obj and isinstance(obj.get(EVAL_SCORES), dict))


# --- augment run folder ------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunLayout:
    """Where an augment run keeps what (docs/augment.md, "What an augment run folder holds")."""

    root: Path

    @property
    def data(self) -> Path:  # the thinking-record shards, *.parquet, in shard order
        return self.root / "data"

    @property
    def rejected(self) -> Path:  # input rows set aside, with file, line, reason
        return self.root / "rejected"

    @property
    def failed(self) -> Path:  # generations that failed after retries (retried on the next run)
        return self.root / "failed"

    @property
    def manifest(self) -> Path:  # the run's config: replayable with --config
        return self.root / "manifest.json"

    @property
    def stats(self) -> Path:
        return self.root / "stats.json"

    @property
    def plan(self) -> Path:
        return self.root / "plan.json"

    @property
    def state(self) -> Path:  # in-shard progress and completion markers
        return self.root / "state"

    def is_run(self) -> bool:
        return self.data.is_dir()


def shard_name(index: int) -> str:
    """Shard ``index`` of a run's plan: its data file, done marker, ids and lock are all named so."""
    return f"shard-{index:05d}"


def is_run_folder(path: str | Path) -> bool:
    """An augment run folder (it has data/), finished or not."""
    return RunLayout(Path(path)).is_run()


# The run's config and resume fingerprint.  v2: inputs are {path, text_field, id_field} mappings
# (tpt.augment.specs.InputSpec); v1 (untagged) held the strings as typed, migrated when read.
AUGMENT_MANIFEST = Format("tpt.augment_manifest", 2)

# Everything an augment run folder may hold: anything else in --out means it is not (only) a run.
RUN_ENTRIES = frozenset(
    {"manifest.json", "plan.json", "stats.json", "data", "state", "rejected", "failed", "logs"}  # logs: --serve / vllm
)
