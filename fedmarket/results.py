"""The run directory a person reads: summary.json, report.md and the plots.

``rounds.csv``, ``federated.json``, ``config.json`` and checkpoints are written while the
run goes (fedmarket.federated.run_log); this module joins them with the centralised
reference into one honest comparison on the same test customers.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from matplotlib.ticker import MaxNLocator

from fedmarket import plots
from fedmarket.centralised import CentralisedResult
from fedmarket.config import DEFAULTS, RunConfig, format_overrides
from fedmarket.marketing import DEFAULT_KS, TARGETING_K, THRESHOLD_RULE, at_key
from fedmarket.rundir import RunDir, json_safe, write_json
from fedmarket.tasks import get_task

# report.md's metric tables, in the order a reader should trust them: ranking metrics need
# no threshold; the top-k cut is the decision a campaign takes (marketing.THRESHOLD_RULE);
# 0.5 on a rare purchase predicts almost no buyers, so those come last, with a warning.
THRESHOLD_FREE_KEYS = ("roc_auc", "pr_auc", "log_loss", "mae", "rmse", "r2", "mape")
AT_THE_CUT_KEYS = (
    *(at_key(m, TARGETING_K) for m in ("precision", "recall", "f1")),
    *(at_key(m, k) for m in ("lift", "capture") for k in DEFAULT_KS),
)
AT_HALF_KEYS = ("accuracy", "precision", "recall", "f1")
REPORT_KEYS = (*THRESHOLD_FREE_KEYS, *AT_THE_CUT_KEYS, *AT_HALF_KEYS)

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
_LABELS = {"roc_auc": "ROC-AUC", "pr_auc": "PR-AUC", "rmse": "RMSE", "mae": "MAE"}


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


def run_problems(federated: dict[str, Any], centralised_error: str | None) -> list[str]:
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
    return problems


def build_summary(
    cfg: RunConfig,
    federated: dict[str, Any],
    centralised: CentralisedResult | None,
    *,
    centralised_error: str | None = None,
) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "config": cfg.to_flower(),
        "federated": federated,
        "centralised": {"failed": centralised_error} if centralised_error else None,
        "delta": federated.get("delta"),
        "gap": None,
        "privacy": guarantee_in_words(cfg, federated.get("epsilon"), federated.get("delta")),
        "problems": run_problems(federated, centralised_error),
        "threshold_rule": THRESHOLD_RULE,
        "privacy_cost_command": privacy_cost_command(cfg.to_flower()),
    }
    if centralised is not None:
        cen = centralised.to_dict()
        summary["centralised"] = {
            "test": cen["test"],
            "wall_s": cen["wall_s"],
            "epochs": cen["epochs_run"],
            "epsilon": cen["epsilon"],
            "delta": cen["delta"],
            "noise_multiplier": cen["noise_multiplier"],
            "n_train": cen["n_train"],
            "n_test": cen["n_test"],
        }
        summary["gap"] = _gap(federated.get("test") or {}, cen["test"] or {})
    return json_safe(summary)


def _gap(fed: dict[str, Any], cen: dict[str, Any]) -> dict[str, float | None]:
    out = {}
    for key, value in fed.items():
        other = cen.get(key)
        if isinstance(value, int | float) and isinstance(other, int | float):
            diff = float(value) - float(other)
            out[key] = diff if math.isfinite(diff) else None
    return out


def write_run_outputs(
    run_dir: Path,
    cfg: RunConfig,
    federated: dict[str, Any],
    centralised: CentralisedResult | None,
    *,
    centralised_error: str | None = None,
) -> dict[str, Path]:
    files = RunDir(run_dir)
    summary = build_summary(cfg, federated, centralised, centralised_error=centralised_error)
    paths = {"summary": write_json(files.summary, summary)}
    rounds = files.read_rounds()
    paths.update(_plots(run_dir, cfg, rounds, centralised))
    paths["report"] = files.report
    paths["report"].write_text(
        render_report(summary, rounds, [p.name for k, p in paths.items() if p.suffix == ".png"])
    )
    return paths


def _plots(
    run_dir: Path,
    cfg: RunConfig,
    rounds: list[dict[str, Any]],
    centralised: CentralisedResult | None,
) -> dict[str, Path]:
    key, _ = get_task(cfg.task).primary_metric
    series = [
        r for r in rounds if r.get(f"test_{key}") is not None or r.get(f"fed_{key}") is not None
    ]
    if not series:
        return {}
    with plots.style():
        figure, ax = plots.new_figure()
        for prefix, label in (
            ("test", "federated, global test set"),
            ("fed", "federated evaluation"),
        ):
            pts = [
                (r["round"], r[f"{prefix}_{key}"])
                for r in series
                if r.get(f"{prefix}_{key}") is not None
            ]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", markersize=3, label=label)
        if centralised is not None and centralised.test.get(key) is not None:
            ax.axhline(centralised.test[key], color="black", linestyle="--", label="centralised")
        ax.set(title=f"{cfg.model}: test {key} per round", xlabel="round", ylabel=key)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(loc="best")
        out = {"metric_per_round": plots.save_figure(figure, run_dir / f"{key}_per_round.png")}
    eps = [(r["round"], r["epsilon_max"]) for r in rounds if r.get("epsilon_max") is not None]
    if eps:
        with plots.style():
            figure, ax = plots.new_figure()
            ax.plot(*zip(*eps, strict=True), marker="o", markersize=3, label="max over clients")
            if cfg.dp == "client" and cfg.target_epsilon > 0:
                ax.axhline(cfg.target_epsilon, color="red", linestyle=":", label="target")
            ax.set(title="privacy spent (cumulative)", xlabel="round", ylabel="epsilon")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.legend(loc="best")
            out["epsilon"] = plots.save_figure(figure, run_dir / "epsilon_per_round.png")
    return out


def render_report(summary: dict[str, Any], rounds: list[dict[str, Any]], images: list[str]) -> str:
    """report.md: three answers first (what federation, privacy and the model are worth),
    then the tables they come from; a run that is incomplete says so before anything."""
    cfg, fed, cen = summary["config"], summary["federated"], summary["centralised"]
    lines = [
        f"# fedmarket run: {cfg['model']} / {cfg['task']}",
        "",
        f"{cfg['num-server-rounds']} rounds of {cfg['strategy']} with {cfg['local-epochs']} local "
        f"epoch(s); dp = {cfg['dp']}. Both columns are measured on the same test customers "
        "(every retailer's held-out customers).",
        "",
    ]
    problems = summary.get("problems") or []
    if problems:
        lines += ["## This run is incomplete", ""] + [f"- {p}" for p in problems] + [""]
    lines += [
        "## In short",
        "",
        f"- {federation_sentence(summary)}",
        f"- {privacy_sentence(summary)}",
        f"- {_targeting_in_short(summary)}",
        "",
    ]
    lines += _targeting_lines(summary)
    lines += ["## Privacy", "", summary["privacy"], "", _privacy_cost_words(summary), ""]
    lines += ["## Federated versus centralised", ""]
    lines += _metric_tables(summary)
    lines += [
        "| | federated | centralised |",
        "|---|---|---|",
        f"| wall time (s) | {_num(fed.get('wall_s'))} | {_num((cen or {}).get('wall_s'))} |",
        f"| epsilon | {_num((fed.get('epsilon') or {}).get('max'))} | "
        f"{_num((cen or {}).get('epsilon'))} |",
        f"| delta | {_num(fed.get('delta'))} | {_num((cen or {}).get('delta'))} |",
        "",
    ]
    if cen is None:
        lines += ["No centralised reference in this run (it needs the pooled data).", ""]
    lines += _per_client_lines(fed)
    failures = fed.get("failures") or {}
    lines += [
        "## Rounds",
        "",
        f"Failed replies: {failures.get('failed', 0)}, declined (budget): "
        f"{failures.get('declined', 0)}, timed out: {failures.get('timed_out', 0)}. "
        "Per-round numbers are in rounds.csv.",
        "",
    ]
    lines += [f"![{name}]({name})" for name in images]
    return "\n".join(lines) + "\n"


def _tests(summary: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    return (summary["federated"].get("test") or {}), (
        (summary["centralised"] or {}).get("test") or {}
    )


def federation_sentence(summary: dict[str, Any]) -> str:
    """What federation costs in the task's ranking metric, against the centralised reference
    trained with the same model and privacy settings on the pooled data."""
    key, higher_is_better = get_task(summary["config"]["task"]).primary_metric
    label = _LABELS.get(key, key)
    fed, cen = (test.get(key) for test in _tests(summary))
    if not _finite(fed) or not _finite(cen):
        why = "failed" if (summary["centralised"] or {}).get("failed") else "is missing"
        return (
            f"Federation: its cost is not measured, the centralised reference {why} "
            f"(federated {label} {_num(fed)})."
        )
    cost = (cen - fed) if higher_is_better else (fed - cen)
    costs = f"costs {cost:.3g} {label}" if cost > 0 else f"costs no {label} here"
    return (
        f"Federation {costs} at the same privacy settings: federated {fed:.3g} against "
        f"centralised {cen:.3g} on the same test customers."
    )


def privacy_sentence(summary: dict[str, Any]) -> str:
    """The guarantee in one clause and how to measure its cost: a run measures the cost of
    privacy only against a non-private reference, which the main job does not train."""
    cfg = summary["config"]
    if cfg["dp"] == "none":
        return "Privacy: this run has no privacy guarantee (dp = 'none')."
    eps = (summary["federated"].get("epsilon") or {}).get("max")
    eps_words = f"epsilon {eps:.3g}" if _finite(eps) else "no epsilon spent yet"
    delta = summary.get("delta")
    delta_words = f", delta {delta:.3g}" if _finite(delta) else ""
    who = (
        "customer-level DP at each retailer, at most"
        if cfg["dp"] == "client"
        else "retailer-level DP at the server,"
    )
    return (
        f"Privacy: {who} {eps_words}{delta_words}; what it costs is not measured by this "
        f"run: `{privacy_cost_command(cfg)}` trains the same run without DP on the same data."
    )


def _privacy_cost_words(summary: dict[str, Any]) -> str:
    command = privacy_cost_command(summary["config"])
    if command is None:
        return "This run has no privacy guarantee, so privacy costs it nothing to measure."
    return (
        "What privacy costs: this run has no non-private reference. Train one on the same "
        f"data with the same settings and compare the tables:\n\n    {command}\n\n"
        "or sweep epsilon with `fedmarket tradeoff --data DATA --out SWEEP --epsilons 1,4,16`."
    )


def targeting_sentence(row: dict[str, Any]) -> str:
    """One lift-table row as a marketer reads it: how many are contacted, the share of all
    buyers they reach, how often they buy, and how much better than random that is."""
    return (
        f"contacting the top {_pct(row['k'])} ({row['n_targeted']} customers) reaches "
        f"{_pct(row['capture_rate'])} of the buyers (capture rate); {_pct(row['conversion_rate'])} "
        f"of them buy against a {_pct(row['base_rate'])} base rate, {row['lift']:.1f}x random"
    )


def _rows(test: dict[str, Any]) -> dict[float, dict[str, Any]]:
    return {
        round(r["k"], 9): r
        for r in test.get("lift_table") or []
        if all(_finite(r.get(f)) for f in ("lift", "capture_rate"))
    }


def _targeting_in_short(summary: dict[str, Any]) -> str:
    for name, test in zip(("federated", "centralised"), _tests(summary), strict=True):
        row = _rows(test).get(round(TARGETING_K, 9))
        if row is not None:
            return f"Targeting with the {name} model: {targeting_sentence(row)}."
    return "Targeting: not measured (the test customers hold no buyers, or no model finished)."


def _targeting_lines(summary: dict[str, Any]) -> list[str]:
    lines = ["## What the model is worth for targeting", ""]
    for name, test in zip(("federated", "centralised"), _tests(summary), strict=True):
        rows = _rows(test)
        if rows:
            lines += [f"The {name} model:", ""]
            lines += [f"- {targeting_sentence(rows[k])}." for k in sorted(rows)]
            lines.append("")
    if len(lines) == 2:
        lines += ["Not measured: the test customers hold no buyers, or no model finished.", ""]
    return lines


def _metric_tables(summary: dict[str, Any]) -> list[str]:
    fed_test, cen_test = _tests(summary)
    gap = summary.get("gap") or {}

    def table(keys: tuple[str, ...]) -> list[str]:
        rows = [
            f"| {key} | {_num(fed_test.get(key))} | {_num(cen_test.get(key))} | "
            f"{_num(gap.get(key))} |"
            for key in keys
            if key in fed_test or key in cen_test
        ]
        header = ["| metric | federated | centralised | gap (fed - cen) |", "|---|---|---|---|"]
        return [*header, *rows, ""] if rows else []

    lines = []
    if free := table(THRESHOLD_FREE_KEYS):
        lines += ["Threshold-free (ranking and calibration):", "", *free]
    if cut := table(AT_THE_CUT_KEYS):
        rule = summary.get("threshold_rule") or THRESHOLD_RULE
        lines += [f"{rule} Lift and capture at each k:"]
        lines += ["", *cut]
    if half := table(AT_HALF_KEYS):
        lines += [_half_note(fed_test, cen_test), "", *half, _accuracy_sentence(fed_test, cen_test)]
        lines.append("")
    return lines


def _half_note(fed_test: dict[str, Any], cen_test: dict[str, Any]) -> str:
    counts = [
        f"{name} {round(t['predicted_positive_rate'] * t['n'])} of {t['n']}"
        for name, t in (("federated", fed_test), ("centralised", cen_test))
        if _finite(t.get("predicted_positive_rate")) and _finite(t.get("n"))
    ]
    predicted = f" (customers predicted buyers: {', '.join(counts)})" if counts else ""
    return (
        "At the fixed threshold 0.5, for reference only: on a rare purchase it predicts few "
        f"or no buyers{predicted}, so these say little about the model:"
    )


def _accuracy_sentence(fed_test: dict[str, Any], cen_test: dict[str, Any]) -> str:
    """Accuracy next to what predicting the majority class for everyone scores: at a 13 %
    base rate 0.87 is what a model that never predicts a buyer gets."""
    base = fed_test.get("base_rate", cen_test.get("base_rate"))
    if not _finite(base):
        return ""
    majority, label = (1 - base, "no purchase") if base <= 0.5 else (base, "purchase")
    said = [
        f"{name} accuracy {t['accuracy']:.3g}"
        for name, t in (("federated", fed_test), ("centralised", cen_test))
        if _finite(t.get("accuracy"))
    ]
    if not said:
        return ""
    text = "; ".join(said)
    majority_words = f"{majority:.3g} for predicting '{label}' for everyone"
    return f"{text[0].upper()}{text[1:]}, against {majority_words}."


def _per_client_lines(fed: dict[str, Any]) -> list[str]:
    """Per client: the rounds its update was aggregated in, and the epsilon it spent."""
    per_client = (fed.get("epsilon") or {}).get("per_client") or {}
    participation = fed.get("participation") or {}
    rounds = participation.get("rounds_aggregated") or {}
    clients = sorted({*per_client, *rounds, *map(str, participation.get("never") or [])}, key=int)
    if not clients:
        return []
    lines = ["## Per client", "", "| client | rounds aggregated | epsilon |", "|---|---|---|"]
    lines += [f"| {c} | {rounds.get(c, 0)} | {_num(per_client.get(c))} |" for c in clients]
    return [*lines, ""]


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _pct(value: float) -> str:
    return f"{100 * value:.3g}%"


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
