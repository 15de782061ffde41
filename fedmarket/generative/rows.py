"""The generative models as rows of the baselines table (`fedmarket baselines`), on the very
features, training customers and test customers of the classical rows.

* ``ssgan``: the semi-supervised GAN classifier (``fedmarket.generative.ssgan``) on the
  tabular aggregates.
* ``ssgan-seq``: the same classifier on the customer's event-feature sequence (the prepared
  ``X``, T steps x F features on the prepared data's normalised scale, flattened step-major)
  next to the same aggregates: one implementation, a wider input.
* ``gan-oversampled-<classifier>``: a registered classical classifier fitted after GAN
  minority oversampling (``fedmarket.generative.oversample``); its twin without synthetic
  rows is the classical row of the same name, so the table shows what the GAN adds.
* ``ssgan-dp`` / ``ssgan-seq-dp``, when an epsilon is given: the DP twin of each of the
  two chosen, with DP-SGD on its discriminator (``fedmarket.generative.private``), epsilon
  and delta in its note and metrics. Pooled, centralised DP over the training customers: a
  reference for what DP costs the GAN, not a federated fit.

The tabular input is the classical baselines' (``fedmarket.baselines.aggregate_features``:
the signed log1p of the per-customer aggregates); every GAN standardises its columns with
the training customers' mean and std. The models are classifiers: for
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
from fedmarket.generative.synthetic_table import flatten
from fedmarket.names import BINARY_TASKS, did_you_mean
from fedmarket.privacy.config import PrivacySettings
from fedmarket.tasks import get_task

FAMILY: Final[str] = "generative"
SEQUENCE_INPUT: Final[str] = "ssgan-seq"
# each semi-supervised GAN and its DP twin (fitted when an epsilon is given)
PRIVATE_TWINS: Final[dict[str, str]] = {"ssgan": "ssgan-dp", SEQUENCE_INPUT: "ssgan-seq-dp"}
PRIVATE_MODEL: Final[str] = PRIVATE_TWINS["ssgan"]
OVERSAMPLED: Final[tuple[str, ...]] = ("logistic-regression", "gradient-boosting")
GENERATIVE_MODELS: Final[tuple[str, ...]] = (
    *PRIVATE_TWINS,
    *(f"gan-oversampled-{name}" for name in OVERSAMPLED),
)


def check_generative_models(models: Sequence[str] | str | None) -> list[str]:
    """The generative rows asked for (all by default; a list, or the CLI's comma-separated
    text), without repeats; ConfigError naming the known ones."""
    if models is None:
        return list(GENERATIVE_MODELS)
    if isinstance(models, str):
        models = models.split(",")
    names = [m.strip() for m in models if m.strip()]
    for name in names:
        if name in PRIVATE_TWINS.values():
            public = next(k for k, v in PRIVATE_TWINS.items() if v == name)
            raise ConfigError(
                f"generative model {name!r} is not chosen by name: it is fitted next to "
                f"{public!r} when an epsilon is given (--gan-epsilon); name {public!r} and give one"
            )
        if name not in GENERATIVE_MODELS:
            raise ConfigError(
                f"unknown generative model {name!r}; {did_you_mean(name, GENERATIVE_MODELS)}"
                f"known: {', '.join(GENERATIVE_MODELS)}"
            )
    return list(dict.fromkeys(names))


def sequence_features(split: SplitArrays, *, where: str) -> np.ndarray:
    """The ``ssgan-seq`` input: the flattened sequence ``X`` (already on the prepared data's
    normalised scale) followed by the signed-log aggregates, one row per customer."""
    seq = flatten(split.X)
    if not np.isfinite(seq).all():
        raise DataError(f"{where}.X holds NaN or infinite values; rebuild the features")
    return np.concatenate([seq, aggregate_features(split.agg, where=f"{where}.agg")], axis=1)


def _config_words(cfg: GANConfig) -> str:
    return (
        f"{cfg.epochs} epochs, batch {cfg.batch_size}, Adam lr {cfg.lr:g}, MLP width "
        f"{cfg.hidden}, latent {cfg.latent_dim}"
    )


def _input_words(x: np.ndarray, sequence: bool) -> str:
    if sequence:
        return f"{x.shape[1]} inputs: the flattened event-feature sequence and the log aggregates"
    return "standardised log features"


def _ssgan(cfg, seed, x_train, y_train, x_test, sequence) -> tuple[np.ndarray, str]:
    model = SSGANClassifier(cfg, seed).fit(x_train, y_train)
    note = (
        "semi-supervised GAN (Salimans et al. 2016): discriminator = 2 classes + generated, "
        f"generator by feature matching; {_input_words(x_train, sequence)}; "
        f"{_config_words(cfg)}"
    )
    return model.predict_proba(x_test)[:, 1], note


def _private_ssgan(cfg, seed, privacy, x_train, y_train, x_test, sequence):
    model = SSGANClassifier(cfg, seed, privacy).fit(x_train, y_train)
    public = SEQUENCE_INPUT if sequence else "ssgan"
    note = (
        f"{public} with DP-SGD on the discriminator (Opacus): epsilon {model.epsilon:.3g}, delta "
        f"{model.delta:.3g} per training customer, clip {privacy.max_grad_norm:g}; the "
        f"generator learns only through it (non-saturating loss, no feature matching); "
        f"{_input_words(x_train, sequence)}; {_config_words(cfg)}"
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
    models: Sequence[str] | str | None = None,
    cfg: GANConfig | None = None,
    epsilon: float | None = None,
    progress: Callable[[str], None] | None = None,
    on_row: Callable[[ResultRow], None] | None = None,
) -> list[ResultRow]:
    """One row per generative model, fitted on the training customers and scored on the test
    customers like the classical rows (``fit_seconds``: the whole fit, GAN included);
    ``epsilon`` adds the DP twin of each semi-supervised GAN chosen (delta 1/(10 n))."""
    names = check_generative_models(models)
    privacy = None if epsilon is None else PrivacySettings(target_epsilon=epsilon)
    if privacy is not None:
        names += [PRIVATE_TWINS[name] for name in names if name in PRIVATE_TWINS]
    cfg = cfg or GANConfig()
    rows: list[ResultRow] = []
    binary = get_task(task).name in BINARY_TASKS
    inputs = _Inputs(train, test, task) if binary else None
    for i, name in enumerate(names, start=1):
        if progress is not None:
            progress(f"{name} ({i}/{len(names)})")
        if inputs is None:
            row = ResultRow(name, FAMILY, {}, 0.0, f"skipped: a classifier; task {task} counts")
        else:
            row = _fit_row(name, inputs, task, cfg, seed, privacy)
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return rows


class _Inputs:
    """The labels and both inputs of a 0/1 task; the sequence input is built only when a
    ``ssgan-seq`` row asks for it."""

    def __init__(self, train: SplitArrays, test: SplitArrays, task: str) -> None:
        self.train, self.test = train, test
        self.x_train = aggregate_features(train.agg, where="train.agg")
        self.x_test = aggregate_features(test.agg, where="test.agg")
        spec = get_task(task)
        self.y_train = spec.targets(train).astype(np.float64)
        self.y_test = spec.targets(test).astype(np.float64)
        if np.unique(self.y_train).size < 2:
            raise DataError(
                f"train.{spec.target} holds a single class; the GAN classifiers need both classes"
            )
        self._seq: tuple[np.ndarray, np.ndarray] | None = None

    def sequence(self) -> tuple[np.ndarray, np.ndarray]:
        if self._seq is None:
            self._seq = (
                sequence_features(self.train, where="train"),
                sequence_features(self.test, where="test"),
            )
        return self._seq


def _fit_row(name, inputs: _Inputs, task, cfg, seed, privacy) -> ResultRow:
    start = time.perf_counter()
    extra: dict[str, float] = {}
    sequence = name in (SEQUENCE_INPUT, PRIVATE_TWINS[SEQUENCE_INPUT])
    x_train, x_test = inputs.sequence() if sequence else (inputs.x_train, inputs.x_test)
    y_train = inputs.y_train
    if name in PRIVATE_TWINS:
        prediction, note = _ssgan(cfg, seed, x_train, y_train, x_test, sequence)
    elif name in PRIVATE_TWINS.values():
        prediction, note, extra = _private_ssgan(
            cfg, seed, privacy, x_train, y_train, x_test, sequence
        )
    else:
        prediction, note = _oversampled(task, name, cfg, seed, x_train, y_train, x_test)
    seconds = time.perf_counter() - start
    metrics = evaluate_predictions(task, inputs.y_test, prediction) | extra
    return ResultRow(name, FAMILY, metrics, seconds, note, prediction)
