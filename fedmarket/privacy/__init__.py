"""Differential privacy: settings, accounting that survives rounds, and the Opacus wiring."""

from fedmarket.privacy.accounting import (
    AccountantState,
    calibrate_noise,
    epsilon,
    epsilon_after,
    sample_rate,
    steps_per_epoch,
)
from fedmarket.privacy.config import ACCOUNTANTS, PrivacySettings, default_delta
from fedmarket.privacy.engine import PrivacyPlan, PrivateTraining, make_private, plan_privacy

__all__ = [
    "ACCOUNTANTS",
    "AccountantState",
    "PrivacyPlan",
    "PrivacySettings",
    "PrivateTraining",
    "calibrate_noise",
    "default_delta",
    "epsilon",
    "epsilon_after",
    "make_private",
    "plan_privacy",
    "sample_rate",
    "steps_per_epoch",
]
