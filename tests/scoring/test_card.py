from __future__ import annotations

import json
from pathlib import Path

from fedmarket.data import store
from fedmarket.scoring.card import card_markdown, model_card, run_command
from fedmarket.scoring.run_model import load_run_model


def test_card_names_inputs_data_and_privacy(scoring_run: Path, tiny_data: Path) -> None:
    card = model_card(load_run_model(scoring_run))
    manifest = store.read_manifest(tiny_data)
    assert card["inputs"]["feature_names"] == manifest["feature_names"]
    assert card["inputs"]["shape"][1:] == [8, len(manifest["feature_names"])]
    parts = card["training_data"]["partitions"]
    assert [p["train_customers"] for p in parts] == [
        int(p["train"]["n"]) for p in manifest["partitions"]
    ]
    assert card["training_data"]["train_customers"] == store.n_train_total(manifest)
    assert card["model"] == {
        "name": "cnn-lstm",
        "source": "federated",
        "round": 2,
        "options": {"count_loss": "poisson"},
        "calibrated": False,
    }
    assert card["privacy"]["dp"] == "none" and card["privacy"]["epsilon"] is None
    assert "data-dir" not in card["run_config"]
    json.dumps(card, allow_nan=False)  # plain JSON, as the service returns it


def test_card_reads_the_runs_metrics(scoring_run: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(scoring_run, run)
    summary = {
        "federated": {"test": {"roc_auc": 0.71}, "epsilon": {"max": 3.5, "unit": "customer"}},
        "delta": 1e-5,
        "privacy": "Customer-level DP",
    }
    (run / "summary.json").write_text(json.dumps(summary))
    card = model_card(load_run_model(run))
    assert card["metrics"]["roc_auc"] == 0.71
    assert card["privacy"]["epsilon"] == 3.5 and card["privacy"]["delta"] == 1e-5
    text = card_markdown(card)
    assert "roc_auc: 0.71" in text and "| 0 |" in text


def test_run_command_lists_only_changed_settings() -> None:
    cmd = run_command({"data-dir": "/d", "out-dir": "/o", "model": "lstm", "dp": "client"})
    assert cmd.startswith("fedmarket simulate --data /d --run-config ")
    assert "model='lstm'" in cmd and "out-dir" not in cmd
