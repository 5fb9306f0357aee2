"""The leakage scan: does any text a lab run trains on state a held-out problem?

For every held-out problem (``heldout.jsonl`` lists its question, answer, full trajectory and
identity texts) it searches, verbatim, every text any arm of the seed trains on: each augment
run's documents and trajectories (TPT's ``[d; t]``, vanilla's ``d``, the ablations' variants),
the raw corpus, the background facts, the SFT chats and the tokenizer's training text.  A hit
is a held-out question, trajectory or multi-step sub-result (e.g. two consecutive hops, a chain
of two operations from some value), in every wording the expert can use (5(c) paraphrases),
found inside a training text.  The answer alone is not
searched: answers are shared by many problems (a "6" is in every chain corpus).

The same strings and the same test (``heldout_patterns``, ``first_hits``) also decide, per record,
which learned-generator output is set aside before a student trains on it (tpt.lab.gen_data).

Run on a finished seed folder: ``python -m tpt.lab.leakage runs/lab/seed-1``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path


def training_texts(seed_dir: Path) -> Iterator[tuple[str, str]]:
    """(source, text) for every text of the seed that reaches any training run or the tokenizer."""
    from tpt.io.runs import iter_records

    for run in sorted(p.parent for p in seed_dir.glob("**/manifest.json") if (p.parent / "data").is_dir()):
        for rec in iter_records(run):
            yield str(run.relative_to(seed_dir)), record_text(rec)
    for name in ("corpus.jsonl", "background.jsonl"):
        path = seed_dir / name
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                yield name, json.loads(line)["text"]
    for path in sorted(seed_dir.glob("sft*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            yield path.name, "\n".join(m["content"] for m in json.loads(line)["messages"])
    tok_text = seed_dir / "tokenizer_text.txt"
    if tok_text.exists():
        yield tok_text.name, tok_text.read_text(encoding="utf-8")


def heldout_patterns(heldout_file: Path) -> list[tuple[str, str, str, str]]:
    """(held-out id, family, kind, text) for every string the scan looks for.  The id is ``h-NNNNN``,
    the problem's line in ``heldout.jsonl`` (the ids the generators' held-out runs use)."""
    heldout = [json.loads(line) for line in heldout_file.read_text(encoding="utf-8").splitlines()]
    patterns = []
    for i, h in enumerate(heldout):
        hid, fam = f"h-{i:05d}", h["family"]
        patterns += [(hid, fam, "question", h["question"]), (hid, fam, "trajectory", h["trajectory"])]
        patterns += [(hid, fam, "trajectory", t) for t in h.get("trajectories", [])[1:]]  # other wordings
        patterns += [(hid, fam, "sub-result", text) for text in h["identity"] if text != h["question"]]
    return patterns


def record_text(rec) -> str:
    """What a thinking record puts in front of a model that trains on it: document and thinking."""
    return f"{rec.text}\n{rec.thinking}"


def first_hits(texts: list[str], patterns: list[tuple[str, str, str, str]]) -> list[tuple[str, str, str, str] | None]:
    """Per text, the first held-out pattern it contains (None: clean).  Only the patterns found in
    the joined texts are tried one text at a time, so a clean batch costs one pass per pattern."""
    blob = "\n\n".join(texts)
    present = [p for p in patterns if p[3] in blob]
    return [next((p for p in present if p[3] in text), None) for text in texts]


def scan(seed_dir: Path) -> dict:
    """{"patterns", "texts", "hits": [{"source", "family", "kind", "pattern"}]} for one seed folder."""
    patterns = heldout_patterns(seed_dir / "heldout.jsonl")
    by_source: dict[str, list[str]] = {}
    for source, text in training_texts(seed_dir):
        by_source.setdefault(source, []).append(text)
    hits, n_texts = [], 0
    for source, texts in by_source.items():
        n_texts += len(texts)
        # one string per source and str.find per pattern: a fast substring search over megabytes
        blob = "\n\n".join(texts)
        hits += [
            {"source": source, "heldout_id": hid, "family": fam, "kind": kind, "pattern": pat}
            for hid, fam, kind, pat in patterns
            if pat in blob
        ]
    return {"patterns": len(patterns), "texts": n_texts, "sources": sorted(by_source), "hits": hits}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tpt.lab.leakage SEED_DIR", file=sys.stderr)
        return 2
    result = scan(Path(argv[0]))
    print(json.dumps({k: v for k, v in result.items() if k != "hits"} | {"hits": len(result["hits"])}))
    for hit in result["hits"][:20]:
        print(hit)
    return 1 if result["hits"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
