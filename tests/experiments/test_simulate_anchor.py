"""simulate's BG/NBD anchor stage (``anchor_block``) without Flower: its block in summary.json, the
one-line skip for data without a purchase history, and a failure that keeps the run."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from fedmarket.config import RunConfig
from fedmarket.data import store
from fedmarket.data.ingest.mapping import parse_mapping_option
from fedmarket.data.prepare import PrepareOptions, prepare
from fedmarket.experiments.run_anchor import anchor_block
from fedmarket.experiments.simulate import RunPlan
from fedmarket.predictions import Predictions, write_predictions
from fedmarket.rundir import RunDir
from fedmarket.tasks import get_task


def _block(plan: RunPlan, federated: dict) -> dict:
    return anchor_block(plan.cfg, plan.run_dir, federated, plan.fernet)


def _plan(data: Path, run: Path, **settings) -> RunPlan:
    cfg = RunConfig.from_mapping({"data-dir": str(data), "out-dir": str(run), **settings})
    return RunPlan(cfg, run)


def test_the_anchor_block_is_fitted_under_the_runs_client_dp(tiny_data, tmp_path):
    run = RunDir(tmp_path / "run")
    federated = {"epsilon": {"max": 7.9}, "delta": 1e-4}
    block = _block(_plan(tiny_data, run.path, dp="client"), federated)
    assert block["model"] == "bg-nbd" and block["dp"] and block["epsilon"] == 8.0
    assert block["delta"] == 1e-4 and block["retailers"] == 3
    assert block["paired"] is None  # no federated test_scores.csv to pair with
    assert run.anchor_scores.is_file() and "roc_auc_low" in block["test"]
    # with the federated model's predictions of the same customers: the paired difference
    test = store.load_pooled(tiny_data, "test")
    score = np.random.default_rng(0).random(len(test))
    write_predictions(
        run.test_scores,
        Predictions.pooled(tiny_data, test, task="purchase", model="m", score=score),
    )
    run.config.write_text("{}")
    paired = _block(_plan(tiny_data, run.path, dp="none"), {})["paired"]
    fed_auc = roc_auc_score(get_task("purchase").targets(test), score)
    assert paired["metric"] == "roc_auc" and paired["method"] == "delong"
    assert paired["a"] == pytest.approx(fed_auc)
    assert paired["low"] < paired["difference"] < paired["high"]


def test_a_customer_table_skips_the_anchor_in_one_line(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    rows = [f"c{i},{10 + i % 7},{'PhD' if i % 3 else 'Basic'},{int(i % 4 == 0)}" for i in range(60)]
    (raw / "table.csv").write_text("ID,Income,Education,Response\n" + "\n".join(rows) + "\n")
    data = tmp_path / "prepared"
    mapping = "kind=table,customer=ID,label=Response,numeric=Income,categorical=Education"
    key = hashlib.sha256(b"anchor table").digest()
    prepare(
        PrepareOptions(raw=raw, out=data, pseudonym_key=key, mapping=parse_mapping_option(mapping))
    )
    run = RunDir(tmp_path / "run")
    block = _block(_plan(data, run.path, dp="none"), {})
    assert block == {"skipped": "a customer table has no purchase history for BG/NBD or Pareto/NBD"}
    assert not run.anchor_scores.exists()


def test_a_failed_anchor_is_reported_and_the_run_goes_on(tiny_data, tmp_path, monkeypatch):
    import fedmarket.anchors.in_run as in_run

    def broken(*args, **kwargs):
        raise RuntimeError("hyp2f1 overflow")

    monkeypatch.setattr(in_run, "fit_run_anchor", broken)
    run = RunDir(tmp_path / "run")
    block = _block(_plan(tiny_data, run.path, dp="none"), {})
    assert block == {"failed": "RuntimeError: hyp2f1 overflow"}


def test_a_count_run_has_no_paired_roc_auc(tiny_data, tmp_path):
    run = RunDir(tmp_path / "run")
    block = _block(_plan(tiny_data, run.path, dp="none", task="purchase-count"), {})
    assert not block["dp"] and block["paired"] is None and "rmse" in block["test"]
