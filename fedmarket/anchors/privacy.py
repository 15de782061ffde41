"""Client DP for the federated anchor fit: clipped, noised sums within a per-retailer budget.

See ``fedmarket.anchors`` for what the rows mean. Each customer's log-likelihood and gradient
are clipped to bounds fixed before any data is seen (weeks as the time unit: |ll| <= 30,
||grad|| <= 5, which on CDNOW leave over 99% of customers untouched); Gaussian noise is added
to each answer; each retailer answers at most ``releases`` times and refuses past that, so the
RDP-composed epsilon holds however the server's optimiser behaves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from fedmarket.btyd import Clipping, CustomerHistory, fit_federated, gaussian_epsilon, local_sums
from fedmarket.data.store import SplitArrays
from fedmarket.errors import BudgetExhaustedError, ConfigError

# Fixed before seeing any data (weeks as the time unit): see the module docstring.
DEFAULT_CLIPPING: Final[Clipping] = Clipping(30.0, 5.0)


@dataclass(frozen=True)
class AnchorPrivacy:
    """Client DP for the federated anchor fit: per retailer, (epsilon, delta) over at most
    ``releases`` answers of clipped, noised sums (see the module docstring)."""

    epsilon: float
    delta: float
    releases: int = 40
    clipping: Clipping = DEFAULT_CLIPPING

    def __post_init__(self) -> None:
        if not (self.epsilon > 0 and 0 < self.delta < 1 and self.releases >= 10):
            raise ConfigError(
                f"anchor DP: needs epsilon > 0, 0 < delta < 1 and releases >= 10, got "
                f"epsilon={self.epsilon}, delta={self.delta}, releases={self.releases}"
            )

    @classmethod
    def for_retailers(cls, epsilon: float, parts: Sequence[SplitArrays]) -> AnchorPrivacy:
        """Delta as fedmarket's client DP sets it, 1/(10 n), at the largest retailer's n
        (the smallest delta, so every retailer's guarantee is at least this strong)."""
        return cls(epsilon, 1.0 / (10 * max(len(p) for p in parts)))

    def noise_multiplier(self) -> float:
        """The smallest z (to 0.1%) whose ``releases`` answers stay within epsilon."""
        low, high = 0.05, 1e4
        if gaussian_epsilon(high, self.releases, self.delta) > self.epsilon:
            raise ConfigError(f"anchor DP: epsilon {self.epsilon} is too small to reach")
        while high / low > 1.001:
            mid = (low * high) ** 0.5
            if gaussian_epsilon(mid, self.releases, self.delta) <= self.epsilon:
                high = mid
            else:
                low = mid
        return high


class _Budgeted:
    """One retailer's noisy answers, refused past its budget of releases."""

    def __init__(
        self,
        history: CustomerHistory,
        model: str,
        privacy: AnchorPrivacy,
        noise: float,
        rng: np.random.Generator,
    ) -> None:
        self.history, self.model, self.privacy = history, model, privacy
        self.noise, self.rng, self.answers = noise, rng, 0

    def __call__(self, params: np.ndarray) -> tuple[float, np.ndarray, int]:
        if self.answers >= self.privacy.releases:
            raise BudgetExhaustedError(
                f"anchor DP: a retailer was asked for answer {self.answers + 1} of a budget "
                f"of {self.privacy.releases}"
            )
        self.answers += 1
        return local_sums(
            params,
            self.history,
            model=self.model,
            clipping=self.privacy.clipping,
            noise_multiplier=self.noise,
            rng=self.rng,
        )


# L-BFGS-B may pass its evaluation cap by a line search (at most 20 steps by default):
# the optimiser is given the budget less this, so no retailer is ever asked past its budget.
_LINE_SEARCH_SLACK: Final[int] = 21


def dp_job(
    name: str, histories: list[CustomerHistory], privacy: AnchorPrivacy, seed: int
) -> tuple[str, Callable[[], Any], str]:
    noise = privacy.noise_multiplier()
    streams = np.random.SeedSequence(seed).spawn(len(histories))
    answers = [
        _Budgeted(h, name, privacy, noise, np.random.default_rng(stream))
        for h, stream in zip(histories, streams, strict=True)
    ]

    def fit() -> Any:
        return fit_federated(
            answers,
            model=name,
            max_evaluations=privacy.releases - _LINE_SEARCH_SLACK,
            polish=False,
        )

    how = (
        f"federated fit with client DP: {len(histories)} retailers, each customer's "
        f"log-likelihood clipped to {privacy.clipping.loglik_bound:g} and gradient to "
        f"{privacy.clipping.grad_bound:g}, noise multiplier {noise:.3g}, "
        f"epsilon <= {privacy.epsilon:g} at delta {privacy.delta:.2g} per retailer over "
        f"{privacy.releases} answers"
    )
    return f"{name} federated DP", fit, how
