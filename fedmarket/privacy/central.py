"""Epsilon of central DP: Flower's server-side fixed clipping, counted with Opacus.

With ``dp = "central"`` the server clips each sampled retailer's model update to L2 norm
``C``, averages the ``m`` clipped updates uniformly and adds Gaussian noise of standard
deviation ``z·C/m`` to the mean (Flower's ``DifferentialPrivacyServerSideFixedClipping``).
That is one Gaussian mechanism with noise multiplier ``z`` per round on the sum of the
clipped updates, so the guarantee is about a whole retailer (client-level DP, add/remove
one retailer): the released models reveal little about whether any one retailer, with
all its customers, took part. It protects the published model, not the raw updates,
which the server sees before adding noise; the server is trusted.

Flower's own accountant for this needs the ``dp-accounting`` package, which fedmarket
does not install; Opacus' accountants do the same arithmetic, and using them keeps central
and client-side epsilons on the same accountant.
"""

from __future__ import annotations

import math
import warnings

from fedmarket.checks import integer, number
from fedmarket.errors import PrivacyError
from fedmarket.privacy.accounting import AccountantState, epsilon
from fedmarket.privacy.config import ACCOUNTANTS

# Cap on the default delta: see default_central_delta.
MAX_CENTRAL_DELTA = 1e-5


def central_epsilon(
    noise_multiplier: float, sample_rate: float, rounds: int, delta: float, accountant: str = "rdp"
) -> float:
    """Retailer-level epsilon after ``rounds`` noisy aggregations (0.0 for no round).

    Each round is ``accountant.step(noise_multiplier=z, sample_rate=q)`` of an Opacus
    accountant, with ``q`` the fraction of retailers sampled per round (``m / N``). For
    ``q < 1`` Opacus analyses Poisson sampling, while Flower samples exactly ``m`` retailers
    without replacement, so the result is an approximation of the amplification by
    sampling; for ``q = 1`` (every retailer every round) it is exact. A round the server
    skipped (too few replies) released nothing and must not be counted. ``z = 0`` gives
    ``inf``: clipping alone bounds nothing.
    """
    z = number("central_epsilon: noise_multiplier", noise_multiplier, error=PrivacyError)
    q = number("central_epsilon: sample_rate", sample_rate, error=PrivacyError)
    d = number("central_epsilon: delta", delta, error=PrivacyError)
    if z < 0:
        raise PrivacyError(f"central_epsilon: noise_multiplier must be >= 0, got {z}")
    if not 0 < q <= 1:
        raise PrivacyError(
            f"central_epsilon: sample_rate must be in (0, 1], got {q} "
            f"(retailers sampled per round / retailers)"
        )
    if not 0 < d < 1:
        raise PrivacyError(f"central_epsilon: delta must be in (0, 1), got {d}")
    integer("central_epsilon: rounds", rounds, at_least=0, error=PrivacyError)
    if accountant not in ACCOUNTANTS:
        raise PrivacyError(
            f"central_epsilon: accountant {accountant!r} is unknown; use one "
            f"of {', '.join(ACCOUNTANTS)}"
        )
    if rounds == 0:
        return 0.0
    if z == 0:
        return math.inf
    state = AccountantState(accountant, ((z, q, rounds),))
    with warnings.catch_warnings():
        # PRV evaluates log(1 - q), which is log(0) at q = 1; its result is still exact.
        warnings.filterwarnings("ignore", message="divide by zero encountered in log")
        return epsilon(state, d)


def default_central_delta(num_clients: int) -> float:
    """``min(1 / (10 n), 1e-5)`` for ``n`` retailers (in practice 1e-5 below 10,000).

    A mechanism that publishes each participant's data whole with probability delta is
    (0, delta)-DP; with the customer-level rule ``delta = 1 / (10 n)``
    (``fedmarket.privacy.config.default_delta``) it exposes someone one run in ten. Over
    many customers that is the usual convention, but over a handful of retailers it is a
    delta near 1e-2, for a guarantee about a whole retailer's data. The cap keeps that
    failure chance at ``n · 1e-5`` and costs little epsilon, which grows only like
    ``sqrt(log(1 / delta))``.
    """
    integer(
        "default_central_delta: num_clients",
        num_clients,
        at_least=1,
        must="a positive number of retailers",
        error=PrivacyError,
    )
    return min(1.0 / (10 * num_clients), MAX_CENTRAL_DELTA)
