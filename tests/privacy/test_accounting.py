import json
import math

import numpy as np
import pytest
from opacus.accountants import PRVAccountant, RDPAccountant

from fedmarket.errors import ConfigError, PrivacyError
from fedmarket.privacy import (
    AccountantState,
    PrivacySettings,
    calibrate_noise,
    default_delta,
    epsilon,
    epsilon_after,
    sample_rate,
    steps_per_epoch,
)


def _rdp(history, delta):
    acc = RDPAccountant()
    acc.history = list(history)
    return acc.get_epsilon(delta)


# --- PrivacySettings ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({}, "exactly one"),
        ({"target_epsilon": 1.0, "noise_multiplier": 1.0}, "exactly one"),
        ({"target_epsilon": 0.0}, "target_epsilon"),
        ({"target_epsilon": math.inf}, "target_epsilon"),
        ({"noise_multiplier": -0.1}, "noise_multiplier"),
        ({"noise_multiplier": 1.0, "max_grad_norm": 0.0}, "max_grad_norm"),
        ({"noise_multiplier": 1.0, "delta": 0.0}, "delta"),
        ({"noise_multiplier": 1.0, "delta": 1.0}, "delta"),
        ({"noise_multiplier": 1.0, "accountant": "gdp"}, "accountant"),
        ({"noise_multiplier": 1.0, "poisson_sampling": 1}, "poisson_sampling"),
    ],
)
def test_privacy_settings_validation(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        PrivacySettings(**kwargs)


def test_delta_defaults_below_one_over_n():
    assert default_delta(1000) == 1e-4
    assert PrivacySettings(noise_multiplier=0.0).resolve_delta(200) == 1 / 2000
    assert PrivacySettings(noise_multiplier=1.0, delta=1e-5).resolve_delta(1000) == 1e-5
    with pytest.raises(ConfigError, match="not below 1/n"):
        PrivacySettings(noise_multiplier=1.0, delta=1e-3).resolve_delta(1000)
    with pytest.raises(ConfigError):
        default_delta(0)


# --- steps and sample rate ------------------------------------------------------------------


def test_steps_and_sample_rate_follow_opacus():
    assert steps_per_epoch(1000, 256) == 4
    assert steps_per_epoch(256, 256) == 1
    assert steps_per_epoch(10, 256) == 1
    assert sample_rate(1000, 256) == 0.25
    assert sample_rate(93, 1) == 1 / 93  # Opacus: 1 / len(loader)
    with pytest.raises(PrivacyError):
        steps_per_epoch(0, 10)


# --- epsilon ----------------------------------------------------------------------------------


def test_epsilon_matches_opacus_accountants():
    history = ((1.1, 0.01, 500), (0.8, 0.02, 100))
    state = AccountantState("rdp", history)
    assert epsilon(state, 1e-5) == _rdp(history, 1e-5)
    prv = PRVAccountant()
    prv.history = list(history)
    assert epsilon(AccountantState("prv", history), 1e-5) == prv.get_epsilon(1e-5)
    assert epsilon(AccountantState(), 1e-5) == 0.0
    assert epsilon(AccountantState("rdp", ((0.0, 0.1, 1),)), 1e-5) == math.inf


def test_epsilon_after_merges_like_opacus_and_does_not_mutate():
    state = AccountantState("rdp", ((1.0, 0.1, 10),))
    after = epsilon_after(state, 1.0, 0.1, 5, 1e-5)
    assert state.history == ((1.0, 0.1, 10),)
    assert state.extended(1.0, 0.1, 5).history == ((1.0, 0.1, 15),)
    assert state.extended(2.0, 0.1, 5).history == ((1.0, 0.1, 10), (2.0, 0.1, 5))
    assert after == _rdp([(1.0, 0.1, 15)], 1e-5)
    # the Opacus accountant stepping one at a time lands on the same history
    acc = RDPAccountant()
    acc.history = [(1.0, 0.1, 10)]
    for _ in range(5):
        acc.step(noise_multiplier=1.0, sample_rate=0.1)
    assert acc.history == [(1.0, 0.1, 15)]
    assert state.steps == 10 and state.extended(1.0, 0.1, 5).steps == 15


def test_state_round_trips_through_json():
    state = AccountantState("prv", ((1.1572265625, 1 / 3, 7), (0.9, 0.1, 2)), 1.1572265625)
    text = json.dumps(state.to_dict())
    back = AccountantState.from_dict(json.loads(text))
    assert back == state
    assert back.history[0][1] == 1 / 3  # bit-exact float


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ([1, 2], "mapping"),
        ({"accountant": "rdp"}, "expected keys"),
        ({"accountant": "rdp", "history": [], "extra": 1}, "expected keys"),
        ({"accountant": "xyz", "history": []}, "unknown accountant"),
        ({"accountant": "rdp", "history": [[1.0, 0.1]]}, r"history\[0\]"),
        ({"accountant": "rdp", "history": [[1.0, 1.5, 3]]}, "sample_rate"),
        ({"accountant": "rdp", "history": [[1.0, 0.1, 0]]}, "steps"),
        ({"accountant": "rdp", "history": [[1.0, 0.1, 2.5]]}, "steps"),
        ({"accountant": "rdp", "history": [], "noise_multiplier": "big"}, "noise_multiplier"),
    ],
)
def test_bad_state_dicts_raise_privacy_error(data, match):
    with pytest.raises(PrivacyError, match=match):
        AccountantState.from_dict(data)


# --- calibration ------------------------------------------------------------------------------


def test_calibrated_noise_meets_target_tightly():
    noise = calibrate_noise(2.0, 1e-5, 0.05, 400, "rdp")
    spent = _rdp([(noise, 0.05, 400)], 1e-5)
    assert 2.0 - 0.02 < spent <= 2.0
    # less budget needs more noise
    assert calibrate_noise(1.0, 1e-5, 0.05, 400, "rdp") > noise


def test_impossible_budget_is_a_privacy_error():
    with pytest.raises(PrivacyError, match="cannot reach"):
        calibrate_noise(1e-9, 1e-5, 1.0, 10_000, "rdp")
    with pytest.raises(PrivacyError, match="total_steps"):
        calibrate_noise(1.0, 1e-5, 0.1, 0, "rdp")


@pytest.mark.filterwarnings("ignore:Optimal order is the")
def test_rdp_epsilon_is_opacus_bit_for_bit():
    """The cached per-step RDP path gives exactly what Opacus' RDPAccountant gives."""
    rng = np.random.default_rng(0)
    for _ in range(50):
        history = tuple(
            (
                float(rng.uniform(0.3, 3.0)),
                float(rng.uniform(0.001, 0.5)),
                int(rng.integers(1, 500)),
            )
            for _ in range(int(rng.integers(1, 5)))
        )
        delta = float(10 ** rng.uniform(-8, -3))
        reference = RDPAccountant()
        reference.history = list(history)
        assert epsilon(AccountantState("rdp", history), delta) == reference.get_epsilon(delta=delta)
