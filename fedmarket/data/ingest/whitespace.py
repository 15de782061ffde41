"""Whitespace-separated logs (``csv_delimiter = "whitespace"``) as tab-separated text.

Transaction logs printed by older systems line their columns up with runs of spaces, often
with leading spaces and CRLF line ends. pyarrow's CSV reader takes one delimiter character, so
the text is rewritten on the way in, a block at a time (memory stays bounded): every run of
spaces and tabs becomes one tab, spaces and tabs at the start and end of a line and every
carriage return go. A field can therefore hold no space: write times as
``2019-10-01T00:00:04Z`` (or epoch numbers), not ``2019-10-01 00:00:04``.
"""

from __future__ import annotations

import io
import re
from typing import IO, Final

DELIMITER: Final[str] = "\t"
_RUNS = re.compile(rb"[ \t]+")
_EDGES = re.compile(rb"(?m)^\t|\t$")
_BLOCK_BYTES: Final[int] = 1 << 20


def to_tabs(block: bytes) -> bytes:
    """Whole lines of whitespace-separated fields as tab-separated ones."""
    return _EDGES.sub(b"", _RUNS.sub(b"\t", block.replace(b"\r", b"")))


class TabStream(io.RawIOBase):
    """A binary stream of ``raw``'s lines through ``to_tabs``, cut only at line ends."""

    def __init__(self, raw: IO[bytes], block_bytes: int = _BLOCK_BYTES) -> None:
        super().__init__()
        self._raw, self._block_bytes = raw, block_bytes
        self._out, self._pos, self._rest = b"", 0, b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while self._pos >= len(self._out):
            if not self._refill():
                return 0
        n = min(len(buffer), len(self._out) - self._pos)
        buffer[:n] = self._out[self._pos : self._pos + n]
        self._pos += n
        return n

    def _refill(self) -> bool:
        """Convert the next whole lines; False at the end of the input."""
        block = self._raw.read(self._block_bytes)
        if not block:
            if not self._rest:
                return False
            lines, self._rest = self._rest + b"\n", b""
        else:
            block = self._rest + block
            cut = block.rfind(b"\n") + 1
            lines, self._rest = block[:cut], block[cut:]
        self._out, self._pos = to_tabs(lines), 0
        return True
