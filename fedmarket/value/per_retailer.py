"""Each retailer's own test customers: the federated model against its local-only model.

A pooled test metric averages the retailers away: a consortium can raise it while one small
retailer's customers are ranked worse than by a model trained on that retailer's data alone.
A retailer decides to join on its own customers, so every number here is computed on one
retailer's test customers only (the ``partition`` column of the per-customer predictions,
``fedmarket.predictions``), from the scores the run already wrote: nothing is scored again.

Per retailer: ROC-AUC with its DeLong interval, PR-AUC, lift at the top 10 % and, for
purchase-count, the task's own primary metric (RMSE); the federated minus local-only
difference of each, and for ROC-AUC its paired DeLong interval (both models scored the same
customers, ``fedmarket.paired``). Joining *pays* a retailer when the federated model is better
on the task's primary metric; retailers for whom it does not are listed by name, and, for
ROC-AUC, whether the paired interval excludes 0 (``clear``): a gain or loss within noise is
said to be.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from fedmarket.errors import DataError
from fedmarket.intervals import delong_interval, interval_keys
from fedmarket.marketing import TARGETING_K, lift_at_k
from fedmarket.paired import paired_delong
from fedmarket.predictions import KEY, Predictions
from fedmarket.tasks import get_task

LIFT_KEY: Final[str] = "lift_at_10"
HEADLINE_KEYS: Final[tuple[str, ...]] = ("roc_auc", "pr_auc", LIFT_KEY)
TEST_SET: Final[str] = "each retailer's own test customers"


def retailer_metrics(label: Any, score: Any, task: str) -> dict[str, float]:
    """The headline metrics of one retailer's test customers.

    ``n``, ``n_positive`` (buyers: label > 0), ``base_rate``, ``roc_auc`` with its DeLong
    interval, ``pr_auc`` and ``lift_at_10`` on "buys at all", NaN where the customers hold
    no buyer or no non-buyer; for purchase-count also its primary metric (``rmse``).
    """
    y = np.asarray(label, dtype=np.float64).reshape(-1)
    s = np.asarray(score, dtype=np.float64).reshape(-1)
    if y.size == 0 or y.size != s.size:
        raise DataError(
            f"per-retailer metrics need one score per test customer, got {y.size} labels and "
            f"{s.size} scores"
        )
    buy = y > 0
    n_positive = int(buy.sum())
    both = 0 < n_positive < y.size
    low, high = delong_interval(s, buy)
    out = {
        "n": int(y.size),
        "n_positive": n_positive,
        "base_rate": float(buy.mean()),
        "roc_auc": float(roc_auc_score(buy, s)) if both else math.nan,
        interval_keys("roc_auc")[0]: low,
        interval_keys("roc_auc")[1]: high,
        "pr_auc": float(average_precision_score(buy, s)) if both else math.nan,
        LIFT_KEY: float(lift_at_k(buy.astype(np.float64), s, ks=(TARGETING_K,))[0]["lift"])
        if both
        else math.nan,
    }
    key, _ = get_task(task).primary_metric
    if key not in out:
        out[key] = float(get_task(task).metrics(y, s)[key])
    return out


def partition_names(manifest: Mapping[str, Any]) -> dict[int, str]:
    """What to call each partition: its retailer where it holds exactly one (natural
    partitions), else ``partition <id>`` (a Dirichlet or quantity split mixes retailers)."""
    names = {}
    for part in manifest.get("partitions", []):
        retailers = part.get("retailers") or []
        one = len(retailers) == 1 or (not retailers and part.get("retailer"))
        names[int(part["id"])] = str(part.get("retailer")) if one else f"partition {part['id']}"
    return names


@dataclass(frozen=True)
class RetailerValue:
    """One retailer: its models' metrics on its own test customers and what joining does."""

    partition: int
    name: str
    federated: dict[str, float]
    local_only: dict[str, float] | None
    # federated minus local-only per metric; "roc_auc_paired": DeLong's paired test
    difference: dict[str, Any] | None
    pays: bool | None  # None: no local-only model, or the primary metric undefined
    # ROC-AUC only: whether DeLong's paired interval excludes 0 (the verdict is not noise)
    clear: bool | None = None
    # the personalised model (run setting personalisation): its metrics, and it minus the
    # local-only model (else minus the federated model) per metric, with the paired ROC-AUC
    personal: dict[str, float] | None = None
    personal_difference: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_retailers(
    federated: Predictions,
    local_only: Predictions | None,
    *,
    names: Mapping[int, str] | None = None,
    personal: Predictions | None = None,
) -> list[RetailerValue]:
    """Per partition of ``federated``: its metrics, the local-only model's on the same
    customers (joined on (partition, customer); a customer missing from either, or a label
    that differs, is an error: the two were not scored on the same test set), and the
    personalised model's, compared with local-only (or, without it, with federated)."""
    task = federated.task
    fed = federated.frame()
    if local_only is not None:
        fed = _joined(fed, local_only)
    if personal is not None:
        fed = _joined(fed, personal, "personal")
    key, higher = get_task(task).primary_metric
    rows = []
    for partition, part in fed.groupby("partition", sort=True):
        pid = int(partition)
        y, s_fed = part["label"].to_numpy(), part["score"].to_numpy()
        fed_m = retailer_metrics(y, s_fed, task)
        loc_m = diff = pays = clear = None
        if local_only is not None:
            s_loc = part["score_local"].to_numpy()
            loc_m = retailer_metrics(y, s_loc, task)
            diff = _differences(fed_m, loc_m, (*HEADLINE_KEYS, key))
            diff["roc_auc_paired"] = paired = _paired(y, s_fed, s_loc)
            if paired is not None and key == "roc_auc":
                clear = bool(paired["low"] > 0 or paired["high"] < 0)
            gain = diff.get(key)
            if gain is not None and math.isfinite(gain):
                pays = bool(gain > 0) if higher else bool(gain < 0)
        mine = mine_diff = None
        if personal is not None:
            s_mine = part["score_personal"].to_numpy()
            mine = retailer_metrics(y, s_mine, task)
            base, s_base = (loc_m, part["score_local"].to_numpy()) if loc_m else (fed_m, s_fed)
            mine_diff = _differences(mine, base, (*HEADLINE_KEYS, key))
            mine_diff["roc_auc_paired"] = _paired(y, s_mine, s_base)
            mine_diff["against"] = "local-only" if loc_m else "federated"
        name = (names or {}).get(pid, f"partition {pid}")
        rows.append(RetailerValue(pid, name, fed_m, loc_m, diff, pays, clear, mine, mine_diff))
    return rows


def _joined(fed: pd.DataFrame, other: Predictions, kind: str = "local") -> pd.DataFrame:
    """``fed`` with ``other``'s score as column ``score_<kind>``, customer by customer."""
    loc = other.frame()[[*KEY, "label", "score"]]
    merged = fed.merge(loc, on=list(KEY), how="outer", suffixes=("", f"_{kind}"), indicator=True)
    missing = int((merged["_merge"] != "both").sum())
    what = "local-only" if kind == "local" else kind
    if missing:
        raise DataError(
            f"the federated and {what} predictions differ in {missing} test customer(s); "
            "they were not scored on the same test set (a run directory mixed from two runs?)"
        )
    if not np.array_equal(merged["label"].to_numpy(), merged[f"label_{kind}"].to_numpy()):
        raise DataError(
            f"the federated and {what} predictions give the same customer different labels; "
            "they come from different prepared data"
        )
    return merged.drop(columns=["_merge", f"label_{kind}"])


def _differences(
    fed: Mapping[str, float], loc: Mapping[str, float], keys: tuple[str, ...]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in dict.fromkeys(keys):
        diff = float(fed[key]) - float(loc[key])
        out[key] = diff if math.isfinite(diff) else None
    return out


def _paired(y: np.ndarray, s_fed: np.ndarray, s_loc: np.ndarray) -> dict[str, Any] | None:
    """Federated minus local-only ROC-AUC by DeLong's paired test; None with under two
    buyers or non-buyers (no variance)."""
    try:
        result = paired_delong(y, s_fed, s_loc)
    except DataError:
        return None
    return {k: result.to_dict()[k] for k in ("difference", "low", "high", "p_value")}


def retailers_block(
    rows: list[RetailerValue], task: str, *, local_only: str = "trained"
) -> dict[str, Any]:
    """summary.json's ``retailers``: the rows, the metric that decides, and who joining does
    not pay. ``local_only`` says whether the local-only models were trained ("trained"), or
    why not ("off: ...", "failed: ...")."""
    key, higher = get_task(task).primary_metric
    return {
        "test_set": TEST_SET,
        "metric": key,
        "higher_is_better": higher,
        "local_only": local_only,
        "rows": [r.to_dict() for r in rows],
        "not_paying": [r.name for r in rows if r.pays is False],
        # the same two lists where the paired interval excludes 0 (ROC-AUC only)
        "clearly_paying": [r.name for r in rows if r.pays is True and r.clear],
        "clearly_not_paying": [r.name for r in rows if r.pays is False and r.clear],
    }
