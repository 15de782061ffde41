import json
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from fedmarket.centralised import run_centralised, write_centralised
from fedmarket.config import RunConfig
from fedmarket.data import store
from fedmarket.data.protect.keys import ENCRYPTION_KEY_ENV
from fedmarket.errors import ConfigError
from fedmarket.experiments.audit import audit_run
from fedmarket.models import build_model
from fedmarket.privacy.config import default_delta
from fedmarket.privacy.membership import fpr_key
from fedmarket.training import TrainConfig
from tests.conftest import EncryptedData, files_holding


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


# --- encrypted prepared data -------------------------------------------------------------------


@pytest.fixture
def encrypted_run_dir(run_dir: Path, tiny_encrypted: EncryptedData, tmp_path: Path) -> Path:
    """``run_dir``'s models, for a run whose data was the encrypted copy of ``tiny_data``."""
    out = tmp_path / "run"
    shutil.copytree(run_dir, out)
    (out / "audit.json").unlink(missing_ok=True)
    cfg = RunConfig.from_mapping(
        {"data-dir": str(tiny_encrypted.data), "out-dir": str(out), "dp": "none"}
    )
    (out / "config.json").write_text(json.dumps(cfg.to_flower()))
    return out


def test_audit_of_a_run_on_encrypted_data_attacks_the_same_customers(
    run_dir: Path, encrypted_run_dir: Path, tiny_encrypted: EncryptedData, monkeypatch
):
    monkeypatch.delenv(ENCRYPTION_KEY_ENV, raising=False)
    with pytest.raises(ConfigError, match="holds encrypted prepared data"):
        audit_run(encrypted_run_dir)
    assert not (encrypted_run_dir / "audit.json").exists()
    report = audit_run(encrypted_run_dir, key_file=tiny_encrypted.key_file)
    assert report["models"] == audit_run(run_dir, write=False)["models"]
    monkeypatch.setenv(ENCRYPTION_KEY_ENV, tiny_encrypted.key_text)
    assert audit_run(encrypted_run_dir, write=False)["models"] == report["models"]
    assert not files_holding(encrypted_run_dir, tiny_encrypted.secret_forms())


def test_cli_audit_takes_the_key_file(
    encrypted_run_dir: Path, tiny_encrypted: EncryptedData, monkeypatch
):
    from tests.cli.output import cli, ok, one_error_line

    monkeypatch.delenv(ENCRYPTION_KEY_ENV, raising=False)
    line = one_error_line(cli("audit", encrypted_run_dir))
    assert "--encryption-key-file" in line and ENCRYPTION_KEY_ENV in line
    ok(cli("audit", encrypted_run_dir, "--encryption-key-file", tiny_encrypted.key_file))
    assert (encrypted_run_dir / "audit.json").is_file()
