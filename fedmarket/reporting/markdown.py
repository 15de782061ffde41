"""report.md and tradeoff.md: the blocks of ``fedmarket.reporting.document`` as Markdown."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fedmarket.reporting.document import (
    Block,
    Bullets,
    Code,
    Heading,
    Image,
    Paragraph,
    Table,
)
from fedmarket.reporting.run_report import report_blocks


def to_markdown(blocks: Sequence[Block]) -> str:
    """Each block followed by a blank line, as a Markdown viewer needs between them."""
    out: list[str] = []
    for block in blocks:
        out += _lines(block)
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def _lines(block: Block) -> list[str]:
    if isinstance(block, Heading):
        return [f"{'#' * block.level} {block.text}"]
    if isinstance(block, Paragraph):
        return [block.text]
    if isinstance(block, Bullets):
        return [f"- {item}" for item in block.items]
    if isinstance(block, Table):
        return [
            _row(block.header),
            "|" + "---|" * len(block.header),
            *(_row(r) for r in block.rows),
        ]
    if isinstance(block, Code):
        return [f"    {line}" for line in block.text.splitlines()]
    if isinstance(block, Image):
        return [f"![{block.title}]({block.path})", "", f"*{block.title}.* {block.caption}"]
    raise TypeError(f"not a report block: {block!r}")


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def render_report(
    summary: dict[str, Any], rounds: list[dict[str, Any]], figures: Sequence[Image] = ()
) -> str:
    """report.md of a run (``fedmarket.reporting.run_report`` says what it holds)."""
    return to_markdown(report_blocks(summary, rounds, figures))
