import math
import warnings

import numpy as np
import pytest
from opacus.accountants import RDPAccountant

from fedmarket.errors import PrivacyError
from fedmarket.privacy.central import central_epsilon, default_central_delta


def gaussian_rdp_epsilon(z: float, rounds: int, delta: float) -> float:
    """Closed form: T Gaussian releases with multiplier z have RDP T·α/(2z²) at order α,
    converted to (ε, δ) with the bound Opacus uses (Balle et al. 2020, Thm. 21)."""
    orders = np.array(RDPAccountant.DEFAULT_ALPHAS, dtype=float)
    rdp = rounds * orders / (2 * z**2)
    eps = rdp + np.log1p(-1 / orders) - (np.log(delta) + np.log(orders)) / (orders - 1)
    return float(np.min(eps))


def gaussian_delta(mu: float, eps: float) -> float:
    """Exact delta(eps) of mu-GDP (Dong, Roth & Su), the tight answer PRV approximates."""
    return _phi(-eps / mu + mu / 2) - math.exp(eps) * _phi(-eps / mu - mu / 2)


def _phi(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2))


@pytest.mark.parametrize(
    ("z", "rounds", "delta"), [(1.0, 10, 1e-5), (0.7, 3, 1e-6), (2.5, 50, 1e-5)]
)
def test_full_participation_is_the_gaussian_mechanism(z, rounds, delta):
    expected = gaussian_rdp_epsilon(z, rounds, delta)
    assert central_epsilon(z, 1.0, rounds, delta) == pytest.approx(expected, rel=1e-9)
    acc = RDPAccountant()
    for _ in range(rounds):
        acc.step(noise_multiplier=z, sample_rate=1.0)
    assert central_epsilon(z, 1.0, rounds, delta) == pytest.approx(
        acc.get_epsilon(delta), rel=1e-12
    )


def test_pinned_values():
    assert round(central_epsilon(1.0, 1.0, 10, 1e-5), 2) == 19.05
    assert round(central_epsilon(1.0, 0.5, 10, 1e-5), 2) == 11.54


def test_sampling_matches_opacus_stepping_round_by_round():
    acc = RDPAccountant()
    for _ in range(20):
        acc.step(noise_multiplier=1.3, sample_rate=0.3)
    assert central_epsilon(1.3, 0.3, 20, 1e-5) == pytest.approx(acc.get_epsilon(1e-5), rel=1e-12)


def test_prv_is_tight_and_quiet_at_full_participation():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        eps = central_epsilon(1.0, 1.0, 10, 1e-5, accountant="prv")
    assert eps < central_epsilon(1.0, 1.0, 10, 1e-5)
    # 10 releases at z = 1 are sqrt(10)-GDP; at PRV's epsilon the exact delta is ~1e-5
    assert gaussian_delta(math.sqrt(10), eps) == pytest.approx(1e-5, rel=0.05)


def test_edges_and_monotonicity():
    assert central_epsilon(0.0, 1.0, 3, 1e-5) == math.inf
    assert central_epsilon(0.0, 1.0, 0, 1e-5) == 0.0
    assert central_epsilon(1.0, 1.0, 0, 1e-5) == 0.0
    assert central_epsilon(1.0, 1.0, 5, 1e-5) < central_epsilon(1.0, 1.0, 6, 1e-5)
    assert central_epsilon(2.0, 1.0, 5, 1e-5) < central_epsilon(1.0, 1.0, 5, 1e-5)
    assert central_epsilon(1.0, 0.2, 5, 1e-5) < central_epsilon(1.0, 1.0, 5, 1e-5)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((-0.1, 1.0, 3, 1e-5), {}, "noise_multiplier must be >= 0"),
        ((math.nan, 1.0, 3, 1e-5), {}, "noise_multiplier must be a finite number"),
        ((1.0, 0.0, 3, 1e-5), {}, "sample_rate must be in"),
        ((1.0, 1.5, 3, 1e-5), {}, "sample_rate must be in"),
        ((1.0, 1.0, -1, 1e-5), {}, "rounds must be an integer"),
        ((1.0, 1.0, 2.0, 1e-5), {}, "rounds must be an integer"),
        ((1.0, 1.0, 3, 0.0), {}, "delta must be in"),
        ((1.0, 1.0, 3, 1.0), {}, "delta must be in"),
        ((1.0, 1.0, 3, "1e-5"), {}, "delta must be a finite number"),
        ((1.0, 1.0, 3, 1e-5), {"accountant": "gdp"}, "accountant 'gdp' is unknown"),
    ],
)
def test_bad_input(args, kwargs, match):
    with pytest.raises(PrivacyError, match=match):
        central_epsilon(*args, **kwargs)


def test_default_central_delta():
    assert default_central_delta(3) == 1e-5
    assert default_central_delta(10_000) == 1e-5
    assert default_central_delta(20_000) == pytest.approx(5e-6)
    for bad in (0, -2, 3.0, True):
        with pytest.raises(PrivacyError, match="num_clients must be a positive number"):
            default_central_delta(bad)
