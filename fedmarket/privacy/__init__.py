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

# The Opacus wiring loads on first use: accounting and settings do not need Opacus' training
# machinery (torch.fx, torch.distributed, scipy.stats), and a run without DP never uses it.
_ENGINE_NAMES = frozenset({"PrivacyPlan", "PrivateTraining", "make_private", "plan_privacy"})


def __getattr__(name: str) -> object:
    if name in _ENGINE_NAMES:
        from fedmarket.privacy import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'fedmarket.privacy' has no attribute {name!r}")


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
