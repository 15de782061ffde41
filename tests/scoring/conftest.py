"""A finished run over ``tiny_data`` built without Flower: config, a committed federated
checkpoint and a centralised reference, for everything that scores new customers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from fedmarket.calibration import Calibrator
from fedmarket.config import RunConfig
from fedmarket.data import store
from fedmarket.models import build_model
from fedmarket.rundir import CALIBRATION, RunDir


def make_run(
    data: Path,
    out: Path,
    *,
    model: str = "cnn-lstm",
    task: str = "purchase",
    count_loss: str = "poisson",
    calibrator: Calibrator | None = None,
    centralised: dict[str, Any] | None = None,
) -> Path:
    """A run directory over ``data`` with a seeded, untrained ``model`` as its round-2
    global model (and ``calibrator`` beside it); ``centralised``: the hyper-parameters of a
    centralised reference of the same model (seed 2), else none."""
    cfg = RunConfig.from_mapping(
        {
            "data-dir": str(data),
            "out-dir": str(out),
            "dp": "none",
            "model": model,
            "task": task,
            "count-loss": count_loss,
        }
    )
    files = RunDir(out)
    out.mkdir(parents=True)
    files.write_config(cfg)
    n_features = store.n_features(store.read_manifest(data))
    options = cfg.model_options()
    files.save_checkpoint(
        2, build_model(model, n_features, task=task, seed=1, **options).state_dict()
    )
    files.latest_marker.write_text('{"round": 2, "path": "round-0002.pt"}')
    if calibrator is not None:
        calibrator.save(out / CALIBRATION)
    if centralised is not None:
        files.centralised.mkdir()
        net = build_model(model, n_features, task=task, seed=2, **centralised)
        blob = {
            "model": model,
            "task": task,
            "state_dict": net.state_dict(),
            "hparams": centralised,
        }
        torch.save(blob, files.centralised_model)
    return out


@pytest.fixture(scope="session")
def scoring_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tiny_data, tmp_path_factory.mktemp("scoring") / "run", centralised={})


def make_rec_run(data: Path, out: Path, *, centralised: bool = False) -> Path:
    """A next-categories run directory over ``data``: a seeded, untrained gru-ncf as its
    round-2 global model (and, with ``centralised``, another seed as the centralised one)."""
    from fedmarket.recommend.data import vocabulary_entry

    cfg = RunConfig.from_mapping(
        {
            "data-dir": str(data),
            "out-dir": str(out),
            "dp": "none",
            "model": "gru-ncf",
            "task": "next-categories",
        }
    )
    files = RunDir(out)
    out.mkdir(parents=True)
    files.write_config(cfg)
    vocabulary = vocabulary_entry(store.read_manifest(data))

    def net(seed: int) -> torch.nn.Module:
        return build_model("gru-ncf", 3, task="next-categories", seed=seed, vocabulary=vocabulary)

    files.save_checkpoint(2, net(1).state_dict())
    files.latest_marker.write_text('{"round": 2, "path": "round-0002.pt"}')
    if centralised:
        files.centralised.mkdir()
        blob = {
            "model": "gru-ncf",
            "task": "next-categories",
            "state_dict": net(2).state_dict(),
            "hparams": {},
        }
        torch.save(blob, files.centralised_model)
    return out


@pytest.fixture(scope="session")
def rec_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_rec_run(tiny_data, tmp_path_factory.mktemp("rec") / "run", centralised=True)
