"""report.md from hand-made summaries: the three answers in words, with numbers computed by
hand, and the privacy-cost command a reader can run."""

from __future__ import annotations

from typing import Any

from fedmarket.config import RunConfig, parse_overrides
from fedmarket.reporting import privacy_cost_command, render_report


def row(k: float, n_targeted: int, conversions: float, n: int = 1000, buyers: int = 120) -> dict:
    return {
        "k": k,
        "n_targeted": n_targeted,
        "conversions": conversions,
        "conversion_rate": conversions / n_targeted,
        "base_rate": buyers / n,
        "lift": (conversions / n_targeted) / (buyers / n),
        "capture_rate": conversions / buyers,
    }


# 1000 test customers, 120 buyers (base rate 12 %). Federated top 10 %: 100 contacted, 48
# buy: 48 % conversion, 48 / 120 = 40 % of buyers, 0.48 / 0.12 = 4.0x random.
FED_TEST = {
    "roc_auc": 0.71,
    "pr_auc": 0.35,
    "log_loss": 0.33,
    "accuracy": 0.879,
    "precision": 1.0,
    "recall": 1 / 120,
    "f1": 2 / 121,
    "predicted_positive_rate": 0.001,  # one customer above 0.5
    "n": 1000,
    "base_rate": 0.12,
    "precision_at_10": 0.48,
    "recall_at_10": 0.4,
    "f1_at_10": 2 * 0.48 * 0.4 / 0.88,
    "lift_at_10": 4.0,
    "capture_at_10": 0.4,
    "lift_table": [row(0.01, 10, 6), row(0.05, 50, 30), row(0.10, 100, 48), row(0.20, 200, 72)],
}
CEN_TEST = {
    **FED_TEST,
    "roc_auc": 0.74,
    "accuracy": 0.88,
    "predicted_positive_rate": 0.0,
    "lift_table": [row(0.10, 100, 54)],
}


def summary(dp: str = "client", **settings: Any) -> dict[str, Any]:
    cfg = RunConfig.from_mapping({"dp": dp, **settings}).to_flower()
    return {
        "config": cfg,
        "federated": {
            "test": dict(FED_TEST),  # copies: a test that changes a number changes only its own
            "epsilon": {"max": 7.95, "per_client": {"0": 7.95}} if dp != "none" else None,
        },
        "centralised": {"test": dict(CEN_TEST), "wall_s": 3.0, "epsilon": 8.0, "delta": 1e-5},
        "delta": 1e-5 if dp != "none" else None,
        "gap": {"roc_auc": 0.71 - 0.74},
        "privacy": "the guarantee in words",
        "problems": [],
    }


def test_the_three_answers_come_first_in_words() -> None:
    report = render_report(summary(), [], [])
    short = report.index("## In short")
    assert short < report.index("## Federated versus centralised")
    assert (
        "- Federation costs 0.03 ROC-AUC at the same privacy settings: federated 0.71 against "
        "centralised 0.74 on the same test customers; contacting the top 10%, the federated "
        "model reaches 40% of the buyers against 45% (lift 4.0x against 4.5x)." in report
    )
    assert "Caution" not in report
    assert (
        "- Targeting with the federated model: contacting the top 10% (100 customers) reaches "
        "40% of the buyers (capture rate); 48% of them buy against a 12% base rate, 4.0x random."
    ) in report
    privacy = "- Privacy: customer-level DP at each retailer, at most epsilon 7.95, delta 1e-05"
    assert privacy in report


def test_a_sentence_per_k_for_each_model() -> None:
    report = render_report(summary(), [], [])
    # Federated top 1 %: 10 contacted, 6 buy: 60 %, 6 / 120 = 5 % of buyers, 0.6 / 0.12 = 5x.
    assert (
        "- contacting the top 1% (10 customers) reaches 5% of the buyers (capture rate); 60% "
        "of them buy against a 12% base rate, 5.0x random." in report
    )
    # Top 20 %: 200 contacted, 72 buy: 36 %, 72 / 120 = 60 %, 0.36 / 0.12 = 3x.
    assert "top 20% (200 customers) reaches 60% of the buyers (capture rate); 36% of" in report
    # Centralised top 10 %: 54 of 100 buy: 54 / 120 = 45 % of buyers, 0.54 / 0.12 = 4.5x.
    centralised = report[report.index("The centralised model:") :]
    assert "reaches 45% of the buyers (capture rate); 54% of them buy against a 12% " in centralised
    assert "4.5x random." in centralised


def test_threshold_free_first_then_the_cut_then_half_with_a_warning() -> None:
    report = render_report(summary(), [], [])
    free = report.index("| roc_auc | 0.71 | 0.74 | -0.03 |")
    cut = report.index("| precision_at_10 | 0.48 | 0.48 | - |")
    half = report.index("| f1 | 0.01653 | 0.01653 | - |")
    assert free < report.index("Precision, recall and F1 at the top-10% cut: the 10% of test") < cut
    assert cut < report.index("At the fixed threshold 0.5, for reference only") < half
    assert "(customers predicted buyers: federated 1 of 1000, centralised 0 of 1000)" in report
    # Base rate 0.12: "no purchase" for everyone is right for 88 % of customers.
    assert (
        "Federated accuracy 0.879; centralised accuracy 0.88, against 0.88 for predicting "
        "'no purchase' for everyone." in report
    )


def test_the_privacy_cost_command_repeats_the_run_without_dp() -> None:
    settings = {"model": "lstm", "num-server-rounds": 5, "target-epsilon": 4.0}
    command = privacy_cost_command(
        RunConfig.from_mapping({**settings, "data-dir": "/data/my retailers"}).to_flower()
    )
    assert command == (
        "fedmarket simulate --data '/data/my retailers' "
        "--run-config \"dp='none' num-server-rounds=5 model='lstm'\""
    )
    # What it hands --run-config is a valid run config: the same run, without DP.
    overrides = parse_overrides(command.split('--run-config "')[1].rstrip('"'))
    assert RunConfig.from_mapping(overrides).dp == "none"
    report = render_report(summary(**settings), [], [])
    no_data = "fedmarket simulate --run-config \"dp='none' num-server-rounds=5 model='lstm'\""
    assert f"what it costs is not measured by this run: `{no_data}` trains the same" in report
    assert f"compare the tables:\n\n    {no_data}\n" in report


def test_a_run_without_dp_says_it_has_no_guarantee() -> None:
    assert privacy_cost_command(RunConfig.from_mapping({"dp": "none"}).to_flower()) is None
    report = render_report(summary("none"), [], [])
    assert "- Privacy: this run has no privacy guarantee (dp = 'none')." in report
    assert "fedmarket simulate" not in report


def test_incomplete_runs_and_missing_references_are_said_first() -> None:
    s = summary() | {"problems": ["round(s) 2 were not aggregated"], "centralised": None}
    report = render_report(s, [], [])
    assert report.index("## This run is incomplete") < report.index("## In short")
    assert (
        "- Federation: its cost is not measured, the centralised reference is missing "
        "(federated ROC-AUC 0.71)." in report
    )


def test_a_model_no_better_than_chance_is_said_first() -> None:
    """A tiny run scored below 0.5 used to read "Federation costs no ROC-AUC here"."""
    worse = summary()
    worse["federated"]["test"]["roc_auc"] = 0.43
    worse["centralised"]["test"]["roc_auc"] = 0.38
    report = render_report(worse, [], [])
    caution = report.index("- Caution: federated ROC-AUC 0.43 and centralised ROC-AUC 0.38, no")
    assert caution < report.index("- Federation costs no ROC-AUC here")


def test_what_leaves_a_retailer_names_the_simulation_and_the_person_at_k_retailers() -> None:
    report = " ".join(render_report(summary(), [], []).split())
    assert "never a customer's record, id or score" in report
    assert "the server also scores the pooled test customers (test_scores.csv" in report
    assert "at k retailers, the guarantee for that person is k times the epsilon" in report
    no_dp = summary()
    no_dp["config"]["dp"] = "none"
    assert "k times the epsilon" not in render_report(no_dp, [], [])


def test_the_label_and_its_count_unit_are_named_under_the_title() -> None:
    labels = {
        "count_unit": "customer-days",
        "y_count": "distinct UTC days with a purchase in the 273 days after the cut-off",
        "y_purchase": "1 if any purchase in the 273 days after the cut-off",
    }
    s = summary(task="purchase-count")
    s["federated"]["labels"] = labels
    report = render_report(s, [], [])
    sentence = (
        "Task purchase-count: how many purchases in the horizon (expected count); the label is "
        "distinct UTC days with a purchase in the 273 days after the cut-off (count unit: "
        "customer-days)."
    )
    assert sentence in report and report.index(sentence) < report.index("## In short")
    s = summary()
    s["federated"]["labels"] = labels
    assert (
        "Task purchase: will the customer buy in the horizon (probability); the label is 1 if "
        "any purchase in the 273 days after the cut-off." in render_report(s, [], [])
    )
    assert "Task purchase" not in render_report(summary(), [], [])  # data prepared before


def test_ranking_metrics_carry_intervals_and_a_small_test_set_is_said_up_front() -> None:
    counts = {"n_positive": 12, "n_negative": 988}
    fed = {**FED_TEST, **counts, "roc_auc_low": 0.6, "roc_auc_high": 0.82}
    fed |= {"pr_auc_low": 0.2, "pr_auc_high": 0.5}
    cen = {**CEN_TEST, **counts, "roc_auc_low": 0.63, "roc_auc_high": 0.85}
    s = summary()
    s["federated"]["test"], s["centralised"]["test"] = fed, cen
    report = render_report(s, [], [])
    assert "| roc_auc | 0.710 (0.600-0.820) | 0.740 (0.630-0.850) | -0.03 |" in report
    assert "| pr_auc | 0.350 (0.200-0.500) | 0.35 | - |" in report  # no interval: as before
    assert "In brackets: 95% intervals on these test customers (ROC-AUC: DeLong" in report
    assert "(every retailer's held-out customers: 1,000 customers, 12 buyers)" in report
    short = report[report.index("## In short") : report.index("## What the model is worth")]
    assert (
        "- Caution: the test set has only 12 buyers (fewer than 30): ROC-AUC and PR-AUC "
        "intervals are wide; do not rank models on it." in short
    )
    plenty = summary()
    plenty["federated"]["test"] = {**FED_TEST, "n_positive": 120, "n_negative": 880}
    assert "Caution" not in render_report(plenty, [], [])


# The BG/NBD anchor's block as simulate writes it (fedmarket.anchors.in_run.RunAnchor)
ANCHOR = {
    "model": "bg-nbd",
    "fitted": "federated fit: 3 retailers sent log-likelihood sums and gradients, no noise "
    "(not DP)",
    "retailers": 3,
    "dp": False,
    "epsilon": None,
    "delta": None,
    "fit_s": 0.21,
    "params": {"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.5},
    "note": "",
    "test": {**FED_TEST, "roc_auc": 0.686, "roc_auc_low": 0.65, "roc_auc_high": 0.72},
    "paired": {"difference": 0.024, "low": 0.01, "high": 0.038, "p_value": 0.0012},
}


def _short(report: str) -> str:
    return report[report.index("## In short") : report.index("## What the model is worth")]


def test_the_anchor_sentence_says_whether_the_federated_model_beats_it() -> None:
    s = summary("none") | {"anchor": dict(ANCHOR)}
    assert (
        "- The classical BG/NBD anchor, fitted across the retailers without pooling, reaches "
        "ROC-AUC 0.686 (0.650-0.720); the federated model 0.710, 0.024 above it (paired on "
        "the same customers: 0.024 (0.010-0.038), p = 0.0012).\n"
    ) in _short(render_report(s, [], []))
    # a loss is said as plainly, with the anchor's own client DP named
    better = {**ANCHOR, "dp": True, "epsilon": 8.0, "delta": 1e-5, "paired": None}
    better["test"] = {**ANCHOR["test"], "roc_auc": 0.75, "roc_auc_low": 0.72, "roc_auc_high": 0.78}
    s = summary() | {"anchor": better}
    assert (
        "- The classical BG/NBD anchor, fitted across the retailers without pooling under its "
        "own client DP (epsilon 8), reaches ROC-AUC 0.750 (0.720-0.780); the federated model "
        "0.710, 0.040 below it.\n" in _short(render_report(s, [], []))
    )


def test_the_threshold_free_table_has_a_bg_nbd_column_saying_how_it_was_fitted() -> None:
    report = render_report(summary() | {"anchor": dict(ANCHOR)}, [], [])
    header = "| metric | federated | centralised | gap (fed - cen) | BG/NBD anchor |"
    assert header in report
    assert "| roc_auc | 0.71 | 0.74 | -0.03 | 0.686 (0.650-0.720) |" in report
    assert "| pr_auc | 0.35 | 0.35 | - | 0.35 |" in report
    assert "| precision_at_10 | 0.48 | 0.48 | - |\n" in report  # the other tables: as before
    assert (
        "The BG/NBD anchor column: the classical customer-base model (Fader, Hardie and Lee "
        "2005) on each customer's purchase history alone, by a federated fit: 3 retailers sent "
        "log-likelihood sums and gradients, no noise (not DP); parameters r 0.25, alpha 4, "
        "a 0.8, b 2.5 (weeks), fitted in 0.21 s." in " ".join(report.split())
    )
    assert "Every model is measured on the same test customers" in report
    older = render_report(summary(), [], [])  # a summary of a run without the anchor
    assert "BG/NBD" not in older and "Both columns are measured on the same test" in older


def test_a_skipped_or_failed_anchor_is_one_line() -> None:
    why = "a customer table has no purchase history for BG/NBD or Pareto/NBD"
    report = render_report(summary() | {"anchor": {"skipped": why}}, [], [])
    assert f"- BG/NBD anchor: not fitted, {why}.\n" in _short(report)
    assert "BG/NBD anchor |" not in report
    failed = render_report(summary() | {"anchor": {"failed": "DataError: bad"}}, [], [])
    assert "- BG/NBD anchor: failed (DataError: bad); see log.txt.\n" in _short(failed)


def test_for_counts_the_anchor_is_compared_on_rmse_where_lower_is_better() -> None:
    s = summary("none", task="purchase-count")
    s["federated"]["test"] = {"rmse": 1.1, "mae": 0.5}
    note = "predicts customer-days but the labels count transactions"
    s["anchor"] = {**ANCHOR, "test": {"rmse": 1.23, "mae": 0.6}, "paired": None, "note": note}
    report = render_report(s, [], [])
    assert (
        "- The classical BG/NBD anchor, fitted across the retailers without pooling, reaches "
        "RMSE 1.23; the federated model 1.100, 0.130 below it (better: lower is better).\n"
    ) in _short(report)
    assert "| rmse | 1.1 | - | - | 1.23 |" in report
    assert f"fitted in 0.21 s. Note: it {note}." in " ".join(report.split())
    s["federated"]["test"]["rmse"] = 1.5
    assert "the federated model 1.500, 0.270 above it (worse: lower is better)." in (
        render_report(s, [], [])
    )
