"""The DP generator trained federatedly: every retailer runs DP-SGD on its own customers,
the server averages the models (FedAvg, weighted by customers), for ``rounds`` rounds.

Privacy, precisely: the unit is the customer. Each retailer's updates are DP-SGD on its
own training customers, with its own accountant (``fedmarket.privacy``: the project's RDP
accounting over Opacus, carried across rounds as ``AccountantState``, noise calibrated once
for all its planned steps, a round that would pass its target refused). A retailer's
customers influence the shared model only through its noised updates, so its epsilon
bounds what the averaged generator, and every synthetic customer sampled from it
(post-processing), reveals about any one of them. One customer-level delta is used for
every retailer: ``1 / (10 N)`` over all N training customers, as the propensity runs use
(``RunConfig.client_delta``).

Why an in-process loop and not the Flower simulation: the ClientApp trains the propensity
models (``fedmarket.training``'s loop, a task's loss and metrics, checkpoints and a run
directory per round); the generator's loss (an ELBO over features and label), its sampling
and its accountant fit none of that path, and Ray's start-up would dwarf these few rounds.
The arithmetic is FedAvg's, and nothing but weights leaves a retailer's function.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch

from fedmarket.errors import DataError
from fedmarket.generative.dpvae import ConditionalVAE, GeneratorConfig
from fedmarket.generative.ssgan import seeded_init
from fedmarket.privacy.accounting import AccountantState, epsilon, steps_per_epoch
from fedmarket.privacy.config import PrivacySettings, default_delta
from fedmarket.privacy.engine import make_private
from fedmarket.privacy.epochs import private_epochs


@dataclass(frozen=True)
class RetailerRows:
    """One retailer's training customers: flattened features [n, D] and 0/1 labels [n]."""

    name: str
    x: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        x, y = np.asarray(self.x), np.asarray(self.y)
        if x.ndim != 2 or len(x) < 2 or y.shape != (len(x),):
            raise DataError(
                f"retailer {self.name}: expected features [customers, D] and one label per "
                f"customer, got {x.shape} and {y.shape}"
            )
        if not np.isfinite(x).all() or not np.isin(y, (0.0, 1.0)).all():
            raise DataError(f"retailer {self.name}: features must be finite and labels 0/1")


@dataclass(frozen=True)
class RetailerPrivacy:
    """What one retailer spent: epsilon at ``delta`` over ``steps`` DP-SGD steps."""

    name: str
    n: int
    epsilon: float
    delta: float
    noise_multiplier: float
    sample_rate: float
    steps: int


@dataclass(frozen=True)
class FederatedGenerator:
    """The averaged generator and each retailer's privacy spend."""

    model: ConditionalVAE
    cfg: GeneratorConfig
    target_epsilon: float
    retailers: tuple[RetailerPrivacy, ...]

    @property
    def delta(self) -> float:
        return self.retailers[0].delta

    def sample(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` synthetic customers (features float64 [n, D], labels 0.0/1.0 [n])."""
        x, y = self.model.sample(n, torch.Generator().manual_seed(seed))
        return x.double().numpy(), y.double().numpy()


def train_federated_generator(
    retailers: Sequence[RetailerRows],
    cfg: GeneratorConfig,
    *,
    target_epsilon: float,
    seed: int,
    advance: Callable[[], None] | None = None,
) -> FederatedGenerator:
    """FedAvg of per-retailer DP-SGD over ``cfg.rounds`` rounds; ``advance`` after each round.

    Raises ConfigError for a target epsilon that is not positive, PrivacyError when it is
    too small to reach over the planned steps (before any training).
    """
    if not retailers:
        raise DataError("no retailers to train the generator on")
    widths = {r.x.shape[1] for r in retailers}
    if len(widths) != 1:
        raise DataError(f"retailers' feature widths differ ({sorted(widths)}); one layout only")
    delta = default_delta(sum(len(r.x) for r in retailers))
    settings = PrivacySettings(
        target_epsilon=target_epsilon, max_grad_norm=cfg.max_grad_norm, delta=delta
    )
    model = ConditionalVAE(widths.pop(), cfg)
    seeded_init(model, torch.Generator().manual_seed(seed))
    data = [
        (torch.as_tensor(r.x, dtype=torch.float32), torch.as_tensor(r.y, dtype=torch.float32))
        for r in retailers
    ]
    states: list[AccountantState | None] = [None] * len(retailers)
    weights = np.array([len(r.x) for r in retailers], dtype=np.float64)
    weights /= weights.sum()
    for rnd in range(cfg.rounds):
        updates = []
        for k, rows in enumerate(data):
            sub = np.random.SeedSequence([seed, rnd, k]).generate_state(2)
            state_dict, states[k] = local_round(
                model, rows, cfg, settings, states[k], seeds=(int(sub[0]), int(sub[1]))
            )
            updates.append(state_dict)
        model.load_state_dict(
            {
                key: sum(w * u[key] for w, u in zip(weights, updates, strict=True))
                for key in updates[0]
            }
        )
        if advance is not None:
            advance()
    spent = []
    for r, state in zip(retailers, cast(list[AccountantState], states), strict=True):
        n = len(r.x)
        spent.append(
            RetailerPrivacy(
                r.name, n, epsilon(state, delta), delta, float(state.noise_multiplier or 0.0),
                1.0 / steps_per_epoch(n, cfg.batch_size), state.steps,
            )
        )  # fmt: skip
    return FederatedGenerator(model.eval(), cfg, float(target_epsilon), tuple(spent))


def local_round(
    global_model: ConditionalVAE,
    data: tuple[torch.Tensor, torch.Tensor],
    cfg: GeneratorConfig,
    settings: PrivacySettings,
    state: AccountantState | None,
    *,
    seeds: tuple[int, int],
) -> tuple[dict[str, torch.Tensor], AccountantState]:
    """One retailer's round: ``cfg.local_epochs`` of DP-SGD (Adam) from the global model;
    (its new weights, its accountant state carried on)."""
    model = copy.deepcopy(global_model).train()
    opt = torch.optim.Adam(model.param_groups(cfg))
    per_round = cfg.local_epochs * steps_per_epoch(len(data[0]), cfg.batch_size)
    g = torch.Generator().manual_seed(seeds[0])
    priv = make_private(
        model, opt, data, settings, state,
        batch_size=cfg.batch_size, generator=g,
        noise_generator=torch.Generator().manual_seed(seeds[1]),
        total_steps_planned=cfg.rounds * per_round, steps_now=per_round,
    )  # fmt: skip

    def batch_loss(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        eps = torch.randn(len(xb), cfg.latent_dim, generator=g)
        return priv.module(xb, yb, eps).mean()

    try:
        private_epochs(priv, cfg.local_epochs, batch_loss)
        new_state = priv.state
    finally:
        plain = priv.close()
    return {k: v.detach().clone() for k, v in plain.state_dict().items()}, new_state
