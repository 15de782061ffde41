"""BG/NBD's view of each customer as model inputs (`data prepare --btyd-inputs`).

A sequence model sees a customer's weeks one by one; BG/NBD (``fedmarket.btyd``) summarises the
same history in three numbers that the customer-base literature has refined for twenty years:
the probability that the customer is still active, the purchases expected in the horizon, and
the probability of buying in it. Given to every model as inputs, they let a sequence model start
from the anchor instead of rediscovering it; whether that pays is measured, not assumed
(BENCHMARKS.md).

Where and how they are computed, so nothing leaks and nothing crosses a retailer:

* per partition (a retailer, or a client's share of one): BG/NBD is fitted on that partition's
  **training** customers only, from their window aggregates (``fedmarket.btyd.from_aggregates``,
  weeks as the unit); the fit is local to the data's owner, as the rest of `prepare` is;
* every customer of the partition (train and test) gets the fit's predictions from their own
  window history: nothing from the horizon is used, so the inputs cannot leak labels;
* ``X`` gains the three as constant columns on every step (P(alive), P(buy) and
  log1p(expected purchases), all near unit scale, so no pooled statistics are needed), ``agg``
  gains them raw; names are prefixed ``btyd:``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import numpy as np

from fedmarket.btyd import fit_bgnbd, from_aggregates
from fedmarket.data import store
from fedmarket.errors import DataError, FedmarketError

PREFIX: Final[str] = "btyd:"
NAMES: Final[tuple[str, ...]] = ("p_alive", "p_buy", "log1p_expected_purchases")
WEEK_DAYS: Final[float] = 7.0


def _inputs(fit: Any, agg: np.ndarray, names: list[str], horizon_weeks: float) -> np.ndarray:
    history = from_aggregates(agg, names, time_unit_days=WEEK_DAYS)
    return np.column_stack(
        [
            fit.p_alive(history),
            fit.p_purchase(horizon_weeks, history),
            np.log1p(fit.expected_transactions(horizon_weeks, history)),
        ]
    ).astype(np.float32)


def _fit(train: store.SplitArrays, names: list[str], partition: int) -> Any:
    if len(train) == 0:
        raise DataError(f"--btyd-inputs: partition {partition} has no training customers")
    try:
        return fit_bgnbd(from_aggregates(np.asarray(train.agg), names))
    except FedmarketError as exc:
        raise DataError(
            f"--btyd-inputs: BG/NBD could not be fitted on partition {partition}'s "
            f"{len(train):,} training customers ({exc}); prepare without --btyd-inputs"
        ) from exc


def join_btyd_inputs(
    data_dir: Path, manifest: dict[str, Any], fernet: Any | None = None
) -> dict[str, Any]:
    """Rewrite every split of ``data_dir`` with the inputs appended; the updated manifest."""
    names = list(manifest["aggregate_names"])
    horizon_weeks = manifest["window"]["horizon_days"] / WEEK_DAYS
    fits: dict[str, dict[str, float]] = {}
    for entry in manifest["partitions"]:
        pid = entry["id"]
        splits = {s: store.load_split(data_dir, pid, s, fernet, mmap=False) for s in store.SPLITS}
        fit = _fit(splits["train"], names, pid)
        fits[str(pid)] = {k: round(v, 6) for k, v in fit.params.items()}
        for split, arrays in splits.items():
            extra = _inputs(fit, np.asarray(arrays.agg), names, horizon_weeks)
            steps = arrays.X.shape[1]
            joined = store.SplitArrays(
                X=np.concatenate([arrays.X, np.repeat(extra[:, None, :], steps, axis=1)], axis=2),
                agg=np.concatenate([arrays.agg, extra], axis=1),
                y_purchase=arrays.y_purchase,
                y_count=arrays.y_count,
                y_active=arrays.y_active,
                customer=arrays.customer,
            )
            store.write_split(store.split_dir(data_dir, pid, split), joined, fernet)
    added = [PREFIX + n for n in NAMES]
    return {
        **manifest,
        "feature_names": [*manifest["feature_names"], *added],
        "aggregate_names": [*manifest["aggregate_names"], *added],
        "btyd_inputs": {
            "model": "bg-nbd",
            "fitted": "per partition, on its training customers' window histories (weeks)",
            "horizon_weeks": horizon_weeks,
            "parameters": fits,
            "layout": f"constant on every step of X, appended to agg, names prefixed {PREFIX!r}",
        },
    }
