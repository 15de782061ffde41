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

import pandas as pd
import pyarrow as pa

from fedmarket.data.protect.keys import MIN_KEY_BYTES
from fedmarket.errors import ConfigError, DataError

PSEUDONYM_LENGTH = 2 * hashlib.sha256().digest_size  # 64 hex characters


class Pseudonymiser:
    """Maps raw ids to keyed pseudonyms; missing ids stay missing."""

    __slots__ = ("_key",)

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
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        if uniques.dtype == object and any(isinstance(raw, float) for raw in uniques):
            raise DataError(
                f"id column {values.name!r} holds float values; ids must be strings or integers"
            )
        key, digest = self._key, hmac.digest  # hoisted: this loop runs once per distinct id
        hashed = [digest(key, str(raw).encode("utf-8"), "sha256").hex() for raw in uniques]
        # Arrow's take broadcasts the per-id digests without a Python object per row
        # (about 50x faster than building an object array); code -1 (missing id) -> null.
        taken = pa.array(hashed, type=pa.string()).take(pa.array(codes, mask=codes < 0))
        return pd.Series(pd.array(taken, dtype="string"), index=values.index, name=values.name)
