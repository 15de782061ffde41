"""Static attributes from a customer table joined to prepared event data
(fedmarket/data/static_join.py, through `prepare` with ``static``): the layout, the values
against the raw table, customers with no attribute row, and the refusals."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fedmarket.data import store
from fedmarket.data.ingest.mapping import parse_mapping_option
from fedmarket.data.prepare import PrepareOptions, prepare
from fedmarket.data.static_join import PREFIX, StaticAttributes, static_option
from fedmarket.data.synth.generate import generate_retailers
from fedmarket.errors import ConfigError, DataError

KEY = hashlib.sha256(b"fedmarket static join key").digest()
WINDOW = {"window_days": 28, "step_days": 7, "horizon_days": 7}
ATTRS = "kind=table,customer=uid,numeric=income,categorical=segment"


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("static")
    generate_retailers(root / "events", n_retailers=2, n_customers=80, days=56, seed=4)
    (root / "attrs").mkdir()
    rng = np.random.default_rng(0)
    for retailer in ("retailer_00", "retailer_01"):
        users = pd.read_parquet(root / "events" / retailer / "events.parquet")["user_id"].unique()
        users = users[: int(0.8 * len(users))]  # a fifth of the customers have no attribute row
        income = rng.normal(40, 10, len(users)).round(1).astype(object)
        income[::7] = ""  # and some have a gap
        pd.DataFrame(
            {
                "uid": users,
                "income": income,
                "segment": rng.choice(["gold", "silver"], len(users)),
                "Response": rng.integers(0, 2, len(users)),
            }
        ).to_csv(root / "attrs" / f"{retailer}.csv", index=False)
    return root


def run(raw: Path, out: Path, attrs: str = ATTRS, **kw):
    static = StaticAttributes(raw / "attrs", parse_mapping_option(attrs))
    return prepare(
        PrepareOptions(
            raw=raw / "events", out=out, pseudonym_key=KEY, static=static, **WINDOW, **kw
        )
    ).manifest


def test_attributes_are_broadcast_onto_every_step_and_appended_to_agg(
    raw: Path, tmp_path: Path
) -> None:
    plain = prepare(
        PrepareOptions(raw=raw / "events", out=tmp_path / "plain", pseudonym_key=KEY, **WINDOW)
    ).manifest
    m = run(raw, tmp_path / "joined")
    static = m["static_attributes"]["encoding"]
    names = ["income", "income:missing", "segment=gold", "segment=silver", "segment:missing"]
    assert m["feature_names"] == plain["feature_names"] + [PREFIX + n for n in names]
    assert m["aggregate_names"] == plain["aggregate_names"] + [PREFIX + n for n in names]
    assert static["categorical"] == {"segment": ["gold", "silver"]}
    store.verify_prepared(tmp_path / "joined", m)
    attrs = pd.concat(
        pd.read_csv(raw / "attrs" / f"{r}.csv") for r in ("retailer_00", "retailer_01")
    )
    by_pseudonym = {
        hmac.new(KEY, str(u).encode(), hashlib.sha256).hexdigest(): r
        for u, r in zip(attrs.uid, attrs.itertuples(), strict=True)
    }
    mean, std = static["numeric"]["income"]["mean"], static["numeric"]["income"]["std"]
    seen_missing_row = False
    for split in store.SPLITS:
        before, after = (
            store.load_pooled(tmp_path / "plain", split),
            store.load_pooled(tmp_path / "joined", split),
        )
        assert np.array_equal(before.customer, after.customer)
        assert np.array_equal(before.y_count, after.y_count)
        F = before.X.shape[2]
        np.testing.assert_array_equal(after.X[:, :, :F], before.X)
        np.testing.assert_array_equal(after.agg[:, : before.agg.shape[1]], before.agg)
        extra = after.X[:, :, F:]
        assert (extra == extra[:, :1, :]).all()  # constant in time
        for i, customer in enumerate(after.customer):
            row = dict(zip(names, after.agg[i, before.agg.shape[1] :], strict=True))
            r = by_pseudonym.get(str(customer))
            if r is None:  # no attribute row: every attribute missing
                seen_missing_row = True
                assert row == {
                    "income": pytest.approx(mean),
                    "income:missing": 1.0,
                    "segment=gold": 0.0,
                    "segment=silver": 0.0,
                    "segment:missing": 1.0,
                }
                continue
            income = mean if pd.isna(r.income) else r.income
            assert row["income"] == pytest.approx(income, rel=1e-5)
            assert row["income:missing"] == float(pd.isna(r.income))
            assert row[f"segment={r.segment}"] == 1.0
            assert extra[i, 0, 0] == pytest.approx((income - mean) / std, rel=1e-4, abs=1e-5)
    assert seen_missing_row
    share = m["static_attributes"]["share_with_attributes"]
    assert min(share.values()) > 0.5 and max(share.values()) < 1.0


def test_label_column_is_not_an_attribute_and_iid_joins_across_retailers(
    raw: Path, tmp_path: Path
) -> None:
    m = run(
        raw,
        tmp_path / "iid",
        "kind=table,customer=uid,label=Response,attributes=all",
        scheme="iid",
        n_partitions=2,
    )
    assert m["static_attributes"]["inferred"] == {"income": "numeric", "segment": "categorical"}
    assert m["static_attributes"]["join"] == "by pseudonym over all retailers"
    assert not any("Response" in n for n in m["feature_names"])


def test_refusals(raw: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--attributes .*: no such file"):
        StaticAttributes(tmp_path / "nope", parse_mapping_option(ATTRS))
    with pytest.raises(ConfigError, match="must be a kind=table mapping"):
        StaticAttributes(raw / "attrs", parse_mapping_option("kind=rees46"))
    with pytest.raises(DataError, match="numeric='spend' but there is no such column"):
        run(raw, tmp_path / "x", "kind=table,customer=uid,numeric=spend")
    assert not (tmp_path / "x").exists()


def test_static_option_pairs_the_two_options(raw: Path) -> None:
    assert static_option(None, None) is None
    with pytest.raises(ConfigError, match="go together"):
        static_option(raw / "attrs", None)
    got = static_option(raw / "attrs", ATTRS)
    assert got is not None and got.mapping.numeric == ("income",)
