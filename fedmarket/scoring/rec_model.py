"""A finished recommendation run's model (task next-categories), ready to rank categories for
customers it has never seen.

The propensity runs' ``RunModel`` scores one number per customer; a recommendation run's model
scores every item of its vocabulary. What it needs besides its weights comes from the run's
prepared data, as for ``RunModel``: the window (scoring moves only its cut-off), the
vocabulary (item ``i`` of the scores is ``vocabulary.items[i]``; the model's item embeddings
are built from it) and the history length `data prepare` wrote ``recs.npz`` with.

The cold-start path is the evaluation's (``fedmarket.recommend.experiment``): a customer with
no category event in the window is ranked by its retailer's popularity, the horizon carts and
purchases of the training customers of the partition that holds that retailer's customers
(``baselines.retailer_popularity``); a retailer that is no partition of the run (a newcomer, or
a run partitioned across retailers) gets the popularity over every training customer, the
evaluation's own fallback for a partition without one.

Two models can be loaded, as ``load_run_model`` does: ``federated`` (the global model of the
last committed round) and ``centralised`` (when the run kept ``centralised/model.pt``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from cryptography.fernet import Fernet
from torch import nn

from fedmarket.config import RunConfig
from fedmarket.data import features, store
from fedmarket.data.category_vocab import Vocabulary
from fedmarket.data.protect.keys import prepared_data_fernet
from fedmarket.errors import ConfigError
from fedmarket.models import build_model
from fedmarket.names import RANKING_TASK
from fedmarket.recommend import baselines
from fedmarket.recommend.data import RecSplit, load_rec_partitions, vocabulary_entry
from fedmarket.rundir import RunDir
from fedmarket.scoring.run_model import manifest_window, products_refusal, run_with_manifest
from fedmarket.tasks import Task, get_task
from fedmarket.training import predict

ONE_CALL = 4096  # customers per model call: bounds the [customers, items] score block


@dataclass(frozen=True)
class RecModel:
    """One trained recommender of a run and what it needs to rank new customers' categories."""

    run_dir: Path
    source: str  # one of SOURCES
    config: RunConfig
    manifest: store.Manifest
    window: features.FeatureWindow
    vocabulary: Vocabulary
    history_length: int  # window events per customer the model reads (recs.npz's L)
    task: Task
    net: nn.Module  # eval mode, CPU
    round: int | None  # the federated round the weights come from (None: centralised)
    popularity: dict[str, np.ndarray]  # retailer -> cold-start scores [V]; "" = every retailer

    @property
    def model_name(self) -> str:
        return self.config.model

    @property
    def items(self) -> tuple[str, ...]:
        return self.vocabulary.items

    def window_at(self, as_of: object) -> features.FeatureWindow:
        """The run's window with its cut-off moved to ``as_of`` (a UTC midnight)."""
        w = self.window
        return features.FeatureWindow(
            cutoff=as_of,
            window_days=w.window_days,
            step_days=w.step_days,
            horizon_days=w.horizon_days,
        )

    def cold_start(self, retailer: str) -> np.ndarray:
        """float64 [V]: the scores of a customer without history at ``retailer``."""
        return self.popularity.get(retailer, self.popularity[""])

    def scores(self, X: np.ndarray) -> np.ndarray:
        """float64 [customers, V]: the model's scores of inputs ``X`` ([N, L, 3], as
        ``recommend.data.encode_inputs`` makes them), as the run's evaluation computes them."""
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 3 or X.shape[1:] != (self.history_length, 3):
            raise ConfigError(
                f"recommender input has shape {X.shape}; the run's model reads "
                f"(customers, {self.history_length} events, 3)"
            )
        if not len(X):
            return np.zeros((0, len(self.items)))
        if len(X) <= ONE_CALL and not self.net.training:
            # the service's few rows: the one model call predict() makes, without its per-call
            # device move and mode switches (walks of the module tree; a fifth of the call)
            with torch.inference_mode():
                scores = self.net(torch.from_numpy(np.ascontiguousarray(X)))
                return self.task.prediction(scores).numpy().astype(np.float64)
        return np.asarray(
            predict(self.net, X, self.task, device="cpu", batch_size=ONE_CALL), dtype=np.float64
        )


def is_ranking_run(run_dir: Path) -> bool:
    """Whether the run at ``run_dir`` ranks items (task next-categories). The first question
    `score` and `serve` ask of a run, so a run neither path takes (next-products) is refused
    here, before any option is judged against the wrong kind of run."""
    files = RunDir(Path(run_dir))
    cfg = files.read_config()
    if (reason := products_refusal(files, cfg)) is not None:
        raise ConfigError(reason)
    return cfg.task == RANKING_TASK


def _customer_run(files: RunDir, cfg: RunConfig) -> str | None:
    """Why a run that scores customers is not loaded here (None for a ranking run)."""
    if (reason := products_refusal(files, cfg)) is not None:
        return reason
    if cfg.task == RANKING_TASK:
        return None
    return (
        f"{files.path}: a {cfg.task} run scores customers, not categories; its scores "
        "come from fedmarket.scoring.run_model"
    )


def load_rec_model(
    run_dir: Path, source: str = "federated", key_file: Path | None = None
) -> RecModel:
    """The run's ``source`` recommender. Encrypted prepared data (the training customers'
    targets make the cold-start popularity) opens with ``key_file`` or
    $FEDMARKET_ENCRYPTION_KEY (``prepared_data_fernet``)."""
    files, cfg, data_dir, manifest = run_with_manifest(
        run_dir, source, holds="the window and the vocabulary", refuse=_customer_run
    )
    entry = vocabulary_entry(manifest)
    fernet = prepared_data_fernet(data_dir, key_file, outside=[files.path])
    if source == "federated":
        net, rnd = _federated(files, cfg, entry)
    else:
        net, rnd = _centralised(files, entry), None
    net.eval()
    return RecModel(
        run_dir=files.path,
        source=source,
        config=cfg,
        manifest=manifest,
        window=manifest_window(manifest, data_dir),
        vocabulary=Vocabulary.from_manifest(entry),
        history_length=int(entry["history_length"]),
        task=get_task(RANKING_TASK),
        net=net,
        round=rnd,
        popularity=cold_start_scores(data_dir, manifest, fernet),
    )


def cold_start_scores(
    data_dir: Path, manifest: store.Manifest, fernet: Fernet | None = None
) -> dict[str, np.ndarray]:
    """retailer -> the evaluation's cold-start row for that retailer's partition, and
    ``""`` -> the pooled popularity (see the module docstring)."""
    train = RecSplit.concat(load_rec_partitions(data_dir, "train", fernet))
    entries = manifest["partitions"]
    ids = store.partition_ids(manifest)
    out = {"": _row(train, -1)}  # no training customer in partition -1: the pooled counts
    for pid, entry in zip(ids, entries, strict=True):
        retailer = entry.get("retailer")
        if retailer:  # natural partitions: one retailer each
            out[str(retailer)] = _row(train, pid)
    return out


def _row(train: RecSplit, partition: int) -> np.ndarray:
    """``retailer_popularity``'s row for a test customer of ``partition``."""
    n_items = train.y_categories.shape[1]
    one = RecSplit(
        np.zeros((1, 1, 3), np.float32),
        np.zeros((1, n_items), np.float32),
        np.zeros(1, np.int32),
        np.full(1, partition, np.int32),
    )
    return baselines.retailer_popularity(train, one)[0]


def _federated(files: RunDir, cfg: RunConfig, vocabulary: dict[str, Any]) -> tuple[nn.Module, int]:
    checkpoint = files.latest_checkpoint()
    if checkpoint is None or checkpoint[1] is None:
        raise ConfigError(
            f"{files.path}: no committed round with a global model yet (checkpoints/"
            "latest.json); finish or resume the run first, or --model-source centralised"
        )
    net = build_model(
        cfg.model, 3, task=RANKING_TASK, dp=False, vocabulary=vocabulary, **cfg.model_options()
    )
    _load(net, checkpoint[1], files.checkpoint(checkpoint[0]))
    return net, checkpoint[0]


def _centralised(files: RunDir, vocabulary: dict[str, Any]) -> nn.Module:
    path = files.centralised_model
    if not path.is_file():
        raise ConfigError(
            f"{files.path}: no centralised/model.pt (the run kept no centralised recommender); "
            "use --model-source federated"
        )
    blob = torch.load(path, weights_only=True)
    hparams = {k: v for k, v in blob["hparams"].items() if k != "vocabulary"}
    net = build_model(blob["model"], 3, task=RANKING_TASK, vocabulary=vocabulary, **hparams)
    _load(net, blob["state_dict"], path)
    return net


def _load(net: nn.Module, weights: dict[str, torch.Tensor], path: Path) -> None:
    try:
        net.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if "\n" in str(exc) else str(exc)
        raise ConfigError(
            f"{path}: the weights do not fit the model built from the run's config and its "
            f"prepared data's vocabulary ({first}); was it written by another fedmarket "
            "version, or is data-dir another preparation? Score with the version and data "
            "the run was made with"
        ) from None
