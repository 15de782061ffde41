"""A classical model given the customer-base model's predictions as inputs.

The issue behind the anchors asks for "the BTYD quantities (expected transactions, P(alive))
available as model inputs": a learner that sees both the RFM-style aggregates and what BG/NBD
concludes from them can only match the anchor or beat it, and the table shows by how much.
The BG/NBD fit is the pooled one, on the training customers only (four parameters, so the
in-sample predictions it gives the learner's training customers are not a leak of any
weight); its inputs for a customer are P(buy in the horizon), the expected purchases in it and
P(alive), on the same signed-log scale as the aggregates.
"""

from __future__ import annotations

import time
from typing import Any, Final

import numpy as np

from fedmarket.baselines import (
    ResultRow,
    aggregate_features,
    evaluate_predictions,
    fit_and_predict,
)
from fedmarket.btyd import CustomerHistory
from fedmarket.data.store import SplitArrays
from fedmarket.names import BINARY_TASKS
from fedmarket.tasks import get_task

# The learner each task gets: the simplest well-behaved one, so a gain is the inputs' doing.
HYBRID_LEARNER: Final[dict[str, str]] = {
    **dict.fromkeys(BINARY_TASKS, "logistic-regression"),
    "purchase-count": "poisson-regression",
}


def btyd_inputs(fit: Any, history: CustomerHistory, horizon: float) -> np.ndarray:
    """[customers, 3]: P(buy within ``horizon``), expected purchases in it, P(alive)."""
    return np.column_stack(
        [
            fit.p_purchase(horizon, history),
            fit.expected_transactions(horizon, history),
            fit.p_alive(history),
        ]
    )


def hybrid_row(
    task: str,
    fit: Any,
    histories: tuple[CustomerHistory, CustomerHistory],
    splits: tuple[SplitArrays, SplitArrays],
    horizon: float,
    seed: int,
) -> ResultRow:
    """The task's learner on aggregates + BG/NBD inputs: (train, test) histories and splits."""
    learner = HYBRID_LEARNER[get_task(task).name]
    (h_train, h_test), (train, test) = histories, splits
    start = time.perf_counter()
    x_train, x_test = (
        np.hstack(
            [
                aggregate_features(split.agg, where=f"{where}.agg"),
                aggregate_features(btyd_inputs(fit, h, horizon), where=f"{where} BG/NBD inputs"),
            ]
        )
        for split, h, where in ((train, h_train, "train"), (test, h_test, "test"))
    )
    target = get_task(task).targets
    prediction, note = fit_and_predict(
        task, learner, x_train, target(train).astype(np.float64), x_test, seed
    )
    seconds = time.perf_counter() - start
    metrics = evaluate_predictions(task, target(test).astype(np.float64), prediction)
    notes = (
        f"{learner} on the aggregates plus the pooled BG/NBD fit's P(buy), expected "
        f"purchases and P(alive) per customer; {note}"
    )
    return ResultRow(f"{learner} + bg-nbd", "customer-base", metrics, seconds, notes, prediction)
