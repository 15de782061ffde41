"""Per-customer test predictions: what lets two models be compared customer by customer.

A metric of one model on the test customers is an estimate; the difference between two models
on the *same* customers is estimated far more precisely when their predictions are paired
(``fedmarket.paired``), which needs who each prediction is about. Every kind of result keeps
one row per pooled test customer, in the same columns::

    task       purchase | purchase-count (the same on every row)
    model      the model's name (cnn-lstm, logistic-regression, ...)
    partition  the prepared partition the customer belongs to (a retailer, for natural
               partitions)
    customer   the customer's keyed pseudonym, as in the prepared data (never a raw id)
    label      the test label: purchase 0/1, or the purchase count
    score      the prediction: a probability, or an expected count

A customer is (partition, customer): the same person at two retailers is two customers. The
files are named in ``fedmarket.rundir`` and kept off tracking servers (a row per customer is
shared no further than the run directory). Pseudonyms cannot be turned back into customer ids
without the pseudonym key, but they do link a row to the same customer's rows elsewhere:
treat these files as the prepared data's own.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fedmarket.data import store
from fedmarket.errors import ConfigError, DataError

if TYPE_CHECKING:  # pandas is loaded by the functions that read or write a file: a client
    import pandas as pd  # actor imports ``Predictions`` at start and needs pandas at most once

COLUMNS = ("task", "model", "partition", "customer", "label", "score")
KEY = ("partition", "customer")
_DTYPES = {"task": str, "model": str, "partition": np.int64, "customer": str}


@dataclass(frozen=True)
class Predictions:
    """One model's prediction for each test customer, row i of every array the same one."""

    task: str
    model: str
    partition: np.ndarray
    customer: np.ndarray
    label: np.ndarray
    score: np.ndarray

    def __post_init__(self) -> None:
        sizes = {len(np.asarray(getattr(self, k))) for k in ("partition", "customer", "label")}
        sizes.add(len(np.asarray(self.score).reshape(-1)))
        if len(sizes) != 1:
            raise DataError(
                f"predictions of {self.model!r}: partition, customer, label and score must "
                f"have one value per test customer, got lengths {sorted(sizes)}"
            )

    def __len__(self) -> int:
        return len(self.label)

    @classmethod
    def pooled(
        cls, data_dir: Path, test: store.SplitArrays, *, task: str, model: str, score: Any
    ) -> Predictions:
        """``score`` of the pooled test split (``store.load_pooled(data_dir, "test")``, every
        partition in manifest order), with who each customer is and their label."""
        from fedmarket.tasks import get_task

        return cls(
            task=task,
            model=model,
            partition=pooled_partitions(data_dir, "test", len(test)),
            customer=np.asarray(test.customer).astype(str),
            label=np.asarray(get_task(task).targets(test), dtype=np.float64),
            score=np.asarray(score, dtype=np.float64).reshape(-1),
        )

    def frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(
            {
                "task": self.task,
                "model": self.model,
                "partition": np.asarray(self.partition, dtype=np.int64),
                "customer": np.asarray(self.customer).astype(str),
                "label": np.asarray(self.label, dtype=np.float64),
                "score": np.asarray(self.score, dtype=np.float64).reshape(-1),
            },
            columns=list(COLUMNS),
        )


def pooled_test_predictions(
    data_dir: Path, test: store.SplitArrays, *, task: str, scores: Mapping[str, Any]
) -> list[Predictions]:
    """One ``Predictions`` per model of ``scores`` (model name -> its score of each customer
    of the pooled test split): the long file of `fedmarket baselines`."""
    return [
        Predictions.pooled(data_dir, test, task=task, model=model, score=score)
        for model, score in scores.items()
    ]


def pooled_partitions(data_dir: Path, split: str, n: int) -> np.ndarray:
    """The partition of each row of ``store.load_pooled(data_dir, split)`` (which concatenates
    the partitions in manifest order), from the manifest's customer counts."""
    manifest = store.read_manifest(data_dir)
    ids = store.partition_ids(manifest)
    counts = [int(p.get(split, {}).get("n", -1)) for p in manifest["partitions"]]
    if any(c < 0 for c in counts) or sum(counts) != n:
        raise DataError(
            f"{data_dir}: the manifest's {split} customers per partition ({counts}) do not add "
            f"up to the {n} loaded; the prepared directory is damaged, re-run "
            "`fedmarket data prepare`"
        )
    return np.repeat(np.asarray(ids, dtype=np.int64), counts)


def write_predictions(path: Path, predictions: Predictions | Sequence[Predictions]) -> Path:
    """The rows of one or more models (a long file, ``model`` telling them apart), written
    whole under a temporary name and renamed into place."""
    items = [predictions] if isinstance(predictions, Predictions) else list(predictions)
    names = [p.model for p in items]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: models named more than once: {names}")
    import pandas as pd

    frame = (
        pd.concat([p.frame() for p in items], ignore_index=True)
        if items
        else pd.DataFrame(columns=list(COLUMNS))
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    frame.to_csv(tmp, index=False, float_format="%.9g")
    os.replace(tmp, path)
    return path


def read_predictions(path: Path) -> dict[str, Predictions]:
    """Each model's predictions in ``path``, by model name, in the file's order.

    A file of an older run (``y,score``, without the customers) is refused with what to do:
    it cannot be paired with anything.
    """
    if not path.is_file():
        raise ConfigError(f"{path}: no such predictions file")
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype=_DTYPES, keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as exc:
        raise ConfigError(f"{path}: damaged predictions file ({exc})") from None
    if list(frame.columns) == ["y", "score"]:
        raise ConfigError(
            f"{path}: written by an older fedmarket, without the customers (y,score only), "
            "so its predictions cannot be paired; run it again with this version"
        )
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ConfigError(
            f"{path}: not a predictions file, missing column(s) {', '.join(missing)} "
            f"(expected {','.join(COLUMNS)})"
        )
    try:
        label = frame["label"].to_numpy(dtype=np.float64)
        score = frame["score"].to_numpy(dtype=np.float64)
    except ValueError as exc:
        raise ConfigError(f"{path}: a label or score is not a number ({exc})") from None
    if not (np.isfinite(label).all() and np.isfinite(score).all()):
        raise ConfigError(f"{path}: empty or non-finite labels or scores; the file is damaged")
    out: dict[str, Predictions] = {}
    for model, rows in frame.groupby("model", sort=False):
        index = rows.index.to_numpy()
        tasks = rows["task"].unique()
        if len(tasks) != 1:
            raise ConfigError(f"{path}: model {model!r} has rows of tasks {list(tasks)}")
        out[str(model)] = Predictions(
            task=str(tasks[0]),
            model=str(model),
            partition=rows["partition"].to_numpy(dtype=np.int64),
            customer=rows["customer"].to_numpy(dtype=str),
            label=label[index],
            score=score[index],
        )
    return out
