"""The accountant, checked independently.

1. The epsilon a DP training run reports equals a recomputation from its accountant history
   with Opacus' RDP analysis called by hand (``compute_rdp`` + ``get_privacy_spent``): 1e-9.
2. A second accountant, PRV, on the same history: never above RDP (RDP is an upper bound
   with a lossy conversion; PRV is within ``eps_error`` = 0.01 of the truth), pinned values.
3. Where the exact answer is known in closed form (full participation: T Gaussian releases
   with multiplier z are one Gaussian mechanism with mu = sqrt(T) / z, whose exact
   delta(eps) is Balle & Wang's formula), PRV sits within 0.02 above it and RDP above it.
   ``dp-accounting`` (Google's) is not used: its pins (attrs<24) conflict with this venv.
4. The central-DP calibration lands on its target from below, to Opacus' 0.01 tolerance.
"""

import math

import numpy as np
import pytest
from opacus.accountants import RDPAccountant
from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent
from scipy.optimize import brentq
from scipy.stats import norm

from fedmarket.data.store import SplitArrays
from fedmarket.errors import PrivacyError
from fedmarket.models import build_model
from fedmarket.privacy.accounting import AccountantState, epsilon
from fedmarket.privacy.calibration import calibrate_central_noise, central_sample_rate
from fedmarket.privacy.central import central_epsilon
from fedmarket.privacy.config import PrivacySettings
from fedmarket.tasks import get_task
from fedmarket.training import TrainConfig, fit

DELTA = 1e-4


def rdp_by_hand(history, delta: float) -> float:
    orders = RDPAccountant.DEFAULT_ALPHAS
    rdp = sum(compute_rdp(q=q, noise_multiplier=z, steps=s, orders=orders) for z, q, s in history)
    eps, _ = get_privacy_spent(orders=orders, rdp=rdp, delta=delta)
    return float(eps)


def exact_gaussian_epsilon(mu: float, delta: float) -> float:
    """Smallest eps with delta(eps) <= delta for the mu-Gaussian mechanism (Balle & Wang 2018)."""

    def gap(eps: float) -> float:
        return norm.cdf(-eps / mu + mu / 2) - math.exp(eps) * norm.cdf(-eps / mu - mu / 2) - delta

    return brentq(gap, 0.0, 100.0)


@pytest.fixture(scope="module")
def dp_run():
    """A real DP-SGD fit: 100 customers, batch 10 (q = 1/10), 2 epochs, noise 1.1.

    Short sequences and a fixed noise keep it fast (calibrating to a target costs a dozen
    RDP evaluations; the calibration has its own tests in test_engine.py)."""
    rng = np.random.default_rng(0)
    n = 100
    split = SplitArrays(
        X=rng.normal(size=(n, 8, 11)).astype(np.float32),
        agg=np.zeros((n, 2), np.float32),
        y_purchase=(rng.random(n) < 0.3).astype(np.float32),
        y_count=np.zeros(n, np.float32),
        customer=np.array([f"c{i}" for i in range(n)]),
    )
    net = build_model("lstm", 11, dp=True, seed=0, hidden_size=4, num_layers=1, dropout=0.0)
    return fit(
        net,
        split,
        get_task("purchase"),
        TrainConfig(epochs=2, batch_size=10, val_fraction=0.0, seed=0),
        privacy=PrivacySettings(noise_multiplier=1.1, max_grad_norm=1.0, delta=DELTA),
    )


def test_reported_epsilon_is_the_rdp_recomputation(dp_run):
    history = dp_run.privacy_state.history
    assert history == ((1.1, 0.1, 20),)
    assert dp_run.noise_multiplier == 1.1
    assert dp_run.epsilon == pytest.approx(rdp_by_hand(history, DELTA), rel=1e-9, abs=1e-9)


def test_prv_agrees_with_rdp_from_below(dp_run):
    history = dp_run.privacy_state.history
    rdp = epsilon(AccountantState("rdp", history), DELTA)
    prv = epsilon(AccountantState("prv", history), DELTA)
    assert prv <= rdp  # PRV is tight; RDP's conversion to (eps, delta) loses a little
    assert rdp - prv < 0.5
    assert (round(rdp, 3), round(prv, 2)) == (2.885, 2.39)


@pytest.mark.parametrize(
    ("z", "rounds", "delta"), [(1.0, 10, 1e-5), (2.0, 3, 1e-5), (13.4375, 3, 1e-5), (0.7, 3, 1e-6)]
)
def test_both_accountants_against_the_exact_gaussian(z, rounds, delta):
    exact = exact_gaussian_epsilon(math.sqrt(rounds) / z, delta)
    prv = central_epsilon(z, 1.0, rounds, delta, accountant="prv")
    rdp = central_epsilon(z, 1.0, rounds, delta, accountant="rdp")
    assert exact <= prv <= exact + 0.02
    assert exact < rdp < 1.1 * exact


def test_pinned_exact_values():
    assert round(exact_gaussian_epsilon(math.sqrt(10), 1e-5), 3) == 17.857
    assert round(central_epsilon(1.0, 1.0, 10, 1e-5, accountant="prv"), 2) == 17.87


@pytest.mark.parametrize("target", [0.5, 1.0, 4.0, 16.0])
def test_central_calibration_hits_the_target_from_below(target):
    cal = calibrate_central_noise(target, num_clients=10, rounds=3)
    assert (cal.sample_rate, cal.delta, cal.rounds) == (1.0, 1e-5, 3)
    assert target - 0.01 <= cal.epsilon <= target
    assert cal.epsilon == central_epsilon(cal.noise_multiplier, 1.0, 3, 1e-5)


def test_central_calibration_follows_the_servers_sampling_and_delta():
    assert central_sample_rate(10, 0.25) == 0.3  # ceil(2.5) = 3 of 10 retailers
    cal = calibrate_central_noise(2.0, num_clients=10, rounds=5, fraction_train=0.25, delta=1e-6)
    assert (cal.sample_rate, cal.delta, cal.accountant) == (0.3, 1e-6, "rdp")
    assert 1.99 <= cal.epsilon <= 2.0
    assert cal.epsilon == central_epsilon(cal.noise_multiplier, 0.3, 5, 1e-6)
    prv = calibrate_central_noise(1.0, num_clients=3, rounds=2, accountant="prv")
    assert prv.accountant == "prv" and 0.99 <= prv.epsilon <= 1.0
    assert (
        prv.noise_multiplier
        < calibrate_central_noise(1.0, num_clients=3, rounds=2).noise_multiplier
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target_epsilon": 0.0}, "positive finite"),
        ({"target_epsilon": math.inf}, "positive finite"),
        ({"rounds": 0}, "rounds"),
        ({"num_clients": 0}, "num_clients"),
        ({"fraction_train": 1.5}, "fraction_train"),
    ],
)
def test_central_calibration_rejects_bad_input(kwargs, message):
    args = {"target_epsilon": 1.0, "num_clients": 10, "rounds": 3, **kwargs}
    target = args.pop("target_epsilon")
    with pytest.raises(PrivacyError, match=message):
        calibrate_central_noise(target, **args)
