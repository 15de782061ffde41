"""The run directory a person reads: summary.json, report.md and the plots.

``rounds.csv``, ``federated.json``, ``config.json`` and checkpoints are written while the
run goes (fedmarket.federated.run_log); this module joins them with the centralised
reference into one honest comparison on the same test customers.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from matplotlib.ticker import MaxNLocator

from fedmarket import plots
from fedmarket.centralised import CentralisedResult
from fedmarket.config import RunConfig
from fedmarket.rundir import RunDir, json_safe, write_json
from fedmarket.tasks import get_task

REPORT_KEYS = (
    "roc_auc",
    "pr_auc",
    "f1",
    "accuracy",
    "precision",
    "recall",
    "log_loss",
    "lift_at_1",
    "lift_at_5",
    "lift_at_10",
    "lift_at_20",
    "mae",
    "rmse",
    "r2",
    "mape",
)


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
    lines += ["## Privacy", "", summary["privacy"], ""]
    lines += [
        "## Federated versus centralised",
        "",
        "| metric | federated | centralised | gap (fed - cen) |",
        "|---|---|---|---|",
    ]
    fed_test, cen_test = fed.get("test") or {}, (cen or {}).get("test") or {}
    for key in REPORT_KEYS:
        if key in fed_test or key in cen_test:
            lines.append(
                f"| {key} | {_num(fed_test.get(key))} | {_num(cen_test.get(key))} | "
                f"{_num((summary.get('gap') or {}).get(key))} |"
            )
    lines += [
        "",
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


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
