"""The recommendation comparison: every model and baseline on the same test customers, for
all, warm and cold customers (``fedmarket.recommend.data.COLD_EVENTS``), plus a Markdown table.

Rows: ``{"model", "customers", "hr@10", "ndcg@10", "mrr", "coverage@10", "n_customers"}``;
``n_customers`` counts the segment's test customers with at least one target (the ones HR,
NDCG and MRR average over); coverage is over every test customer of the segment.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fedmarket.recommend.data import COLD_EVENTS, RecSplit
from fedmarket.recommend.metrics import ranking_metrics

SEGMENTS: tuple[str, ...] = ("all", "warm", "cold")


def segments(test: RecSplit) -> dict[str, np.ndarray]:
    cold = test.cold()
    return {"all": np.ones(len(test), dtype=bool), "warm": ~cold, "cold": cold}


def comparison(test: RecSplit, scores: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """One row per (model, segment), models in the order given."""
    rows = []
    masks = segments(test)
    for name, s in scores.items():
        for segment in SEGMENTS:
            mask = masks[segment]
            metrics = ranking_metrics(test.y_categories[mask], np.asarray(s)[mask])
            rows.append({"model": name, "customers": segment, **metrics})
    return rows


def lift_over(rows: list[dict[str, Any]], model: str, baseline: str, key: str) -> float:
    """``model``'s ``key`` on all customers relative to ``baseline``'s (0.25 = 25% higher)."""
    value = {r["model"]: r[key] for r in rows if r["customers"] == "all"}
    base = value.get(baseline, math.nan)
    return value.get(model, math.nan) / base - 1 if base else math.nan


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The comparison as a Markdown table (segments side by side: HR@10 / NDCG@10)."""
    by_model: dict[str, dict[str, dict[str, Any]]] = {}
    for r in rows:
        by_model.setdefault(r["model"], {})[r["customers"]] = r
    head = (
        "| model | "
        + " | ".join(f"{s}: HR@10 | {s}: NDCG@10 | {s}: MRR" for s in SEGMENTS)
        + " | coverage@10 |"
    )
    lines = [head, "|" + "---|" * (1 + 3 * len(SEGMENTS) + 1)]
    for name, seg in by_model.items():
        cells = [_fmt(seg[s][k]) for s in SEGMENTS for k in ("hr@10", "ndcg@10", "mrr")]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {_fmt(seg['all']['coverage@10'])} |")
    counts = {s: int(rows[SEGMENTS.index(s)]["n_customers"]) for s in SEGMENTS} if rows else {}
    lines.append("")
    lines.append(
        f"Test customers with a target: {counts.get('all', 0)} (warm {counts.get('warm', 0)}, "
        f"cold {counts.get('cold', 0)}; cold = fewer than {COLD_EVENTS} category events in "
        "the feature window)."
    )
    return "\n".join(lines)


def _fmt(value: float) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3f}"


def new_item_hit_rate(
    test: RecSplit, scores: dict[str, np.ndarray], n_known: int
) -> dict[str, Any]:
    """Cold items: among test customers with a target that is a new item (first seen after the
    vocabulary, i.e. not in any training customer's window), the share whose top 10 holds one
    of those new targets, per model; ``customers`` 0 (and NaN rates) when there are none."""
    new_targets = test.y_categories[:, n_known:] > 0
    who = new_targets.any(axis=1)
    out: dict[str, Any] = {
        "customers": int(who.sum()),
        "items": test.y_categories.shape[1] - n_known,
    }
    for name, s in scores.items():
        if not who.any():
            out[name] = math.nan
            continue
        top = np.argsort(-np.asarray(s)[who], axis=1, kind="stable")[:, :10]
        hit = (top >= n_known) & np.take_along_axis(test.y_categories[who] > 0, top, axis=1)
        out[name] = float(hit.any(axis=1).mean())
    return out
