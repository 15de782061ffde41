"""The Opacus wiring, in one place: noise, budget check, Poisson loader, DP optimiser.

``make_private`` is called once per training call (one centralised run, or one federated
round at a client). It restores the accountant history carried in ``AccountantState`` into
a fresh ``PrivacyEngine``, so the epsilon Opacus reports is cumulative over every call.
With a target epsilon the noise is calibrated once, for the whole planned training, and
kept in the state; a call that would take epsilon past the target is refused before the
model is touched.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import opacus
import torch
from opacus import PrivacyEngine
from opacus.grad_sample import GradSampleModule
from opacus.optimizers import DPOptimizer
from opacus.validators import ModuleValidator
from torch import nn
from torch.utils.data import DataLoader, Dataset

from fedmarket.errors import BudgetExhaustedError, PrivacyError
from fedmarket.privacy.accounting import (
    AccountantState,
    calibrate_noise,
    epsilon,
    epsilon_after,
    sample_rate,
    steps_per_epoch,
)
from fedmarket.privacy.config import PrivacySettings
from fedmarket.privacy.factored import FactoredDPOptimizer


@dataclass(frozen=True)
class PrivacyPlan:
    """The numbers one call trains under, fixed before any step."""

    noise_multiplier: float
    sample_rate: float
    steps_per_epoch: int
    delta: float
    calibrated: bool  # noise came from target_epsilon (and is stored in the state)


def plan_privacy(
    settings: PrivacySettings,
    state: AccountantState,
    *,
    n: int,
    batch_size: int,
    total_steps_planned: int,
    steps_now: int,
) -> PrivacyPlan:
    """Noise for this call, and the budget check; raises BudgetExhaustedError before training."""
    if state.accountant != settings.accountant:
        raise PrivacyError(
            f"the carried accountant state uses {state.accountant!r} but the settings ask for "
            f"{settings.accountant!r}; epsilon from different accountants cannot be combined"
        )
    delta = settings.resolve_delta(n)
    q = sample_rate(n, batch_size)
    calibrated = settings.target_epsilon is not None
    if not calibrated:
        noise = float(settings.noise_multiplier)
    elif state.noise_multiplier is not None:
        noise = state.noise_multiplier
    else:
        total = max(total_steps_planned, state.steps + steps_now)
        noise = calibrate_noise(settings.target_epsilon, delta, q, total, settings.accountant)
    if calibrated:
        would = epsilon_after(state, noise, q, steps_now, delta)
        if would > settings.target_epsilon:
            raise BudgetExhaustedError(
                f"privacy budget exhausted: epsilon spent so far {epsilon(state, delta):.4f}, "
                f"{steps_now} more steps would reach {would:.4f}, over the target "
                f"{settings.target_epsilon:g} (delta={delta:g}); stop training this model "
                f"or plan more steps up front so the noise is calibrated for them"
            )
    return PrivacyPlan(noise, q, steps_per_epoch(n, batch_size), delta, calibrated)


class _TensorPairs(Dataset):
    """(X, y) already on the device; DataLoader fetches a whole batch by ``__getitems__``,
    so there is no per-sample Python work or collation."""

    def __init__(self, X: torch.Tensor, y: torch.Tensor) -> None:
        self.X, self.y = X, y

    def __len__(self) -> int:
        return len(self.X)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.X[i], self.y[i]

    def __getitems__(self, index: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        rows = torch.as_tensor(index, dtype=torch.long, device=self.X.device)
        return self.X[rows], self.y[rows]


def _as_batch(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    return batch


@dataclass
class PrivateTraining:
    """What ``make_private`` hands back: train with ``module``, ``optimizer`` and ``loader``."""

    module: GradSampleModule
    optimizer: DPOptimizer
    loader: DataLoader
    plan: PrivacyPlan
    settings: PrivacySettings
    _engine: PrivacyEngine
    _noise_kept: float | None

    @property
    def state(self) -> AccountantState:
        """The carried state plus every step taken so far; pass it into the next call."""
        history = tuple(tuple(e) for e in self._engine.accountant.history)
        return AccountantState(self.settings.accountant, history, self._noise_kept)

    def epsilon(self) -> float:
        return epsilon(self.state, self.plan.delta)

    def step(self, after_noise: Callable[[], None] | None = None) -> None:
        """One DP-SGD update from the per-sample gradients of the last backward pass.

        ``after_noise`` runs on the clipped, noised, averaged gradients (``p.grad``) just
        before the wrapped optimiser updates the weights: the place for data-independent
        terms such as FedProx's proximal gradient. Adding them to the loss instead would
        be lost, since Opacus rebuilds ``p.grad`` from per-sample gradients only. Being
        post-processing, it costs no privacy.
        """
        if after_noise is None:
            self.optimizer.step()
        elif self.optimizer.pre_step():  # clip, noise, scale, count the step
            after_noise()
            self.optimizer.original_optimizer.step()

    def empty_step(self, after_noise: Callable[[], None] | None = None) -> None:
        """A noise-only step for an empty Poisson batch.

        Skipping it would reveal that nobody was sampled, which the accounting does not
        allow for; Opacus clips an empty set of per-sample gradients to zeros and adds noise.
        """
        self.optimizer.zero_grad(set_to_none=True)
        for p in self.optimizer.params:
            p.grad_sample = torch.zeros((0, *p.shape), device=p.device, dtype=p.dtype)
        self.step(after_noise)

    def close(self) -> nn.Module:
        """Remove Opacus' hooks and attributes; returns the plain (caller's) module.

        Opacus' own clean-up leaves the activations a step captured (and the batch size
        read from them) on the submodules; after a step that raised between forward and
        backward they would be mixed into the next call's batch, so they go too.
        """
        plain = self.module.to_standard_module()
        _factored_layers(plain, False)
        for p in plain.parameters():
            if "grad_factors" in p.__dict__:
                del p.grad_factors
        for module in plain.modules():
            for attr in ("activations", "max_batch_len", "_stash"):
                if attr in module.__dict__:
                    if attr == "_stash":
                        module._stash = None
                    else:
                        delattr(module, attr)
        return plain


def check_dp_model(model: nn.Module) -> None:
    """PrivacyError listing the layers Opacus cannot take per-sample gradients of."""
    errors = ModuleValidator.validate(model, strict=False)
    if errors:
        detail = "; ".join(str(e) for e in errors[:5])
        raise PrivacyError(
            f"model is not DP-compatible ({detail}); build it with dp=True "
            f"(e.g. build_model(name, n_features, dp=True)), which uses Opacus' DPLSTM"
        )


def make_private(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: tuple[torch.Tensor, torch.Tensor],
    settings: PrivacySettings,
    state: AccountantState | None,
    *,
    batch_size: int,
    generator: torch.Generator,
    noise_generator: torch.Generator | None = None,
    total_steps_planned: int,
    steps_now: int,
) -> PrivateTraining:
    """Wrap model, optimiser and data for DP-SGD, continuing the accounting in ``state``.

    ``data`` is (X, y) on the training device; ``generator`` (CPU) drives Poisson sampling
    or shuffling and ``noise_generator`` (on the model's device) the Gaussian noise.
    ``total_steps_planned`` is every step the budget must cover (all calls); ``steps_now``
    the steps this call may take. Raises BudgetExhaustedError before touching the model.
    """
    state = state if state is not None else AccountantState(settings.accountant)
    plan = plan_privacy(
        settings,
        state,
        n=len(data[0]),
        batch_size=batch_size,
        total_steps_planned=total_steps_planned,
        steps_now=steps_now,
    )
    check_dp_model(model)
    if settings.secure_mode:
        noise_generator = None  # Opacus refuses a seeded generator in secure mode
    engine = _new_engine(settings)
    if state.history:
        engine.accountant.load_state_dict(
            {"history": [tuple(e) for e in state.history], "mechanism": state.accountant}
        )
    base = DataLoader(
        _TensorPairs(*data),
        batch_size=batch_size,
        shuffle=not settings.poisson_sampling,
        generator=generator,
        collate_fn=_as_batch,
    )
    module, dp_optimizer, loader = engine.make_private(
        module=model,
        optimizer=optimizer,
        data_loader=base,
        noise_multiplier=plan.noise_multiplier,
        max_grad_norm=settings.max_grad_norm,
        poisson_sampling=settings.poisson_sampling,
        noise_generator=noise_generator,
    )
    # layers that can leave per-sample gradients as factors do, and the optimiser clips them
    # without building them (fedmarket/privacy/factored.py); the same clipped sum
    dp_optimizer = FactoredDPOptimizer.from_dp_optimizer(dp_optimizer)
    _factored_layers(module, True)
    if settings.poisson_sampling:
        _pin_sampling(loader, dp_optimizer, engine, plan, n=len(data[0]))
    kept = plan.noise_multiplier if plan.calibrated else state.noise_multiplier
    return PrivateTraining(module, dp_optimizer, loader, plan, settings, engine, kept)


def _factored_layers(model: nn.Module, on: bool) -> None:
    """Switch every layer that offers factored per-sample gradients (``BatchedDPLSTM``'s
    ``factored_grad_sample``) on or off; only ``FactoredDPOptimizer`` reads the factors."""
    for layer in model.modules():
        if isinstance(getattr(layer, "factored_grad_sample", None), bool):
            layer.factored_grad_sample = on


def _pin_sampling(
    loader: DataLoader, optimizer: DPOptimizer, engine: PrivacyEngine, plan: PrivacyPlan, n: int
) -> None:
    """Make Opacus' Poisson loader, optimiser and accountant all use the planned q.

    Opacus samples with q = 1 / ceil(n / B) but its sampler takes int(1 / q) steps, which
    floats round down for some n (int(1 / (1 / 93)) == 92), and it then derives the
    accounted rate and expected batch size from that shorter loader (1 / 92). Here the
    epoch takes exactly ceil(n / B) steps and the accountant records the q actually used,
    so the plan, the budget check and the reported epsilon agree. For all other n these
    are the values Opacus picks anyway.
    """
    loader.batch_sampler.steps = plan.steps_per_epoch
    if loader.sample_rate != plan.sample_rate:
        raise PrivacyError(
            f"Opacus samples at q={loader.sample_rate}, fedmarket planned q={plan.sample_rate}; "
            f"the installed opacus ({opacus.__version__}) behaves unlike 1.6, which this targets"
        )
    optimizer.expected_batch_size = int(n * plan.sample_rate)
    optimizer.attach_step_hook(
        engine.accountant.get_optimizer_hook_fn(sample_rate=plan.sample_rate)
    )


def _new_engine(settings: PrivacySettings) -> PrivacyEngine:
    with warnings.catch_warnings():
        # Opacus warns on every engine that secure RNG is off; PrivacySettings documents it.
        warnings.filterwarnings("ignore", message="Secure RNG turned off")
        try:
            return PrivacyEngine(accountant=settings.accountant, secure_mode=settings.secure_mode)
        except ImportError as exc:
            raise PrivacyError(
                "privacy.secure_mode needs the torchcsprng package, which is not installed; "
                "install it or set secure_mode to false (then noise is seeded, not secure)"
            ) from exc
