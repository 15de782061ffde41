"""Privacy accounting that survives between training calls (federated rounds).

Opacus keeps the whole accounting state in one list, ``accountant.history``, of
``(noise_multiplier, sample_rate, steps)`` triples. ``AccountantState`` is that list plus
the accountant's name and the noise fixed by calibration, in a JSON-safe form a Flower
client can keep in ``context.state`` between rounds. All epsilon arithmetic goes through
Opacus' own accountants so that what we report is exactly what Opacus would.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedmarket.checks import integer, number
from fedmarket.errors import PrivacyError
from fedmarket.privacy.config import ACCOUNTANTS

Entry = tuple[float, float, int]


@dataclass(frozen=True)
class AccountantState:
    """Everything needed to continue counting epsilon where the last call stopped.

    ``noise_multiplier`` is the noise chosen when the budget was first calibrated; later
    calls reuse it instead of recalibrating, so the planned budget is spent evenly.
    """

    accountant: str = "rdp"
    history: tuple[Entry, ...] = ()
    noise_multiplier: float | None = None

    def __post_init__(self) -> None:
        if self.accountant not in ACCOUNTANTS:
            raise PrivacyError(
                f"accountant state: unknown accountant {self.accountant!r}; "
                f"expected one of {', '.join(ACCOUNTANTS)}"
            )
        object.__setattr__(self, "history", tuple(_entry(e, i) for i, e in enumerate(self.history)))

    @property
    def steps(self) -> int:
        """Optimiser steps already taken under DP."""
        return sum(e[2] for e in self.history)

    def extended(self, noise_multiplier: float, sample_rate: float, steps: int) -> AccountantState:
        """This state after ``steps`` more steps, merged as Opacus' accountants merge them."""
        if steps < 0:
            raise PrivacyError(f"accountant state: cannot add a negative number of steps ({steps})")
        if steps == 0:
            return self
        history = list(self.history)
        if history and history[-1][0] == noise_multiplier and history[-1][1] == sample_rate:
            history[-1] = (history[-1][0], history[-1][1], history[-1][2] + steps)
        else:
            history.append((float(noise_multiplier), float(sample_rate), int(steps)))
        return AccountantState(self.accountant, tuple(history), self.noise_multiplier)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: floats survive a JSON round trip exactly (repr is shortest-exact)."""
        return {
            "accountant": self.accountant,
            "history": [[e[0], e[1], e[2]] for e in self.history],
            "noise_multiplier": self.noise_multiplier,
        }

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> AccountantState:
        if not isinstance(data, Mapping):
            raise PrivacyError(f"accountant state: expected a mapping, got {type(data).__name__}")
        unknown = set(data) - {"accountant", "history", "noise_multiplier"}
        if unknown or "accountant" not in data or "history" not in data:
            raise PrivacyError(
                "accountant state: expected keys accountant, history[, noise_multiplier]; "
                f"got {sorted(data)}. Was it written by AccountantState.to_dict?"
            )
        noise = data.get("noise_multiplier")
        if noise is not None:
            noise = number("accountant state: noise_multiplier", noise, error=PrivacyError)
        history = data["history"]
        if not isinstance(history, list | tuple):
            raise PrivacyError(
                f"accountant state: history must be a list, got {type(history).__name__}"
            )
        return AccountantState(str(data["accountant"]), tuple(history), noise)


def _entry(entry: Any, index: int) -> Entry:
    where = f"accountant state history[{index}]"
    if not isinstance(entry, list | tuple) or len(entry) != 3:
        raise PrivacyError(
            f"{where}: expected [noise_multiplier, sample_rate, steps], got {entry!r}"
        )
    noise = number(f"{where}: noise_multiplier", entry[0], error=PrivacyError)
    rate = number(f"{where}: sample_rate", entry[1], error=PrivacyError)
    steps = entry[2]
    if noise < 0 or not 0 < rate <= 1:
        raise PrivacyError(
            f"{where}: need noise_multiplier >= 0 and 0 < sample_rate <= 1, got {entry!r}"
        )
    integer(f"{where}: steps", steps, at_least=1, error=PrivacyError)
    return (noise, rate, steps)


def epsilon(state: AccountantState, delta: float) -> float:
    """Epsilon spent by ``state`` at ``delta`` (0 before any step)."""
    if not state.history:
        return 0.0
    if any(noise == 0 for noise, _, _ in state.history):
        return math.inf  # a noiseless step releases an unbounded amount
    with warnings.catch_warnings():
        # RDP warns when the best order is at the edge of its grid: the bound is still
        # valid, only possibly loose (use "prv" for a tight one); not worth a line per epoch.
        warnings.filterwarnings("ignore", message="Optimal order is the")
        if state.accountant == "rdp":
            return _rdp_epsilon(state.history, delta)
        from opacus.accountants import create_accountant

        accountant = create_accountant(mechanism=state.accountant)
        accountant.history = list(state.history)
        return float(accountant.get_epsilon(delta=delta))


@functools.lru_cache(maxsize=4096)
def _rdp_one_step(noise_multiplier: float, sample_rate: float) -> np.ndarray:
    """One step's RDP at Opacus' default orders; read-only, shared by every caller."""
    from opacus.accountants import RDPAccountant
    from opacus.accountants.analysis import rdp as rdp_analysis

    rdp = rdp_analysis.compute_rdp(
        q=sample_rate, noise_multiplier=noise_multiplier, steps=1,
        orders=RDPAccountant.DEFAULT_ALPHAS,
    )  # fmt: skip
    rdp.flags.writeable = False
    return rdp


def _rdp_epsilon(history: tuple[Entry, ...], delta: float) -> float:
    """Opacus' ``RDPAccountant.get_epsilon``, the same arithmetic in the same order, with
    each (noise, rate) pair's per-step RDP computed once per process: the fractional orders
    make it the costliest part of a short DP fit (it is read after every epoch), while a
    client's history repeats one pair round after round."""
    from opacus.accountants import RDPAccountant
    from opacus.accountants.analysis import rdp as rdp_analysis

    rdp = sum([_rdp_one_step(noise, rate) * steps for noise, rate, steps in history])
    eps, _ = rdp_analysis.get_privacy_spent(
        orders=RDPAccountant.DEFAULT_ALPHAS, rdp=rdp, delta=delta
    )
    return float(eps)


def epsilon_after(
    state: AccountantState, noise_multiplier: float, sample_rate: float, steps: int, delta: float
) -> float:
    """Epsilon if ``steps`` more steps were taken; ``state`` itself is not changed."""
    return epsilon(state.extended(noise_multiplier, sample_rate, steps), delta)


def calibrate_noise(
    target_epsilon: float,
    delta: float,
    sample_rate: float,
    total_steps: int,
    accountant: str = "rdp",
) -> float:
    """Smallest noise (to Opacus' 0.01-epsilon search tolerance) that keeps ``total_steps``
    steps at ``sample_rate`` within ``target_epsilon``."""
    if total_steps < 1:
        raise PrivacyError(f"calibrate_noise: total_steps must be >= 1, got {total_steps}")
    from opacus.accountants.utils import get_noise_multiplier

    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Optimal order is the")
            return float(
                get_noise_multiplier(
                    target_epsilon=target_epsilon,
                    target_delta=delta,
                    sample_rate=sample_rate,
                    steps=total_steps,
                    accountant=accountant,
                )
            )
    except ValueError as exc:
        raise PrivacyError(
            f"cannot reach epsilon={target_epsilon:g} at delta={delta:g} over {total_steps} steps "
            f"at sample rate {sample_rate:g} ({exc}); raise target_epsilon, train fewer steps "
            f"or use a smaller batch"
        ) from exc


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Steps in one pass over ``n`` customers: ``ceil(n / batch_size)``.

    Opacus derives its sample rate as ``1 / len(loader)``, i.e. one over this number.
    """
    if n < 1 or batch_size < 1:
        raise PrivacyError(
            f"steps_per_epoch: need n >= 1 and batch_size >= 1, got {n}, {batch_size}"
        )
    return math.ceil(n / batch_size)


def sample_rate(n: int, batch_size: int) -> float:
    """Poisson sampling probability, computed exactly as Opacus computes it."""
    return 1 / steps_per_epoch(n, batch_size)
