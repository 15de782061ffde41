"""The local-only models: each retailer's model trained on its own data alone.

"Does joining pay for me?" is answered against what a retailer would have without the
consortium: the same model trained on its own training customers, with the run's training
settings (the same total training, rounds x local epochs, batch size and learning rate) and,
under client DP, the same budget as the retailer spends as a client of the run (the same
target epsilon or noise multiplier, clipping norm, accountant and delta, over the same number
of steps; the noise its client calibrated is read from its journal rather than searched for
again). The loop is the one every client and the centralised reference use
(``fedmarket.training.fit``); retailers are trained one after another in this process.

Under central DP (``dp = "central"``) a retailer's own model needs no DP: it never leaves the
retailer, and central DP protects what the server receives. It is then trained without noise.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fedmarket.data import store
from fedmarket.errors import FedmarketError
from fedmarket.federated.client_state import load_journal
from fedmarket.models import build_model
from fedmarket.predictions import Predictions, write_predictions
from fedmarket.privacy.accounting import AccountantState, sample_rate
from fedmarket.rundir import LOCAL_ONLY_METRICS, TEST_SCORES, json_safe, write_json
from fedmarket.tasks import get_task
from fedmarket.threads import ThreadChoice, apply_threads
from fedmarket.training import fit, predict

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

    from fedmarket.config import RunConfig

log = logging.getLogger("fedmarket")


@dataclass(frozen=True)
class LocalModel:
    """What one retailer's local-only training did (summary.json, RUN/local/metrics.json)."""

    partition: int
    n_train: int
    n_test: int
    epochs: int
    steps: int
    wall_s: float
    epsilon: float | None = None
    delta: float | None = None
    noise_multiplier: float | None = None


@dataclass(frozen=True)
class LocalOnlyResult:
    model: str
    task: str
    models: list[LocalModel]
    wall_s: float
    threads: int | None = None
    # every retailer's test customers, in the pooled test split's order (manifest order)
    predictions: Predictions | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return json_safe(
            {
                "model": self.model,
                "task": self.task,
                "wall_s": self.wall_s,
                "threads": self.threads,
                "models": [asdict(m) for m in self.models],
            }
        )


def local_seed(seed: int, partition: int) -> int:
    """A distinct, reproducible training seed per retailer (not any client round's seed)."""
    state = np.random.SeedSequence([seed, partition, 0x10CA1]).generate_state(1)[0]
    return int(state >> 1)


def train_local_model(
    cfg: RunConfig,
    data_dir: Path,
    partition: int,
    *,
    fernet: Fernet | None = None,
    progress: Callable[..., None] | None = None,
) -> tuple[LocalModel, Predictions]:
    """One retailer's local-only model and its prediction for each of its test customers."""
    started = time.perf_counter()
    manifest = store.read_manifest(data_dir)
    train = store.load_split(data_dir, partition, "train", fernet, mmap=False)
    test = store.load_split(data_dir, partition, "test", fernet, mmap=False)
    task = get_task(cfg.task)
    # the same delta as every client of the run: one delta over all training customers
    privacy = cfg.privacy(store.n_train_total(manifest))
    net = build_model(
        cfg.model,
        store.n_features(manifest),
        task=cfg.task,
        dp=privacy is not None,
        seed=cfg.seed,  # the federated run's initial model
        **cfg.model_options(),
    )
    train_cfg = cfg.train_config(epochs=cfg.total_epochs, seed=local_seed(cfg.seed, partition))
    state = clients_noise(cfg, partition, len(train)) if privacy is not None else None
    result = fit(
        net, train, task, train_cfg, privacy=privacy, privacy_state=state, progress=progress
    )
    score = predict(net, test.X, task, device=train_cfg.device)
    predictions = Predictions(
        task=cfg.task,
        model=cfg.model,
        partition=np.full(len(test), int(partition), dtype=np.int64),
        customer=np.asarray(test.customer).astype(str),
        label=np.asarray(task.targets(test), dtype=np.float64),
        score=np.asarray(score, dtype=np.float64).reshape(-1),
    )
    model = LocalModel(
        partition=int(partition),
        n_train=result.n_train,
        n_test=len(test),
        epochs=result.epochs_run,
        steps=result.steps,
        wall_s=time.perf_counter() - started,
        epsilon=result.epsilon,
        delta=result.delta,
        noise_multiplier=result.noise_multiplier,
    )
    return model, predictions


def clients_noise(cfg: RunConfig, partition: int, n_train: int) -> AccountantState | None:
    """The noise the run's client at this retailer calibrated (its privacy journal in the
    run's state-dir), as an accountant state with nothing spent: the same target, delta,
    sampling rate and planned steps give the same noise, and Opacus' search for it costs
    seconds per retailer. None (calibrate again) without a journal, under a fixed noise
    multiplier, or where the journal's sampling rate is not this retailer's. ``fit`` still
    checks the target against the steps this model takes."""
    if not cfg.state_dir or cfg.target_epsilon == 0 or cfg.client_epochs != cfg.total_epochs:
        return None  # the clients' noise also covered personal steps: calibrate its own
    try:
        spent = load_journal(None, cfg.state_dir, partition).latest()
    except (FedmarketError, OSError):
        return None
    rate = sample_rate(n_train, cfg.batch_size)
    if (
        spent is None
        or spent.noise_multiplier is None
        or spent.accountant != cfg.accountant
        or {(noise, q) for noise, q, _ in spent.history} != {(spent.noise_multiplier, rate)}
    ):
        return None
    return AccountantState(spent.accountant, (), spent.noise_multiplier)


def run_local_only(
    cfg: RunConfig,
    data_dir: Path,
    out_dir: Path | None = None,
    *,
    fernet: Fernet | None = None,
    progress: Callable[..., None] | None = None,
    threads: int | ThreadChoice | None = None,
) -> LocalOnlyResult:
    """Every retailer's local-only model, one after another; written to ``out_dir`` (its
    metrics.json and test_scores.csv) when given. ``threads`` as the centralised reference
    (`fedmarket.threads`): the client actors' load is gone by then."""
    started = time.perf_counter()
    choice = apply_threads(threads)
    ids = store.partition_ids(store.read_manifest(data_dir))
    models, predictions = [], []
    for i, partition in enumerate(ids, 1):
        model, scored = train_local_model(
            cfg, data_dir, partition, fernet=fernet, progress=progress
        )
        eps = f", epsilon {model.epsilon:.2f}" if model.epsilon is not None else ""
        log.info(
            "local-only model %d/%d (partition %d): %s training customers, %d epochs%s, %.1f s",
            i, len(ids), partition, f"{model.n_train:,}", model.epochs, eps, model.wall_s,
        )  # fmt: skip
        models.append(model)
        predictions.append(scored)
    result = LocalOnlyResult(
        model=cfg.model,
        task=cfg.task,
        models=models,
        wall_s=time.perf_counter() - started,
        threads=choice.threads,
        predictions=_concatenated(predictions) if predictions else None,
    )
    if out_dir is not None:
        write_local_only(result, out_dir)
    return result


def _concatenated(parts: list[Predictions]) -> Predictions:
    first = parts[0]
    return Predictions(
        task=first.task,
        model=first.model,
        **{
            key: np.concatenate([np.asarray(getattr(p, key)) for p in parts])
            for key in ("partition", "customer", "label", "score")
        },
    )


def write_local_only(result: LocalOnlyResult, out_dir: Path) -> dict[str, Path]:
    """RUN/local/metrics.json and RUN/local/test_scores.csv (`fedmarket compare` pairs them)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"metrics": write_json(out_dir / LOCAL_ONLY_METRICS, result.to_dict())}
    if result.predictions is not None:
        paths["test_scores"] = write_predictions(out_dir / TEST_SCORES, result.predictions)
    return paths
