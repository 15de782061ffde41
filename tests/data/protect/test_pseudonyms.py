"""Keyed pseudonyms: pinned against RFC 4231 and the standard library, stable, key-dependent."""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
import pandas as pd
import pytest

from fedmarket.data.protect.pseudonyms import PSEUDONYM_LENGTH, Pseudonymiser
from fedmarket.errors import ConfigError, DataError

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


def test_rfc4231_test_case_6():
    # RFC 4231 sec. 4.7: 131-byte key of 0xaa, the only vectors with a key >= 32 bytes.
    p = Pseudonymiser(b"\xaa" * 131)
    assert p.pseudonym("Test Using Larger Than Block-Size Key - Hash Key First") == (
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    )


def test_pinned_against_hmac_module():
    expected = hmac.new(KEY, b"520088904", hashlib.sha256).hexdigest()
    assert Pseudonymiser(KEY).pseudonym("520088904") == expected
    assert len(expected) == PSEUDONYM_LENGTH == 64


def test_utf8_ids():
    expected = hmac.new(KEY, "m\u00fcller-\u00f8".encode(), hashlib.sha256).hexdigest()
    assert Pseudonymiser(KEY).pseudonym("m\u00fcller-\u00f8") == expected


def test_same_key_same_pseudonym_different_key_different():
    a, b, other = Pseudonymiser(KEY), Pseudonymiser(bytearray(KEY)), Pseudonymiser(OTHER_KEY)
    assert a.pseudonym("u1") == b.pseudonym("u1")
    assert a.pseudonym("u1") != other.pseudonym("u1")
    assert a.pseudonym("u1") != a.pseudonym("u2")


def test_map_matches_scalar_keeps_index_name_and_missing():
    p = Pseudonymiser(KEY)
    ids = pd.Series(["b", None, "a", "b"], index=[10, 11, 12, 10], name="user_id", dtype="string")
    out = p.map(ids)
    assert out.dtype == "string"
    assert out.name == "user_id"
    assert list(out.index) == [10, 11, 12, 10]
    assert out.iloc[0] == out.iloc[3] == p.pseudonym("b")
    assert out.iloc[2] == p.pseudonym("a")
    assert pd.isna(out.iloc[1])


def test_map_integer_ids_agree_with_their_text():
    p = Pseudonymiser(KEY)
    as_int = p.map(pd.Series([520088904, 7], dtype="int64"))
    as_text = p.map(pd.Series(["520088904", "7"], dtype=object))
    assert as_int.tolist() == as_text.tolist() == [p.pseudonym("520088904"), p.pseudonym("7")]


def test_map_empty_and_all_missing():
    p = Pseudonymiser(KEY)
    assert p.map(pd.Series([], dtype="string")).tolist() == []
    assert p.map(pd.Series([None, None], dtype="string")).isna().all()


def test_map_refuses_float_ids():
    p = Pseudonymiser(KEY)
    with pytest.raises(DataError, match="float"):
        p.map(pd.Series([1.0, 2.0], name="user_id"))
    with pytest.raises(DataError, match="float"):
        p.map(pd.Series(["a", 1.5], dtype=object))


def test_scalar_refuses_non_string():
    with pytest.raises(DataError, match="string id"):
        Pseudonymiser(KEY).pseudonym(123)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [b"", b"k" * 31, "k" * 40])
def test_bad_keys(bad):
    with pytest.raises(ConfigError, match="pseudonym key"):
        Pseudonymiser(bad)


def test_repr_hides_key():
    assert KEY.hex() not in repr(Pseudonymiser(KEY))
    assert "hidden" in repr(Pseudonymiser(KEY))


def per_row_reference(key: bytes, ids: list[object]) -> list[str | None]:
    """The definition, one HMAC call per row: what ``map`` must reproduce exactly."""
    return [
        None if raw is None else hmac.new(key, str(raw).encode("utf-8"), hashlib.sha256).hexdigest()
        for raw in ids
    ]


SAMPLE: list[object] = [
    "520088904",
    "4d3b30da-a5e4-49df-b1a8-ba5943f1dd33",
    None,
    "m\u00fcller-\u00f8",
    "",
    "x" * 200,  # longer than SHA-256's 64-byte block
    "520088904",
    "\U0001f600 emoji",
    None,
    "4d3b30da-a5e4-49df-b1a8-ba5943f1dd33",
]


@pytest.mark.parametrize("key_bytes", [32, 64, 65, 131])  # 65, 131: key hashed first (RFC 2104)
@pytest.mark.parametrize("dtype", ["string[pyarrow]", "string[python]", object])
def test_map_equals_the_per_row_reference(key_bytes: int, dtype: object) -> None:
    key, other = bytes(range(key_bytes)), bytes(range(1, key_bytes + 1))
    ids = pd.Series(SAMPLE * 3, dtype=dtype).iloc[2:]  # a slice: Arrow data at an offset
    out = Pseudonymiser(key).map(ids)
    expected = per_row_reference(key, list(ids.astype(object).where(ids.notna(), None)))
    assert out.astype(object).where(out.notna(), None).tolist() == expected
    again = Pseudonymiser(bytearray(key)).map(ids)
    pd.testing.assert_series_equal(again, out)  # stable with the key
    moved = Pseudonymiser(other).map(ids)
    assert not (moved.dropna() == out.dropna()).any()  # another key, every pseudonym differs


def test_map_integer_and_mixed_object_ids_equal_the_reference() -> None:
    ids = [520088904, 7, 520088904, 2**62]
    assert Pseudonymiser(KEY).map(pd.Series(ids, dtype="int64")).tolist() == per_row_reference(
        KEY, ids
    )
    mixed = ["7", 7, None, "a"]
    out = Pseudonymiser(KEY).map(pd.Series(mixed, dtype=object))
    assert out.astype(object).where(out.notna(), None).tolist() == per_row_reference(KEY, mixed)


def test_map_of_many_random_ids_equals_the_reference() -> None:
    rng = np.random.default_rng(0)
    ids = [f"{u:x}-{v}" for u, v in rng.integers(0, 5_000, size=(3_000, 2))]
    out = Pseudonymiser(KEY).map(pd.Series(ids, dtype="string[pyarrow]"))
    assert out.tolist() == per_row_reference(KEY, ids)
