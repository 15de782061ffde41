from __future__ import annotations

import builtins
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fedmarket.calibration import Calibrator
from fedmarket.data import store
from fedmarket.data.normalise import NormStats
from fedmarket.errors import ConfigError, FedmarketError
from fedmarket.models import available_models, build_model
from fedmarket.names import RANKING_MODEL
from fedmarket.scoring import export
from fedmarket.scoring.export import ExportResult, export_run, run_onnx, run_torchscript
from fedmarket.scoring.raw_scorer import RawScorer, raw_features
from fedmarket.scoring.run_model import load_run_model
from fedmarket.tasks import get_task
from tests.scoring.conftest import make_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TOL = 1e-5


def _test_customers(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(raw features, fedmarket's PyTorch prediction from the stored normalised inputs)."""
    run = load_run_model(run_dir)
    X = np.asarray(store.load_pooled(run.config.data_dir, "test").X)
    return raw_features(run.norm, X), run.predict(X)


@pytest.fixture(scope="module")
def onnx_export(scoring_run: Path, tmp_path_factory: pytest.TempPathFactory) -> ExportResult:
    return export_run(scoring_run, "onnx", tmp_path_factory.mktemp("export") / "onnx")


def test_onnx_reproduces_pytorch_on_the_test_customers(
    scoring_run: Path, onnx_export: ExportResult
) -> None:
    raw, expected = _test_customers(scoring_run)
    got = run_onnx(onnx_export.model_file, raw)  # onnxruntime, independent of the export's check
    assert got.shape == expected.shape and len(got) == onnx_export.n_customers
    assert np.max(np.abs(got - expected)) <= TOL
    assert onnx_export.max_abs_diff <= TOL
    one = run_onnx(onnx_export.model_file, raw[3:4])  # the batch axis is free
    assert abs(one[0] - expected[3]) <= TOL


def test_onnx_card_describes_the_file(onnx_export: ExportResult) -> None:
    out = onnx_export.out
    assert sorted(p.name for p in out.iterdir()) == [
        "model.onnx",
        "model_card.json",
        "model_card.md",
    ]
    card = json.loads((out / "model_card.json").read_text())
    block = card["export"]
    assert block["format"] == "onnx" and block["opset"] == export.OPSET == 20
    assert block["input"]["name"] == "features" and block["input"]["features"] == "RAW"
    assert block["input"]["shape"] == ["customers", 8, len(card["inputs"]["feature_names"])]
    assert block["output"]["meaning"].startswith("probability that the customer purchases")
    assert block["verification"]["max_abs_diff"] == onnx_export.max_abs_diff
    assert block["verification"]["customers"] == card["training_data"]["test_customers"]
    assert card["model"]["name"] == "cnn-lstm"
    md = (out / "model_card.md").read_text()
    assert "## Export" in md and "RAW features" in md and "normalisation is inside" in md
    import onnx

    model = onnx.load(out / "model.onnx")
    assert [o.version for o in model.opset_import if o.domain == ""] == [20]
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [8, 11]


def test_torchscript_loads_without_fedmarket(scoring_run: Path, tmp_path: Path) -> None:
    result = export_run(scoring_run, "torchscript", tmp_path / "ts")
    raw, expected = _test_customers(scoring_run)
    np.save(tmp_path / "raw.npy", raw)
    script = (
        "import sys, numpy as np, torch; sys.modules['fedmarket'] = None\n"
        f"m = torch.jit.load({str(result.model_file)!r})\n"
        f"out = m(torch.from_numpy(np.load({str(tmp_path / 'raw.npy')!r})))\n"
        f"np.save({str(tmp_path / 'out.npy')!r}, out.numpy())\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    got = np.load(tmp_path / "out.npy")
    assert got.dtype == np.float32 and np.max(np.abs(got - expected)) <= TOL
    assert result.max_abs_diff <= TOL and result.card["export"]["opset"] is None


def test_platt_calibrator_is_folded_in(tiny_data: Path, tmp_path: Path) -> None:
    cal = Calibrator("platt", {"slope": 0.5, "intercept": -1.0}, 40)
    run_dir = make_run(tiny_data, tmp_path / "run", model="lstm", calibrator=cal)
    result = export_run(run_dir, "torchscript", tmp_path / "out")
    raw, expected = _test_customers(run_dir)  # RunModel.predict applies the calibrator
    got = run_torchscript(result.model_file, raw)
    assert np.max(np.abs(got - expected)) <= TOL
    uncalibrated = load_run_model(run_dir).predict(
        store.load_pooled(tiny_data, "test").X, calibrated=False
    )
    assert np.max(np.abs(got - uncalibrated)) > 0.05  # the calibration did something
    assert result.card["export"]["inside"]["calibration"] == "platt"
    assert "calibrated (platt" in result.card["export"]["output"]["meaning"]


@pytest.mark.parametrize(
    ("model", "task", "count_loss", "fmt"),
    [
        ("gru", "purchase-count", "poisson", "torchscript"),
        pytest.param("lstm", "purchase-count", "negative-binomial", "onnx", marks=pytest.mark.slow),
        pytest.param("lstm", "purchase", "poisson", "onnx", marks=pytest.mark.slow),
    ],
)
def test_other_models_and_the_count_task_export(
    tiny_data: Path, tmp_path: Path, model: str, task: str, count_loss: str, fmt: str
) -> None:
    """The purchase model carries an isotonic calibrator: folded in as ramps (ONNX Max/Min)."""
    cal = None
    if task == "purchase":
        cal = Calibrator("isotonic", {"x": [0.3, 0.45, 0.5, 0.7], "y": [0.02, 0.1, 0.1, 0.6]}, 9)
    run_dir = make_run(
        tiny_data, tmp_path / "run", model=model, task=task, count_loss=count_loss, calibrator=cal
    )
    result = export_run(run_dir, fmt, tmp_path / "out")
    raw, expected = _test_customers(run_dir)
    got = export.RUNNERS[fmt](result.model_file, raw)
    assert np.max(np.abs(got - expected)) <= TOL
    if task == "purchase-count":
        assert result.card["export"]["output"]["meaning"].startswith("expected number")
        assert (got > 0).all()


def test_centralised_mlp_count_model_exports_to_onnx(tiny_data: Path, tmp_path: Path) -> None:
    """The mlp reads the window flattened (n_steps = 8): a centralised reference here, with a
    negative-binomial head whose dispersion column the export drops."""
    options = {"n_steps": 8, "count_loss": "negative-binomial"}
    run_dir = make_run(
        tiny_data, tmp_path / "run", model="mlp", task="purchase-count", centralised=options
    )
    result = export_run(run_dir, "onnx", tmp_path / "out", source="centralised")
    run = load_run_model(run_dir, "centralised")
    X = np.asarray(store.load_pooled(tiny_data, "test").X)
    got = run_onnx(result.model_file, raw_features(run.norm, X))
    assert got.shape == (len(X),) and (got > 0).all()
    assert np.max(np.abs(got - run.predict(X))) <= TOL
    assert result.card["model"]["source"] == "centralised"
    assert result.card["export"]["inside"]["link"] == "exp of the log-mean"


@pytest.mark.slow
# the recommender (next-categories) ranks items, not customers: load_run_model refuses its runs
@pytest.mark.parametrize("model", [m for m in available_models() if m != RANKING_MODEL])
@pytest.mark.parametrize("fmt", export.FORMATS)
def test_every_registered_model_exports(
    tiny_data: Path, tmp_path: Path, model: str, fmt: str
) -> None:
    """Every model of the registry, the negative-binomial head included, in both formats."""
    n_steps = {"n_steps": 8} if model == "mlp" else {}
    task = get_task("purchase-count")
    net = build_model(model, 11, task=task.name, count_loss="negative-binomial", seed=0, **n_steps)
    norm = NormStats.from_dict(store.read_manifest(tiny_data)["normalisation"])
    scorer = RawScorer(net.eval(), norm, task, None)
    raw = raw_features(norm, np.asarray(store.load_split(tiny_data, 1, "test").X))
    export.EXPORTERS[fmt](scorer, raw[:2], tmp_path / "m", model)
    with torch.no_grad():
        expected = scorer(torch.from_numpy(raw)).numpy()
    got = export.RUNNERS[fmt](tmp_path / "m", raw)
    assert np.max(np.abs(got - expected)) <= TOL


# -- refusals: every one before anything is written ------------------------------------


def test_unknown_format_suggests_the_close_one(scoring_run: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown export format 'onxx'; did you mean 'onnx'"):
        export_run(scoring_run, "onxx", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_existing_out_dir_needs_overwrite(scoring_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="exists and is not empty; pass --overwrite"):
        export_run(scoring_run, "torchscript", out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    export_run(scoring_run, "torchscript", out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["model.pt", "model_card.json", "model_card.md"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary left
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        export_run(scoring_run, "torchscript", tmp_path / "file")


def test_run_without_checkpoint_is_refused(tiny_data: Path, tmp_path: Path) -> None:
    run_dir = make_run(tiny_data, tmp_path / "run")
    (run_dir / "checkpoints" / "latest.json").unlink()
    with pytest.raises(ConfigError, match="no committed round"):
        export_run(run_dir, "torchscript", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_extra_names_it(
    scoring_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_import = builtins.__import__

    def no_onnxruntime(name: str, *args: object, **kwargs: object) -> object:
        if name == "onnxruntime":
            raise ImportError("No module named 'onnxruntime'", name="onnxruntime")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnxruntime)
    with pytest.raises(
        ConfigError, match=r"onnxruntime is missing.*pip install 'fedmarket\[export\]'"
    ):
        export_run(scoring_run, "onnx", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_export_failure_names_the_model_and_step(
    scoring_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unsupported(*args: object, **kwargs: object) -> None:
        raise RuntimeError("aten::lstm is not supported\nmore detail")

    monkeypatch.setattr(torch.export, "export", unsupported)
    with pytest.raises(
        FedmarketError,
        match=r"model 'cnn-lstm' could not be exported to onnx: torch.export failed with "
        r"RuntimeError: aten::lstm is not supported$",
    ):
        export_run(scoring_run, "onnx", tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_disagrees_with_pytorch_is_not_kept(
    scoring_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(export.RUNNERS, "torchscript", lambda path, raw: np.full(len(raw), 0.5))
    with pytest.raises(FedmarketError, match=r"differs from PyTorch by .* nothing was written"):
        export_run(scoring_run, "torchscript", tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_quiet_onnx_exporter_drops_the_registry_notes_and_restores_its_level() -> None:
    """torch's exporter logs "torchvision is not installed" four times per export; inside
    the context those lines are dropped, outside the logger is as it was."""
    import logging

    logger = logging.getLogger("torch.onnx._internal.exporter._registration")
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    handler, before = Keep(), logger.level
    logger.addHandler(handler)
    try:
        with export.quiet_onnx_exporter():
            logger.warning("torchvision is not installed. Skipping torchvision::nms")
        assert seen == [] and logger.level == before
        logger.warning("after")
        assert seen == ["after"]
    finally:
        logger.removeHandler(handler)
