"""A sweep's outputs: tradeoff.csv, the summary over seeds, the plots, and tradeoff.md and
report.html (the same blocks, ``fedmarket.reporting``)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from fedmarket.experiments.tradeoff.points import SETTINGS, TEST_KEYS
from fedmarket.reporting.document import Block, Heading, Image, Paragraph, bullets, table
from fedmarket.reporting.html import to_html
from fedmarket.reporting.markdown import to_markdown

ATTACK_TPR_KEYS = ("attack_tpr_at_fpr_0.1%", "attack_tpr_at_fpr_1%")
# The per-point results after the privacy figures, in column order (all numeric).
_RESULTS = (
    *TEST_KEYS,
    "wall_s",
    "attack_auc",
    "attack_auc_ci_low",
    "attack_auc_ci_high",
    *ATTACK_TPR_KEYS,
    "attack_epsilon_lb",
    "attack_epsilon_point",
)
CSV_COLUMNS = (
    "setting",
    "target_epsilon",
    "seed",
    "status",
    "epsilon",
    "delta",
    "unit",
    "noise_multiplier",
    *_RESULTS,
    "point_wall_s",
    "run",
    "error",
)
NUMERIC = ("epsilon", "delta", "noise_multiplier", *_RESULTS)
LABELS = {
    "federated-client-dp": "federated, DP-SGD per retailer (customer-level)",
    "federated-central-dp": "federated, central DP (retailer-level)",
    "centralised-dp": "centralised DP-SGD (customer-level)",
}


def load_table(csv_path: Path) -> Any:
    """tradeoff.csv as a DataFrame with numeric columns (``inf`` stays infinite)."""
    import pandas as pd

    frame = pd.read_csv(csv_path)
    for column in NUMERIC:  # a column an older sweep did not write reads as missing
        frame[column] = pd.to_numeric(frame.get(column), errors="coerce")
    return frame


def summarise(frame: Any) -> Any:
    """Mean, standard deviation over seeds and count per (setting, target epsilon)."""
    import pandas as pd

    ok = frame[frame["status"] == "ok"]
    if ok.empty:
        return pd.DataFrame(columns=["setting", "target_epsilon", "n"])
    grouped = ok.groupby(["setting", "target_epsilon"], sort=True)
    stats = grouped[list(NUMERIC)].agg(["mean", "std"])
    stats.columns = [f"{metric}_{stat}" for metric, stat in stats.columns]
    stats["n"] = grouped.size()
    return stats.reset_index()


def write_outputs(out: Path, rows: list[dict[str, Any]]) -> dict[str, Path]:
    """tradeoff.csv (every row), tradeoff.png, attack_auc.png, and the summary with the plots
    as tradeoff.md and as a self-contained report.html."""
    import pandas as pd

    frame = pd.DataFrame(rows).reindex(columns=list(CSV_COLUMNS))
    paths = {"csv": out / "tradeoff.csv"}
    frame.to_csv(paths["csv"], index=False)
    frame = load_table(paths["csv"])
    summary = summarise(frame)
    sweep = json.loads((out / "sweep.json").read_text()) if (out / "sweep.json").is_file() else {}
    seeds = frame.loc[frame["status"] == "ok", "seed"].nunique()
    where = f" ({sweep.get('rounds', '?')} rounds, {seeds} seed{'s' * (seeds != 1)})"
    if "roc_auc_mean" in summary and summary["roc_auc_mean"].notna().any():
        paths["png"] = tradeoff_plot(
            summary,
            out / "tradeoff.png",
            "roc_auc",
            "test ROC-AUC",
            "Privacy/accuracy trade-off" + where,
            reference=_reference(summary),
        )
    if "attack_auc_mean" in summary and summary["attack_auc_mean"].notna().any():
        paths["attack_png"] = tradeoff_plot(
            summary,
            out / "attack_auc.png",
            "attack_auc",
            "membership attack ROC-AUC",
            "Loss-threshold membership inference" + where,
            reference=("random guessing", 0.5),
        )
    figures = [Image(paths[k].name, *FIGURES[k]) for k in FIGURES if k in paths]
    blocks = sweep_blocks(summary, frame, sweep, figures)
    paths["md"] = out / "tradeoff.md"
    paths["md"].write_text(to_markdown(blocks))
    paths["html"] = out / "report.html"
    paths["html"].write_text(to_html(blocks, out, title="fedmarket: privacy/accuracy trade-off"))
    return paths


# What each plot shows, in the words the reports print under it.
FIGURES = {
    "png": (
        "Accuracy against privacy",
        "Test ROC-AUC of each setting against the epsilon it spent (log scale); error bars "
        "one standard deviation over seeds. 'no DP' at the right is the same setting without "
        "privacy; the dashed line the centralised model without DP.",
    ),
    "attack_png": (
        "What a membership attack learns",
        "ROC-AUC of a loss-threshold membership-inference attack against epsilon: 0.5 is "
        "random guessing, so the closer to it, the less the model reveals whether a customer "
        "was among the training customers.",
    ),
}


def _reference(summary: Any) -> tuple[str, float] | None:
    match = summary[
        (summary["setting"] == "centralised-dp") & ~summary["target_epsilon"].map(math.isfinite)
    ]
    if match.empty or math.isnan(match["roc_auc_mean"].iloc[0]):
        return None
    return "centralised, no DP", float(match["roc_auc_mean"].iloc[0])


def tradeoff_plot(
    summary: Any,
    path: Path,
    metric: str,
    ylabel: str,
    title: str,
    *,
    reference: tuple[str, float] | None = None,
) -> Path:
    """``metric`` against epsilon spent (log axis), one line per setting, no DP at the right
    end. Error bars: one standard deviation over seeds or, for a point with one seed and a
    ``{metric}_ci_low/high`` interval (the attack's AUC), that interval."""
    from matplotlib.ticker import NullLocator

    from fedmarket import plots

    targets = sorted(t for t in summary["target_epsilon"].unique() if math.isfinite(t))
    x_nodp = (targets[-1] if targets else 1.0) * 3
    with plots.style():
        figure, ax = plots.new_figure((6.4, 4.2))
        for setting in SETTINGS:
            part = summary[summary["setting"] == setting].sort_values("target_epsilon")
            if part.empty or part[f"{metric}_mean"].isna().all():
                continue
            x = [
                x_nodp if not math.isfinite(t) else (e if e == e else t)  # e == e: not NaN
                for t, e in zip(part["target_epsilon"], part["epsilon_mean"], strict=True)
            ]
            y, err = list(part[f"{metric}_mean"]), _error_bars(part, metric)
            dp = [i for i, t in enumerate(part["target_epsilon"]) if math.isfinite(t)]
            line = ax.errorbar(
                [x[i] for i in dp],
                [y[i] for i in dp],
                yerr=[[err[0][i] for i in dp], [err[1][i] for i in dp]],
                marker="o",
                markersize=4,
                capsize=3,
                label=LABELS[setting],
            )
            color = line.lines[0].get_color()
            for i in (i for i in range(len(x)) if i not in dp):  # no DP: dotted, it is no epsilon
                ax.errorbar(
                    [x[i]],
                    [y[i]],
                    yerr=[[err[0][i]], [err[1][i]]],
                    marker="o",
                    markersize=4,
                    capsize=3,
                    color=color,
                )
                if dp:
                    ax.plot([x[dp[-1]], x[i]], [y[dp[-1]], y[i]], linestyle=":", color=color)
        if reference is not None:
            ax.axhline(reference[1], color="black", linestyle="--", linewidth=1, label=reference[0])
        ax.set_xscale("log")
        ax.set_xticks([*targets, x_nodp], [*(f"{t:g}" for t in targets), "no DP"])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set(title=title, xlabel="epsilon spent (log scale)", ylabel=ylabel)
        plots.legend_below(ax, ncols=2)  # inside, it hid the reference line and error bars
        return plots.save_figure(figure, path)


def _error_bars(part: Any, metric: str) -> tuple[list[float], list[float]]:
    """(below, above) each mean: the standard deviation, or the interval with one seed."""
    std = [0.0 if v != v else float(v) for v in part[f"{metric}_std"]]
    below, above = list(std), list(std)
    low, high = f"{metric}_ci_low_mean", f"{metric}_ci_high_mean"
    if low in part and high in part:
        rows = zip(part["n"], part[f"{metric}_mean"], part[low], part[high], strict=True)
        for i, (n, mean, lo, hi) in enumerate(rows):
            if n == 1 and lo == lo and hi == hi:
                below[i], above[i] = mean - lo, hi - mean
    return below, above


def sweep_blocks(
    summary: Any, frame: Any, sweep: dict[str, Any], figures: list[Image]
) -> list[Block]:
    """The summary table (means over seeds, ± one standard deviation for ROC-AUC), the
    points without a result, then the figures."""
    blocks: list[Block] = [
        Heading("Privacy/accuracy trade-off", 1),
        Paragraph(
            f"Data: {sweep.get('data', '?')}; {sweep.get('rounds', '?')} rounds (the centralised "
            f"runs train as many epochs); extra run config: `{sweep.get('run_config') or '-'}`. "
            "Epsilon is customer-level for DP-SGD and retailer-level for central DP; delta as "
            "listed. With one seed, ROC-AUC and PR-AUC carry their 95% interval on the test "
            "customers in brackets (DeLong; Boyd et al.'s logit interval), with more seeds "
            "ROC-AUC ± one standard deviation over seeds. The attack is the loss-threshold "
            "membership inference on equal numbers of training and held-out customers (with "
            "one seed, its AUC's 95% DeLong interval in brackets); its epsilon is a 95% lower "
            "bound."
        ),
        table(HEADER, [_cells(r) for _, r in summary.iterrows()]),
    ]
    if caution := _chance_caution(summary):
        blocks.insert(1, Paragraph(caution))
    bad = frame[frame["status"] != "ok"].drop_duplicates("run")
    if not bad.empty:
        blocks.append(Paragraph("Points without a result (re-run the sweep to retry them):"))
        blocks.append(
            bullets(
                [
                    f"{r['run']}: {r['status']}"
                    + (f" ({r['error']})" if r["error"] == r["error"] and r["error"] else "")
                    for _, r in bad.iterrows()
                ]
            )
        )
    if figures:
        blocks += [Heading("Figures"), *figures]
    return blocks


def _target(epsilon: float) -> str:
    return "no DP" if not math.isfinite(epsilon) else f"epsilon {epsilon:g}"


def _chance_caution(summary: Any) -> str | None:
    """Rows whose mean ROC-AUC is no better than random: on too little data, DP noise swamps
    the signal, and such a row says nothing about how epsilon trades against accuracy."""
    if summary.empty or "roc_auc_mean" not in summary:
        return None
    weak = summary[summary["roc_auc_mean"] <= 0.5]
    if weak.empty:
        return None
    names = [f"{r['setting']} at {_target(r['target_epsilon'])}" for _, r in weak.iterrows()]
    return (
        f"Caution: {len(names)} row(s) rank customers no better than random (mean ROC-AUC "
        f"<= 0.5): {', '.join(names)}. Too few customers or buyers for the noise DP adds, or "
        "too little training; compare epsilons on more data (the default retailers) or rounds."
    )


HEADER = (
    "setting",
    "target ε",
    "ε spent",
    "δ",
    "noise σ",
    "ROC-AUC",
    "PR-AUC",
    "F1 (top 10%)",
    "lift@10",
    "attack AUC",
    "attack TPR@1% FPR",
    "attack ε ≥",
    "train s",
    "seeds",
)


def _cells(r: Any) -> list[str]:
    target = "no DP" if not math.isfinite(r["target_epsilon"]) else f"{r['target_epsilon']:g}"
    auc, pr_auc = _fmt(r["roc_auc_mean"]), _fmt(r["pr_auc_mean"])
    if r["n"] > 1 and r["roc_auc_std"] == r["roc_auc_std"]:
        auc += f" ± {r['roc_auc_std']:.4f}"
    if r["n"] == 1:  # one test set: its own 95% interval
        auc += _bracket(r, "roc_auc")
        pr_auc += _bracket(r, "pr_auc")
    attack = _fmt(r["attack_auc_mean"])
    if r["n"] == 1 and r["attack_auc_ci_low_mean"] == r["attack_auc_ci_low_mean"]:
        attack += f" [{r['attack_auc_ci_low_mean']:.3f}, {r['attack_auc_ci_high_mean']:.3f}]"
    return [
        r["setting"],
        target,
        _fmt(r["epsilon_mean"], 3),
        _fmt(r["delta_mean"], 3, "g"),
        _fmt(r["noise_multiplier_mean"], 3),
        auc,
        pr_auc,
        _fmt(r["f1_at_10_mean"]),
        _fmt(r["lift_at_10_mean"], 3),
        attack,
        _fmt(r["attack_tpr_at_fpr_1%_mean"]),
        _fmt(r["attack_epsilon_lb_mean"], 3),
        _fmt(r["wall_s_mean"], 1, "f"),
        str(int(r["n"])),
    ]


def _bracket(r: Any, metric: str) -> str:
    """`` [0.791, 0.833]``: a one-seed row's 95% interval ('' where the sweep has none)."""
    low, high = r.get(f"{metric}_low_mean"), r.get(f"{metric}_high_mean")
    if low is None or high is None or low != low or high != high:
        return ""
    return f" [{low:.3f}, {high:.3f}]"


def _fmt(value: Any, digits: int = 4, kind: str = "f") -> str:
    if value is None or value != value:
        return "-"
    if math.isinf(value):
        return "∞"
    return f"{value:.{digits}{kind}}"
