"""A report as a list of blocks, so report.md and report.html say the same thing.

The words and tables are built once (``fedmarket.reporting.run_report`` for a run, the
trade-off sweep for its table); ``markdown`` and ``html`` only lay them out. Inline
```code``` spans are the one piece of markup the text may carry: both renderers know it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Code:
    """A command a reader copies: kept whole on one line, never wrapped or re-worded."""

    text: str


@dataclass(frozen=True)
class Image:
    """A figure in the report's directory (``path`` relative to it), its name (the image's
    alternative text) and the one-line caption that says what it shows."""

    path: str
    title: str
    caption: str


Block = Heading | Paragraph | Bullets | Table | Code | Image


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> Table:
    return Table(tuple(header), tuple(tuple(r) for r in rows))


def bullets(items: Sequence[str]) -> Bullets:
    return Bullets(tuple(items))


def images(blocks: Sequence[Block]) -> list[Image]:
    return [b for b in blocks if isinstance(b, Image)]
