"""A run's figures, drawn for a marketing lead and a DPO: each line says what it is, axes
are in words, rounds and epochs are whole numbers, and each figure comes with the one-line
caption the reports print under it.

The builders return the matplotlib figure (None where the run has nothing to draw) so
tests can read the axes; `write_figures` saves them and names them in the run directory.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from fedmarket import plots
from fedmarket.centralised import LOSS_LABELS, CentralisedResult
from fedmarket.config import RunConfig
from fedmarket.errors import DataError
from fedmarket.marketing import TARGETING_K, cumulative_gains
from fedmarket.names import BINARY_TASKS
from fedmarket.reporting.document import Image
from fedmarket.reporting.words import LABELS
from fedmarket.rundir import RunDir, read_scores
from fedmarket.tasks import get_task

SERVER_LINE = "global model, scored by the server on all retailers' pooled test customers"
CLIENTS_LINE = "global model, scored by each retailer on its own test customers, averaged"
CENTRALISED_LINE = "centralised reference (pooled data, same settings), final"


def metric_per_round(
    cfg: RunConfig, rounds: Sequence[dict[str, Any]], centralised: float | None
) -> Figure | None:
    """The task's ranking metric after each round, both ways the global model is scored."""
    key, higher_is_better = get_task(cfg.task).primary_metric
    label = LABELS.get(key, key)
    lines = {
        prefix: [(int(r["round"]), r[f"{prefix}_{key}"]) for r in rounds if _has(r, prefix, key)]
        for prefix in ("test", "fed")
    }
    if not any(lines.values()):
        return None
    figure, ax = plots.new_figure((6.4, 4.0))
    styles = {
        "test": {"marker": "o", "markersize": 5, "label": SERVER_LINE},
        # hollow squares, dashed: visible where it lies on the server's line
        "fed": {"marker": "s", "markersize": 8, "linestyle": "--", "fillstyle": "none"},
    }
    styles["fed"]["label"] = CLIENTS_LINE
    for prefix, pts in lines.items():
        if pts:
            ax.plot(*zip(*pts, strict=True), **styles[prefix])
    values = [v for pts in lines.values() for _, v in pts]
    if centralised is not None:
        ax.axhline(centralised, color="black", linestyle="--", linewidth=1, label=CENTRALISED_LINE)
        values.append(centralised)
    if key == "roc_auc":
        ax.axhline(0.5, color="grey", linestyle=":", linewidth=1, label="random ranking (0.5)")
        ax.set_ylim(min(0.45, min(values) - 0.02), 1.0)
    elif higher_is_better:
        ax.set_ylim(min(0.0, min(values)), max(1.0, max(values)))
    else:
        ax.set_ylim(0.0, max(values) * 1.15 or 1.0)
    plots.integer_ticks(ax, max(r for pts in lines.values() for r, _ in pts))
    ax.set(
        title=f"{label} of the federated model after each round",
        xlabel="round",
        ylabel=f"{label} on test customers",
    )
    plots.legend_below(ax)
    return figure


def epsilon_per_round(
    cfg: RunConfig, rounds: Sequence[dict[str, Any]], delta: float | None
) -> Figure | None:
    """Privacy spent so far, from zero, against the target a client refuses to pass."""
    eps = [(int(r["round"]), r["epsilon_max"]) for r in rounds if r.get("epsilon_max") is not None]
    if not eps:
        return None
    unit = "customer" if cfg.dp == "client" else "retailer"
    line = (
        "largest epsilon among the retailers (customer-level)"
        if cfg.dp == "client"
        else "epsilon of the central DP (retailer-level)"
    )
    figure, ax = plots.new_figure((6.4, 4.0))
    ax.plot(*zip(*[(0, 0.0), *eps], strict=True), marker="o", markersize=4, label=line)
    top = max(e for _, e in eps)
    if cfg.dp == "client" and cfg.target_epsilon > 0:
        ax.axhline(
            cfg.target_epsilon,
            color="red",
            linestyle=":",
            label=f"target epsilon {cfg.target_epsilon:g} (a retailer stops before it)",
        )
        top = max(top, cfg.target_epsilon)
    plots.integer_ticks(ax, max(r for r, _ in eps))
    ax.set_xlim(-0.3, ax.get_xlim()[1])
    ax.set_ylim(0.0, top * 1.15 or 1.0)
    delta_words = f", delta = {delta:.2g}" if delta is not None else ""
    ax.set(
        title=f"Privacy spent: epsilon per {unit}{delta_words}",
        xlabel="round",
        ylabel="epsilon, cumulative (lower is more private)",
    )
    plots.legend_below(ax)
    return figure


def gains_and_lift(
    federated: tuple[np.ndarray, np.ndarray] | None,
    centralised: tuple[np.ndarray, np.ndarray] | None,
    anchor: tuple[np.ndarray, np.ndarray] | None = None,
) -> Figure | None:
    """The models' gains and lift on the same test customers (the BG/NBD anchor's too,
    where the run has it); a model whose scores are missing (or whose test customers hold no
    buyers) is left out."""
    curves = {}
    models = (
        ("federated model", federated),
        ("centralised reference", centralised),
        ("BG/NBD anchor", anchor),
    )
    for label, scores in models:
        if scores is None:
            continue
        try:
            curves[label] = cumulative_gains((np.asarray(scores[0]) > 0).astype(float), scores[1])
        except DataError:
            continue  # no buyers: the share of buyers reached is undefined
    if not curves:
        return None
    return plots.gains_lift_figure(
        curves,
        mark_k=TARGETING_K,
        title="Targeting the test customers each model ranks highest",
    )


def retailer_gains(block: dict[str, Any] | None) -> Figure | None:
    """What joining gains each retailer against its size (training customers) and its base
    rate: federated minus local-only on the task's primary metric, with DeLong's paired
    interval for ROC-AUC; None without local-only models to compare with."""
    rows = [
        r
        for r in (block or {}).get("rows") or []
        if _num((r.get("difference") or {}).get(block["metric"]))
    ]
    if not rows:
        return None
    metric = block["metric"]
    label = LABELS.get(metric, metric)
    gain = np.array([r["difference"][metric] for r in rows])
    sizes = np.array(
        [(r.get("local_model") or {}).get("n_train") or r["federated"]["n"] for r in rows]
    )
    sized_by = "training" if all(r.get("local_model") for r in rows) else "test"
    base = np.array([r["federated"]["base_rate"] for r in rows])
    paired = [(r["difference"].get("roc_auc_paired") or {}) for r in rows]
    errors = None
    if metric == "roc_auc" and all(_num(p.get("low")) and _num(p.get("high")) for p in paired):
        errors = np.array([[g - p["low"] for g, p in zip(gain, paired, strict=True)],
                           [p["high"] - g for g, p in zip(gain, paired, strict=True)]])  # fmt: skip
    figure, axes = plots.new_panels(2)
    for ax, x, xlabel in (
        (axes[0], sizes, f"{sized_by} customers at the retailer"),
        (axes[1], 100 * base, "buyers among its test customers (%)"),
    ):
        ax.axhline(0.0, color="grey", linestyle=":", linewidth=1)
        ax.errorbar(x, gain, yerr=errors, fmt="o", capsize=3)
        for xi, gi, r in zip(x, gain, rows, strict=True):
            ax.annotate(r["name"], (xi, gi), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"{label}: federated minus local-only")
    figure.suptitle("What joining gains each retailer, on its own test customers")
    return figure


def learning_curves(
    cfg: RunConfig, rounds: Sequence[dict[str, Any]], history: Sequence[dict[str, Any]] | None
) -> Figure | None:
    """Training and held-out loss: the centralised reference by epoch, the federated model
    by round (a round is ``local-epochs`` passes at every retailer)."""
    task = get_task(cfg.task)
    cen_keys = [
        k
        for k in ("train_loss", "val_loss", "test_loss")
        if any(_num(r.get(k)) for r in history or [])
    ]
    fed_rows = [
        {
            "round": r["round"],
            "train_loss": r.get("train_loss"),
            "test_loss": r.get("test_log_loss"),
        }
        for r in rounds
    ]
    fed_keys = [k for k in ("train_loss", "test_loss") if any(_num(r[k]) for r in fed_rows)]
    if cfg.task not in BINARY_TASKS:
        fed_keys = [k for k in fed_keys if k == "train_loss"]  # log loss is not its loss
    panels = [p for p in (("cen", cen_keys), ("fed", fed_keys)) if p[1]]
    if not panels:
        return None
    figure, axes = plots.new_panels(len(panels), (4.6 * len(panels), 3.8))
    fed_labels = {
        "train_loss": "retailers' training loss during the round, averaged",
        "test_loss": "global model's loss on the pooled test customers",
    }
    for ax, (which, keys) in zip(axes, panels, strict=True):
        if which == "cen":
            plots.learning_curve_axes(ax, history, cen_keys, x_key="epoch", labels=LOSS_LABELS)
            ax.set_title("centralised reference, by epoch")
        else:
            plots.learning_curve_axes(ax, fed_rows, keys, x_key="round", labels=fed_labels)
            ax.set_title(f"federated, by round ({cfg.local_epochs} local epoch(s) each)")
        ax.set_ylabel(f"loss ({task.loss_name})")
        plots.legend_below(ax)
    figure.suptitle("Learning curves: training and held-out loss")
    return figure


def write_figures(
    run_dir: RunDir,
    cfg: RunConfig,
    rounds: Sequence[dict[str, Any]],
    summary: dict[str, Any],
    centralised: CentralisedResult | None,
) -> list[Image]:
    """Save the run's figures next to report.md; the images and captions the reports show."""
    key, _ = get_task(cfg.task).primary_metric
    label = LABELS.get(key, key)
    cen_value = ((summary.get("centralised") or {}).get("test") or {}).get(key)
    fed_scores = read_scores(run_dir.test_scores)
    cen_scores = centralised.test_scores if centralised is not None else None
    # the anchor's file only where this summary has its block (not one left by an older try)
    anchor_scores = (
        read_scores(run_dir.anchor_scores) if "test" in (summary.get("anchor") or {}) else None
    )
    anchor_words = (
        " The BG/NBD anchor ranks customers on their purchase history alone."
        if anchor_scores is not None
        else ""
    )
    missing = (
        " The federated model's test scores are not in this run directory (test_scores.csv: "
        "a deployment's server holds no test customers), so only the centralised curve is drawn."
        if fed_scores is None
        else ""
    )
    wanted = [
        (
            f"{key}_per_round",
            f"{label} per round",
            lambda: metric_per_round(cfg, rounds, cen_value),
            f"{label} after each round. Solid with dots: the server scores the global model "
            "on every retailer's test customers pooled; orange dashed with squares: each "
            "retailer scores it on its own test customers and the server averages them (the "
            "two differ where retailers differ); black dashed: the centralised reference's "
            "final value; grey dotted: random ranking.",
        ),
        (
            "epsilon_per_round",
            "Privacy spent per round",
            lambda: epsilon_per_round(cfg, rounds, summary.get("delta")),
            "Privacy spent so far, cumulative over rounds (0 before training); the lower, the "
            "less the model can reveal about any one "
            f"{'customer' if cfg.dp == 'client' else 'retailer'}.",
        ),
        (
            "gains_lift",
            "Gains and lift, federated and centralised",
            lambda: gains_and_lift(fed_scores, cen_scores, anchor_scores),
            "Left: share of all buyers reached when contacting the share of test customers "
            "each model ranks highest (diagonal: random). Right: how many times the base rate "
            f"those contacted buy. Dotted: the top-{TARGETING_K:.0%} cut of the tables."
            f"{anchor_words}{missing}",
        ),
        (
            "retailer_gains",
            "What joining gains each retailer",
            lambda: retailer_gains(summary.get("retailers")),
            f"Each point a retailer: its federated model's {label} minus its local-only "
            "model's, on its own test customers, against the retailer's size (left) and base "
            "rate (right); "
            + (
                "above the dotted line joining pays; bars: DeLong's paired 95% interval."
                if key == "roc_auc"
                else f"{label} is lower for the better model, so below the line joining pays."
            ),
        ),
        (
            "learning_curves",
            "Learning curves",
            lambda: learning_curves(cfg, rounds, centralised.history if centralised else None),
            "Loss by epoch for the centralised reference and by round for the federated model: "
            "training loss against loss on held-out test customers (a widening gap is "
            "overfitting).",
        ),
    ]
    out = []
    for name, name_in_words, build, caption in wanted:
        with plots.style():
            figure = build()
            if figure is None:
                continue
            path = plots.save_figure(figure, run_dir.figure(name))
        out.append(Image(path.name, name_in_words, caption))
    return out


def _has(row: dict[str, Any], prefix: str, key: str) -> bool:
    return row.get(f"{prefix}_{key}") is not None and row.get("round") is not None


def _num(value: Any) -> bool:
    return isinstance(value, int | float) and value == value
