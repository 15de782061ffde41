"""A retailer's personalised model: fine-tuning, FedPer's private head, Ditto (issue #16).

Nothing here knows Flower; the ClientApp keeps what a method keeps between rounds (a head, a
personal model) in Flower's ``context.state`` and, with a ``state-dir``, in the client's own
directory there (the file wins, as for the accountant, ``client_state``):

- ``finetune``: after the last round, the final global model trained ``personal-epochs`` more
  on the retailer's own training customers.
- ``fedper``: the model's head (``fedmarket.models.head_keys``: its final layer) never leaves
  the retailer. The client trains the global body with its own head, keeps the head and sends
  the body only; the personal model is the final body with the retailer's head.
- ``ditto``: besides its federated update, each round the client trains a personal model
  for ``personal-epochs`` with Ditto's proximal term (lambda / 2) ||w - w_global||^2 toward
  the global model it received (Li et al., 2021).

Every personal step on the retailer's customers is charged to the client's privacy journal
(``charge_steps``), under keys apart from the rounds' (``PERSONAL_KEY``): the client's noise is
calibrated for the rounds and the personal steps together (``RunConfig.client_epochs``), and
a step that would pass the target raises BudgetExhaustedError before the model is touched.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from fedmarket.federated.client import TrainOutcome, round_seed
from fedmarket.federated.client_state import PrivacyJournal
from fedmarket.models import split_head, split_private
from fedmarket.predictions import Predictions
from fedmarket.training import fit, predict

if TYPE_CHECKING:
    from fedmarket.federated.client import RetailerClient

# Journal keys of personal training: the fine-tune's, and PERSONAL_KEY + r for Ditto's
# personal step in round r. Server rounds stay far below it.
PERSONAL_KEY = 1_000_000
HEAD, DITTO = "head", "ditto"
# What a client keeps whatever the personalisation: the model's private part for the task
# (``fedmarket.models.split_private``: next-products' retailer-private product table).
PRIVATE = "private"
PERSONAL_SCORES = "personal_test_scores.csv"

Weights = dict[str, torch.Tensor]


def personal_file(state_dir: str, partition_id: int, kind: str) -> Path:
    """Where the client keeps its ``kind`` ("head", "ditto") in its state-dir."""
    return Path(state_dir) / f"client-{partition_id}" / f"personal-{kind}.pt"


def scores_file(state_dir: str, partition_id: int) -> Path:
    """The personalised model's prediction for each of the retailer's test customers, kept
    at the retailer (in simulation the run directory gathers them: ``value.personal``)."""
    return Path(state_dir) / f"client-{partition_id}" / PERSONAL_SCORES


def load_weights(state_dir: str, partition_id: int, kind: str) -> Weights | None:
    """The client's kept ``kind`` from its state-dir, None where there is none."""
    if not state_dir:
        return None
    path = personal_file(state_dir, partition_id, kind)
    return torch.load(path, weights_only=True) if path.is_file() else None


def save_weights(weights: Mapping[str, torch.Tensor], state_dir: str, partition_id: int, kind: str):
    """Write ``weights`` atomically to the client's state-dir (nothing without one)."""
    if not state_dir:
        return
    path = personal_file(state_dir, partition_id, kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({k: v.detach().cpu() for k, v in weights.items()}, tmp)
    os.replace(tmp, path)


def with_head(weights: Mapping[str, torch.Tensor], head: Mapping[str, torch.Tensor] | None):
    """``weights`` (the global model, or its body alone) completed with the client's own
    ``head``; the global model as it is where the client has no head yet."""
    return {**weights, **(head or {})}


def with_private(
    client: RetailerClient, received: Mapping[str, torch.Tensor], kept: Mapping | None
) -> Weights:
    """The global (shared) weights completed with the client's private part: the one it
    kept, or in its first round its model's seeded initial one. ``received`` as it is for a
    task without a private part."""
    cfg = client.cfg
    if not _has_private(client):
        return dict(received)
    if kept is None:
        kept = split_private(cfg.model, cfg.task, client.new_model(False).state_dict())[1]
    return {**received, **kept}


def shared_and_private(client: RetailerClient, state_dict: Mapping[str, torch.Tensor]):
    """(sent, kept) of a trained model: the private part never leaves the client."""
    return split_private(client.cfg.model, client.cfg.task, state_dict)


def _has_private(client: RetailerClient) -> bool:
    from fedmarket.models.registry import private_prefixes

    return bool(private_prefixes(client.cfg.model, client.cfg.task))


def body_and_head(model: str, state_dict: Mapping[str, torch.Tensor]) -> tuple[Weights, Weights]:
    """FedPer's split of a trained model: (the body, sent; the head, kept)."""
    return split_head(model, state_dict)


def train_personal(
    client: RetailerClient,
    start: Mapping[str, torch.Tensor],
    journal: PrivacyJournal,
    key: int,
    *,
    anchor: Mapping[str, torch.Tensor] | None = None,
    lam: float = 0.0,
) -> TrainOutcome:
    """``personal-epochs`` of training from ``start`` on the client's training customers,
    with (lam / 2) ||w - anchor||^2 when ``anchor`` is given (Ditto), charged to ``journal``
    under ``key``. The caller persists the journal. Raises BudgetExhaustedError (a
    PrivacyError) where the client's remaining budget does not cover the steps."""
    dp = client.privacy is not None
    model = client.model_with(dict(start), dp=dp)
    cfg = client.cfg
    train_cfg = cfg.train_config(
        epochs=cfg.personal_epochs, seed=round_seed(cfg.seed, client.partition_id, key)
    )
    base = journal.base_for(key)
    try:
        result = fit(
            model,
            client.train_split,
            client.task,
            train_cfg,
            privacy=client.privacy,
            privacy_state=base,
            planned_epochs=cfg.client_epochs if dp else None,
            proximal_mu=lam if anchor is not None else 0.0,
            proximal_anchor=anchor,
        )
    except BaseException:
        client.forget_model(dp)
        raise
    metrics = {"personal-steps": float(result.steps)}
    if dp:
        metrics.update({"epsilon": float(result.epsilon), "delta": float(result.delta)})
    outcome = TrainOutcome(result.state_dict, metrics, result.privacy_state)
    return client.charge(key, base, outcome, journal)


def score(client: RetailerClient, weights: Mapping[str, torch.Tensor]) -> tuple[dict, Predictions]:
    """The personalised model's metrics on the retailer's test customers (aggregates, which
    may leave) and its prediction for each of them (which stays at the retailer)."""
    metrics = client.evaluate(dict(weights))
    model = client.model_with(dict(weights), dp=False)
    test, task = client.test_split, client.task
    predicted = predict(model, test.X, task)
    predictions = Predictions(
        task=client.cfg.task,
        model=client.cfg.model,
        partition=np.full(len(test), client.partition_id, dtype=np.int64),
        customer=np.asarray(test.customer).astype(str),
        label=np.asarray(task.targets(test), dtype=np.float64),
        score=np.asarray(predicted, dtype=np.float64).reshape(-1),
    )
    return metrics, predictions
