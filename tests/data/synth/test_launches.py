"""Tests for product launches in the synthetic generator (fedmarket/data/synth/launches.py)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from fedmarket.data.synth.catalog import CATEGORY_CODES, TOP_LEVELS, build_catalog, leaf_mix
from fedmarket.data.synth.generate import SYNTH_JSON, generate_retailers
from fedmarket.data.synth.launches import Launches, check_launch_from, check_share
from fedmarket.errors import ConfigError

# sha256 of each retailer's events.csv for n_retailers=2, n_customers=120, days=15, seed=3,
# written by the generator before launches existed: the default must keep these bytes.
_PINNED = {
    "retailer_00": "395a5b0595137a8abc94ec585f149c1cc9e42c196b43d2cfd5ecd12b9fd54936",
    "retailer_01": "864c7f9ddfa00f3d342a74a5ae531429bfcafcbadb8b88550b45f7d00830d775",
}
_PIN_ARGS = {"n_retailers": 2, "n_customers": 120, "days": 15, "seed": 3, "fmt": "csv"}


def _catalog(n_products: int = 300, seed: int = 0):
    rng = np.random.default_rng(seed)
    mix = leaf_mix(np.full(len(TOP_LEVELS), 1 / len(TOP_LEVELS)), rng)
    return build_catalog(rng, mix, n_products, 1.0, 0.1, 0.1)


@pytest.mark.parametrize("share", [0.0, 0.25, 0.9])
def test_check_share_accepts_range(share):
    assert check_share(share) == share


@pytest.mark.parametrize("bad", [-0.01, 0.91, 1.0, float("nan"), float("inf"), "0.1", None])
def test_check_share_refuses_out_of_range(bad):
    with pytest.raises(ConfigError, match=r"--new-products must be a share .* got"):
        check_share(bad)


@pytest.mark.parametrize("bad", [-0.5, 1.0, 2.0, float("nan")])
def test_check_launch_from_refuses_out_of_range(bad):
    with pytest.raises(ConfigError, match=r"--launch-from must be a fraction"):
        check_launch_from(bad)


def test_no_share_is_the_catalogue_itself():
    catalog = _catalog()
    launches = Launches(np.random.default_rng(1), catalog, 0.0, 30)
    assert len(launches.launched) == 0
    assert launches.on(0) is catalog and launches.on(29) is catalog


def test_launch_days_count_range_and_first_of_each_category_kept():
    catalog = _catalog()
    launches = Launches(np.random.default_rng(1), catalog, 0.2, 30, launch_from=0.5)
    assert len(launches.launched) == round(0.2 * len(catalog)) == 60
    days = launches.launch_day[launches.launched]
    assert days.min() >= 15 and days.max() <= 29  # from day 0.5 * 30 on, inside the period
    starts = np.r_[0, np.flatnonzero(np.diff(catalog.category)) + 1]
    assert (launches.launch_day[starts] == 0).all()  # every category has something on sale


def test_unlaunched_products_are_never_drawn_and_launched_ones_are():
    catalog = _catalog()
    launches = Launches(np.random.default_rng(1), catalog, 0.3, 40)
    rng = np.random.default_rng(2)
    cats = np.repeat(np.arange(len(CATEGORY_CODES)), 400)
    for day in (0, 10, 39):
        on_sale = launches.on(day)
        cum = on_sale.cum_popularity
        ends = np.r_[np.flatnonzero(np.diff(catalog.category)), len(catalog) - 1]
        assert np.array_equal(cum[ends], np.arange(1, len(CATEGORY_CODES) + 1))
        drawn = on_sale.sample(cats, rng)
        assert (catalog.category[drawn] == cats).all()  # still the asked category
        assert (launches.launch_day[drawn] <= day).all()  # nothing before its launch
    drawn = launches.on(39).sample(np.repeat(np.arange(len(CATEGORY_CODES)), 4000), rng)
    assert np.isin(launches.launched, drawn).mean() > 0.9  # launched products get taken up


def test_a_fresh_launch_draws_more_than_its_own_popularity():
    catalog = _catalog()
    launches = Launches(np.random.default_rng(1), catalog, 0.3, 40)
    p = launches.launched[0]
    d = launches.launch_day[p]
    cat = catalog.category[p]

    def share(day: int) -> float:
        cum = launches.on(day).cum_popularity
        return cum[p] - (cum[p - 1] if catalog.category[p - 1] == cat else cat)

    assert share(d - 1) == 0.0
    assert share(d) > share(d + 60) > 0.0  # the launch boost decays


def test_default_output_keeps_its_pinned_bytes(tmp_path):
    for kwargs in ({}, {"new_products": 0.0}):
        out = tmp_path / f"raw{len(kwargs)}"
        summary = generate_retailers(out, **_PIN_ARGS, **kwargs)
        for r in summary.retailers:
            assert hashlib.sha256(r.events_path.read_bytes()).hexdigest() == _PINNED[r.retailer_id]
        manifest = json.loads((out / SYNTH_JSON).read_text())
        assert "new_products" not in manifest["parameters"]
        assert all("launches" not in e for e in manifest["retailers"])


def test_launched_products_have_no_event_before_launch_and_some_appear_after_a_cutoff(tmp_path):
    out = tmp_path / "raw"
    generate_retailers(
        out, n_retailers=2, n_customers=300, days=30, seed=4, new_products=0.3, launch_from=0.5
    )
    manifest = json.loads((out / SYNTH_JSON).read_text())
    assert manifest["parameters"]["new_products"] == 0.3
    cutoff = pd.Timestamp("2019-10-24", tz="UTC")  # day 23 of 30
    for entry in manifest["retailers"]:
        launches = {int(p): pd.Timestamp(d, tz="UTC") for p, d in entry["launches"].items()}
        assert len(launches) > 10
        assert min(launches.values()) >= pd.Timestamp("2019-10-16", tz="UTC")  # day 15 on
        events = pd.read_parquet(out / entry["events_file"])
        first = events.groupby("product_id")["event_time"].min()
        seen = first[first.index.isin(list(launches))]
        assert len(seen) > 0.8 * len(launches)
        assert all(t >= launches[p] for p, t in seen.items())  # nothing before the launch
        bought = events.loc[events["event_type"] == "purchase", "product_id"]
        assert bought.isin(list(launches)).any()  # launched products are bought too
        assert (first >= cutoff).sum() >= 2  # products first seen after the cut-off


def test_launch_from_without_launches_is_refused() -> None:
    """--launch-from alone was accepted and did nothing."""
    from fedmarket.data.synth.launches import check_launch_options
    from fedmarket.errors import ConfigError

    assert check_launch_options(0.2, 0.85) == (0.2, 0.85)
    assert check_launch_options(0.0, 0.0) == (0.0, 0.0)
    with pytest.raises(ConfigError, match="give --new-products SHARE too"):
        check_launch_options(0.0, 0.5)
