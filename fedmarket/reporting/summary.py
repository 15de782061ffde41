"""summary.json: the federated result joined with the centralised reference, and what a
run that is incomplete lacks, in sentences."""

from __future__ import annotations

import math
import shlex
from collections.abc import Mapping
from typing import Any

from fedmarket.centralised import CentralisedResult
from fedmarket.config import DEFAULTS, RunConfig, format_overrides
from fedmarket.marketing import THRESHOLD_RULE
from fedmarket.metrics import ONE_TEST_SET_KEYS
from fedmarket.rundir import json_safe

# Settings a run without DP ignores, and paths that belong to the run, not to its recipe.
_NOT_IN_THE_NO_DP_RUN = frozenset(
    {
        "dp",
        "target-epsilon",
        "noise-multiplier",
        "max-grad-norm",
        "delta",
        "accountant",
        "central-noise-multiplier",
        "central-clipping-norm",
        "data-dir",
        "out-dir",
        "state-dir",
    }
)


def privacy_cost_command(config: Mapping[str, Any]) -> str | None:
    """The command that trains this run again without DP on the same data, or None for a
    run that has no DP.

    The main job does not train that reference (it would double its cost), so the report
    hands the reader the exact command instead: only the settings that differ from the
    defaults, plus ``dp='none'``, as ``fedmarket simulate --run-config`` reads them.
    """
    if config.get("dp", "none") == "none":
        return None
    same = {
        k: v
        for k, v in config.items()
        if k in DEFAULTS and k not in _NOT_IN_THE_NO_DP_RUN and v != DEFAULTS[k]
    }
    data = f" --data {shlex.quote(str(config['data-dir']))}" if config.get("data-dir") else ""
    return f'fedmarket simulate{data} --run-config "{format_overrides({"dp": "none", **same})}"'


def guarantee_in_words(cfg: RunConfig, epsilon: dict[str, Any] | None, delta: float | None) -> str:
    """The guarantee a run gives, with its unit: a DPO reads this, not the settings."""
    if cfg.dp == "client":
        eps = epsilon.get("max") if epsilon else None
        spent = f"at most epsilon = {eps:.3g}" if eps is not None else "no epsilon spent yet"
        return (
            f"Customer-level (epsilon, delta)-DP at each retailer: Opacus DP-SGD (clip "
            f"{cfg.max_grad_norm}, {cfg.accountant.upper()} accountant) with each customer one "
            f"example; every client spent {spent}, delta = {delta:.3g}, cumulative over all "
            "rounds. "
            "It bounds what the shared model updates reveal about any one customer."
        )
    if cfg.dp == "central":
        eps = epsilon.get("max") if epsilon else None
        shown = f"{eps:.3g}" if eps is not None else "n/a"
        return (
            f"Retailer-level DP at the server (Flower server-side fixed clipping, clip "
            f"{cfg.central_clipping_norm}, noise multiplier {cfg.central_noise_multiplier}): "
            f"epsilon = {shown}, delta = {delta:.3g} for a whole retailer's contribution, "
            "assuming a trusted server (it sees unnoised updates)."
        )
    return (
        "No differential privacy: the model updates carry no formal guarantee. Customer ids "
        "were pseudonymised and quasi-identifiers k-anonymised, which is not DP."
    )


def combined_epsilon(training: float | None, anchor: dict[str, Any] | None) -> float | None:
    """What a retailer that answers both the training and the anchor spends (basic
    composition: the epsilons add); None when the anchor spent nothing or training is
    unknown."""
    eps = (anchor or {}).get("epsilon")
    if eps is None or training is None:
        return None
    return float(training) + float(eps)


def anchor_privacy_words(
    anchor: dict[str, Any] | None, training_epsilon: float | None, dp: str = "client"
) -> str:
    """What the BG/NBD anchor adds to the run's guarantee ('' without an anchor, or in a run
    without DP): under client DP its fit is a second release about the same customers, so
    the epsilons add; under central DP it is not covered by the run's guarantee."""
    if not anchor or "test" not in anchor or dp == "none":
        return ""
    if not anchor.get("dp"):
        return (
            "The BG/NBD anchor is fitted from each retailer's exact log-likelihood sums and "
            "gradients, without noise: its row is not DP, a reference a consortium would "
            "compute only under a separate agreement."
        )
    total = combined_epsilon(training_epsilon, anchor)
    both = f", at most epsilon = {total:.3g}" if total is not None else ""
    return (
        f"The BG/NBD anchor is fitted under its own client DP (epsilon = "
        f"{anchor['epsilon']:.3g}, delta = {anchor['delta']:.3g} per retailer, clipped and "
        "noised log-likelihood sums), spent on top of the training's: a retailer that "
        f"answers both spends both{both}, delta = {2 * anchor['delta']:.3g} "
        "(basic composition)."
    )


def run_problems(
    federated: dict[str, Any],
    centralised_error: str | None,
    anchor: dict[str, Any] | None = None,
    retailers: dict[str, Any] | None = None,
) -> list[str]:
    """What makes a run incomplete, one sentence each (empty for a complete run)."""
    problems = []
    skipped = federated.get("skipped_rounds") or []
    if skipped:
        problems.append(
            f"round(s) {', '.join(map(str, skipped))} were not aggregated: fewer valid "
            "train replies than min-train-replies (see rounds.csv and the log)"
        )
    never = (federated.get("participation") or {}).get("never") or []
    if never:
        problems.append(
            f"client(s) {', '.join(map(str, never))} never trained successfully; their "
            "customers are not in the federated model (see the log for their errors)"
        )
    if centralised_error is not None:
        problems.append(f"the centralised reference failed: {centralised_error}")
    if anchor and "failed" in anchor:
        problems.append(f"the BG/NBD anchor failed: {anchor['failed']} (see log.txt)")
    status = str((retailers or {}).get("local_only", ""))
    if status.startswith("failed"):
        problems.append(f"the local-only models {status} (see log.txt)")
    if retailers and "failed" in retailers:
        problems.append(f"the per-retailer comparison failed: {retailers['failed']}")
    return problems


def build_summary(
    cfg: RunConfig,
    federated: dict[str, Any],
    centralised: CentralisedResult | None,
    *,
    centralised_error: str | None = None,
    anchor: dict[str, Any] | None = None,
    retailers: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """summary.json: one honest comparison on the same test customers, for programs; the
    report renders it for people. ``anchor``: the BG/NBD anchor's block
    (``RunAnchor.to_dict``, or ``{"skipped": why}`` / ``{"failed": why}``), None without.
    ``retailers``: each retailer's own test customers, federated against local-only
    (``fedmarket.reporting.retailers``), None without."""
    training_eps = (federated.get("epsilon") or {}).get("max")
    if anchor and anchor.get("dp"):
        anchor = {**anchor, "combined_epsilon": combined_epsilon(training_eps, anchor)}
    privacy = guarantee_in_words(cfg, federated.get("epsilon"), federated.get("delta"))
    if extra := anchor_privacy_words(anchor, training_eps, cfg.dp):
        privacy = f"{privacy} {extra}"
    summary: dict[str, Any] = {
        "config": cfg.to_flower(),
        "federated": federated,
        "centralised": {"failed": centralised_error} if centralised_error else None,
        "delta": federated.get("delta"),
        "gap": None,
        "privacy": privacy,
        "problems": run_problems(federated, centralised_error, anchor, retailers),
        "anchor": anchor,
        "threshold_rule": THRESHOLD_RULE,
        "privacy_cost_command": privacy_cost_command(cfg.to_flower()),
        "retailers": retailers,
    }
    if centralised is not None:
        cen = centralised.to_dict()
        summary["centralised"] = {
            "test": cen["test"],
            "wall_s": cen["wall_s"],
            "threads": cen.get("threads"),  # torch's, so a slow reference can be told apart
            "epochs": cen["epochs_run"],
            "epsilon": cen["epsilon"],
            "delta": cen["delta"],
            "noise_multiplier": cen["noise_multiplier"],
            "n_train": cen["n_train"],
            "n_test": cen["n_test"],
        }
        summary["gap"] = gap(federated.get("test") or {}, cen["test"] or {})
    return json_safe(summary)


def gap(fed: dict[str, Any], cen: dict[str, Any]) -> dict[str, float | None]:
    """Federated minus centralised for every metric both have (None where not finite); not
    for intervals and counts (``ONE_TEST_SET_KEYS``), whose difference means nothing."""
    out = {}
    for key, value in fed.items():
        if key in ONE_TEST_SET_KEYS:
            continue
        other = cen.get(key)
        if isinstance(value, int | float) and isinstance(other, int | float):
            diff = float(value) - float(other)
            out[key] = diff if math.isfinite(diff) else None
    return out
