"""The report's sentences that depend on the run's settings."""

from __future__ import annotations

from fedmarket.reporting.words import chance_warning


def _summary(dp: str, federated: float, centralised: float) -> dict:
    return {
        "config": {"task": "purchase", "dp": dp},
        "federated": {"test": {"roc_auc": federated}},
        "centralised": {"test": {"roc_auc": centralised}},
    }


def test_chance_warning_blames_dp_noise_only_under_dp() -> None:
    """A run without DP was told its data was too small "for the noise DP adds"."""
    plain = chance_warning(_summary("none", 0.48, 0.81))
    assert plain is not None and plain.startswith("Caution: federated ROC-AUC 0.48,")
    assert "Too few customers or buyers, or too little training" in plain
    assert "DP" not in plain
    private = chance_warning(_summary("client", 0.45, 0.5))
    assert private is not None and "federated ROC-AUC 0.45 and centralised ROC-AUC 0.5" in private
    assert "for the noise DP adds" in private
    assert chance_warning(_summary("none", 0.7, 0.8)) is None
