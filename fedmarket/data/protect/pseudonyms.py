"""Keyed pseudonyms for customer and session ids: HMAC-SHA256, hex digest.

A plain hash of a customer id is no pseudonym: ids are short and guessable, so anyone
can hash every candidate and reverse the table. Keying the hash with a secret that never
leaves the retailers (see ``fedmarket.data.protect.keys``) makes that dictionary attack
need the key.
The same key gives the same pseudonym for the same id in every file and at every
retailer that shares the key, so a customer's events and attributes still join up.

This is pseudonymisation, not anonymisation in the legal sense and not differential
privacy: behaviour attached to a pseudonym can still single a person out. DP training
bounds what the model reveals; this only keeps raw ids out of everything downstream.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
from collections.abc import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fedmarket.data.protect.keys import MIN_KEY_BYTES
from fedmarket.errors import ConfigError, DataError

PSEUDONYM_LENGTH = 2 * hashlib.sha256().digest_size  # 64 hex characters
_BLOCK = hashlib.sha256().block_size
_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)
_TOKEN_LABEL = b"fedmarket session tokens v1"


class Pseudonymiser:
    """Maps raw ids to keyed pseudonyms; missing ids stay missing."""

    __slots__ = ("_inner", "_key", "_outer", "_token_key")

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes | bytearray):
            raise ConfigError(
                f"pseudonym key must be bytes (from fedmarket.data.protect.keys.load_key), "
                f"got {type(key).__name__}"
            )
        if len(key) < MIN_KEY_BYTES:
            raise ConfigError(
                f"pseudonym key is {len(key)} bytes; at least {MIN_KEY_BYTES} are "
                f"needed so the pseudonyms cannot be reversed by guessing the key"
            )
        self._key = bytes(key)
        # HMAC (RFC 2104) is H((K ^ opad) || H((K ^ ipad) || m)): hashing the two padded key
        # blocks once and copying those states per id gives hmac.digest's bytes at a third of
        # its cost, which sets up the key afresh on every call (millions of session ids).
        block = (hashlib.sha256(self._key).digest() if len(key) > _BLOCK else self._key).ljust(
            _BLOCK, b"\0"
        )
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))
        # SipHash-2-4's 16-byte key for ``tokens``, derived from this key (7 bits a byte: pandas
        # takes the key as 16 one-byte characters), so tokens are keyed and stable with it
        derived = hmac.digest(self._key, _TOKEN_LABEL, "sha256")[:16]
        self._token_key = "".join(chr(b & 0x7F) for b in derived)

    def __repr__(self) -> str:
        return "Pseudonymiser(key=<hidden>)"  # never let the key reach a log or traceback

    def pseudonym(self, raw: str) -> str:
        """The 64-character hex HMAC-SHA256 of ``raw`` (UTF-8) under this key."""
        if not isinstance(raw, str):
            raise DataError(
                f"pseudonym() takes a string id, got {type(raw).__name__}; "
                f"read id columns as strings"
            )
        return hmac.digest(self._key, raw.encode("utf-8"), "sha256").hex()

    def map(self, values: pd.Series) -> pd.Series:
        """Pseudonymise a column; each distinct id is hashed once, then broadcast.

        Integer ids are hashed as their decimal text, so ``123`` and ``"123"`` agree.
        Float columns are refused: an integer id column with gaps turns into floats in
        pandas and ``"123.0"`` would silently give a different pseudonym than ``"123"``.
        """
        if pd.api.types.is_float_dtype(values.dtype):
            raise DataError(
                f"id column {values.name!r} has float dtype {values.dtype}; ids must be "
                f"strings or integers (read the file with dtype=str for this column)"
            )
        codes, texts = _distinct_utf8(values)
        digests = _hex_array(self._digests(texts))
        # Arrow's take broadcasts the per-id digests without a Python object per row
        # (about 50x faster than building an object array); a null code (missing id) -> null.
        taken = digests.take(codes)
        return pd.Series(pd.array(taken, dtype="string"), index=values.index, name=values.name)

    def map_categorical(self, values: pd.Series) -> pd.Series:
        """``map``'s pseudonyms as a pandas Categorical: a code per row, each pseudonym once.

        For the event chunks of ``data prepare``, where a customer's id repeats on every one
        of their events: the 64-character text is not copied onto each row (32 MB a chunk),
        and the features' and category histories' look-ups of the customers read the codes
        instead of hashing the text again. The values are ``map``'s.
        """
        if pd.api.types.is_float_dtype(values.dtype):
            raise DataError(
                f"id column {values.name!r} has float dtype {values.dtype}; ids must be "
                f"strings or integers (read the file with dtype=str for this column)"
            )
        codes, texts = _distinct_utf8(values)
        digests = _hex_array(self._digests(texts)).to_numpy(zero_copy_only=False)
        # 123 and "123" of an object column share a pseudonym: categories must be unique
        merged, categories = pd.factorize(digests)
        rows = pc.fill_null(codes, -1).to_numpy(zero_copy_only=False)
        rows = np.where(rows >= 0, merged[np.maximum(rows, 0)] if len(merged) else -1, -1)
        table = pd.Categorical.from_codes(rows, categories=pd.Index(categories, dtype=object))
        return pd.Series(table, index=values.index, name=values.name)

    def tokens(self, values: pd.Series) -> pd.Series:
        """Keyed 64-bit tokens of a column (nullable Int64; missing ids stay missing).

        For ids that are only ever counted, never released (sessions: the features count the
        distinct sessions of a customer): SipHash-2-4 under a key derived from this one is a
        keyed PRF like the HMAC, but a 64-bit integer computed in C per distinct value, where
        the 64-character HMAC per distinct session (1.9M on the default data) was a quarter
        of ``data prepare``. Equal ids give equal tokens; two ids share one with probability
        about n^2 / 2^65, as the 64-bit hashes the features kept of the pseudonyms did.
        Integer ids are hashed as their decimal text, as in ``map``. Tokens live only within
        one run (never written), so a pandas release that hashed differently changes nothing.
        """
        if pd.api.types.is_float_dtype(values.dtype):
            raise DataError(
                f"id column {values.name!r} has float dtype {values.dtype}; ids must be "
                f"strings or integers (read the file with dtype=str for this column)"
            )
        codes, texts = _distinct_text(values)
        uniq = pd.util.hash_array(texts, hash_key=self._token_key, categorize=False)
        missing = pc.is_null(codes).to_numpy(zero_copy_only=False)
        picked = np.zeros(len(values), np.int64)  # stays 0 (masked) where every id is missing
        if len(uniq):
            picked = uniq.view(np.int64)[pc.fill_null(codes, 0).to_numpy(zero_copy_only=False)]
        token = pd.arrays.IntegerArray(picked, missing)
        return pd.Series(token, index=values.index, name=values.name)

    def _digests(self, texts: Iterable[bytes]) -> bytes:
        """The concatenated 32-byte HMAC-SHA256 digests of ``texts``, in order."""
        inner, outer = self._inner.copy, self._outer.copy
        out = []
        for text in texts:
            h = inner()
            h.update(text)
            o = outer()
            o.update(h.digest())
            out.append(o.digest())
        return b"".join(out)


def _distinct_utf8(values: pd.Series) -> tuple[pa.Array, Iterable[bytes]]:
    """(code per row, null where missing; each distinct id's UTF-8 text, by code)."""
    if isinstance(values.dtype, pd.StringDtype | pd.ArrowDtype):
        arr = pa.array(values, from_pandas=True)
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
            encoded = pc.dictionary_encode(arr)
            return encoded.indices, _utf8_slices(encoded.dictionary)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    if uniques.dtype == object and any(isinstance(raw, float) for raw in uniques):
        raise DataError(
            f"id column {values.name!r} holds float values; ids must be strings or integers"
        )
    texts = [str(raw).encode("utf-8") for raw in uniques]
    return pa.array(codes, mask=codes < 0), texts


def _distinct_text(values: pd.Series) -> tuple[pa.Array, np.ndarray]:
    """(code per row, null where missing; each distinct id's text as an object array)."""
    if isinstance(values.dtype, pd.StringDtype | pd.ArrowDtype):
        arr = pa.array(values, from_pandas=True)
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
            encoded = pc.dictionary_encode(arr)
            return encoded.indices, encoded.dictionary.to_numpy(zero_copy_only=False)
    codes, texts = _distinct_utf8(values)
    return codes, np.array([t.decode("utf-8") for t in texts], dtype=object)


def _utf8_slices(strings: pa.Array) -> Iterable[bytes]:
    """Each string's bytes straight from the Arrow buffers (no Python str in between)."""
    strings = strings.cast(pa.large_string())
    offsets = np.frombuffer(strings.buffers()[1], np.int64)[
        strings.offset : strings.offset + len(strings) + 1
    ].tolist()
    data = strings.buffers()[2]
    data = data.to_pybytes() if data is not None else b""
    return (data[a:b] for a, b in itertools.pairwise(offsets))


def _hex_array(digests: bytes) -> pa.Array:
    """Lower-case hex of consecutive 32-byte digests as one Arrow string array, vectorised."""
    raw = np.frombuffer(digests, np.uint8)
    text = np.empty(2 * len(raw), np.uint8)
    text[0::2], text[1::2] = _HEX[raw >> 4], _HEX[raw & 15]
    n = len(raw) // hashlib.sha256().digest_size
    offsets = np.arange(0, (n + 1) * PSEUDONYM_LENGTH, PSEUDONYM_LENGTH, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(text)])
