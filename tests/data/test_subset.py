"""A coalition view: the chosen partitions renumbered, the same arrays, the original untouched."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from fedmarket.data import store
from fedmarket.data.subset import VIEW_KEY, coalition_view, original_partitions
from fedmarket.errors import ConfigError, DataError


def _digest(directory):
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_view_renumbers_and_reads_the_same_arrays(tiny_data, tmp_path):
    before = _digest(tiny_data)
    view = coalition_view(tiny_data, [2, 0], tmp_path / "view")
    manifest = store.read_manifest(view)
    original = store.read_manifest(tiny_data)
    assert store.partition_ids(manifest) == [0, 1]
    assert original_partitions(view) == [0, 2]
    assert manifest[VIEW_KEY]["of"] == str(tiny_data.resolve())
    # the consortium's normalisation, window and features, not recomputed
    for key in ("normalisation", "window", "feature_names"):
        assert manifest[key] == original[key]
    by_id = {p["id"]: p for p in original["partitions"]}
    assert manifest["partitions"][1]["train"] == by_id[2]["train"]
    assert manifest["partitions"][1]["retailer"] == by_id[2]["retailer"]
    assert set(manifest["retailers"]) == {by_id[0]["retailer"], by_id[2]["retailer"]}
    for new, old in ((0, 0), (1, 2)):
        for split in store.SPLITS:
            a = store.load_split(view, new, split, mmap=False)
            b = store.load_split(tiny_data, old, split, mmap=False)
            for name in ("X", "agg", "y_purchase", "y_count", "customer"):
                np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert _digest(tiny_data) == before  # the original is untouched


def test_encrypted_view_stays_encrypted(tiny_encrypted, tmp_path):
    from fedmarket.data.protect.keys import prepared_data_fernet

    view = coalition_view(tiny_encrypted.data, [1], tmp_path / "view")
    manifest = store.read_manifest(view)
    assert manifest["encrypted"] is True
    assert store.key_probe(view, manifest) is not None
    fernet = prepared_data_fernet(view, tiny_encrypted.key_file)
    got = store.load_split(view, 0, "test", fernet)
    assert len(got) == manifest["partitions"][0]["test"]["n"]


def test_bad_coalitions_are_refused(tiny_data, tmp_path):
    with pytest.raises(DataError, match="no partition 7"):
        coalition_view(tiny_data, [0, 7], tmp_path / "v")
    with pytest.raises(ConfigError, match="at least one partition"):
        coalition_view(tiny_data, [], tmp_path / "v")
    with pytest.raises(ConfigError, match="outside the data"):
        coalition_view(tiny_data, [0], tiny_data / "views" / "v")
