"""`fedmarket campaign-report` from Python on a constructed later export with a known effect."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from fedmarket.errors import ConfigError
from fedmarket.experiments.campaign import campaign_report


def later_export(root: Path, purchases: dict[str, list[str]]) -> Path:
    """One retailer's export: a view for every customer, and a purchase at each given time."""
    rows = []
    for user, times in purchases.items():
        rows.append(("2020-01-01 09:00:00 UTC", "view", 5.0, user, "s0"))
        for i, t in enumerate(times):
            rows.append((t, "purchase", 10.0, user, f"s{i + 1}"))
    frame = pd.DataFrame(
        rows, columns=["event_time", "event_type", "price", "user_id", "user_session"]
    )
    frame["product_id"], frame["category_id"] = 1, 2
    (root / "shop").mkdir(parents=True)
    frame.to_csv(root / "shop" / "events.csv", index=False)
    return root


def targets(path: Path, holdout: bool = True) -> Path:
    """200 selected customers (100 contacted, 100 held out) and 50 not selected."""
    ids = [f"u{i:03d}" for i in range(250)]
    frame = pd.DataFrame(
        {
            "retailer": "shop",
            "customer_id": ids,
            "propensity": [0.2] * 250,
            "decile": 1,
            "selected": [i < 200 for i in range(250)],
            "holdout": [holdout and 100 <= i < 200 for i in range(250)],
            "rank": range(1, 251),
            "as_of": "2020-01-10",
        }
    )
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def export(tmp_path: Path) -> Path:
    inside = "2020-01-12 10:00:00 UTC"
    outside = "2020-01-25 10:00:00 UTC"  # after the 7 days: not counted
    before = "2020-01-05 10:00:00 UTC"  # before the campaign: not counted
    purchases: dict[str, list[str]] = {}
    for i in range(250):
        user = f"u{i:03d}"
        if i < 30 or 100 <= i < 110 or 200 <= i < 205:  # 30 contacted, 10 held out, 5 others
            purchases[user] = [inside]
        elif i < 40:
            purchases[user] = [outside, before]
        else:
            purchases[user] = []
    return later_export(tmp_path / "later", purchases)


def test_known_effect(tmp_path: Path, export: Path) -> None:
    report = campaign_report(targets(tmp_path / "t.csv"), export)
    assert report.start == pd.Timestamp("2020-01-10", tz="UTC") and report.days == 7
    (o,) = report.outcomes.values()
    assert (o.contacted, o.contacted_buyers, o.holdout, o.holdout_buyers) == (100, 30, 100, 10)
    assert o.difference == pytest.approx(0.2) and o.ratio == pytest.approx(3.0)
    assert o.p_value < 0.001 and o.predicted_contacted == pytest.approx(0.2)
    assert report.buyers_outside == 5


def test_window_from_and_days(tmp_path: Path, export: Path) -> None:
    report = campaign_report(targets(tmp_path / "t.csv"), export, start="2020-01-20", days=10)
    (o,) = report.outcomes.values()
    assert (o.contacted_buyers, o.holdout_buyers) == (10, 0)  # u030..u039 bought on the 25th


def test_refuses_a_list_without_a_holdout(tmp_path: Path, export: Path) -> None:
    with pytest.raises(ConfigError, match="no control group"):
        campaign_report(targets(tmp_path / "t.csv", holdout=False), export)


def test_refuses_pseudonyms_and_bad_dates(tmp_path: Path, export: Path) -> None:
    path = targets(tmp_path / "t.csv")
    frame = pd.read_csv(path).rename(columns={"customer_id": "customer_pseudonym"})
    frame.to_csv(tmp_path / "p.csv", index=False)
    with pytest.raises(ConfigError, match="pseudonyms"):
        campaign_report(tmp_path / "p.csv", export)
    with pytest.raises(ConfigError, match="not a date"):
        campaign_report(path, export, start="next week")
    with pytest.raises(ConfigError, match="at least one day"):
        campaign_report(path, export, days=0)
