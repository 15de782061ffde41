import os
import stat

import numpy as np
import pytest

from fedmarket.config import RunConfig
from fedmarket.data import store
from fedmarket.data.protect.keys import PSEUDONYM_KEY_ENV, create_key_file
from fedmarket.deploy.agreement import WindowPlan, combine
from fedmarket.deploy.local_data import LocalRetailer, default_cache_dir, find_export, pseudonym_key
from fedmarket.errors import ConfigError
from fedmarket.federated.client import RetailerClient

KEY = b"k" * 32  # the key tests/conftest.py prepares tiny_data with
PLAN = WindowPlan(step_days=7)  # tiny_data's window: 56 days in weekly steps


@pytest.fixture(scope="module")
def local(tiny_raw, tmp_path_factory):
    """The three tiny retailers prepared each on its own, and what they agreed."""
    cache = tmp_path_factory.mktemp("local-cache")
    retailers = [
        LocalRetailer(
            tiny_raw / f"retailer_{i:02d}",
            partition_id=i,
            pseudonym_key=KEY,
            cache_dir=cache / str(i),
        )
        for i in range(3)
    ]
    plan = PLAN.with_cutoff(r.last_event_time() for r in retailers)
    agreement = combine(plan, [r.summary(plan) for r in retailers])
    return retailers, agreement, [r.prepared(agreement) for r in retailers]


def test_local_preparation_equals_data_prepare_of_the_same_retailers(local, tiny_data):
    _, agreement, prepared = local
    manifest = store.read_manifest(tiny_data)
    assert agreement.plan.cutoff == manifest["window"]["cutoff"]
    assert agreement.n_train_total == sum(p["train"]["n"] for p in manifest["partitions"])
    np.testing.assert_allclose(agreement.stats.mean, manifest["normalisation"]["mean"], rtol=1e-12)
    np.testing.assert_allclose(agreement.stats.std, manifest["normalisation"]["std"], rtol=1e-12)
    for pid, directory in enumerate(prepared):
        for split in store.SPLITS:
            mine = store.load_split(directory, pid, split)
            theirs = store.load_split(tiny_data, pid, split)
            for name in ("X", "agg", "y_purchase", "y_count", "customer"):
                np.testing.assert_array_equal(
                    getattr(mine, name),
                    getattr(theirs, name),
                    err_msg=f"partition {pid} {split} {name}",
                )


def test_prepared_directory_serves_the_federated_client(local):
    _, agreement, prepared = local
    manifest = store.read_manifest(prepared[1])
    assert [p["id"] for p in manifest["partitions"]] == [1]
    assert list(manifest["retailers"]) == ["retailer_01"]
    assert manifest["federation"]["n_train_total"] == agreement.n_train_total
    cfg = RunConfig.from_mapping({"dp": "none", "model": "lstm"})
    client = RetailerClient(cfg, prepared[1], 1)
    assert len(client.train_split) == manifest["partitions"][0]["train"]["n"]
    assert client.n_features == len(manifest["feature_names"])


def test_cache_is_private_reused_and_follows_the_export(local, tmp_path, tiny_raw):
    retailers, agreement, prepared = local
    cache = retailers[0].cache_dir
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    blob = next(cache.glob("*/features.npz"))
    before = blob.stat().st_mtime_ns
    assert retailers[0].prepared(agreement) == prepared[0]  # served from the cache
    assert blob.stat().st_mtime_ns == before
    # A changed export (here: another key, which changes every pseudonym) is a new entry.
    other = LocalRetailer(
        tiny_raw / "retailer_00", partition_id=0, pseudonym_key=b"x" * 32, cache_dir=cache
    )
    other.features(agreement.plan)
    assert len(list(cache.glob("*/features.npz"))) == 2


def test_one_retailer_only(tiny_raw, tmp_path):
    with pytest.raises(ConfigError, match="holds the exports of 3 retailers"):
        find_export(tiny_raw)
    with pytest.raises(ConfigError, match="no such file"):
        LocalRetailer(tmp_path / "missing", partition_id=0, pseudonym_key=KEY)
    with pytest.raises(ConfigError, match="no data-path"):
        LocalRetailer.from_node_config({"partition-id": 0})
    retailer, files = find_export(tiny_raw / "retailer_02" / "events.parquet")
    assert retailer == "retailer_02" and [f.name for f in files] == ["events.parquet"]
    assert default_cache_dir(tiny_raw / "retailer_02") == tiny_raw / "retailer_02.fedmarket"


def test_node_config_builds_the_retailer(tiny_raw, tmp_path):
    key = tmp_path / "keys" / "r.key"
    expected = create_key_file(key, "hmac")
    node = {
        "data-path": str(tiny_raw / "retailer_01"),
        "partition-id": 1,
        "key-file": str(key),
        "cache-dir": str(tmp_path / "cache"),
    }
    retailer = LocalRetailer.from_node_config(node)
    assert (retailer.retailer, retailer.partition_id) == ("retailer_01", 1)
    assert retailer.cache_dir == tmp_path / "cache"
    assert retailer._key == expected


def test_pseudonym_key_sources(tiny_raw, tmp_path, monkeypatch):
    inside = tiny_raw / "retailer_00" / "x.key"
    with pytest.raises(ConfigError, match="inside data"):
        pseudonym_key(str(inside), tiny_raw / "retailer_00")
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, "a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U=")
    assert len(pseudonym_key(None, tiny_raw)) >= 32
    monkeypatch.delenv(PSEUDONYM_KEY_ENV)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    first = pseudonym_key(None, tiny_raw)  # created once, then reused
    assert pseudonym_key(None, tiny_raw) == first
    made = tmp_path / "config" / "fedmarket" / "pseudonym.key"
    assert stat.S_IMODE(os.stat(made).st_mode) == 0o600


def test_find_export_reads_any_file_name_under_a_mapping_format(tmp_path):
    from fedmarket.data.ingest.mapping import parse_mapping_option
    from fedmarket.errors import DataError

    till = tmp_path / "shop" / "till.txt"
    till.parent.mkdir()
    till.write_text("cust when total\n")
    mapping = parse_mapping_option(
        "kind=transactions,customer=cust,timestamp=when,amount=total,format=csv"
    )
    assert find_export(till, mapping) == ("till", [till])
    assert find_export(till.parent, mapping) == ("till", [till])
    with pytest.raises(DataError, match='format = "csv"'):
        find_export(till)
