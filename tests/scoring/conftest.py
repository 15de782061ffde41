"""A finished run over ``tiny_data`` built without Flower: config, a committed federated
checkpoint and a centralised reference, for everything that scores new customers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fedmarket.config import RunConfig
from fedmarket.data import store
from fedmarket.models import build_model
from fedmarket.rundir import RunDir


@pytest.fixture(scope="session")
def scoring_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("scoring") / "run"
    cfg = RunConfig.from_mapping({"data-dir": str(tiny_data), "out-dir": str(out), "dp": "none"})
    files = RunDir(out)
    out.mkdir(parents=True)
    files.write_config(cfg)
    n_features = store.n_features(store.read_manifest(tiny_data))
    files.save_checkpoint(2, build_model("cnn-lstm", n_features, seed=1).state_dict())
    files.latest_marker.write_text('{"round": 2, "path": "round-0002.pt"}')
    files.centralised.mkdir()
    torch.save(
        {
            "model": "cnn-lstm",
            "task": "purchase",
            "state_dict": build_model("cnn-lstm", n_features, seed=2).state_dict(),
            "hparams": {},
        },
        files.centralised_model,
    )
    return out
