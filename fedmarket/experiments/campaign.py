"""`fedmarket campaign-report`: the realised effect of a campaign run from a targeting list.

At the retailer, after the campaign: the targeting list (`fedmarket score --holdout-fraction`)
says who was selected and who of them was held out; a later export of the same retailer's
events says who bought in ``[from, from + days)``. The export is read with the validator and
loaders `data prepare` uses; the list's ids are the retailer's own, matched to the export's
``user_id``. Nothing is written; nothing per customer is printed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fedmarket.data.ingest import loaders
from fedmarket.data.ingest.mapping import ExportMapping
from fedmarket.data.ingest.validate import DropReport
from fedmarket.errors import ConfigError, DataError
from fedmarket.experiments.score import PSEUDONYM_ID, RAW_ID, output_format
from fedmarket.scoring.campaign import CampaignOutcome, campaign_outcome

NEEDED = ("retailer", RAW_ID, "propensity", "selected", "holdout")
DEFAULT_DAYS = 7


@dataclass(frozen=True)
class CampaignReport:
    start: pd.Timestamp
    days: int
    outcomes: dict[str, CampaignOutcome]  # per retailer, and "all" when there are several
    buyers_outside: int  # buyers in the window who were not selected (not in the comparison)
    skipped: list[str]  # retailers whose selection had no one held out or no one contacted


def read_targets(path: Path) -> pd.DataFrame:
    """A targeting list of `fedmarket score`, checked for what the report needs."""
    fmt = output_format(Path(path), None)
    if not Path(path).is_file():
        raise ConfigError(f"{path}: no such targeting list (write one with `fedmarket score`)")
    frame = (
        pd.read_csv(path, dtype={RAW_ID: str, "retailer": str})
        if fmt == "csv"
        else pd.read_parquet(path)
    )
    if PSEUDONYM_ID in frame.columns:
        raise ConfigError(
            f"{path}: carries pseudonyms, not the retailer's ids the later export has; score "
            "again with --raw and the pseudonym key so the list carries customer_id"
        )
    missing = [c for c in NEEDED if c not in frame.columns]
    if missing:
        raise ConfigError(f"{path}: not a targeting list of `fedmarket score` (no {missing})")
    frame[RAW_ID] = frame[RAW_ID].astype(str)
    frame["retailer"] = frame["retailer"].astype(str)
    if not frame["holdout"].astype(bool).any():
        raise ConfigError(
            f"{path}: no control group (no customer held out), so the campaign's effect "
            "cannot be told from what customers would have bought anyway; next time score "
            "with --holdout-fraction 0.1 (or more) and leave those customers uncontacted"
        )
    return frame


def _start(frame: pd.DataFrame, start: str | None) -> pd.Timestamp:
    value = start if start is not None else frame.get("as_of", pd.Series([None])).iloc[0]
    if value is None or (isinstance(value, float) and np.isnan(value)):
        raise ConfigError("--from: give the campaign's first day (YYYY-MM-DD)")
    try:
        t = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise ConfigError(f"--from {value!r} is not a date (use YYYY-MM-DD)") from None
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def buyers(
    raw: Path,
    retailer: str,
    start: pd.Timestamp,
    end: pd.Timestamp,
    mapping: ExportMapping | None = None,
) -> set[str]:
    """Ids of the retailer's customers with a purchase in ``[start, end)``."""
    exports = loaders.find_exports(raw, mapping)
    if retailer not in exports:
        raise DataError(
            f"--raw {raw}: no export of retailer {retailer!r} (found {sorted(exports)})"
        )
    found: set[str] = set()
    drops = DropReport()
    for path in exports[retailer]:
        for chunk in loaders.iter_events(path, mapping=mapping, report=drops, retailer_id=retailer):
            t = chunk["event_time"]
            keep = (chunk["event_type"] == "purchase") & (t >= start) & (t < end)
            found.update(chunk.loc[keep, "user_id"].astype(str))
    return found


def campaign_report(
    targets: Path,
    raw: Path,
    *,
    mapping: ExportMapping | None = None,
    start: str | None = None,
    days: int = DEFAULT_DAYS,
) -> CampaignReport:
    """Contacted against held out among the selected, per retailer (and all together)."""
    if days < 1:
        raise ConfigError(f"--days {days}: the report window is at least one day")
    frame = read_targets(targets)
    first = _start(frame, start)
    end = first + pd.Timedelta(days=days)
    selected = frame[frame["selected"].astype(bool)]
    outcomes, pooled, outside, skipped = {}, [], 0, []
    for retailer, part in selected.groupby("retailer", sort=True):
        who = buyers(raw, str(retailer), first, end, mapping)
        outside += len(who - set(part[RAW_ID]))
        arrays = (part[RAW_ID].isin(who).to_numpy(), part["holdout"].to_numpy(bool))
        pooled.append((*arrays, part["propensity"].to_numpy(float)))
        if arrays[1].all() or not arrays[1].any():
            skipped.append(str(retailer))  # no one held out, or no one contacted, here
            continue
        outcomes[str(retailer)] = campaign_outcome(*pooled[-1])
    if len(pooled) > 1:
        outcomes["all"] = campaign_outcome(*(np.concatenate(a) for a in zip(*pooled, strict=True)))
    return CampaignReport(
        start=first, days=days, outcomes=outcomes, buyers_outside=outside, skipped=skipped
    )
