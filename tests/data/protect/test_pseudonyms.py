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


# --- session tokens: keyed SipHash-2-4, pinned against a hand-written SipHash ----------------

_MASK = 2**64 - 1


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & _MASK


def siphash24(key: bytes, message: bytes) -> int:
    """SipHash-2-4 (Aumasson and Bernstein 2012), as the paper writes it: the reference."""
    k0, k1 = int.from_bytes(key[:8], "little"), int.from_bytes(key[8:16], "little")
    v = [k0 ^ 0x736F6D6570736575, k1 ^ 0x646F72616E646F6D, k0 ^ 0x6C7967656E657261]
    v.append(k1 ^ 0x7465646279746573)

    def rounds(n: int) -> None:
        for _ in range(n):
            v[0] = (v[0] + v[1]) & _MASK
            v[1] = _rotl(v[1], 13) ^ v[0]
            v[0] = _rotl(v[0], 32)
            v[2] = (v[2] + v[3]) & _MASK
            v[3] = _rotl(v[3], 16) ^ v[2]
            v[0] = (v[0] + v[3]) & _MASK
            v[3] = _rotl(v[3], 21) ^ v[0]
            v[2] = (v[2] + v[1]) & _MASK
            v[1] = _rotl(v[1], 17) ^ v[2]
            v[2] = _rotl(v[2], 32)

    tail = len(message) % 8
    padded = message + bytes(7 - tail) + bytes([len(message) & 0xFF])
    for i in range(0, len(padded), 8):
        m = int.from_bytes(padded[i : i + 8], "little")
        v[3] ^= m
        rounds(2)
        v[0] ^= m
    v[2] ^= 0xFF
    rounds(4)
    return v[0] ^ v[1] ^ v[2] ^ v[3]


def _mix(x: int) -> int:
    """The bit mixer pandas' ``hash_array`` applies to every hash (splitmix64's finaliser)."""
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & _MASK
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def token_reference(key: bytes, ids: list[object]) -> list[int | None]:
    """One SipHash-2-4 per row under 16 bytes of HMAC(key, label), each kept to 7 bits, mixed
    as pandas mixes it."""
    derived = hmac.new(key, b"fedmarket session tokens v1", hashlib.sha256).digest()[:16]
    sip_key = bytes(b & 0x7F for b in derived)
    out: list[int | None] = []
    for raw in ids:
        h = None if raw is None else _mix(siphash24(sip_key, str(raw).encode("utf-8")))
        out.append(None if h is None else h - 2**64 if h >= 2**63 else h)  # as int64
    return out


def test_siphash_reference_matches_the_paper_vectors() -> None:
    key = bytes(range(16))
    assert siphash24(key, b"") == 0x726FDB47DD0E0E31
    assert siphash24(key, bytes(range(15))) == 0xA129CA6149BE45E5


@pytest.mark.parametrize("dtype", ["string[pyarrow]", "string[python]", object])
def test_tokens_equal_the_per_row_reference(dtype: object) -> None:
    ids = pd.Series(SAMPLE * 3, dtype=dtype).iloc[2:]
    out = Pseudonymiser(KEY).tokens(ids)
    assert out.dtype == "Int64" and out.index.equals(ids.index)
    expected = token_reference(KEY, list(ids.astype(object).where(ids.notna(), None)))
    assert out.astype(object).where(out.notna(), None).tolist() == expected
    moved = Pseudonymiser(bytes(range(1, 33))).tokens(ids)
    assert not (moved.dropna() == out.dropna()).any()  # keyed: another key, other tokens


def test_tokens_of_integer_ids_agree_with_their_text_and_refuse_floats() -> None:
    pseudo = Pseudonymiser(KEY)
    as_int = pseudo.tokens(pd.Series([5, 6, 5]))
    assert as_int.tolist() == pseudo.tokens(pd.Series(["5", "6", "5"])).tolist()
    assert as_int.tolist() == token_reference(KEY, [5, 6, 5])
    assert pseudo.tokens(pd.Series([None, None], dtype="string[pyarrow]")).isna().all()
    assert len(pseudo.tokens(pd.Series([], dtype="string[pyarrow]"))) == 0
    with pytest.raises(DataError, match="float"):
        pseudo.tokens(pd.Series([1.0, 2.0], name="user_session"))


@pytest.mark.parametrize("dtype", ["string[pyarrow]", "string[python]", object])
def test_map_categorical_has_the_values_of_map(dtype: object) -> None:
    ids = pd.Series(SAMPLE * 3, dtype=dtype).iloc[2:]
    out = Pseudonymiser(KEY).map_categorical(ids)
    assert isinstance(out.dtype, pd.CategoricalDtype) and out.index.equals(ids.index)
    expected = per_row_reference(KEY, list(ids.astype(object).where(ids.notna(), None)))
    assert out.astype(object).where(out.notna(), None).tolist() == expected
    assert len(out.cat.categories) == 6  # each distinct id's pseudonym once


def test_map_categorical_merges_ids_that_share_a_pseudonym() -> None:
    mixed = pd.Series(["7", 7, None, "a", 7], dtype=object)
    out = Pseudonymiser(KEY).map_categorical(mixed)
    assert out.astype(object).where(out.notna(), None).tolist() == per_row_reference(
        KEY, ["7", 7, None, "a", 7]
    )
    assert len(out.cat.categories) == 2
    assert Pseudonymiser(KEY).map_categorical(pd.Series([None], dtype="string")).isna().all()
    with pytest.raises(DataError, match="float"):
        Pseudonymiser(KEY).map_categorical(pd.Series([1.5]))
