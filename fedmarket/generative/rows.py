"""The generative models as rows of the baselines table (`fedmarket baselines`), on the very
features, training customers and test customers of the classical rows.

* ``ssgan``: the semi-supervised GAN classifier (``fedmarket.generative.ssgan``).
* ``gan-oversampled-<classifier>``: a registered classical classifier fitted after GAN
  minority oversampling (``fedmarket.generative.oversample``); its twin without synthetic
  rows is the classical row of the same name, so the table shows what the GAN adds.
* ``ssgan-dp``, when an epsilon is given: the same classifier with DP-SGD on its
  discriminator (``fedmarket.generative.private``), epsilon and delta in its note and
  metrics. Pooled, centralised DP over the training customers: a reference for what DP
  costs the GAN, not a federated fit.

Inputs are the classical baselines' inputs (``fedmarket.baselines.aggregate_features``: the
signed log1p of the per-customer aggregates). The models are classifiers: for
``purchase-count`` every row is skipped, with a note.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Final

import numpy as np

from fedmarket.baselines import (
    ResultRow,
    aggregate_features,
    evaluate_predictions,
    fit_and_predict,
)
from fedmarket.data.store import SplitArrays
from fedmarket.errors import ConfigError, DataError
from fedmarket.generative.oversample import gan_oversample
from fedmarket.generative.ssgan import GANConfig, SSGANClassifier
from fedmarket.names import BINARY_TASKS, did_you_mean
from fedmarket.privacy.config import PrivacySettings
from fedmarket.tasks import get_task

FAMILY: Final[str] = "generative"
PRIVATE_MODEL: Final[str] = "ssgan-dp"
OVERSAMPLED: Final[tuple[str, ...]] = ("logistic-regression", "gradient-boosting")
GENERATIVE_MODELS: Final[tuple[str, ...]] = (
    "ssgan",
    *(f"gan-oversampled-{name}" for name in OVERSAMPLED),
)


def check_generative_models(models: Sequence[str] | None) -> list[str]:
    """The generative rows asked for (all by default); ConfigError naming the known ones."""
    if models is None:
        return list(GENERATIVE_MODELS)
    for name in models:
        if name not in GENERATIVE_MODELS:
            raise ConfigError(
                f"unknown generative model {name!r}; {did_you_mean(name, GENERATIVE_MODELS)}"
                f"known: {', '.join(GENERATIVE_MODELS)}"
            )
    return list(dict.fromkeys(models))


def _config_words(cfg: GANConfig) -> str:
    return (
        f"{cfg.epochs} epochs, batch {cfg.batch_size}, Adam lr {cfg.lr:g}, MLP width "
        f"{cfg.hidden}, latent {cfg.latent_dim}"
    )


def _ssgan(cfg, seed, x_train, y_train, x_test) -> tuple[np.ndarray, str]:
    model = SSGANClassifier(cfg, seed).fit(x_train, y_train)
    note = (
        "semi-supervised GAN (Salimans et al. 2016): discriminator = 2 classes + generated, "
        f"generator by feature matching; standardised log features; {_config_words(cfg)}"
    )
    return model.predict_proba(x_test)[:, 1], note


def _private_ssgan(cfg, seed, privacy, x_train, y_train, x_test):
    model = SSGANClassifier(cfg, seed, privacy).fit(x_train, y_train)
    note = (
        f"ssgan with DP-SGD on the discriminator (Opacus): epsilon {model.epsilon:.3g}, delta "
        f"{model.delta:.3g} per training customer, clip {privacy.max_grad_norm:g}; the "
        f"generator learns only through it (non-saturating loss, no feature matching); "
        f"{_config_words(cfg)}"
    )
    extra = {"epsilon": float(model.epsilon), "delta": float(model.delta)}
    return model.predict_proba(x_test)[:, 1], note, extra


def _oversampled(task, name, cfg, seed, x_train, y_train, x_test) -> tuple[np.ndarray, str]:
    classifier = name.removeprefix("gan-oversampled-")
    grown = gan_oversample(x_train, y_train, cfg=cfg, seed=seed)
    prediction, notes = fit_and_predict(task, classifier, grown.x, grown.y, x_test, seed)
    note = (
        f"{classifier} after {grown.n_synthetic:,} GAN-generated rows of class "
        f"{grown.minority:g} (a GAN on that class's training rows only, {_config_words(cfg)}) "
        f"brought the classes level; compare with the {classifier} row. {notes}"
    )
    return prediction, note


def run_generative_baselines(
    train: SplitArrays,
    test: SplitArrays,
    *,
    task: str,
    seed: int,
    models: Sequence[str] | None = None,
    cfg: GANConfig | None = None,
    epsilon: float | None = None,
    progress: Callable[[str], None] | None = None,
    on_row: Callable[[ResultRow], None] | None = None,
) -> list[ResultRow]:
    """One row per generative model, fitted on ``train.agg`` and scored on ``test.agg``
    like the classical rows (``fit_seconds``: the whole fit, GAN included); ``epsilon``
    adds ``ssgan-dp`` (delta 1/(10 n))."""
    names = check_generative_models(models)
    privacy = None if epsilon is None else PrivacySettings(target_epsilon=epsilon)
    if privacy is not None:
        names.append(PRIVATE_MODEL)
    cfg = cfg or GANConfig()
    rows: list[ResultRow] = []
    binary = get_task(task).name in BINARY_TASKS
    if binary:
        x_train = aggregate_features(train.agg, where="train.agg")
        x_test = aggregate_features(test.agg, where="test.agg")
        target = get_task(task).targets
        y_train, y_test = target(train).astype(np.float64), target(test).astype(np.float64)
        if np.unique(y_train).size < 2:
            raise DataError(
                f"train.{get_task(task).target} holds a single class; the GAN classifiers "
                "need both classes"
            )
    for i, name in enumerate(names, start=1):
        if progress is not None:
            progress(f"{name} ({i}/{len(names)})")
        if not binary:
            row = ResultRow(name, FAMILY, {}, 0.0, f"skipped: a classifier; task {task} counts")
        else:
            start = time.perf_counter()
            extra: dict[str, float] = {}
            if name == "ssgan":
                prediction, note = _ssgan(cfg, seed, x_train, y_train, x_test)
            elif name == PRIVATE_MODEL:
                prediction, note, extra = _private_ssgan(
                    cfg, seed, privacy, x_train, y_train, x_test
                )
            else:
                prediction, note = _oversampled(task, name, cfg, seed, x_train, y_train, x_test)
            seconds = time.perf_counter() - start
            metrics = evaluate_predictions(task, y_test, prediction) | extra
            row = ResultRow(name, FAMILY, metrics, seconds, note, prediction)
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return rows
