"""The recommender's vocabulary and its files: ``recs.npz`` next to each split's arrays.

Items are category codes. The vocabulary is built from TRAINING customers' window events only
(like the normalisation statistics): the *known* items, then every other code seen anywhere
(test windows, horizons) as *new* items, which have no identity of their own but a content
description: the code's dotted prefixes ("electronics", "electronics.audio",
"electronics.audio.headphone"), each a token. A known item's full code is a token too, so it
gets its own embedding; a new item is the sum of the prefixes it shares with known ones.
Brands seen by training customers are tokens as well (``brand:<name>``): they describe the
events of a history. Token 0 stands for padding and for anything unknown.

Layout, per split (arrays of equal length N, row i = row i of the split's other arrays)::

    recs.npz: hist_item int32 [N, L] (-1: padding), hist_type int8 [N, L] (-1: padding),
              hist_brand int32 [N, L] (token, 0: none or unknown), n_events int32 [N],
              target_indptr int64 [N + 1], target_indices int32 [nnz]  (CSR over items)

and the manifest's ``recommend`` entry holds the items, ``n_known_items`` and the tokens.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from cryptography.fernet import Fernet

from fedmarket.data.store import decrypt_file
from fedmarket.errors import DataError

if TYPE_CHECKING:  # pandas: built by `data prepare`, not loaded by a client that reads arrays
    from fedmarket.data.categories import CategoryHistories

RECS_NAME = "recs.npz"
RECS_ENCRYPTED = "recs.npz.enc"
MANIFEST_KEY = "recommend"
UNKNOWN = "<unk>"
_ARRAYS = ("hist_item", "hist_type", "hist_brand", "n_events", "target_indptr", "target_indices")


def prefixes(code: str) -> list[str]:
    """'a.b.c' -> ['a', 'a.b', 'a.b.c']: the content tokens of a category."""
    parts = code.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


@dataclass(frozen=True)
class Vocabulary:
    items: tuple[str, ...]  # known items first, then new ones
    n_known: int
    tokens: tuple[str, ...]  # tokens[0] is UNKNOWN

    @staticmethod
    def build(histories: CategoryHistories, is_test: np.ndarray) -> Vocabulary:
        train = np.flatnonzero(~np.asarray(is_test, dtype=bool))
        seen = histories.seen
        mine = seen[seen["row"].isin(train)]
        known = sorted(set(mine["code"].dropna()))
        everything = set(seen["code"].dropna()).union(*histories.targets)
        new = sorted(everything - set(known))
        brands = sorted(set(mine["brand"].dropna()))
        parts = sorted({p for code in known for p in prefixes(code)})
        return Vocabulary(
            (*known, *new), len(known), (UNKNOWN, *parts, *(f"brand:{b}" for b in brands))
        )

    def content(self) -> np.ndarray:
        """int64 [V, D]: each item's prefix tokens (0 where unknown or past its depth)."""
        index = {t: i for i, t in enumerate(self.tokens)}
        depth = max((len(prefixes(c)) for c in self.items), default=1)
        out = np.zeros((len(self.items), depth), dtype=np.int64)
        for row, code in enumerate(self.items):
            for col, part in enumerate(prefixes(code)):
                out[row, col] = index.get(part, 0)
        return out

    def to_manifest(self, history_length: int) -> dict[str, Any]:
        from fedmarket.data.categories import TARGET_EVENTS

        return {
            "task": "next-categories",
            "history_length": history_length,
            "targets": f"categories with a {' or '.join(TARGET_EVENTS)} event in the horizon",
            "vocabulary": "items and tokens from training customers' window events; "
            "items after n_known_items appear only in test windows or horizons (new items)",
            "n_known_items": self.n_known,
            "items": list(self.items),
            "tokens": list(self.tokens),
        }

    @staticmethod
    def from_manifest(entry: dict[str, Any]) -> Vocabulary:
        try:
            return Vocabulary(
                tuple(entry["items"]), int(entry["n_known_items"]), tuple(entry["tokens"])
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(
                f"manifest '{MANIFEST_KEY}' entry is incomplete ({exc}); re-run "
                "`fedmarket data prepare`"
            ) from None


def encode(histories: CategoryHistories, vocab: Vocabulary) -> dict[str, np.ndarray]:
    """The ``recs.npz`` arrays of ``histories`` under ``vocab`` (see the module docstring)."""
    item = {c: i for i, c in enumerate(vocab.items)}
    token = {t: i for i, t in enumerate(vocab.tokens)}
    codes, brands = histories.codes, histories.brands
    hist_item = np.array(
        [[item.get(c, -1) if c is not None else -1 for c in row] for row in codes], dtype=np.int32
    ).reshape(codes.shape)
    hist_brand = np.array(
        [[token.get(f"brand:{b}", 0) if b is not None else 0 for b in row] for row in brands],
        dtype=np.int32,
    ).reshape(brands.shape)
    lists = [sorted(item[c] for c in t) for t in histories.targets]
    indptr = np.concatenate([[0], np.cumsum([len(t) for t in lists])]).astype(np.int64)
    indices = np.array([i for t in lists for i in t], dtype=np.int32)
    return {
        "hist_item": hist_item,
        "hist_type": np.asarray(histories.etypes, dtype=np.int8),
        "hist_brand": hist_brand,
        "n_events": np.asarray(histories.n_events, dtype=np.int32),
        "target_indptr": indptr,
        "target_indices": indices,
    }


def take(arrays: dict[str, np.ndarray], index: np.ndarray) -> dict[str, np.ndarray]:
    """Rows ``index`` of encoded arrays (the CSR targets re-packed)."""
    index = np.asarray(index, dtype=np.int64)
    out = {k: arrays[k][index] for k in ("hist_item", "hist_type", "hist_brand", "n_events")}
    out["target_indptr"], out["target_indices"] = take_csr(
        arrays["target_indptr"], arrays["target_indices"], index
    )
    return out


def take_csr(
    indptr: np.ndarray, indices: np.ndarray, index: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``index`` of a CSR set of targets, re-packed: (indptr int64, indices int32)."""
    lengths = indptr[index + 1] - indptr[index]
    parts = [indices[indptr[i] : indptr[i + 1]] for i in index]
    return (
        np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        (np.concatenate(parts) if parts else np.empty(0)).astype(np.int32),
    )


def write_recs(directory: Path, arrays: dict[str, np.ndarray], fernet: Fernet | None) -> None:
    write_npz(Path(directory) / RECS_NAME, arrays, fernet)


def read_recs(directory: Path, fernet: Fernet | None = None) -> dict[str, np.ndarray]:
    """The arrays of one split's ``recs.npz``; DataError saying how to make them if absent."""
    return read_npz(
        Path(directory) / RECS_NAME,
        fernet,
        _ARRAYS,
        "task next-categories needs events with a category_code "
        "(re-run `fedmarket data prepare` on such an export)",
    )


def write_npz(path: Path, arrays: dict[str, np.ndarray], fernet: Fernet | None) -> None:
    """``arrays`` as ``path`` (an .npz), or encrypted as ``path`` + ``.enc`` under ``fernet``."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    if fernet is None:
        path.write_bytes(buf.getvalue())
    else:
        path.with_name(path.name + ".enc").write_bytes(fernet.encrypt(buf.getvalue()))


def read_npz(
    path: Path, fernet: Fernet | None, keys: tuple[str, ...], needs: str
) -> dict[str, np.ndarray]:
    """The ``keys`` arrays of ``path`` (or of its encrypted twin); ``needs`` says, when neither
    is there, what the task needs and how to make it."""
    enc = path.with_name(path.name + ".enc")
    if path.exists():
        raw = path.read_bytes()
    elif enc.exists():
        if fernet is None:
            raise DataError(f"{enc}: prepared data is encrypted; give the key")
        raw = decrypt_file(enc, fernet)
    else:
        raise DataError(f"{path}: missing; {needs}")
    with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
        missing = [k for k in keys if k not in npz]
        if missing:
            raise DataError(f"{path}: lacks {', '.join(missing)}; re-run `fedmarket data prepare`")
        return {k: npz[k] for k in keys}
