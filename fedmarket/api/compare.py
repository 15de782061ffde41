"""`fedmarket compare` from Python: two results on the same test customers, paired."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from fedmarket.api.args import PathLike


@dataclass(frozen=True)
class Comparison:
    """A against B: ``table`` (one row per metric: a, b, difference, its 95% interval and
    p-value, method), the customers both were scored on, and the whole record (``record``,
    what ``fedmarket compare --out`` writes)."""

    table: pd.DataFrame
    customers: int
    positives: int
    negatives: int
    small_test: bool
    record: dict[str, Any]

    def __repr__(self) -> str:
        rows = ", ".join(
            f"{r.metric} {r.difference:+.4f} ({r.low:+.4f} to {r.high:+.4f})"
            for r in self.table.itertuples()
        )
        return f"Comparison(A - B on {self.customers:,} customers: {rows})"


def compare(
    run_a: PathLike,
    run_b: PathLike,
    *,
    a: str | None = None,
    b: str | None = None,
    metrics: Sequence[str] | str = (),
    seed: int = 0,
    bootstrap: int | None = None,
) -> Comparison:
    """Result ``a`` of ``run_a`` against result ``b`` of ``run_b`` (`fedmarket compare`):
    ``a``/``b`` are ``federated``, ``centralised``, ``local-only``, ``bg-nbd`` or a baseline's
    name (None: the directory's federated, else centralised, else only result); ``metrics``
    default to the task's. Refuses results scored on different customers, labels or tasks."""
    from fedmarket.experiments.compare import compare_runs
    from fedmarket.paired import DEFAULT_BOOTSTRAP

    names = [m.strip() for m in metrics.split(",")] if isinstance(metrics, str) else metrics
    result = compare_runs(
        Path(run_a),
        Path(run_b),
        kind_a=a,
        kind_b=b,
        metrics=[m for m in names if m],
        seed=seed,
        resamples=DEFAULT_BOOTSTRAP if bootstrap is None else bootstrap,
    )
    record = result.to_dict()
    return Comparison(
        table=pd.DataFrame(record["metrics"]),
        customers=result.n,
        positives=result.positives,
        negatives=result.negatives,
        small_test=result.small_test,
        record=record,
    )
