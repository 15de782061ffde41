"""`fedmarket audit`: attack every model of a run directory, next to the epsilon it claims.

The attack and its statistics are the library's (``fedmarket.privacy.membership``); this
experiment reads a run directory (its config, last checkpoint, centralised model and the
claims in summary.json / metrics.json) and writes ``audit.json`` beside them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fedmarket.config import RunConfig
from fedmarket.data import store
from fedmarket.data.protect.keys import prepared_data_fernet
from fedmarket.errors import ConfigError
from fedmarket.models import build_model
from fedmarket.privacy.membership import DEFAULT_CONFIDENCE, audit_model, membership_samples
from fedmarket.rundir import RunDir


def audit_run(
    run_dir: Path,
    *,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
    write: bool = True,
    key_file: Path | None = None,
) -> dict[str, Any]:
    """Attack every model of a run directory; write ``RUN_DIR/audit.json``.

    Audits the federated model's last checkpoint (``checkpoints/``) and, when present, the
    centralised reference (``centralised/model.pt``), each next to the epsilon its run
    claimed. One customer-level delta (the run's ``delta``, or ``1 / (10 n)``) is used for
    every bound, because the attack is on customers whatever unit the run's DP protects.
    The run's data may be encrypted: ``key_file`` (else $FEDMARKET_ENCRYPTION_KEY) opens it.
    """
    run_dir = Path(run_dir)
    files = RunDir(run_dir)
    cfg = files.read_config()
    data_dir = Path(cfg.data_dir)
    manifest = store.read_manifest(data_dir)
    fernet = prepared_data_fernet(data_dir, key_file, outside=[run_dir])
    n_features = store.n_features(manifest)
    delta = cfg.client_delta(store.n_train_total(manifest))
    members, nonmembers = membership_samples(data_dir, seed=seed, fernet=fernet)
    report: dict[str, Any] = {
        "run_dir": str(run_dir),
        "data_dir": str(data_dir),
        "seed": seed,
        "dp": cfg.dp,
        "models": {},
    }
    checkpoint = files.latest_checkpoint()
    if checkpoint is not None and checkpoint[1] is not None:
        net = _model(cfg.model, n_features, cfg.task, cfg.model_options(), checkpoint[1])
        result = audit_model(
            net, cfg.task, members, nonmembers, delta=delta, confidence=confidence, seed=seed
        )
        report["models"]["federated"] = {
            **result.to_dict(),
            **_claimed_federated(files, cfg),
            "round": int((files.read_marker() or {}).get("model_round", checkpoint[0])),
        }
    blob_path = files.centralised_model
    if blob_path.is_file():
        blob = torch.load(blob_path, weights_only=True)
        net = _model(blob["model"], n_features, blob["task"], blob["hparams"], blob["state_dict"])
        result = audit_model(
            net, blob["task"], members, nonmembers, delta=delta, confidence=confidence, seed=seed
        )
        report["models"]["centralised"] = {**result.to_dict(), **_claimed_centralised(files)}
    if not report["models"]:
        raise ConfigError(
            f"{run_dir}: nothing to audit: no checkpoints/latest.json and no "
            "centralised/model.pt (was the run finished?)"
        )
    if write:
        # plain json: an infinite point estimate stays "Infinity" (AttackResult.to_dict)
        files.audit.write_text(json.dumps(report, indent=2) + "\n")
    return report


def _model(
    name: str,
    n_features: int,
    task: str,
    hparams: dict[str, Any],
    state_dict: dict[str, torch.Tensor],
) -> nn.Module:
    net = build_model(name, n_features, task=task, dp=False, **hparams)
    net.load_state_dict(state_dict, strict=True)
    return net


def _claimed_federated(files: RunDir, cfg: RunConfig) -> dict[str, Any]:
    """What the run's accountant said: summary.json, else federated.json."""
    for path in (files.summary, files.federated):
        if path.is_file():
            data = json.loads(path.read_text())
            fed = data.get("federated", data)
            eps = fed.get("epsilon") or {}
            return {
                "claimed_epsilon": eps.get("max") if cfg.dp != "none" else None,
                "claimed_delta": eps.get("delta", fed.get("delta")),
                "claimed_unit": eps.get("unit") if cfg.dp != "none" else None,
                "test_roc_auc": (fed.get("test") or {}).get("roc_auc"),
            }
    return {
        "claimed_epsilon": None,
        "claimed_delta": None,
        "claimed_unit": None,
        "test_roc_auc": None,
    }


def _claimed_centralised(files: RunDir) -> dict[str, Any]:
    path = files.centralised_metrics
    data = json.loads(path.read_text()) if path.is_file() else {}
    eps = data.get("epsilon")
    return {
        "claimed_epsilon": eps,
        "claimed_delta": data.get("delta"),
        "claimed_unit": "customer" if eps is not None else None,
        "test_roc_auc": (data.get("test") or {}).get("roc_auc"),
    }
