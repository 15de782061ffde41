"""The sentences a report says: what federation, privacy and the model are worth, each in
words a marketing lead and a DPO read without the tables."""

from __future__ import annotations

import math
from typing import Any

from fedmarket.intervals import metric_cell, report_warning, with_interval
from fedmarket.marketing import TARGETING_K
from fedmarket.reporting.summary import privacy_cost_command
from fedmarket.tasks import get_task

LABELS = {"roc_auc": "ROC-AUC", "pr_auc": "PR-AUC", "rmse": "RMSE", "mae": "MAE"}


def tests(summary: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(federated, centralised) test metrics, empty where a model is missing."""
    return (summary["federated"].get("test") or {}), (
        (summary["centralised"] or {}).get("test") or {}
    )


def federation_sentence(summary: dict[str, Any]) -> str:
    """What federation costs in the task's ranking metric, against the centralised reference
    trained with the same model and privacy settings on the pooled data."""
    key, higher_is_better = get_task(summary["config"]["task"]).primary_metric
    label = LABELS.get(key, key)
    fed, cen = (test.get(key) for test in tests(summary))
    if not finite(fed) or not finite(cen):
        why = "failed" if (summary["centralised"] or {}).get("failed") else "is missing"
        return (
            f"Federation: its cost is not measured, the centralised reference {why} "
            f"(federated {label} {num(fed)})."
        )
    cost = (cen - fed) if higher_is_better else (fed - cen)
    costs = f"costs {cost:.3g} {label}" if cost > 0 else f"costs no {label} here"
    return (
        f"Federation {costs} at the same privacy settings: federated {fed:.3g} against "
        f"centralised {cen:.3g} on the same test customers{_in_campaign_terms(summary)}."
    )


def anchor_test(summary: dict[str, Any]) -> dict[str, Any]:
    """The BG/NBD anchor's test metrics, empty where it was skipped, failed or not run."""
    return (summary.get("anchor") or {}).get("test") or {}


def anchor_sentence(summary: dict[str, Any]) -> str | None:
    """The federated model against the classical BG/NBD anchor on the task's primary metric,
    with the paired difference where the run computed it: a gain over a closed-form model
    of four parameters is what the sequence model must show, and a loss is said as plainly.
    None for a run without an anchor (summaries of older runs)."""
    anchor = summary.get("anchor")
    if not anchor:
        return None
    if "skipped" in anchor:
        return f"BG/NBD anchor: not fitted, {anchor['skipped']}."
    if "failed" in anchor:
        return f"BG/NBD anchor: failed ({anchor['failed']}); see log.txt."
    key, higher_is_better = get_task(summary["config"]["task"]).primary_metric
    label = LABELS.get(key, key)
    fed, mine = tests(summary)[0].get(key), anchor_test(summary).get(key)
    dp = (
        f" under its own client DP (epsilon {anchor['epsilon']:.3g})"
        if anchor.get("dp") and finite(anchor.get("epsilon"))
        else ""
    )
    text = (
        f"The classical BG/NBD anchor, fitted across the retailers without pooling{dp}, "
        f"reaches {label} {cell(anchor_test(summary), key)}"
    )
    if not finite(fed) or not finite(mine):
        return f"{text}; no comparison, a model has no {label} on these customers."
    diff = fed - mine
    if round(diff, 3) == 0:
        where = "the same as it to 3 decimals"
    else:
        where = f"{abs(diff):.3f} {'above' if diff > 0 else 'below'} it"
        if not higher_is_better:
            where += f" ({'worse' if diff > 0 else 'better'}: lower is better)"
    return f"{text}; the federated model {fed:.3f}, {where}{_paired(anchor.get('paired'))}."


def _paired(paired: dict[str, Any] | None) -> str:
    """`` (paired on the same customers: 0.025 (0.010-0.040), p = 0.001)``: federated minus
    anchor with its interval (DeLong's paired test), '' where the run did not compute it."""
    if not paired or not all(finite(paired.get(k)) for k in ("difference", "low", "high")):
        return ""
    diff = with_interval(paired["difference"], paired["low"], paired["high"])
    return f" (paired on the same customers: {diff}, p = {paired['p_value']:.2g})"


def _in_campaign_terms(summary: dict[str, Any]) -> str:
    """The same gap as a campaign sees it, at the top-k cut: a small ROC-AUC difference can
    be a large share of buyers missed."""
    fed, cen = (lift_rows(test).get(round(TARGETING_K, 9)) for test in tests(summary))
    if fed is None or cen is None:
        return ""
    positives = get_task(summary["config"]["task"]).positives
    return (
        f"; contacting the top {pct(TARGETING_K)}, the federated model reaches "
        f"{pct(fed['capture_rate'])} of the {positives} against {pct(cen['capture_rate'])} "
        f"(lift {fed['lift']:.1f}x against {cen['lift']:.1f}x)"
    )


def chance_warning(summary: dict[str, Any]) -> str | None:
    """A model that ranks no better than chance makes every other sentence meaningless:
    said first, rather than reported as a cost of 0.05 ROC-AUC."""
    key, _ = get_task(summary["config"]["task"]).primary_metric
    if key != "roc_auc":
        return None
    below = [
        f"{name} {LABELS[key]} {test[key]:.3g}"
        for name, test in zip(("federated", "centralised"), tests(summary), strict=True)
        if finite(test.get(key)) and test[key] <= 0.5
    ]
    if not below:
        return None
    few = (
        "Too few customers or buyers"
        if summary["config"].get("dp", "none") == "none"
        else "Too few customers or buyers for the noise DP adds"
    )
    return (
        f"Caution: {' and '.join(below)}, no better than ranking customers at random (0.5); "
        f"the comparisons below say nothing about federation or privacy. {few}, or too "
        "little training: use more data or more rounds."
    )


def small_test_caution(summary: dict[str, Any]) -> str | None:
    """Too few buyers (or non-buyers) among the test customers make every ranking metric,
    and so every comparison below, mostly chance: said up front, with the counts."""
    for test in tests(summary):  # both models are scored on the same test customers
        if "n_positive" in test and "n_negative" in test:
            warning = report_warning(test)
            return f"Caution: {warning}." if warning else None
    return None


def test_customers(summary: dict[str, Any]) -> str:
    """``1,000 customers, 120 buyers``: what the tables are measured on ('' if unknown)."""
    positives = get_task(summary["config"]["task"]).positives
    for test in tests(summary):
        if finite(test.get("n")) and finite(test.get("n_positive")):
            return f"{int(test['n']):,} customers, {int(test['n_positive']):,} {positives}"
    return ""


def cell(test: dict[str, Any], key: str) -> str:
    """A metrics-table cell: ``0.812 (0.791-0.833)`` for a metric with its 95 % interval,
    the number alone (``num``) otherwise."""
    return metric_cell(test, key, num)


def privacy_sentence(summary: dict[str, Any]) -> str:
    """The guarantee in one clause and how to measure its cost: a run measures the cost of
    privacy only against a non-private reference, which the main job does not train."""
    cfg = summary["config"]
    if cfg["dp"] == "none":
        return "Privacy: this run has no privacy guarantee (dp = 'none')."
    eps = (summary["federated"].get("epsilon") or {}).get("max")
    eps_words = f"epsilon {eps:.3g}" if finite(eps) else "no epsilon spent yet"
    delta = summary.get("delta")
    delta_words = f", delta {delta:.3g}" if finite(delta) else ""
    who = (
        "customer-level DP at each retailer, at most"
        if cfg["dp"] == "client"
        else "retailer-level DP at the server,"
    )
    return (
        f"Privacy: {who} {eps_words}{delta_words}; what it costs is not measured by this "
        f"run: `{privacy_cost_command(cfg)}` trains the same run without DP on the same data."
    )


def label_sentence(summary: dict[str, Any]) -> str | None:
    """What the task predicts, in the prepared data's own words (the count unit of
    purchase-count: transactions, customer-days or periods); None for data prepared before
    the manifest said so."""
    labels = (summary.get("federated") or {}).get("labels")
    if not labels:
        return None
    task = get_task(summary["config"]["task"])
    meaning = labels.get(task.target)
    if not meaning:
        return None
    unit = f" (count unit: {labels['count_unit']})" if task.target == "y_count" else ""
    return f"Task {task.name}: {task.description}; the label is {meaning}{unit}."


def what_leaves_a_retailer(summary: dict[str, Any]) -> str:
    """What crosses from a retailer, and where this run differs from a deployment: a
    simulation's server scores the pooled test customers, which a deployment's never holds."""
    text = (
        "What leaves a retailer in a deployment: only model weights and aggregate metrics "
        "(losses, ROC-AUC, customer counts), never a customer's record, id or score; customer "
        "ids are pseudonymised on the retailer's side before training."
    )
    if summary["federated"].get("test"):
        text += (
            " In this simulation one machine holds every retailer's data, and the server also "
            "scores the pooled test customers (test_scores.csv: a label and a score per "
            "customer, by pseudonym, never a raw id), which a deployment's server never sees."
        )
    if summary["config"]["dp"] == "client":
        text += (
            " A person who shops at several retailers is a separate customer at each: at k "
            "retailers, the guarantee for that person is k times the epsilon above "
            "(composition). Epsilon 1 or below is a strong guarantee; 8, the default, a "
            "common but weaker one."
        )
    return text


def targeting_sentence(row: dict[str, Any], task: str = "purchase") -> str:
    """One lift-table row as a marketer reads it: how many are contacted, the share of all
    buyers (churners, for a retention campaign) they reach, how often they buy (churn), and
    how much better than random that is."""
    t = get_task(task)
    return (
        f"contacting the top {pct(row['k'])} ({row['n_targeted']} customers) reaches "
        f"{pct(row['capture_rate'])} of the {t.positives} (capture rate); "
        f"{pct(row['conversion_rate'])} of them {t.acts} against a {pct(row['base_rate'])} "
        f"base rate, {row['lift']:.1f}x random"
    )


def lift_rows(test: dict[str, Any]) -> dict[float, dict[str, Any]]:
    """A model's lift-table rows by k, those with numbers (no buyers: none)."""
    return {
        round(r["k"], 9): r
        for r in test.get("lift_table") or []
        if all(finite(r.get(f)) for f in ("lift", "capture_rate"))
    }


def targeting_in_short(summary: dict[str, Any]) -> str:
    for name, test in zip(("federated", "centralised"), tests(summary), strict=True):
        row = lift_rows(test).get(round(TARGETING_K, 9))
        if row is not None:
            return (
                f"Targeting with the {name} model: "
                f"{targeting_sentence(row, summary['config']['task'])}."
            )
    positives = get_task(summary["config"]["task"]).positives
    return (
        f"Targeting: not measured (the test customers hold no {positives}, or no model finished)."
    )


def half_note(fed_test: dict[str, Any], cen_test: dict[str, Any], task: str = "purchase") -> str:
    counts = [
        f"{name} {round(t['predicted_positive_rate'] * t['n'])} of {t['n']}"
        for name, t in (("federated", fed_test), ("centralised", cen_test))
        if finite(t.get("predicted_positive_rate")) and finite(t.get("n"))
    ]
    t = get_task(task)
    predicted = f" (customers predicted {t.positives}: {', '.join(counts)})" if counts else ""
    return (
        f"At the fixed threshold 0.5, for reference only: on a rare {t.classes[1]} it predicts "
        f"few or no {t.positives}{predicted}, so these say little about the model:"
    )


def accuracy_sentence(
    fed_test: dict[str, Any], cen_test: dict[str, Any], task: str = "purchase"
) -> str:
    """Accuracy next to what predicting the majority class for everyone scores: at a 13 %
    base rate 0.87 is what a model that never predicts a buyer gets."""
    base = fed_test.get("base_rate", cen_test.get("base_rate"))
    if not finite(base):
        return ""
    classes = get_task(task).classes
    majority, label = (1 - base, classes[0]) if base <= 0.5 else (base, classes[1])
    said = [
        f"{name} accuracy {t['accuracy']:.3g}"
        for name, t in (("federated", fed_test), ("centralised", cen_test))
        if finite(t.get("accuracy"))
    ]
    if not said:
        return ""
    text = "; ".join(said)
    majority_words = f"{majority:.3g} for predicting '{label}' for everyone"
    return f"{text[0].upper()}{text[1:]}, against {majority_words}."


def finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def pct(value: float) -> str:
    return f"{100 * value:.3g}%"


def num(value: Any) -> str:
    """A table cell: 4 significant digits, '-' for a number that is not there."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
