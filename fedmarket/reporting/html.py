"""report.html: the blocks of ``fedmarket.reporting.document`` as one self-contained page.

One file a person opens in any browser, mails or archives: the figures are embedded as
base64 PNG data URIs, the style is inline, and there is no script and no external request,
so it shows the same offline, years later, behind any firewall. Every piece of text is
escaped (``html.escape``): settings, errors and client ids come from outside.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from pathlib import Path

from fedmarket.errors import ConfigError
from fedmarket.reporting.document import (
    Block,
    Bullets,
    Code,
    Heading,
    Image,
    Paragraph,
    Table,
)

CSS = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d1d1f;
       max-width: 60rem; margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
h2.alert { color: #a00; border-color: #a00; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ddd; padding: .25rem .6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f4f4f6; }
code, pre { font: 13px/1.4 ui-monospace, Menlo, Consolas, monospace; background: #f4f4f6; }
pre { padding: .6rem; overflow-x: auto; white-space: pre; }
.wide { overflow-x: auto; }
figure { margin: 1.5rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: .9rem; }
"""
ALERT_HEADINGS = frozenset({"This run is incomplete"})


def to_html(blocks: Sequence[Block], base_dir: Path, *, title: str) -> str:
    """The page; images are read from ``base_dir`` (where the report is written)."""
    body = "\n".join(_element(block, base_dir) for block in blocks)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )


def _element(block: Block, base_dir: Path) -> str:
    if isinstance(block, Heading):
        alert = ' class="alert"' if block.text in ALERT_HEADINGS else ""
        return f"<h{block.level}{alert}>{inline(block.text)}</h{block.level}>"
    if isinstance(block, Paragraph):
        return f"<p>{inline(block.text)}</p>"
    if isinstance(block, Bullets):
        items = "".join(f"<li>{inline(item)}</li>" for item in block.items)
        return f"<ul>{items}</ul>"
    if isinstance(block, Table):
        head = "".join(f"<th>{inline(c)}</th>" for c in block.header)
        rows = "".join(
            "<tr>" + "".join(f"<td>{inline(c)}</td>" for c in row) + "</tr>" for row in block.rows
        )
        # wide tables (the trade-off sweep's 14 columns) scroll inside the page, not off it
        return (
            f'<div class="wide"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>{rows}</tbody></table></div>"
        )
    if isinstance(block, Code):
        return f"<pre><code>{html.escape(block.text)}</code></pre>"
    if isinstance(block, Image):
        src, alt = data_uri(base_dir / block.path), html.escape(block.title, quote=True)
        return (
            f'<figure><img src="{src}" alt="{alt}"><figcaption><strong>{alt}.</strong> '
            f"{inline(block.caption)}</figcaption></figure>"
        )
    raise TypeError(f"not a report block: {block!r}")


def inline(text: str) -> str:
    """Escaped text with its `code` spans as <code> (the one markup the blocks carry)."""
    parts = re.split(r"`([^`]+)`", text)
    return "".join(
        f"<code>{html.escape(part)}</code>" if i % 2 else html.escape(part)
        for i, part in enumerate(parts)
    )


def data_uri(path: Path) -> str:
    """A PNG as a data URI, so the page needs no file next to it."""
    if path.suffix.lower() != ".png":
        raise ConfigError(f"{path}: report.html embeds PNG figures only")
    try:
        payload = base64.b64encode(path.read_bytes()).decode("ascii")
    except OSError as exc:
        raise ConfigError(
            f"{path}: the figure cannot be read for report.html ({exc}); write the figures "
            "before the page"
        ) from None
    return f"data:image/png;base64,{payload}"
