"""The lab's programmatic expert: an augment backend (``tpt augment --backend lab-expert``).

It reads each document's problem structure from its metadata (the lab corpus carries
``family``, ``difficulty``, ``problem`` and ``world_seed`` as extra input fields, which the
augment stage keeps in ``doc.meta``) and writes the family's step-by-step trajectory.  It is
deterministic: sampling settings other than the thinking budget do not change what it writes.

Variants for the ablations (``--backend tpt.lab.expert:make_noisy10`` etc., plugins like any other):
``noisy10`` / ``noisy30`` (each step wrong with probability 0.1 / 0.3, errors propagate),
``other`` (the trajectory of another training document of the same family, ``meta["other"]``)
and ``filler`` (as many filler tokens as the real trajectory has): content vs length;
``para`` / ``para-noisy30`` (the steps in one of the family's paraphrased wordings, drawn per
trajectory; clean / 30% noisy).

Tokens are counted with ``--tokenizer`` when given (an HF tokenizer folder), else as
whitespace-separated words.  A trajectory over the thinking budget is cut and reported as
``finish_reason="length"``, exactly as a model backend would.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from tpt.augment.backends.base import GenRequest, GenResult, SamplingParams
from tpt.lab.families import TaskFamily, load_family

REQUIRED_META = ("family", "problem")


class LabExpert:
    name = "lab-expert"
    parallelism = 1024  # requests per generate() call: the expert is pure Python, batches only amortise tokenizer calls

    def __init__(self, tokenizer_path: str | None = None, variant: str = "clean", heldout: Path | None = None):
        self.variant = variant
        # family -> identity texts of the seed's held-out problems (heldout.jsonl next to the
        # corpus): what a noisy trajectory must not state by accident
        self.blocked: dict[str, list[str]] = {}
        if heldout is not None and heldout.exists():
            for line in heldout.read_text(encoding="utf-8").splitlines():
                row = json.loads(line)
                self.blocked.setdefault(row["family"], []).extend(row["identity"])
        self._families: dict[tuple[str, int], TaskFamily] = {}
        self._tokenizer = None
        self._template_counts: dict[str, int] = {}
        if tokenizer_path:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)

    # --- token accounting -------------------------------------------------------------------
    def _pieces(self, text: str) -> list[Any]:
        if self._tokenizer is not None:
            return self._tokenizer.encode(text, add_special_tokens=False)
        return text.split()

    def _join(self, pieces: list[Any]) -> str:
        if self._tokenizer is not None:
            return self._tokenizer.decode(pieces)
        return " ".join(pieces)

    def count_tokens(self, text: str) -> int:
        return len(self._pieces(text))

    def truncate(self, text: str, max_tokens: int) -> tuple[str, int, bool]:
        pieces = self._pieces(text)
        if len(pieces) <= max_tokens:
            return text, len(pieces), False
        return self._join(pieces[:max_tokens]), len(pieces), True

    def truncate_batch(self, texts: list[str], max_tokens: int) -> list[tuple[str, int, bool]]:
        counts = self._count_many(texts)
        return [(t, n, False) if n <= max_tokens else self.truncate(t, max_tokens) for t, n in zip(texts, counts)]

    # --- generation -------------------------------------------------------------------------
    def family(self, name: str, seed: int) -> TaskFamily:
        if (name, seed) not in self._families:
            self._families[(name, seed)] = load_family(name, seed)
        return self._families[(name, seed)]

    def trajectory_for(self, request: GenRequest) -> str:
        """The expert's steps for the request's document; ValueError says what is wrong."""
        meta = request.doc.meta
        missing = [k for k in REQUIRED_META if k not in meta]
        if missing:
            raise ValueError(f"document {request.doc.id}: lab-expert needs meta field(s) {missing} (a lab corpus row)")
        family = self.family(str(meta["family"]), int(meta.get("world_seed", 0)))
        problem = meta["problem"]
        if not isinstance(problem, dict):
            raise ValueError(
                f"document {request.doc.id}: meta field 'problem' must be an object, got {type(problem).__name__}"
            )
        if family.question(problem) not in request.doc.text:
            raise ValueError(f"document {request.doc.id}: text does not state its problem ({family.name})")
        if self.variant == "clean":
            return family.trajectory(problem)
        if self.variant.startswith(("noisy", "para")):
            return self.noisy_trajectory(family, problem, random.Random(f"noise-{request.doc.id}-{request.sample}"))
        if self.variant == "other":
            if not isinstance(meta.get("other"), dict):
                raise ValueError(
                    f"document {request.doc.id}: the 'other' variant needs meta field 'other' (another training "
                    "problem)"
                )
            return family.trajectory(meta["other"])
        if self.variant == "filler":  # as many tokens as the real trajectory, none of its content
            return " ".join(["."] * self.count_tokens(family.trajectory(problem)))
        raise ValueError(f"lab-expert: unknown variant {self.variant!r}")

    def noisy_trajectory(self, family: TaskFamily, problem: dict, rng: random.Random) -> str:
        """A slip can make a training trajectory state a held-out sub-result by accident (a wrong
        value that happens to start a held-out chain): such a draw is redrawn, and after 20 tries
        the clean trajectory (which never states one) is written."""
        paraphrase = self.variant.startswith("para")  # "para", "para-noisy30": paraphrased steps (5(c))
        rest = self.variant.removeprefix("para").removeprefix("-").removeprefix("noisy")
        rate = int(rest) / 100 if rest else 0.0
        for _ in range(20):
            text = family.noisy_trajectory(problem, rng, rate, paraphrase=paraphrase)
            if not any(blocked in text for blocked in self.blocked.get(family.name, ())):
                return text
        return family.trajectory(problem)

    def _count_many(self, texts: list[str]) -> list[int]:
        if self._tokenizer is not None:  # one batched call: the Rust tokenizer encodes in parallel
            return [len(ids) for ids in self._tokenizer(texts, add_special_tokens=False)["input_ids"]]
        return [len(t.split()) for t in texts]

    def _prompt_lengths(self, requests: list[GenRequest]) -> list[int]:
        """Prompt tokens = the document's + the prompt template's (counted once per template: the
        template is the same long instruction for every document, re-encoding it dominated runtime)."""
        doc_counts = self._count_many([r.doc.text for r in requests])
        out = []
        for request, n_doc in zip(requests, doc_counts):
            if request.doc.text not in request.prompt:  # e.g. a focus mark inside the document
                out.append(self.count_tokens(request.prompt))
                continue
            rest = request.prompt.replace(request.doc.text, "", 1)
            if rest not in self._template_counts:
                self._template_counts[rest] = self.count_tokens(rest)
            out.append(self._template_counts[rest] + n_doc)
        return out

    def generate(self, requests: list[GenRequest], sampling: SamplingParams) -> list[GenResult]:
        texts: list[str | Exception] = []
        for request in requests:
            try:
                texts.append(self.trajectory_for(request))
            except Exception as e:  # one bad document never costs the batch
                texts.append(e)
        ok = [t for t in texts if isinstance(t, str)]
        lengths = iter(self._count_many(ok))
        prompt_lengths = self._prompt_lengths(requests)
        results = []
        for text, prompt_tokens in zip(texts, prompt_lengths):
            if isinstance(text, Exception):
                results.append(GenResult(error=f"{type(text).__name__}: {text}"))
                continue
            n, finish = next(lengths), "stop"
            if n > sampling.max_tokens:  # over the thinking budget: cut, as a model would be cut
                pieces = self._pieces(text)[: sampling.max_tokens]
                text, n, finish = self._join(pieces), len(pieces), "length"
            results.append(GenResult(text=text, finish_reason=finish, prompt_tokens=prompt_tokens, completion_tokens=n))
        return results

    def close(self) -> None:
        self._families.clear()


def make_backend(config, sampling=None) -> LabExpert:
    """The ``lab-expert`` backend, registered as a plugin (pyproject.toml: entry point group
    ``tpt.backends``), exactly as a third-party backend would be: it receives its BackendConfig."""
    return LabExpert(tokenizer_path=config.tokenizer_path())


def _variant(name: str):
    def factory(config, sampling=None) -> LabExpert:
        heldout = config.options.get("heldout")  # --backend-option heldout=PATH: problems no variant may state
        return LabExpert(
            tokenizer_path=config.tokenizer_path(), variant=name, heldout=Path(heldout) if heldout else None
        )

    factory.needs_model = False  # type: ignore[attr-defined]
    return factory


make_backend.needs_model = False  # type: ignore[attr-defined]  # a programmatic expert: no --model
make_noisy10, make_noisy30, make_other, make_filler = (_variant(v) for v in ("noisy10", "noisy30", "other", "filler"))
make_para, make_para_noisy30 = _variant("para"), _variant("para-noisy30")
