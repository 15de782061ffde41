"""The one training loop: centralised training and every federated client call ``fit``.

Two paths share everything but the inner epoch. Without DP, batches are slices of a
permutation over tensors already on the device (no DataLoader, no per-sample Python).
With DP, ``fedmarket.privacy.make_private`` supplies the Opacus module, optimiser and
Poisson loader, and the accountant history comes in and goes out as ``AccountantState``
so epsilon accumulates over calls (rounds). FedProx's proximal term is applied to the
gradients in both paths (after clipping and noise under DP).

Randomness: every stream (validation split, shuffling or Poisson sampling, DP noise,
dropout) is derived from ``TrainConfig.seed`` with ``numpy.random.SeedSequence``. Under
DP the stream also depends on the steps already taken, so successive rounds at a client
never reuse noise even with one seed. Dropout draws from torch's default generator, which
no API lets us replace; it is seeded inside ``torch.random.fork_rng`` so the caller's
global RNG state is restored afterwards.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from fedmarket.checks import integer, is_int, number
from fedmarket.data.store import SplitArrays
from fedmarket.errors import ConfigError, DataError
from fedmarket.privacy.accounting import AccountantState, steps_per_epoch
from fedmarket.privacy.config import PrivacySettings
from fedmarket.tasks import Task

if TYPE_CHECKING:  # the Opacus wiring is imported by DP training only (see fit)
    from fedmarket.privacy.engine import PrivateTraining

LR_SCHEDULES: tuple[str, ...] = ("cosine", "step", "none")
_STREAM_VAL, _STREAM_TRAIN = 0, 1


@dataclass(frozen=True)
class TrainConfig:
    """How to train. ``lr_schedule`` steps once per epoch: "cosine" anneals to 0 over
    ``epochs``, "step" divides the rate by 10 every ``max(1, epochs // 3)`` epochs.
    ``patience``: stop after this many epochs without a lower validation loss and keep
    the best weights (None: train all epochs, keep the last). ``val_fraction`` of the
    training customers is held out for validation unless ``fit`` is given ``val``."""

    epochs: int = 10
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_schedule: str = "none"
    patience: int | None = None
    val_fraction: float = 0.1
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        integer("training.epochs", self.epochs, at_least=1)
        integer("training.batch_size", self.batch_size, at_least=1)
        integer("training.seed", self.seed, at_least=0)
        if self.patience is not None:
            integer("training.patience", self.patience, at_least=1)
        number("training.lr", self.lr, above=0.0)
        number("training.weight_decay", self.weight_decay, at_least=0.0)
        number("training.val_fraction", self.val_fraction, at_least=0.0, below=1.0)
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(
                f"training.lr_schedule {self.lr_schedule!r} is unknown; "
                f"use one of {', '.join(LR_SCHEDULES)}"
            )
        if self.device != "auto":
            try:
                torch.device(self.device)
            except (RuntimeError, TypeError) as exc:
                raise ConfigError(
                    f"training.device {self.device!r} is not a torch device "
                    f"(auto, cpu, cuda, cuda:1)"
                ) from exc


def resolve_device(device: str) -> torch.device:
    """ "auto" -> cuda when available, else cpu; ConfigError for a cuda that is not there."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"training.device={device!r} but no CUDA device is available; use auto or cpu"
        )
    return resolved


@dataclass(frozen=True)
class FitResult:
    """What one ``fit`` call produced. ``state_dict`` (CPU tensors, plain layout without
    Opacus' ``_module.`` prefix) holds the weights of ``best_epoch``: the lowest validation
    loss with early stopping, the last epoch otherwise. Pass ``privacy_state`` into the
    next call to keep accumulating epsilon."""

    state_dict: dict[str, torch.Tensor]
    history: list[dict[str, Any]]
    best_epoch: int
    epochs_run: int
    steps: int
    samples_seen: int
    n_train: int
    epsilon: float | None = None
    delta: float | None = None
    noise_multiplier: float | None = None
    privacy_state: AccountantState | None = None
    wall_s: float = 0.0


def fit(
    model: nn.Module,
    train: SplitArrays,
    task: Task,
    cfg: TrainConfig,
    *,
    val: SplitArrays | None = None,
    privacy: PrivacySettings | None = None,
    privacy_state: AccountantState | None = None,
    planned_epochs: int | None = None,
    proximal_mu: float = 0.0,
    proximal_anchor: Mapping[str, torch.Tensor] | None = None,
    progress: Callable[..., None] | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> FitResult:
    """Train ``model`` in place and return its best (or last) weights and the history.

    Under DP the model must be DP-compatible (``build_model(..., dp=True)``: fit does not
    convert it, because it cannot rebuild a model it only knows as an ``nn.Module``).
    ``planned_epochs`` is the total epochs the privacy budget must cover over every call
    (federated: rounds x local epochs); None means this call is the whole plan. A call
    that would exceed ``privacy.target_epsilon`` raises BudgetExhaustedError before the
    model is touched. The history's losses and metrics are not privatised; only the
    weights carry the DP guarantee, and selecting the best epoch on validation data is
    outside it. ``proximal_mu`` > 0 adds FedProx's ``(mu / 2) ||w - w_start||^2`` to the
    objective, ``w_start`` being the weights ``model`` holds on entry (the global model),
    or ``proximal_anchor`` where given (Ditto: a personal model pulled toward the global one).
    ``progress(1, description=...)`` and ``on_epoch(history_row)`` are called after every
    epoch (a bar; a log line with the losses and epsilon so far).
    """
    started = time.perf_counter()
    _check_call(cfg, val, privacy, privacy_state, planned_epochs, proximal_mu)
    device = resolve_device(cfg.device)
    train, val = _hold_out(train, val, cfg)
    data = _tensors(train, task, device)
    val_t = _tensors(val, task, device) if val is not None else None
    spe = steps_per_epoch(len(train), cfg.batch_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    done = privacy_state.steps if privacy_state is not None else 0
    seeds = np.random.SeedSequence([cfg.seed, _STREAM_TRAIN, done]).generate_state(3, np.uint64)
    sampler = torch.Generator().manual_seed(int(seeds[0]))
    priv = None
    if privacy is not None:  # before model.to: a refused budget leaves the model as it was
        from fedmarket.privacy.engine import make_private  # Opacus: DP training only

        priv = make_private(
            model, optimizer, data, privacy, privacy_state,
            batch_size=cfg.batch_size, generator=sampler,
            noise_generator=torch.Generator(device=device).manual_seed(int(seeds[1])),
            total_steps_planned=(planned_epochs or cfg.epochs) * spe, steps_now=cfg.epochs * spe,
        )  # fmt: skip
    try:
        model.to(device)
        prox = proximal_gradient(model, proximal_mu, proximal_anchor)
        with _scoped_torch_rng(int(seeds[2]), device):
            loop = _train_loop(
                model, optimizer, priv, data, val_t, task, cfg, sampler, prox, (progress, on_epoch)
            )
    finally:
        if priv is not None:
            priv.close()
    history, (best_epoch, best_state), steps, seen = loop
    model.load_state_dict(best_state)
    return FitResult(
        state_dict=best_state,
        history=history,
        best_epoch=best_epoch,
        epochs_run=len(history),
        steps=steps,
        samples_seen=seen,
        n_train=len(train),
        epsilon=history[-1]["epsilon"],
        delta=priv.plan.delta if priv is not None else None,
        noise_multiplier=priv.plan.noise_multiplier if priv is not None else None,
        privacy_state=priv.state if priv is not None else None,
        wall_s=time.perf_counter() - started,
    )


def _check_call(
    cfg: TrainConfig,
    val: SplitArrays | None,
    privacy: PrivacySettings | None,
    privacy_state: AccountantState | None,
    planned_epochs: int | None,
    proximal_mu: float,
) -> None:
    number("training.proximal_mu", proximal_mu, at_least=0.0)
    if privacy is None and privacy_state is not None:
        raise ConfigError("fit: privacy_state given without privacy settings; pass both or neither")
    if cfg.patience is not None and val is None and cfg.val_fraction == 0:
        raise ConfigError("training.patience needs validation data: give val or a val_fraction > 0")
    if planned_epochs is not None and (not is_int(planned_epochs) or planned_epochs < cfg.epochs):
        raise ConfigError(
            f"fit: planned_epochs={planned_epochs!r} must be an integer >= this call's "
            f"epochs ({cfg.epochs}): it counts the epochs of every call the budget covers"
        )


def _train_loop(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    priv: PrivateTraining | None,
    data: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor] | None,
    task: Task,
    cfg: TrainConfig,
    sampler: torch.Generator,
    prox: Callable[[], None] | None,
    report: tuple[Callable[..., None] | None, Callable[[dict[str, Any]], None] | None],
) -> tuple[list[dict[str, Any]], tuple[int, dict[str, torch.Tensor]], int, int]:
    """Epochs with early stopping; returns history, (best epoch, its weights), steps, samples."""
    scheduler, loss_fn = _scheduler(optimizer, cfg), task.loss()
    history: list[dict[str, Any]] = []
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None
    steps = seen = 0
    progress, on_epoch = report
    for epoch in range(1, cfg.epochs + 1):
        lr = optimizer.param_groups[0]["lr"]
        model.train()
        if priv is None:
            loss_sum, n_seen, n_steps = _epoch_fast(
                model, *data, loss_fn, optimizer, cfg.batch_size, sampler, prox
            )
        else:
            loss_sum, n_seen, n_steps = _epoch_dp(priv, loss_fn, prox)
        steps, seen = steps + n_steps, seen + n_seen
        scheduler.step()
        row = {"epoch": epoch, "train_loss": loss_sum / max(n_seen, 1), "lr": lr}
        row["epsilon"] = priv.epsilon() if priv is not None else None
        row.update(_validate(model, val, task, cfg.batch_size))
        history.append(row)
        if on_epoch is not None:
            on_epoch(dict(row))
        if progress is not None:
            progress(1, description=f"epoch {epoch}/{cfg.epochs}")
        if cfg.patience is None:
            continue
        if best is None or row["val_loss"] < best[0]:
            best = (row["val_loss"], epoch, _cpu_state(model))
        elif epoch - best[1] >= cfg.patience:
            break
    if best is None:  # no early stopping: keep the last weights
        return history, (len(history), _cpu_state(model)), steps, seen
    return history, (best[1], best[2]), steps, seen


def _epoch_fast(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch_size: int,
    generator: torch.Generator,
    prox: Callable[[], None] | None,
) -> tuple[float, int, int]:
    order = torch.randperm(len(X), generator=generator).to(X.device)
    total = torch.zeros((), device=X.device)
    steps = 0
    for start in range(0, len(X), batch_size):
        rows = order[start : start + batch_size]
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(X[rows]), y[rows])
        loss.backward()
        if prox is not None:
            prox()
        optimizer.step()
        total += loss.detach() * len(rows)  # stays on the device: no sync per step
        steps += 1
    return float(total), len(X), steps


def _epoch_dp(
    priv: PrivateTraining, loss_fn: nn.Module, prox: Callable[[], None] | None
) -> tuple[float, int, int]:
    from fedmarket.privacy.epochs import private_epochs

    return private_epochs(priv, 1, lambda xb, yb: loss_fn(priv.module(xb), yb), after_noise=prox)


def proximal_gradient(
    model: nn.Module, mu: float, anchor: Mapping[str, torch.Tensor] | None = None
) -> Callable[[], None] | None:
    """A hook adding the gradient of (mu / 2) ||w - w_0||^2, i.e. mu (w - w_0), to
    ``model``'s gradients; ``w_0`` is ``anchor`` (a state dict: Ditto's global model) or the
    weights ``model`` holds now (FedProx's start of the round). None when ``mu`` is 0.

    Applied to the gradients rather than the loss so that under DP it comes after
    clipping and noise (it does not depend on any customer's data).
    """
    if mu == 0:
        return None
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if anchor is None:
        pairs = [(p, p.detach().clone()) for _, p in named]
    else:
        missing = [n for n, _ in named if n not in anchor]
        if missing:
            raise ConfigError(
                f"proximal anchor lacks parameter(s) {', '.join(missing[:3])} of the model; "
                "pass the state dict of the same architecture"
            )
        pairs = [(p, anchor[n].detach().to(p.device, p.dtype).clone()) for n, p in named]

    def add_proximal_gradient() -> None:
        with torch.no_grad():
            for p, start in pairs:
                if p.grad is not None:
                    p.grad.add_(p - start, alpha=mu)

    return add_proximal_gradient


def _validate(
    model: nn.Module, val: tuple[torch.Tensor, torch.Tensor] | None, task: Task, batch_size: int
) -> dict[str, float | None]:
    key = f"val_{task.primary_metric[0]}"
    if val is None:
        return {"val_loss": None, key: None}
    X, y = val
    score = _scores(model, X, max(batch_size, 1024), X.device)
    loss = float(task.loss("mean")(score, y))
    prediction = task.prediction(score).cpu().numpy()
    metric = math.nan
    if np.isfinite(prediction).all():  # a diverged model scores NaN, not a crash mid-training
        metric = task.metrics(y.cpu().numpy(), prediction)[task.primary_metric[0]]
    return {"val_loss": loss if math.isfinite(loss) else math.inf, key: metric}


def validation_customers(train: SplitArrays, cfg: TrainConfig) -> SplitArrays | None:
    """The customers ``fit(train, cfg)`` holds out as validation (None without
    ``val_fraction``): the same seed and data give the same customers, so a post-hoc step
    (fedmarket.calibration) can be fitted on them and on nothing the model trained on."""
    return _hold_out(train, None, cfg)[1]


def _hold_out(
    train: SplitArrays, val: SplitArrays | None, cfg: TrainConfig
) -> tuple[SplitArrays, SplitArrays | None]:
    """Hold out ``val_fraction`` of the customers (same split for the same seed and data)."""
    if len(train) == 0:
        raise DataError("fit: the training split is empty; check the partition or filters")
    if val is not None or cfg.val_fraction == 0:
        return train, val
    n_val = max(1, round(cfg.val_fraction * len(train)))
    if n_val >= len(train):
        raise DataError(
            f"fit: val_fraction={cfg.val_fraction} of {len(train)} customers "
            f"leaves none to train on"
        )
    order = np.random.default_rng(np.random.SeedSequence([cfg.seed, _STREAM_VAL])).permutation(
        len(train)
    )
    return train.take(np.sort(order[n_val:])), train.take(np.sort(order[:n_val]))


def _tensors(
    split: SplitArrays, task: Task, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    X = np.asarray(split.X, dtype=np.float32)
    if X.ndim != 3:
        raise DataError(f"X: expected [customers, time steps, features], got shape {X.shape}")
    if not np.isfinite(X).all():
        row = int(np.flatnonzero(~np.isfinite(X).all(axis=(1, 2)))[0])
        raise DataError(
            f"X: non-finite feature values (first at row {row}); re-run `fedmarket data prepare`"
        )
    y = task.targets(split)
    # torch wants writable memory; a split read from a read-only memmap is copied once here
    X, y = (a if a.flags.writeable else a.copy() for a in (np.ascontiguousarray(X), y))
    return torch.from_numpy(X).to(device), torch.from_numpy(y).to(device)


def _scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig
) -> torch.optim.lr_scheduler.LRScheduler:
    sched = torch.optim.lr_scheduler
    if cfg.lr_schedule == "cosine":
        return sched.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    if cfg.lr_schedule == "step":
        return sched.StepLR(optimizer, step_size=max(1, cfg.epochs // 3), gamma=0.1)
    return sched.ConstantLR(optimizer, factor=1.0, total_iters=0)


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy in the plain layout (Opacus' wrapper prefix removed)."""
    return {
        k.removeprefix("_module."): v.detach().to("cpu", copy=True)
        for k, v in model.state_dict().items()
    }


@contextmanager
def _scoped_torch_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Seed the default generator of ``device`` (dropout) and restore it afterwards."""
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        (torch.cuda.default_generators[cuda[0]] if cuda else torch.default_generator).manual_seed(
            seed
        )
        yield


def _scores(
    model: nn.Module, X: np.ndarray | torch.Tensor, batch_size: int, device: torch.device
) -> torch.Tensor:
    """Raw scores in eval mode and without gradients; the model's mode is restored."""
    was_training = model.training
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(X), batch_size):
            chunk = X[start : start + batch_size]
            if not isinstance(chunk, torch.Tensor):
                chunk = torch.from_numpy(np.ascontiguousarray(chunk, dtype=np.float32))
            out.append(model(chunk.to(device)))
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, device=device)


def predict(
    model: nn.Module, X: np.ndarray, task: Task, *, batch_size: int = 4096, device: str = "auto"
) -> np.ndarray:
    """Probabilities (purchase) or expected counts (purchase-count), float64, one per row.

    ``model`` is moved to ``device`` and evaluated in eval mode (its mode is restored)."""
    if batch_size < 1:
        raise ConfigError(f"predict: batch_size must be >= 1, got {batch_size}")
    dev = resolve_device(device)
    model.to(dev)
    return task.prediction(_scores(model, X, batch_size, dev)).cpu().numpy().astype(np.float64)


def evaluate(
    model: nn.Module,
    split: SplitArrays,
    task: Task,
    *,
    batch_size: int = 4096,
    device: str = "auto",
) -> dict[str, float]:
    """``task.metrics`` on ``split`` plus ``loss``, the mean training loss of the task."""
    score, y = _scored(model, split, task, batch_size, device)
    metrics = task.metrics(y.numpy(), task.prediction(score).numpy().astype(np.float64))
    return {**metrics, "loss": float(task.loss("mean")(score, y))}


def per_example_loss(
    model: nn.Module,
    split: SplitArrays,
    task: Task,
    *,
    batch_size: int = 4096,
    device: str = "auto",
) -> np.ndarray:
    """The task's training loss of each customer in ``split`` (float64), as the privacy
    audit's membership attack reads it."""
    score, y = _scored(model, split, task, batch_size, device)
    return task.loss("none")(score, y).numpy().astype(np.float64)


def _scored(
    model: nn.Module, split: SplitArrays, task: Task, batch_size: int, device: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """(raw scores on the CPU, targets) of ``split``: the model moves to ``device``, is
    evaluated in eval mode without gradients and gets its mode back."""
    dev = resolve_device(device)
    X, y = _tensors(split, task, torch.device("cpu"))
    model.to(dev)
    return _scores(model, X, batch_size, dev).cpu(), y
