"""The end of a `fedmarket simulate` run of task next-categories (or next-products,
``fedmarket.recommend.product_compare``): the comparison of the
federated GRU+NCF (the run's last global model) with its centralised reference (same
settings, DP included), the GRU-only and NCF-only ablations and the baselines, warm and cold
customers apart, written as the run's summary.json and report.md.

The propensity runs' report (lift, calibration, the BG/NBD anchor) does not apply to a
ranking, so this replaces it for this task; the rounds, checkpoints and federated.json are
the same as for every run.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fedmarket.config import RunConfig
from fedmarket.data import store
from fedmarket.errors import FedmarketError
from fedmarket.federated.personal import PRIVATE, load_weights
from fedmarket.names import PRODUCTS_TASK
from fedmarket.recommend.experiment import ABLATIONS, COLD_START, compare
from fedmarket.recommend.product_compare import compare_products
from fedmarket.rundir import RunDir, json_safe, write_json

log = logging.getLogger("fedmarket")


def write_recommend_outputs(
    cfg: RunConfig,
    run_dir: Path,
    federated: dict[str, Any],
    *,
    centralised: bool = True,
    fernet: Any | None = None,
) -> dict[str, Any]:
    """summary.json and report.md of a recommender run; returns the summary."""
    files = RunDir(run_dir)
    data_dir = Path(cfg.data_dir)
    latest = files.latest_checkpoint()
    weights = latest[1] if latest is not None else None
    problems: list[str] = []
    if weights is None:
        problems.append("no round was aggregated: there is no federated model to evaluate")
    privacy = cfg.privacy(store.n_train_total(store.read_manifest(data_dir)))
    comparison = None
    options = {
        "privacy": privacy,
        "fernet": fernet,
        "federated": weights,
        "modes": tuple(ABLATIONS) if centralised else (),
        "on_model": lambda name: log.info("recommender: training %s (centralised)", name),
    }
    try:
        if cfg.task == PRODUCTS_TASK:
            tables = _private_tables(cfg, data_dir)
            if weights is not None and len(tables) < len(
                store.partition_ids(store.read_manifest(data_dir))
            ):
                problems.append(
                    "not every client's product table is in the state-dir: the report has no "
                    "federated row with tables, only the shared model's (content only)"
                )
            comparison = compare_products(
                data_dir, cfg.train_config(epochs=cfg.total_epochs), private_tables=tables,
                **options,
            )  # fmt: skip
        else:
            comparison = compare(data_dir, cfg.train_config(epochs=cfg.total_epochs), **options)
    except FedmarketError as exc:
        log.error("recommender comparison failed: %s", exc)
        problems.append(f"recommender comparison failed: {exc}")
    summary = {
        "task": cfg.task,
        "model": cfg.model,
        "dp": cfg.dp,
        "rounds": federated.get("rounds"),
        "federated": {
            "test": federated.get("test"),
            "epsilon": federated.get("epsilon"),
            "delta": federated.get("delta"),
            "wall_s": federated.get("wall_s"),
        },
        "recommend": comparison.to_dict() if comparison is not None else None,
        "problems": problems,
    }
    write_json(files.summary, json_safe(summary))
    files.report.write_text(_report(cfg, summary, comparison))
    return summary


def _private_tables(cfg: RunConfig, data_dir: Path) -> dict[int, dict]:
    """Each client's kept product table (next-products), read from its state-dir: in
    simulation the run directory stands in for every retailer's disk (as for personalised
    scores); nothing of the tables went through the server."""
    tables = {}
    for pid in store.partition_ids(store.read_manifest(data_dir)):
        table = load_weights(cfg.state_dir, pid, PRIVATE)
        if table is not None:
            tables[pid] = table
    return tables


def _new_products(new: dict[str, Any]) -> str:
    if not new["customers"]:
        return (
            f"New products (no private row: in no training customer's window at their "
            f"retailer): {new['products']}; no test customer has one as a target, so cold "
            "products are not measured on this data."
        )
    rates = ", ".join(f"{k} {v:.3f}" for k, v in new.items() if k not in ("customers", "products"))
    return (
        f"New products: {new['products']}; of the {new['customers']} test customers with a new "
        f"product as a target, the share with one in their top 10: {rates}."
    )


def _new_items(new: dict[str, Any]) -> str:
    if not new["customers"]:
        return (
            f"New items (categories in no training customer's window): {new['items']}; no test "
            "customer has one as a target, so cold items are not measured on this data."
        )
    rates = ", ".join(f"{k} {v:.3f}" for k, v in new.items() if k not in ("customers", "items"))
    return (
        f"New items: {new['items']}; of the {new['customers']} test customers with a new item as "
        f"a target, the share with one in their top 10: {rates}."
    )


def _report(cfg: RunConfig, summary: dict[str, Any], comparison: Any) -> str:
    eps = (summary["federated"].get("epsilon") or {}).get("max")
    privacy = (
        f"client-level DP-SGD, epsilon {eps:.3g} (max over retailers), delta "
        f"{summary['federated'].get('delta'):.3g}; the centralised reference under the same "
        "DP settings"
        if cfg.dp == "client" and eps is not None
        else f"dp = {cfg.dp}"
    )
    products = cfg.task == PRODUCTS_TASK
    private = (
        "; each retailer's product table stayed with it (never sent, never averaged)"
        if products
        else ""
    )
    lines = [
        f"# Recommender run: task {cfg.task}, model gru-ncf",
        "",
        f"{summary['rounds']} federated rounds (FedAvg of the GRU, the NCF towers and the "
        f"category/brand token embeddings{private}); {privacy}.",
        "",
    ]
    if comparison is not None:
        lines += [
            "## Recommendation metrics on the pooled test customers"
            + (" (each ranked over its own retailer's products)" if products else ""),
            "",
            comparison.markdown(),
            "",
            f"Cold start: {COLD_START}. Every personalised model's ranking goes through it.",
            "",
            _new_products(summary["recommend"]["new_products"])
            if products
            else _new_items(summary["recommend"]["new_items"]),
            "",
        ]
    for problem in summary["problems"]:
        lines.append(f"- problem: {problem}")
    return "\n".join(lines) + "\n"
