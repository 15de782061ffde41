"""A run directory as a finished run leaves it, built without training: config, rounds.csv
and both models' test scores, from which `write_run_outputs` draws the real figures and
writes report.md and report.html (a second, not a simulation's minute)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedmarket.config import RunConfig
from fedmarket.federated.run_log import ROUND_FIELDS, TEST_KEYS
from fedmarket.predictions import Predictions, write_predictions
from fedmarket.rundir import RunDir
from fedmarket.tasks import get_task
from tests.reporting.fake_run import centralised, federated_result, rounds_rows, scores


@pytest.fixture
def make_run(tmp_path: Path):
    """Write a run directory and its reports; returns (RunDir, paths of write_run_outputs)."""
    from fedmarket.reporting import write_run_outputs

    def make(
        *,
        dp: str = "client",
        federated_scores: bool = True,
        centralised_error: str | None = None,
        anchor: dict | None = None,
        **federated_changes,
    ):
        run = RunDir(tmp_path / "run")
        cfg = RunConfig.from_mapping(
            {"dp": dp, "num-server-rounds": 3, "out-dir": str(run.path), "target-epsilon": 8.0}
        )
        run.path.mkdir()
        run.write_config(cfg)
        fields = list(ROUND_FIELDS) + [f"{p}_{k}" for p in ("test", "fed") for k in TEST_KEYS]
        rows = rounds_rows()
        if dp == "none":
            rows = [r | {"epsilon_max": None} for r in rows]
        run.write_rounds(rows, fields)
        task = get_task("purchase")
        fed_y, fed_s = scores(0, 1.5)
        if federated_scores:
            customers = np.array([f"c{i}" for i in range(len(fed_y))])
            fed = Predictions("purchase", "cnn-lstm", np.zeros(len(fed_y)), customers, fed_y, fed_s)
            write_predictions(run.test_scores, fed)
        cen_y, cen_s = fed_y, scores(1, 2.0)[1] * 0.5 + fed_s * 0.5
        cen = None
        if centralised_error is None:
            cen = centralised(task.report(cen_y, cen_s), cen_y, cen_s)
        federated = federated_result(task.report(fed_y, fed_s)) | federated_changes
        paths = write_run_outputs(
            run.path, cfg, federated, cen, centralised_error=centralised_error, anchor=anchor
        )
        return run, paths

    return make
