import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from fedmarket.centralised import run_centralised, write_centralised
from fedmarket.config import RunConfig
from fedmarket.data import store
from fedmarket.errors import ConfigError
from fedmarket.experiments.audit import audit_run
from fedmarket.models import build_model
from fedmarket.privacy.config import default_delta
from fedmarket.privacy.membership import fpr_key
from fedmarket.training import TrainConfig


@pytest.fixture(scope="module")
def run_dir(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory as `fedmarket simulate` leaves it, built without Flower: config.json,
    a final checkpoint, summary.json and the centralised reference (1 epoch)."""
    out = tmp_path_factory.mktemp("audit") / "run"
    cfg = RunConfig.from_mapping({"data-dir": str(tiny_data), "out-dir": str(out), "dp": "none"})
    (out / "checkpoints").mkdir(parents=True)
    (out / "config.json").write_text(json.dumps(cfg.to_flower()))
    n_features = len(store.read_manifest(tiny_data)["feature_names"])
    weights = build_model("cnn-lstm", n_features, seed=1).state_dict()
    torch.save({"round": 3, "state_dict": weights}, out / "checkpoints" / "round-0003.pt")
    (out / "checkpoints" / "latest.json").write_text('{"round": 3, "path": "round-0003.pt"}')
    summary = {"federated": {"epsilon": None, "delta": None, "test": {"roc_auc": 0.61}}}
    (out / "summary.json").write_text(json.dumps(summary))
    result = run_centralised(
        tiny_data,
        model="lstm",
        task="purchase",
        train_cfg=TrainConfig(epochs=1, batch_size=64, val_fraction=0.0),
        hparams={"hidden_size": 8, "num_layers": 1, "dropout": 0.0},
    )
    write_centralised(result, out / "centralised")
    return out


def test_audit_run_attacks_both_models(run_dir: Path, tiny_data: Path):
    report = audit_run(run_dir)
    assert set(report["models"]) == {"federated", "centralised"}
    fed, cen = report["models"]["federated"], report["models"]["centralised"]
    n_train = sum(p["train"]["n"] for p in store.read_manifest(tiny_data)["partitions"])
    assert fed["delta"] == cen["delta"] == default_delta(n_train)
    assert fed["round"] == 3 and fed["claimed_epsilon"] is None and fed["test_roc_auc"] == 0.61
    for entry in (fed, cen):
        assert 0 <= entry["roc_auc"] <= 1 and entry["n_members"] == entry["n_nonmembers"]
        assert {fpr_key(0.001), fpr_key(0.01)} <= set(entry)
    assert json.loads((run_dir / "audit.json").read_text()) == report


def test_saved_centralised_model_reloads_exactly(run_dir: Path, tiny_data: Path):
    blob = torch.load(run_dir / "centralised" / "model.pt", weights_only=True)
    assert (blob["model"], blob["task"]) == ("lstm", "purchase")
    n_features = len(store.read_manifest(tiny_data)["feature_names"])
    net = build_model("lstm", n_features, **blob["hparams"])
    net.load_state_dict(blob["state_dict"])
    metrics = json.loads((run_dir / "centralised" / "metrics.json").read_text())
    assert "state_dict" not in metrics and "hparams" not in metrics
    from fedmarket.tasks import get_task
    from fedmarket.training import predict

    test = store.load_pooled(tiny_data, "test")
    from sklearn.metrics import roc_auc_score

    auc = roc_auc_score(test.y_purchase, predict(net, test.X, get_task("purchase")))
    assert auc == pytest.approx(metrics["test"]["roc_auc"], abs=1e-12)


def test_audit_run_refuses_what_it_cannot_audit(tmp_path: Path, tiny_data: Path):
    with pytest.raises(ConfigError, match=r"no config\.json"):
        audit_run(tmp_path)
    cfg = RunConfig.from_mapping({"data-dir": str(tiny_data), "out-dir": str(tmp_path)})
    (tmp_path / "config.json").write_text(json.dumps(cfg.to_flower()))
    with pytest.raises(ConfigError, match="nothing to audit"):
        audit_run(tmp_path)


def test_cli_audit_prints_the_table(run_dir: Path):
    from fedmarket.cli import app

    result = CliRunner().invoke(app, ["audit", str(run_dir)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "federated" in result.output and "centralised" in result.output
    assert "none (no DP)" in result.output
    bad = CliRunner().invoke(app, ["audit", str(run_dir / "nowhere")])
    assert bad.exit_code == 2
