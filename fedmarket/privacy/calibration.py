"""Central DP for a target epsilon: the server-side noise multiplier that spends it.

Flower's server-side fixed clipping takes a noise multiplier ``z``; a privacy/accuracy sweep
asks for an epsilon. This inverts ``fedmarket.privacy.central.central_epsilon`` with the
same accountant, sampling rate and delta the server will use to report what it spent, so
the epsilon a central-DP run reports is the target (to Opacus' 0.01 search tolerance,
never above it).

Central DP protects a whole retailer, and with a handful of retailers and a few rounds
there is almost no amplification by sampling: small epsilons need a very large ``z``
(about 13.4 for epsilon 0.5 over three rounds of ten retailers at delta 1e-5), which means
noise far larger than the clipped updates. That is the honest price of retailer-level DP
over few participants, and the sweep records it rather than hiding it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from fedmarket.aggregation import nodes_per_round  # the server's own rule
from fedmarket.checks import integer, number
from fedmarket.errors import PrivacyError
from fedmarket.privacy.accounting import calibrate_noise
from fedmarket.privacy.central import central_epsilon, default_central_delta


@dataclass(frozen=True)
class CentralCalibration:
    """The noise multiplier for a target, and what it spends (retailer-level)."""

    target_epsilon: float
    noise_multiplier: float
    epsilon: float
    sample_rate: float
    rounds: int
    delta: float
    accountant: str


def central_sample_rate(num_clients: int, fraction_train: float) -> float:
    """Retailers sampled per round over retailers, exactly as the server samples them."""
    integer("central calibration: num_clients", num_clients, at_least=1, error=PrivacyError)
    if not 0 < fraction_train <= 1:
        raise PrivacyError(
            f"central calibration: fraction_train must be in (0, 1], got {fraction_train!r}"
        )
    return nodes_per_round(fraction_train, num_clients) / num_clients


def calibrate_central_noise(
    target_epsilon: float,
    *,
    num_clients: int,
    rounds: int,
    fraction_train: float = 1.0,
    delta: float = 0.0,
    accountant: str = "rdp",
) -> CentralCalibration:
    """The smallest central noise multiplier whose ``rounds`` releases stay within the target.

    ``delta = 0`` means the server's default (``default_central_delta(num_clients)``), as in
    the run config. Raises PrivacyError for a target that is not a positive finite number.
    """
    target = number(
        "central calibration: target epsilon", target_epsilon, above=0.0, error=PrivacyError
    )
    integer("central calibration: rounds", rounds, at_least=1, error=PrivacyError)
    q = central_sample_rate(num_clients, fraction_train)
    d = delta if delta > 0 else default_central_delta(num_clients)
    with warnings.catch_warnings():
        # PRV evaluates log(1 - q), i.e. log(0) at full participation; its answer is exact.
        warnings.filterwarnings("ignore", message="divide by zero encountered in log")
        z = calibrate_noise(target, d, q, rounds, accountant=accountant)
    spent = central_epsilon(z, q, rounds, d, accountant=accountant)
    return CentralCalibration(
        target_epsilon=target,
        noise_multiplier=z,
        epsilon=spent,
        sample_rate=q,
        rounds=rounds,
        delta=d,
        accountant=accountant,
    )
