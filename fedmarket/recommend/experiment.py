"""The recommender's centralised reference and its comparison with the baselines.

``compare`` trains GRU+NCF and its two ablations (GRU-only, NCF-only) on the pooled training
customers through the one training loop (``fedmarket.training.fit``, with or without DP),
scores the pooled test customers with them, with the baselines and, when given, with a
federated model's weights, and returns the warm/cold comparison table. Every model's scores
go through the same cold-start path: a test customer without any category event in the window
gets its retailer's popularity (``baselines.with_cold_start``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from cryptography.fernet import Fernet

from fedmarket.data import store
from fedmarket.data.category_vocab import Vocabulary
from fedmarket.models import build_model
from fedmarket.privacy.config import PrivacySettings
from fedmarket.recommend import baselines
from fedmarket.recommend.data import (
    COLD_EVENTS,
    RecSplit,
    load_rec_partitions,
    vocabulary_entry,
)
from fedmarket.recommend.evaluate import comparison, lift_over, markdown_table, new_item_hit_rate
from fedmarket.tasks import get_task
from fedmarket.training import TrainConfig, fit, predict

TASK = "next-categories"
ABLATIONS: dict[str, str] = {"gru-ncf": "GRU+NCF", "gru": "GRU-only", "ncf": "NCF-only"}
COLD_START = (
    "a test customer with no category event in the feature window is ranked by its "
    "retailer's popularity (the training customers' horizon carts and purchases there)"
)


@dataclass(frozen=True)
class Comparison:
    rows: list[dict[str, Any]]
    n_train: int  # training customers with a target (what the models trained on)
    n_test: int
    epsilon: float | None
    wall_s: float
    notes: dict[str, Any] = field(default_factory=dict)
    task: str = TASK

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "table": self.rows,
            "n_train": self.n_train,
            "n_test": self.n_test,
            "centralised_epsilon": self.epsilon,
            "wall_s": self.wall_s,
            "cold_threshold_events": COLD_EVENTS,
            "cold_start": COLD_START,
            **self.notes,
        }

    def markdown(self) -> str:
        return markdown_table(self.rows)


def score_with(
    weights: dict[str, torch.Tensor], vocabulary: dict[str, Any], test: RecSplit, **hparams: Any
) -> np.ndarray:
    """``[N, V]`` scores of a gru-ncf model holding ``weights`` (fast form)."""
    net = build_model("gru-ncf", 3, task=TASK, vocabulary=vocabulary, **hparams)
    net.load_state_dict(weights, strict=True)
    return predict(net, test.X, get_task(TASK), device="cpu")


def compare(
    data_dir: Path,
    train_cfg: TrainConfig,
    *,
    privacy: PrivacySettings | None = None,
    hparams: dict[str, Any] | None = None,
    fernet: Fernet | None = None,
    federated: dict[str, torch.Tensor] | None = None,
    modes: tuple[str, ...] = tuple(ABLATIONS),
    on_model: Callable[[str], None] | None = None,
) -> Comparison:
    """The comparison table (see the module docstring); ``federated`` adds a row for the
    federated GRU+NCF. ``hparams`` are gru-ncf's (``mode`` is set per ablation)."""
    started = time.perf_counter()
    vocabulary = vocabulary_entry(store.read_manifest(data_dir))
    train = RecSplit.concat(load_rec_partitions(data_dir, "train", fernet))
    test = RecSplit.concat(load_rec_partitions(data_dir, "test", fernet))
    trainable = train.with_targets()
    task = get_task(TASK)
    fallback = baselines.retailer_popularity(train, test)
    scores: dict[str, np.ndarray] = {}
    hp = {k: v for k, v in (hparams or {}).items() if k not in ("mode", "vocabulary")}
    if federated is not None:
        scores["GRU+NCF (federated)"] = score_with(federated, vocabulary, test, **hp)
    epsilon = None
    for mode in modes:
        if on_model is not None:
            on_model(ABLATIONS[mode])
        net = build_model(
            "gru-ncf", 3, task=TASK, dp=privacy is not None, seed=train_cfg.seed,
            vocabulary=vocabulary, mode=mode, **hp,
        )  # fmt: skip
        result = fit(net, trainable, task, train_cfg, privacy=privacy)
        epsilon = result.epsilon if mode == "gru-ncf" else epsilon
        name = f"{ABLATIONS[mode]} (centralised)"
        scores[name] = score_with(result.state_dict, vocabulary, test, mode=mode, **hp)
    for name, baseline in baselines.BASELINES.items():
        scores[name] = baseline(train, test)
    scores = {
        n: s if n.startswith("popularity") else baselines.with_cold_start(s, fallback, test)
        for n, s in scores.items()
    }
    rows = comparison(test, scores)
    notes = {}
    for model in ("GRU+NCF (federated)", "GRU+NCF (centralised)"):
        if model in scores:
            notes[f"{model}: ndcg@10 over global popularity"] = lift_over(
                rows, model, "popularity (global)", "ndcg@10"
            )
            notes[f"{model}: hr@10 over global popularity"] = lift_over(
                rows, model, "popularity (global)", "hr@10"
            )
    return Comparison(
        rows=rows,
        n_train=len(trainable),
        n_test=len(test),
        epsilon=epsilon,
        wall_s=time.perf_counter() - started,
        notes={
            "lift": notes,
            "new_items": new_item_hit_rate(
                test, scores, Vocabulary.from_manifest(vocabulary).n_known
            ),
        },
    )
