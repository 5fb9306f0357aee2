"""Markdown / HTML reports built from one list of blocks, so both always say the same thing."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Block:
    kind: str  # "h1" | "h2" | "p" | "table" | "img"
    content: Any  # text, (header, rows) or an image path relative to the report


def fmt(value: Any, digits: int = 3) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        if abs(value) < 1e15 and abs(value - round(value)) <= 1e-9 * max(1.0, abs(value)):
            return f"{round(value):,}"  # integral up to float noise (e.g. interpolated token counts)
        return f"{value:,.{digits}f}" if abs(value) < 1e6 else f"{value:.3g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def to_markdown(blocks: list[Block]) -> str:
    out = []
    for b in blocks:
        if b.kind in ("h1", "h2"):
            out.append(("# " if b.kind == "h1" else "## ") + b.content)
        elif b.kind == "p":
            out.append(b.content)
        elif b.kind == "img":
            out.append(f"![{Path(b.content).stem}]({b.content})")
        elif b.kind == "table":
            header, rows = b.content
            out.append("| " + " | ".join(header) + " |")
            out.append("|" + "|".join("---" for _ in header) + "|")
            out += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
        out.append("")
    return "\n".join(out)


def to_html(blocks: list[Block], title: str) -> str:
    body = []
    for b in blocks:
        if b.kind in ("h1", "h2"):
            body.append(f"<{b.kind}>{html.escape(b.content)}</{b.kind}>")
        elif b.kind == "p":
            body.append(f"<p>{html.escape(b.content)}</p>")
        elif b.kind == "img":
            body.append(f'<img src="{html.escape(b.content)}" alt="{html.escape(Path(b.content).stem)}">')
        elif b.kind == "table":
            header, rows = b.content
            head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
            cells = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(c))}</td>" for c in row) + "</tr>" for row in rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{cells}</tbody></table>")
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#eee}img{max-width:100%}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def write_reports(blocks: list[Block], out: Path, title: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    md, page = out / "report.md", out / "report.html"
    md.write_text(to_markdown(blocks), encoding="utf-8")
    page.write_text(to_html(blocks, title), encoding="utf-8")
    return [md, page]
