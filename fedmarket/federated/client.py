"""One retailer's side of a round: load its own partition, train locally, evaluate.

Nothing here knows Flower. The ClientApp decodes a message into a state dict and round
number, calls ``RetailerClient.train_round`` (training charged to the client's privacy
journal) or ``.evaluate``, and encodes what comes back: weights and aggregate metrics only,
never a per-customer value.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from fedmarket.config import RunConfig
from fedmarket.data import store
from fedmarket.errors import BudgetExhaustedError
from fedmarket.federated.client_state import PrivacyJournal, update_digest
from fedmarket.metrics import ONE_TEST_SET_KEYS
from fedmarket.models import build_model
from fedmarket.names import PRODUCTS_TASK, RANKING_TASKS
from fedmarket.privacy import accounting
from fedmarket.privacy.accounting import AccountantState
from fedmarket.recommend.data import load_task_split, model_inputs
from fedmarket.tasks import get_task
from fedmarket.training import FitResult, TrainConfig, fit, predict

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

# Partitions already read by this process (a Ray actor serves many virtual clients):
# rounds after the first reuse the arrays instead of reading and decrypting them again. An
# actor kept for the next run of a session (experiments/ray_session.py) keeps them too, so
# the key names the manifest's version: data prepared again in place is read again.
_PARTITIONS: dict[tuple[str, int, int, str], tuple[Any, Any]] = {}
_PARTITIONS_LOCK = threading.Lock()
# One model per architecture in this process, reused every round: the global weights are
# copied into it in place (on the GPU when it trains there) instead of building a new one
# per message. Safe because ``fit`` unwraps Opacus' hooks when it returns and every tensor
# of the model's state is overwritten by ``load_state_dict(strict=True)``.
_MODELS: dict[tuple[Any, ...], torch.nn.Module] = {}


def load_partition(
    data_dir: Path, partition_id: int, fernet: Fernet | None = None, task: str = "purchase"
) -> tuple[Any, Any]:
    """The partition's (train, test) splits as ``task`` reads them (``recommend.data``)."""
    where = Path(data_dir).resolve()
    version = (where / store.MANIFEST_NAME).stat().st_mtime_ns
    kind = task if task in RANKING_TASKS else "arrays"
    key = (str(where), int(partition_id), version, kind)
    with _PARTITIONS_LOCK:
        if key not in _PARTITIONS:
            _PARTITIONS[key] = tuple(  # type: ignore[assignment]
                load_task_split(data_dir, partition_id, split, task, fernet)
                for split in ("train", "test")
            )
        return _PARTITIONS[key]


def round_seed(seed: int, partition_id: int, server_round: int) -> int:
    """A distinct, reproducible training seed for each client and round."""
    return int(np.random.SeedSequence([seed, partition_id, server_round]).generate_state(1)[0] >> 1)


@dataclass(frozen=True)
class TrainOutcome:
    state_dict: dict[str, torch.Tensor]
    metrics: dict[str, float]
    privacy_state: AccountantState | None


class RetailerClient:
    """A retailer's trainer over its own partition for the settings of one run."""

    def __init__(
        self, cfg: RunConfig, data_dir: Path, partition_id: int, *, fernet: Fernet | None = None
    ) -> None:
        self.cfg = cfg
        self.partition_id = int(partition_id)
        manifest = store.read_manifest(data_dir)
        self.n_features, self.data_options = model_inputs(manifest, cfg.task)
        if cfg.task == PRODUCTS_TASK:  # the retailer's own catalogue: its private table's rows
            from fedmarket.data.product_vocab import read_catalogue
            from fedmarket.recommend.products import catalogue_option, partition_dir

            catalogue = read_catalogue(partition_dir(data_dir, partition_id), fernet)
            self.data_options["catalogue"] = catalogue_option(catalogue, partition_id)
        self.train_split, self.test_split = load_partition(data_dir, partition_id, fernet, cfg.task)
        self.task = get_task(cfg.task)
        self.privacy = cfg.privacy(store.n_train_total(manifest))

    def new_model(self, dp: bool) -> torch.nn.Module:
        return build_model(
            self.cfg.model,
            self.n_features,
            task=self.cfg.task,
            dp=dp,
            seed=self.cfg.seed,
            **self.cfg.model_options(),
            **self.data_options,
        )

    def model_with(self, weights: dict[str, torch.Tensor], dp: bool) -> torch.nn.Module:
        """This process's model for the run's architecture, holding ``weights``."""
        key = self._model_key(dp)
        with _PARTITIONS_LOCK:
            if key not in _MODELS:
                _MODELS[key] = self.new_model(dp)
            model = _MODELS[key]
        model.load_state_dict(weights, strict=True)
        return model

    def forget_model(self, dp: bool) -> None:
        with _PARTITIONS_LOCK:
            _MODELS.pop(self._model_key(dp), None)

    def _model_key(self, dp: bool) -> tuple[Any, ...]:
        # per thread too: two virtual clients trained concurrently never share a model
        cfg = self.cfg
        vocabulary = self.data_options.get("vocabulary") or {}
        data = (tuple(vocabulary.get("items", ())), tuple(vocabulary.get("tokens", ())))
        return (
            cfg.model,
            self.n_features,
            cfg.task,
            cfg.count_loss,
            dp,
            data,
            self.partition_id if cfg.task == PRODUCTS_TASK else None,  # its own catalogue
            threading.get_ident(),
        )

    def _fit(
        self,
        model: torch.nn.Module,
        cfg: TrainConfig,
        privacy_state: AccountantState | None,
        proximal_mu: float,
    ) -> FitResult:
        if torch.cuda.is_available():  # the peak reported is this round's, not the process's
            torch.cuda.reset_peak_memory_stats()
        return fit(
            model,
            self.train_split,
            self.task,
            cfg,
            privacy=self.privacy,
            privacy_state=privacy_state,
            planned_epochs=self.cfg.client_epochs if self.privacy is not None else None,
            proximal_mu=proximal_mu,
        )

    def train(
        self,
        weights: dict[str, torch.Tensor],
        server_round: int,
        privacy_state: AccountantState | None,
        *,
        proximal_mu: float = 0.0,
    ) -> TrainOutcome:
        """Local epochs from the global weights; raises BudgetExhaustedError to decline."""
        dp = self.privacy is not None
        model = self.model_with(weights, dp=dp)
        cfg = self.cfg.train_config(seed=round_seed(self.cfg.seed, self.partition_id, server_round))
        try:
            result = self._fit(model, cfg, privacy_state, proximal_mu)
        except BaseException:
            self.forget_model(dp)  # whatever a failed step left on it is not carried over
            raise
        metrics = {
            "num-examples": float(result.n_train),
            "unit-weight": 1.0,
            "partition-id": float(self.partition_id),
            "train-loss": float(result.history[-1]["train_loss"]),
            "steps": float(result.steps),
            "train-wall-s": float(result.wall_s),
        }
        if next(model.parameters()).is_cuda:
            metrics["gpu-peak-mb"] = torch.cuda.max_memory_allocated() / 2**20
        if self.privacy is not None:
            metrics.update(
                {
                    "epsilon": float(result.epsilon),
                    "delta": float(result.delta),
                    "noise-multiplier": float(result.noise_multiplier),
                }
            )
        return TrainOutcome(result.state_dict, metrics, result.privacy_state)

    def train_round(
        self,
        weights: dict[str, torch.Tensor],
        server_round: int,
        journal: PrivacyJournal,
        *,
        proximal_mu: float = 0.0,
    ) -> TrainOutcome:
        """``train`` with the client's privacy journal: a replayed round that releases the
        same update is charged once, a different one on top of all that was spent (and
        declined with BudgetExhaustedError if that would pass the target). ``journal`` holds
        the round afterwards; the caller persists it only when the reply is sent."""
        base = journal.base_for(server_round)
        outcome = self.train(weights, server_round, base, proximal_mu=proximal_mu)
        return self.charge(server_round, base, outcome, journal)

    def charge(
        self,
        key: int,
        base: AccountantState | None,
        outcome: TrainOutcome,
        journal: PrivacyJournal,
    ) -> TrainOutcome:
        """Record ``outcome`` (trained from ``base``) in ``journal`` under ``key`` (a round,
        or a personal step: ``federated.personal``): ``outcome`` with the epsilon of all
        spent, or BudgetExhaustedError where a retrained, different release would pass the
        target."""
        if outcome.privacy_state is None or self.privacy is None:
            return outcome
        released = update_digest(outcome.state_dict)
        spent = journal.charge(key, base, outcome.privacy_state, released)
        if spent == outcome.privacy_state:
            return outcome
        eps = accounting.epsilon(spent, self.privacy.delta)
        target = self.privacy.target_epsilon
        if target is not None and eps > target * (1 + 1e-9):
            raise BudgetExhaustedError(
                f"round {key} was trained again with a different result; releasing "
                f"it too would spend epsilon {eps:.3f} in all, above the target {target}"
            )
        return TrainOutcome(outcome.state_dict, {**outcome.metrics, "epsilon": eps}, spent)

    def evaluate(self, weights: dict[str, torch.Tensor]) -> dict[str, float]:
        """Aggregate metrics of the global model on this retailer's own test customers.

        The server averages these over clients, so what describes this one test set only
        (intervals, counts, totals: ``ONE_TEST_SET_KEYS``) stays here: a mean of intervals
        is no interval, and "num-examples" already says how many customers were scored.
        """
        model = self.model_with(weights, dp=False)
        y = self.task.targets(self.test_split)
        pred = predict(model, self.test_split.X, self.task)
        report = self.task.report(y, pred)
        metrics = {
            k: float(v)
            for k, v in report.items()
            if isinstance(v, int | float) and k not in ONE_TEST_SET_KEYS
        }
        metrics.update(
            {
                "num-examples": float(len(self.test_split)),
                "unit-weight": 1.0,
                "partition-id": float(self.partition_id),
            }
        )
        return metrics
