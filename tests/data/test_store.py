"""Tests for the prepared-data layout (fedmarket/data/store.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from cryptography.fernet import Fernet

from fedmarket.data import store
from fedmarket.data.store import SplitArrays
from fedmarket.errors import ConfigError, DataError

T, F, A = 3, 11, 4


def arrays(n: int, offset: int = 0) -> SplitArrays:
    """n customers whose every value encodes its row (offset + i), so order is checkable."""
    rows = np.arange(offset, offset + n)
    return SplitArrays(
        X=np.broadcast_to(rows[:, None, None], (n, T, F)).astype(np.float32),
        agg=np.broadcast_to(rows[:, None], (n, A)).astype(np.float32),
        y_purchase=(rows % 2).astype(np.float32),
        y_count=rows.astype(np.float32),
        customer=np.array([f"{r:064x}" for r in rows]),
        y_active=((rows % 3) > 0).astype(np.float32),
    )


def assert_same(a: SplitArrays, b: SplitArrays) -> None:
    for name in ("X", "agg", "y_purchase", "y_count", "y_active", "customer"):
        left, right = np.asarray(getattr(a, name)), np.asarray(getattr(b, name))
        assert left.dtype == right.dtype, name
        np.testing.assert_array_equal(left, right, err_msg=name)


def write_prepared(root: Path, sizes: list[int]) -> list[SplitArrays]:
    """A minimal prepared directory: partitions with consecutive customer ranges."""
    written, offset = [], 0
    for pid, n in enumerate(sizes):
        part = arrays(n, offset)
        store.write_split(store.split_dir(root, pid, "train"), part)
        store.write_split(store.split_dir(root, pid, "test"), arrays(1, 1000 + pid))
        written.append(part)
        offset += n
    store.write_manifest(root, {"partitions": [{"id": pid} for pid in range(len(sizes))]})
    return written


# --- SplitArrays -------------------------------------------------------------------------------


def test_split_arrays_length_mismatch_names_the_array() -> None:
    good = arrays(4)
    with pytest.raises(DataError, match=r"X has 4 rows, y_count has 3"):
        SplitArrays(good.X, good.agg, good.y_purchase, good.y_count[:3], good.customer)
    with pytest.raises(DataError, match=r"customer has 5"):
        SplitArrays(good.X, good.agg, good.y_purchase, good.y_count, np.array(["a"] * 5))


def test_churn_labels_derive_from_purchase_and_activity() -> None:
    a = arrays(6)  # y_purchase 0 1 0 1 0 1; y_active 0 1 1 0 1 1
    np.testing.assert_array_equal(a.y_churn, [1, 0, 1, 0, 1, 0])
    np.testing.assert_array_equal(a.y_churn_inactive, [1, 0, 0, 1, 0, 0])
    assert a.y_churn.dtype == a.y_churn_inactive.dtype == np.float32
    only_purchases = SplitArrays(a.X, a.agg, a.y_purchase, a.y_count, a.customer)
    np.testing.assert_array_equal(only_purchases.y_active, a.y_purchase)  # a purchase is an event
    np.testing.assert_array_equal(only_purchases.y_churn_inactive, a.y_churn)
    with pytest.raises(DataError, match=r"y_active has 2"):
        SplitArrays(a.X, a.agg, a.y_purchase, a.y_count, a.customer, a.y_active[:2])


def test_split_arrays_len_take_and_concat() -> None:
    a = arrays(5)
    assert len(a) == 5
    picked = a.take(np.array([4, 0]))
    assert list(picked.y_count) == [4.0, 0.0]
    assert list(picked.customer) == [f"{4:064x}", f"{0:064x}"]
    assert picked.X.shape == (2, T, F) and picked.X[0, 2, 10] == 4.0
    both = SplitArrays.concat([arrays(2), arrays(3, 2)])
    assert_same(both, arrays(5))
    with pytest.raises(DataError, match="nothing to concatenate"):
        SplitArrays.concat([])


# --- write_split / load_split -------------------------------------------------------------------


def test_split_dir_layout_and_bad_split(tmp_path: Path) -> None:
    assert store.split_dir(tmp_path, 3, "test") == tmp_path / "partitions" / "3" / "test"
    with pytest.raises(DataError, match=r"unknown split 'valid'.*train, test"):
        store.split_dir(tmp_path, 0, "valid")


def test_plain_round_trip_is_memory_mapped(tmp_path: Path) -> None:
    a = arrays(6)
    directory = store.split_dir(tmp_path, 0, "train")
    store.write_split(directory, a)
    assert sorted(p.name for p in directory.iterdir()) == [
        "X.npy",
        "agg.npy",
        "customer.npy",
        "y_active.npy",
        "y_count.npy",
        "y_purchase.npy",
    ]
    loaded = store.load_split(tmp_path, 0, "train")
    assert isinstance(loaded.X, np.memmap)
    assert_same(loaded, a)
    eager = store.load_split(tmp_path, 0, "train", mmap=False)
    assert not isinstance(eager.X, np.memmap)
    assert_same(eager, a)


def test_encrypted_round_trip_and_key_errors(tmp_path: Path) -> None:
    a = arrays(4)
    fernet = Fernet(Fernet.generate_key())
    directory = store.split_dir(tmp_path, 1, "test")
    store.write_split(directory, a, fernet)
    names = sorted(p.name for p in directory.iterdir())
    assert names == [
        "X.npy.enc",
        "agg.npy.enc",
        "customer.npy.enc",
        "y_active.npy.enc",
        "y_count.npy.enc",
        "y_purchase.npy.enc",
    ]
    for path in directory.iterdir():  # ciphertext, not an .npy with a header in the clear
        assert b"NUMPY" not in path.read_bytes()
    assert_same(store.load_split(tmp_path, 1, "test", fernet), a)
    with pytest.raises(DataError, match=r"X\.npy\.enc: prepared data is encrypted"):
        store.load_split(tmp_path, 1, "test")
    # a wrong key is named as such, not as an unreadable or missing file
    wrong = re.escape(f"this key does not decrypt {directory}/X.npy.enc: wrong key for this")
    with pytest.raises(ConfigError, match=wrong):
        store.load_split(tmp_path, 1, "test", Fernet(Fernet.generate_key()))


def test_a_damaged_encrypted_file_fails_like_a_wrong_key_and_says_it_may_be_damaged(
    tmp_path: Path,
) -> None:
    fernet = Fernet(Fernet.generate_key())
    directory = store.split_dir(tmp_path, 0, "train")
    store.write_split(directory, arrays(3), fernet)
    path = directory / "agg.npy.enc"
    token = bytearray(path.read_bytes())
    token[-5] ^= 1  # Fernet tokens are base64 text; flip one character
    path.write_bytes(bytes(token))
    with pytest.raises(ConfigError, match=r"agg\.npy\.enc: wrong key.*the file is damaged"):
        store.load_split(tmp_path, 0, "train", fernet)


def encrypted_prepared(root: Path, sizes: list[int], flag: bool | None) -> Fernet:
    """``write_prepared``, encrypted; ``flag`` None writes a manifest without ``encrypted``."""
    fernet = Fernet(Fernet.generate_key())
    for pid, n in enumerate(sizes):
        store.write_split(store.split_dir(root, pid, "train"), arrays(n), fernet)
        store.write_split(store.split_dir(root, pid, "test"), arrays(1), fernet)
    manifest: dict = {"partitions": [{"id": pid} for pid in range(len(sizes))]}
    if flag is not None:
        manifest["encrypted"] = flag
    store.write_manifest(root, manifest)
    return fernet


@pytest.mark.parametrize("flag", [True, None])
def test_key_probe_is_the_smallest_encrypted_file_of_the_first_partition(
    tmp_path: Path, flag: bool | None
) -> None:
    fernet = encrypted_prepared(tmp_path, [5, 5], flag)
    probe = store.key_probe(tmp_path, store.read_manifest(tmp_path))
    assert probe is not None and probe.parent.parent.name == "0"
    smallest = min(tmp_path.glob("partitions/0/*/*.npy.enc"), key=lambda p: p.stat().st_size)
    assert probe.stat().st_size == smallest.stat().st_size
    assert store.decrypt_file(probe, fernet)  # and it opens with the data's key


def test_key_probe_of_plain_data_is_none(tmp_path: Path) -> None:
    write_prepared(tmp_path, [2, 2])  # a manifest without the flag, and plain files
    assert store.key_probe(tmp_path, store.read_manifest(tmp_path)) is None
    encrypted_prepared(tmp_path / "flagged", [2], flag=False)  # the manifest is believed
    assert store.key_probe(tmp_path / "flagged", store.read_manifest(tmp_path / "flagged")) is None


def test_load_split_missing_dir_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"partitions/7/train: no such prepared split.*prepare"):
        store.load_split(tmp_path, 7, "train")
    store.write_split(store.split_dir(tmp_path, 0, "train"), arrays(2))
    (store.split_dir(tmp_path, 0, "train") / "y_count.npy").unlink()
    with pytest.raises(DataError, match=r"missing y_count\.npy.*incomplete"):
        store.load_split(tmp_path, 0, "train")


# --- manifest ------------------------------------------------------------------------------------


def test_write_manifest_puts_schema_version_first(tmp_path: Path) -> None:
    store.write_manifest(tmp_path, {"partitions": [{"id": 0}, {"id": 2}], "note": "x"})
    text = (tmp_path / store.MANIFEST_NAME).read_text()
    assert list(json.loads(text)) == ["schema_version", "partitions", "note"]
    manifest = store.read_manifest(tmp_path)
    assert manifest["schema_version"] == store.SCHEMA_VERSION == 3
    assert store.partition_ids(manifest) == [0, 2]


def test_read_manifest_missing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"manifest\.json: not found.*not a prepared data dir"):
        store.read_manifest(tmp_path)


def test_read_manifest_bad_json_names_the_line(tmp_path: Path) -> None:
    (tmp_path / store.MANIFEST_NAME).write_text('{\n  "schema_version": 1,\n  oops\n}\n')
    with pytest.raises(DataError, match=r"manifest\.json: not valid JSON .* at line 3"):
        store.read_manifest(tmp_path)


@pytest.mark.parametrize("version", [1, 2, 4, 0, "3", None])
def test_read_manifest_wrong_schema_version(tmp_path: Path, version: object) -> None:
    body = {"partitions": []} if version is None else {"schema_version": version, "partitions": []}
    (tmp_path / store.MANIFEST_NAME).write_text(json.dumps(body))
    with pytest.raises(
        DataError,
        match=rf"schema version {version!r}, this fedmarket reads 3.*re-run `fedmarket data prep",
    ):
        store.read_manifest(tmp_path)


# --- load_pooled ---------------------------------------------------------------------------------


@pytest.mark.parametrize("partitions", [None, "0,1", [{"id": "0"}], [{"train": {"n": 3}}], [0, 1]])
def test_read_manifest_with_damaged_partitions(tmp_path: Path, partitions: object) -> None:
    body = {"schema_version": store.SCHEMA_VERSION}
    if partitions is not None:
        body["partitions"] = partitions
    (tmp_path / store.MANIFEST_NAME).write_text(json.dumps(body))
    with pytest.raises(DataError, match=r"manifest\.json: 'partitions' must be a list"):
        store.read_manifest(tmp_path)


def test_manifest_totals() -> None:
    manifest = {
        "schema_version": store.SCHEMA_VERSION,
        "feature_names": ["a", "b", "c"],
        "partitions": [{"id": 0, "train": {"n": 5}}, {"id": 1, "train": {"n": 7}}],
    }
    assert store.n_train_total(manifest) == 12
    assert store.n_features(manifest) == 3
    assert store.partition_ids(manifest) == [0, 1]


def test_load_pooled_concatenates_in_manifest_partition_order(tmp_path: Path) -> None:
    parts = write_prepared(tmp_path, [3, 1, 4])
    pooled = store.load_pooled(tmp_path, "train")
    assert_same(pooled, SplitArrays.concat(parts))
    assert list(pooled.y_count) == [0, 1, 2, 3, 4, 5, 6, 7]
    assert not isinstance(pooled.X, np.memmap)  # pooled copies; partitions may be closed
    test = store.load_pooled(tmp_path, "test")
    assert list(test.y_count) == [1000, 1001, 1002]


def test_load_pooled_explicit_partitions_keep_the_given_order(tmp_path: Path) -> None:
    parts = write_prepared(tmp_path, [2, 2, 2])
    pooled = store.load_pooled(tmp_path, "train", partitions=[2, 0])
    assert_same(pooled, SplitArrays.concat([parts[2], parts[0]]))
    assert list(pooled.y_count) == [4, 5, 0, 1]
    with pytest.raises(DataError, match="nothing to concatenate"):
        store.load_pooled(tmp_path, "train", partitions=[])
    with pytest.raises(DataError, match=r"partitions/9/train: no such prepared split"):
        store.load_pooled(tmp_path, "train", partitions=[0, 9])


def test_load_pooled_without_manifest_is_a_data_error(tmp_path: Path) -> None:
    write_prepared(tmp_path, [2])
    (tmp_path / store.MANIFEST_NAME).unlink()
    with pytest.raises(DataError, match="not a prepared data directory"):
        store.load_pooled(tmp_path, "train")
