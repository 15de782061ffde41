"""A valuation's outputs: ``contribution.json`` (everything), ``contribution.md`` (a table and
the privacy cost in words) and ``contribution.png`` (each retailer's value with ±2 SE)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from fedmarket.rundir import RunDir, write_json

METHOD_WORDS = {
    "loo": "leave-one-out: v(all) - v(all but the retailer)",
    "shapley": "Monte-Carlo permutation Shapley (truncated, Ghorbani & Zou 2019)",
}


def write_outputs(files: RunDir, result: dict[str, Any]) -> dict[str, Path]:
    """Write the three files; their paths."""
    paths = {
        "json": write_json(files.contribution_json, result),
        "md": files.contribution_md,
        "png": files.contribution_figure,
    }
    files.contribution_md.write_text(markdown(result))
    bar_chart(result, files.contribution_figure)
    return paths


def markdown(result: dict[str, Any]) -> str:
    metric = result["metric"]
    lines = [
        "# Each retailer's contribution",
        "",
        f"Run: `{result['run_dir']}`. Method: {METHOD_WORDS[result['method']]}. Value of a "
        f"coalition: {metric} of its final global model on {result['test_set']}"
        + ("" if result["higher_is_better"] else f" (negated: lower {metric} is better)")
        + f"; the empty coalition: {result['empty_value']}. The whole consortium's "
        f"{metric}: {result['grand_metric']:.4f} (the run itself, not retrained).",
        "",
    ]
    if result["rounds"] != result["run_rounds"]:
        lines += [
            f"**Deviation from the run**: each coalition trained {result['rounds']} rounds "
            f"(--rounds), the run {result['run_rounds']}; the grand coalition is the run.",
            "",
        ]
    if not _beats_empty(result):
        lines += [
            f"**Caution**: the whole consortium's model ({metric} "
            f"{result['grand_metric']:.4f}) is no better than no model "
            f"({result['empty_metric']:.4f}); the values below say little about the retailers "
            "(too little data or training for the run's DP noise).",
            "",
        ]
    lines += [*_table(result), "", *_notes(result)]
    privacy = result.get("privacy") or {}
    lines += ["", "## Privacy", "", privacy.get("statement", ""), ""]
    if privacy.get("dp") == "client":
        lines += [
            "| retailer | run ε | coalition runs | valuation ε (sum) | total ε | composition |",
            "|---|---:|---:|---:|---:|---|",
        ]
        for pid, entry in privacy["retailers"].items():
            name = result["retailers"][pid]["name"]
            lines.append(
                f"| {name} | {_n(entry.get('run_epsilon'), '.3f')} | {entry['coalition_runs']} "
                f"| {_n(entry.get('valuation_epsilon_sum'), '.3f')} "
                f"| {_n(entry.get('total_epsilon'), '.3f')} | {entry.get('composition', '-')} |"
            )
        lines.append("")
        lines.append(f"ε at the customer-level δ = {_n(privacy.get('delta'), '.3g')}.")
    return "\n".join(lines) + "\n"


def _beats_empty(result: dict[str, Any]) -> bool:
    grand, empty = result["grand_metric"], result.get("empty_metric")
    if not (_finite(grand) and _finite(empty)):
        return True
    return grand > empty if result["higher_is_better"] else grand < empty


def _table(result: dict[str, Any]) -> list[str]:
    rows = ["| retailer | value | SE | ±2 SE |", "|---|---:|---:|---|"]
    for entry in result["retailers"].values():
        value, se = entry["value"], entry["se"]
        band = "-" if not _finite(se) else f"{value - 2 * se:.4f} to {value + 2 * se:.4f}"
        rows.append(f"| {entry['name']} | {_n(value)} | {_n(se)} | {band} |")
    return rows


def _notes(result: dict[str, Any]) -> list[str]:
    runs = result["coalition_runs"]
    notes = [
        f"Coalition runs: {runs['ok']} finished ({runs['trained_now']} trained in this call), "
        f"{result['coalition_wall_s']:.0f} s of training in all."
    ]
    if result["method"] == "loo":
        notes.append(
            "Leave-one-out trains each coalition once: its run-to-run noise (seed, DP noise) "
            "is not measured, so no standard error is given."
        )
    if result["method"] == "shapley":
        notes.append(
            f"Permutations: {result['permutations_used']} of {result['permutations']} "
            f"(seed {result['seed']}, truncation at {result['tolerance']:g} of the grand "
            f"value, {result['truncated_values']} coalition values skipped by it, "
            f"{result['failed_permutations']} left out for a failed run); SE = standard "
            "deviation of the marginal contributions / sqrt(permutations)."
        )
    if result["stopped_at_max_runs"]:
        notes.append(
            f"**Incomplete**: stopped at --max-runs {result['max_runs']}; run again (with a "
            "larger --max-runs) to continue from the recorded coalitions."
        )
    for failed in result["failed"]:
        notes.append(f"Coalition {failed['members']} failed: {failed['error']}")
    return notes


def bar_chart(result: dict[str, Any], path: Path) -> Path:
    """Each retailer's value, with ±2 SE error bars where the value is an estimate."""
    from fedmarket.plots import new_figure, save_figure, style

    entries = list(result["retailers"].values())
    names = [e["name"] for e in entries]
    values = [e["value"] if _finite(e["value"]) else 0.0 for e in entries]
    errors = [2 * e["se"] if _finite(e["se"]) else 0.0 for e in entries]
    with style():
        figure, ax = new_figure((max(4.0, 0.9 * len(names) + 2), 3.6))
        ax.bar(names, values, yerr=errors, capsize=4, color="C0")
        ax.axhline(0, color="0.3", linewidth=0.8)
        ax.set_ylabel(f"contribution to {result['metric']}")
        bars = " (±2 SE)" if any(errors) else ""
        ax.set_title(f"{result['method']}: value per retailer{bars}")
        ax.tick_params(axis="x", labelrotation=30)
        return save_figure(figure, path)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _n(value: Any, spec: str = ".4f") -> str:
    return format(value, spec) if _finite(value) else "-"
