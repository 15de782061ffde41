"""The model card: what a scored model is, what it was trained on and what it promises.

Whoever receives an exported model or calls the scoring service cannot open the run
directory; the card carries what they need to use the model correctly and to judge it: the
task and what the output means, the inputs in their order with the window and normalisation,
the training data per retailer (counts only), the test metrics with their test set, and the
privacy guarantee in numbers and in words. Everything comes from the run directory and the
prepared data's manifest; nothing per customer is in it.
"""

from __future__ import annotations

import json
import shlex
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from fedmarket.config import DEFAULTS, format_overrides
from fedmarket.data import store
from fedmarket.rundir import RunDir, json_safe
from fedmarket.scoring.rec_model import RecModel
from fedmarket.scoring.run_model import RunModel

CARD_VERSION: Final[int] = 1
_PATHS = frozenset({"data-dir", "out-dir", "state-dir"})


def model_card(run: RunModel) -> dict[str, Any]:
    """The card as a JSON-ready dict (see the module docstring)."""
    from fedmarket import __version__

    cfg = run.config.to_flower()
    return json_safe(
        {
            "card_version": CARD_VERSION,
            "fedmarket_version": __version__,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "model": {
                "name": run.model_name,
                "source": run.source,
                "round": run.round,
                "options": run.config.model_options(),
                "calibrated": run.calibrator is not None,
            },
            "task": {
                "name": run.task.name,
                "description": run.task.description,
                "output": _output_meaning(run),
                "horizon_days": run.window.horizon_days,
                "count_unit": run.count_unit,
            },
            "inputs": _inputs(run),
            "training_data": _training_data(run.manifest),
            "metrics": _metrics(RunDir(run.run_dir), run.source),
            "privacy": _privacy(RunDir(run.run_dir), cfg),
            "run_config": {k: v for k, v in cfg.items() if k not in _PATHS},
            "command": run_command(cfg),
        }
    )


def recommendation_card(model: RecModel) -> dict[str, Any]:
    """The card of a recommendation run's model (task next-categories): what it ranks, what
    it reads, how cold customers are ranked, and its ranking metrics, warm and cold."""
    from fedmarket import __version__
    from fedmarket.recommend.data import COLD_EVENTS
    from fedmarket.recommend.experiment import COLD_START

    cfg = model.config.to_flower()
    files = RunDir(model.run_dir)
    table = (_read(files.summary).get("recommend") or {}).get("table") or []
    name = "GRU+NCF (federated)" if model.source == "federated" else "GRU+NCF (centralised)"
    w = model.window
    return json_safe(
        {
            "card_version": CARD_VERSION,
            "fedmarket_version": __version__,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "model": {"name": model.model_name, "source": model.source, "round": model.round},
            "task": {
                "name": model.task.name,
                "description": model.task.description,
                "ranks": "categories",
                "output": "for each customer, the run's categories ranked by the model's "
                f"score: the ones most likely carted or bought in the {w.horizon_days} days "
                "after the scoring date first",
                "horizon_days": w.horizon_days,
                "cold_start": COLD_START,
                "cold_threshold_events": COLD_EVENTS,
            },
            "inputs": {
                "history_length": model.history_length,
                "events": "the customer's last window events with a category code, oldest "
                "first: category, event type, brand",
                "window_days": w.window_days,
                "trained_cutoff": w.cutoff.isoformat(),
                "categories": list(model.items),
                "known_categories": model.vocabulary.n_known,
            },
            "training_data": _training_data(model.manifest),
            "metrics": {
                **_metrics(files, model.source),
                "ranking": [r for r in table if r.get("model") == name],
            },
            "privacy": _privacy(files, cfg),
            "run_config": {k: v for k, v in cfg.items() if k not in _PATHS},
            "command": run_command(cfg),
        }
    )


def run_command(config: dict[str, Any]) -> str:
    """The `fedmarket simulate` command that trains this run again: the settings that differ
    from the defaults, with the data it read."""
    changed = {k: v for k, v in config.items() if k not in _PATHS and v != DEFAULTS.get(k)}
    data = f" --data {shlex.quote(str(config['data-dir']))}" if config.get("data-dir") else ""
    overrides = f' --run-config "{format_overrides(changed)}"' if changed else ""
    return f"fedmarket simulate{data}{overrides}"


def _output_meaning(run: RunModel) -> str:
    if run.task.name == "purchase":
        return (
            f"probability that the customer purchases in the {run.window.horizon_days} days "
            "after the scoring date"
        )
    if run.task.binary:  # the churn tasks
        return (
            f"probability that the customer {run.task.acts}s ({run.task.description}); the "
            f"horizon is the {run.window.horizon_days} days after the scoring date"
        )
    return (
        f"expected number of purchases ({run.count_unit}) in the {run.window.horizon_days} "
        "days after the scoring date"
    )


def _inputs(run: RunModel) -> dict[str, Any]:
    w = run.window
    return {
        "shape": ["customers", w.n_steps, len(run.feature_names)],
        "feature_names": list(run.feature_names),
        "window_days": w.window_days,
        "step_days": w.step_days,
        "steps": "step t covers [as_of - window_days + t*step_days, + step_days), oldest first",
        "trained_cutoff": w.cutoff.isoformat(),
        "normalisation": {
            "transform": run.manifest["normalisation"].get("transform"),
            "mean": run.norm.mean.tolist(),
            "std": run.norm.std.tolist(),
        },
    }


def _training_data(manifest: store.Manifest) -> dict[str, Any]:
    parts = manifest["partitions"]
    return {
        "partitions": [
            {
                "id": int(p["id"]),
                "retailer": p.get("retailer"),
                "train_customers": int(p["train"]["n"]),
                "test_customers": int(p["test"]["n"]),
            }
            for p in parts
        ],
        "train_customers": store.n_train_total(manifest),
        "test_customers": sum(int(p["test"]["n"]) for p in parts),
        "scheme": manifest.get("partitioning", {}).get("scheme"),
        "unit": "customer",
    }


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def _metrics(files: RunDir, source: str) -> dict[str, Any]:
    """The chosen model's test metrics, on the pooled test customers of the run."""
    summary = _read(files.summary)
    if source == "centralised":
        block = summary.get("centralised") or _read(files.centralised_metrics)
    else:
        block = summary.get("federated") or _read(files.federated)
    test = block.get("test") or block.get("final_test") or {}
    return {"test_set": "the run's pooled test customers (every retailer's test split)", **test}


def _privacy(files: RunDir, cfg: dict[str, Any]) -> dict[str, Any]:
    summary = _read(files.summary)
    fed = summary.get("federated") or _read(files.federated)
    eps = fed.get("epsilon") or {}
    return {
        "dp": cfg.get("dp"),
        "epsilon": eps.get("max"),
        "epsilon_per_client": eps.get("per_client"),
        "delta": summary.get("delta", fed.get("delta")),
        "unit": eps.get("unit") or ("customer" if cfg.get("dp") == "client" else None),
        "guarantee": summary.get("privacy"),
    }


def card_markdown(card: dict[str, Any]) -> str:
    """The card for people: the same facts as the JSON, in sections."""
    m, t, d, p = card["model"], card["task"], card["training_data"], card["privacy"]
    eps = "none (no DP)" if p["dp"] == "none" else f"{p['epsilon']}, delta {p['delta']}"
    lines = [
        f"# Model card: {m['name']} ({m['source']}), task {t['name']}",
        "",
        f"- Output: {t['output']}.",
        f"- Trained with fedmarket {card['fedmarket_version']}; command: `{card['command']}`",
        f"- Weights: {m['source']} model"
        + (f", round {m['round']}" if m["round"] is not None else "")
        + ("; probabilities calibrated" if m["calibrated"] else ""),
        f"- Privacy: {p['dp']}; epsilon {eps}; unit {p['unit']}.",
        *([f"  {p['guarantee']}"] if p.get("guarantee") else []),
        "",
        "## Inputs",
        f"Shape {card['inputs']['shape']}: {card['inputs']['window_days']} days in steps of "
        f"{card['inputs']['step_days']}; features in this order:",
        "",
        ", ".join(f"`{n}`" for n in card["inputs"]["feature_names"]),
        "",
        "## Training data",
        f"{d['train_customers']} training and {d['test_customers']} test customers "
        f"({d['scheme']} partitions; the unit is the customer).",
        "",
        "| partition | retailer | train | test |",
        "|---|---|---:|---:|",
        *(
            f"| {q['id']} | {q['retailer'] or ''} | {q['train_customers']} | "
            f"{q['test_customers']} |"
            for q in d["partitions"]
        ),
        "",
        "## Test metrics",
        f"On {card['metrics']['test_set']}:",
        "",
        *(
            f"- {k}: {v:.4g}" if isinstance(v, float) else f"- {k}: {v}"
            for k, v in card["metrics"].items()
            if k != "test_set" and not isinstance(v, (dict, list))
        ),
    ]
    return "\n".join(lines) + "\n"
