"""Find exact duplicate event rows across the chunks of a file in bounded memory.

Exports of real shops repeat rows (the public REES46 files do), and a repeated purchase would
become a fake purchase. Chunks are validated one at a time, so a copy may sit millions of rows
after the original: each kept row leaves a 64-bit hash behind and later rows are looked up among
them. Rows are compared after parsing, so "2019-10-01 00:00:04 UTC" and
"2019-10-01T02:00:04+02:00" with otherwise equal fields are the same row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


class DuplicateFilter:
    """Remembers a 64-bit hash of every row kept from one file so copies in later chunks are caught.

    Memory: 8 bytes per distinct kept row in one sorted uint64 array (about 340 MB for the 42M
    rows of the REES46 October file), twice that for a moment while a chunk's hashes are merged
    in. Two different rows share a hash with probability about n^2 / 2^65 (5e-5 for 42M rows); the
    later one would then be dropped as a duplicate.
    """

    def __init__(self, keep_repeats: bool = False) -> None:
        self._seen = np.empty(0, dtype=np.uint64)
        # True (a mapping's keep_duplicates): repeats are still found, to be counted, but kept
        # as rows of their own (repeat purchases of a log without order ids)
        self.keep_repeats = keep_repeats

    def __len__(self) -> int:
        return len(self._seen)

    @property
    def nbytes(self) -> int:
        return int(self._seen.nbytes)

    def mark(self, hashes: np.ndarray) -> np.ndarray:
        """True where a row repeats one seen earlier in this call or in an earlier call."""
        hashes = np.asarray(hashes, dtype=np.uint64)
        # numpy's default argsort is SIMD and 5x faster than the stable one, but may put the
        # copies of a hash in any order: the copy with the lowest row number is the one kept.
        order = np.argsort(hashes)  # sorted lookups are cache-friendly
        ordered = hashes[order]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        first_row = np.minimum.reduceat(order, starts) if len(order) else order
        repeat = order != np.repeat(first_row, np.diff(np.r_[starts, len(order)]))
        pos = np.searchsorted(self._seen, ordered)
        if len(self._seen):
            repeat |= self._seen[np.minimum(pos, len(self._seen) - 1)] == ordered
        self._seen = np.insert(self._seen, pos[~repeat], ordered[~repeat])
        out = np.empty(len(hashes), dtype=bool)
        out[order] = repeat
        return out


def row_hashes(columns: dict[str, pa.Array]) -> np.ndarray:
    """64-bit hash per row over the given Arrow columns.

    Strings are dictionary-encoded and only the distinct values are hashed (pandas' SipHash);
    hashing every cell with ``pd.util.hash_pandas_object`` is about 4x slower because it turns
    each Arrow string into a Python object first.
    """
    combined = np.full(len(next(iter(columns.values()))), 0xCBF29CE484222325, dtype=np.uint64)
    for arr in columns.values():
        if pa.types.is_large_string(arr.type) or pa.types.is_string(arr.type):
            enc = pc.dictionary_encode(arr)
            uniq = pd.util.hash_array(
                enc.dictionary.to_numpy(zero_copy_only=False), categorize=False
            )
            uniq = np.append(uniq, np.uint64(0x9E3779B97F4A7C15))  # the hash of a null cell
            part = uniq[pc.fill_null(enc.indices, len(uniq) - 1).to_numpy(zero_copy_only=False)]
        else:
            part = pd.util.hash_array(arr.to_numpy(zero_copy_only=False))
        # FNV-style chaining of strong per-column hashes keeps column order significant
        combined = (combined ^ part) * np.uint64(0x100000001B3)
    return combined
