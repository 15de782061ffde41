"""The BG/NBD anchor step of a simulate run: fitted across the retailers after the reference.

A step of ``fedmarket.experiments.simulate``, kept here so that module stays the run's outline.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fedmarket.config import RunConfig
from fedmarket.data import store
from fedmarket.errors import FedmarketError
from fedmarket.rundir import RunDir

log = logging.getLogger("fedmarket")


def anchor_block(
    cfg: RunConfig, run_dir: Path, federated: dict[str, Any], fernet: Any | None = None
) -> dict[str, Any]:
    """summary.json's ``anchor`` block: BG/NBD fitted across the retailers without pooling
    (``fedmarket.anchors.in_run``), or why it was skipped (data without a purchase history)
    or failed; like the reference's, its failure never loses the federated result."""
    from fedmarket.anchors import AnchorData
    from fedmarket.anchors.in_run import anchor_privacy, fit_run_anchor

    try:
        skip = AnchorData.missing(store.read_manifest(Path(cfg.data_dir)))
        if skip is not None:
            log.info("BG/NBD anchor skipped: %s", skip)
            return {"skipped": skip}
        spent = (federated.get("epsilon") or {}).get("max")
        privacy = anchor_privacy(cfg, spent, federated.get("delta"))
        anchor = fit_run_anchor(cfg, RunDir(run_dir).anchor_scores, privacy=privacy, fernet=fernet)
    except FedmarketError as exc:
        log.error("BG/NBD anchor failed: %s", exc)
        return {"failed": str(exc)}
    except Exception as exc:  # a bug: keep its traceback in the log, and the run
        log.exception("BG/NBD anchor failed")
        return {"failed": f"{type(exc).__name__}: {exc}"}
    dp = f"client DP, epsilon {anchor.epsilon:g}" if anchor.dp else "no noise"
    log.info(
        "BG/NBD anchor: fitted across %d retailers (%s) in %.2f s",
        anchor.retailers,
        dp,
        anchor.fit_s,
    )
    return {**anchor.to_dict(), "paired": _paired_with_anchor(cfg, run_dir, anchor.model)}


def _paired_with_anchor(cfg: RunConfig, run_dir: Path, model: str) -> dict[str, Any] | None:
    """Federated minus anchor on the same customers, where it is cheap: DeLong's paired test
    for a ROC-AUC task (milliseconds); None otherwise, or without federated predictions."""
    from fedmarket.experiments.compare import FEDERATED, compare_runs
    from fedmarket.tasks import get_task

    key, _ = get_task(cfg.task).primary_metric
    if key != "roc_auc" or not RunDir(run_dir).test_scores.is_file():
        return None
    try:
        (paired,) = compare_runs(
            run_dir, run_dir, kind_a=FEDERATED, kind_b=model, metrics=[key]
        ).results
    except FedmarketError as exc:  # e.g. federated predictions of an older round's test set
        log.warning("federated versus the BG/NBD anchor, paired: not computed (%s)", exc)
        return None
    return paired.to_dict()
