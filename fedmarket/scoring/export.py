"""`fedmarket export`: a run's model as a file other software runs, checked before it is kept.

The exported model is ``RawScorer`` (``raw_scorer``): RAW features in, the prediction out,
normalisation and calibration inside. Two formats:

* ``onnx``: ``torch.export`` then ``torch.onnx.export(dynamo=True)`` (torch 2.13's default and
  recommended exporter; the TorchScript-based one is deprecated), opset :data:`OPSET`, one
  dynamic batch axis. Runs in ONNX Runtime, no torch or fedmarket needed.
* ``torchscript``: ``torch.jit.trace``, loadable with ``torch.jit.load`` without fedmarket.
  torch 2.13 marks TorchScript deprecated (it recommends ``torch.export``); it still traces
  and loads, and is kept for the tools that read ``.pt`` modules. The trace freezes the
  number of steps and features, not the batch.

Nothing is kept unchecked: the exported file is run (ONNX Runtime, or ``torch.jit.load``) on
the run's pooled test customers, their stored (normalised) inputs turned back into raw
features, and compared with fedmarket's own PyTorch scoring of the same raw features
(``NormStats.apply``, the model, the calibrator). A difference above :data:`TOLERANCE` keeps
nothing. Files are written to a temporary sibling directory that is renamed into place.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch

from fedmarket.data import store
from fedmarket.data.normalise import LOG1P_FEATURES
from fedmarket.data.protect.keys import prepared_data_fernet
from fedmarket.errors import ConfigError, FedmarketError
from fedmarket.names import did_you_mean
from fedmarket.rundir import json_safe
from fedmarket.scoring.card import card_markdown, model_card
from fedmarket.scoring.raw_scorer import RawScorer, check_exportable_features, raw_features
from fedmarket.scoring.run_model import RunModel, load_run_model

FORMATS: Final[tuple[str, ...]] = ("onnx", "torchscript")
FILE_NAMES: Final[dict[str, str]] = {"onnx": "model.onnx", "torchscript": "model.pt"}
CARD_JSON: Final[str] = "model_card.json"
CARD_MD: Final[str] = "model_card.md"
OPSET: Final[int] = 20  # ai.onnx opset; ONNX Runtime >= 1.17 runs it
INPUT_NAME: Final[str] = "features"
OUTPUT_NAME: Final[str] = "prediction"
TOLERANCE: Final[float] = 1e-5  # max abs difference to PyTorch the export must keep
EXTRA_HINT: Final[str] = "pip install 'fedmarket[export]'"


@dataclass(frozen=True)
class ExportResult:
    """What ``export_run`` wrote and how closely the file reproduces PyTorch."""

    out: Path
    model_file: Path
    card: dict[str, Any]
    max_abs_diff: float
    n_customers: int
    seconds: float


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ConfigError(
            f"unknown export format {fmt!r}; {did_you_mean(fmt, FORMATS)}"
            f"known: {', '.join(FORMATS)}"
        )
    return fmt


def require_onnx() -> None:
    """ConfigError naming the extra when ONNX export or ONNX Runtime is not installed."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            f"ONNX export needs onnx, onnxscript and onnxruntime ({exc.name} is missing); "
            f"install them with {EXTRA_HINT}, or export --format torchscript"
        ) from None


def check_out(out: Path, overwrite: bool) -> Path:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a directory for the model and its card")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ConfigError(
            f"--out {out} exists and is not empty; pass --overwrite to replace it, or choose "
            "another directory"
        )
    return out


def export_run(
    run_dir: Path,
    fmt: str,
    out: Path,
    *,
    source: str = "federated",
    overwrite: bool = False,
    key_file: Path | None = None,
) -> ExportResult:
    """Export the run's ``source`` model to ``out/`` in ``fmt``, with its model card; every
    input is checked before anything is written (see the module docstring)."""
    check_format(fmt)
    out = check_out(out, overwrite)
    run = load_run_model(Path(run_dir), source)
    if fmt == "onnx":
        require_onnx()
    scorer = RawScorer.from_run(run)
    data_dir = run.config.data_dir
    fernet = prepared_data_fernet(data_dir, key_file, outside=[run.run_dir])
    raw = raw_features(run.norm, store.load_pooled(data_dir, "test", fernet=fernet).X)
    if len(raw) == 0:
        raise ConfigError(f"{data_dir}: no test customers to check the exported model on")
    reference = run.predict(run.norm.apply(raw))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp's 0700 would outlive the rename
    try:
        started = time.perf_counter()
        model_file = tmp / FILE_NAMES[fmt]
        example = raw[np.arange(2) % len(raw)]  # two rows: a batch of 1 would be frozen
        EXPORTERS[fmt](scorer, example, model_file, run.model_name)
        seconds = time.perf_counter() - started
        diff = _max_abs_diff(RUNNERS[fmt](model_file, raw), reference)
        _check_diff(diff, fmt, len(raw))
        card = model_card(run)
        card["export"] = export_block(run, card["task"]["output"], fmt, diff, len(raw), seconds)
        (tmp / CARD_JSON).write_text(json.dumps(json_safe(card), indent=2) + "\n")
        (tmp / CARD_MD).write_text(card_markdown(card) + export_markdown(card["export"]))
        _replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ExportResult(out, out / FILE_NAMES[fmt], card, diff, len(raw), seconds)


def _max_abs_diff(got: np.ndarray, reference: np.ndarray) -> float:
    got = np.asarray(got, np.float64).reshape(-1)
    if got.shape != reference.shape or not np.isfinite(got).all():
        return float("inf")
    return float(np.max(np.abs(got - reference)))


def _check_diff(diff: float, fmt: str, n: int) -> None:
    if not diff <= TOLERANCE:
        raise FedmarketError(
            f"the exported {fmt} model differs from PyTorch by {diff:.3g} (more than "
            f"{TOLERANCE:g}) on the run's {n} test customers; nothing was written. Please "
            "report it with the run's config.json"
        )


def _replace(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` to ``out``; an existing ``out`` is moved aside first, then removed."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.replaced")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _export_failed(fmt: str, model: str, step: str, exc: Exception) -> FedmarketError:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    return FedmarketError(
        f"model {model!r} could not be exported to {fmt}: {step} failed with "
        f"{type(exc).__name__}: {first}"
    )


# torch's ONNX exporter logs a warning per torchvision op when torchvision is absent (it is
# not a dependency: no fedmarket model uses its ops), four lines on every export.
_EXPORTER_LOGGER: Final = "torch.onnx._internal.exporter._registration"


@contextlib.contextmanager
def quiet_onnx_exporter() -> Iterator[None]:
    """Silence the exporter's notes while it runs: Python warnings, and the registry's
    "torchvision is not installed" log lines, which say nothing about a fedmarket model
    (the export is checked against PyTorch afterwards either way)."""
    logger = logging.getLogger(_EXPORTER_LOGGER)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def export_onnx(scorer: RawScorer, example: np.ndarray, path: Path, model: str = "") -> None:
    """``torch.export`` with a dynamic batch axis, then ONNX opset :data:`OPSET`."""
    x = torch.from_numpy(np.ascontiguousarray(example))
    customers = torch.export.Dim("customers", min=1)
    try:
        with warnings.catch_warnings():  # nn.LSTM re-assigns _flat_weights: harmless here
            warnings.simplefilter("ignore")
            program = torch.export.export(scorer, (x,), dynamic_shapes=({0: customers},))
    except Exception as exc:  # torch raises many types; name the step and the model
        raise _export_failed("onnx", model, "torch.export", exc) from exc
    try:
        with quiet_onnx_exporter():
            onnx_program = torch.onnx.export(
                program,
                (x,),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                opset_version=OPSET,
                dynamo=True,
                verbose=False,
            )
        onnx_program.save(str(path), external_data=False)
    except Exception as exc:
        raise _export_failed("onnx", model, "the ONNX conversion", exc) from exc


def export_torchscript(scorer: RawScorer, example: np.ndarray, path: Path, model: str = "") -> None:
    """``torch.jit.trace`` (its deprecation and tracer warnings silenced: the trace is
    checked on every test customer afterwards), then ``torch.jit.save``."""
    x = torch.from_numpy(np.ascontiguousarray(example))
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(scorer, (x,), check_trace=False)
        torch.jit.save(traced, str(path))
    except Exception as exc:
        raise _export_failed("torchscript", model, "torch.jit.trace", exc) from exc


def run_onnx(path: Path, raw: np.ndarray, threads: int = 1) -> np.ndarray:
    """The ONNX file's predictions of raw features, with ONNX Runtime on the CPU."""
    require_onnx()
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    (out,) = session.run([OUTPUT_NAME], {INPUT_NAME: np.asarray(raw, np.float32)})
    return np.asarray(out, np.float64)


def run_torchscript(path: Path, raw: np.ndarray) -> np.ndarray:
    """The TorchScript file's predictions of raw features (``torch.jit.load``)."""
    with warnings.catch_warnings():  # torch 2.13 marks TorchScript deprecated, see above
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        out = module(torch.from_numpy(np.asarray(raw, np.float32)))
    return out.numpy().astype(np.float64)


EXPORTERS = {"onnx": export_onnx, "torchscript": export_torchscript}
RUNNERS = {"onnx": run_onnx, "torchscript": run_torchscript}


def export_block(
    run: RunModel, output: str, fmt: str, diff: float, n: int, seconds: float
) -> dict[str, Any]:
    """The card's ``export`` section: how to call the file and how it was checked;
    ``output`` is the card's meaning of the model's output."""
    check_exportable_features(run)
    steps, n_features = run.input_shape
    cal = run.calibrator
    runtime = "onnxruntime" if fmt == "onnx" else "torch.jit.load"
    return {
        "format": fmt,
        "file": FILE_NAMES[fmt],
        "exporter": (
            f"torch.onnx.export(dynamo=True), torch {torch.__version__}"
            if fmt == "onnx"
            else f"torch.jit.trace, torch {torch.__version__}"
        ),
        "opset": OPSET if fmt == "onnx" else None,
        "input": {
            "name": INPUT_NAME,
            "shape": ["customers", steps, n_features],
            "dtype": "float32",
            "features": "RAW",
            "meaning": (
                "each customer's raw event features (as `fedmarket data prepare` builds them, "
                "before normalisation), steps oldest first, features in the order of "
                "inputs.feature_names; the normalisation is inside the model"
            ),
        },
        "output": {
            "name": OUTPUT_NAME,
            "shape": ["customers"],
            "dtype": "float32",
            "meaning": output
            + (
                ""
                if cal is None
                else f", calibrated ({cal.method}, fitted on validation customers)"
            ),
        },
        "inside": {
            "normalisation": (
                f"log1p on {', '.join(LOG1P_FEATURES)}; then (x - mean) / std with "
                "inputs.normalisation"
            ),
            "link": "sigmoid" if run.task.binary else "exp of the log-mean",
            "calibration": None if cal is None else cal.method,
        },
        "verification": {
            "customers": n,
            "test_set": "the run's pooled test customers (every retailer's test split)",
            "check": (
                f"{runtime} on the test customers' raw features (their stored normalised "
                "inputs with the normalisation inverted) against fedmarket's PyTorch scoring "
                "of the same raw features (NormStats.apply, the model"
                + (", the calibrator)" if cal is not None else ")")
            ),
            "max_abs_diff": diff,
            "tolerance": TOLERANCE,
        },
        "export_seconds": round(seconds, 3),
    }


def export_markdown(block: dict[str, Any]) -> str:
    """The card's export section for people."""
    i, o, v = block["input"], block["output"], block["verification"]
    opset = f", opset {block['opset']}" if block["opset"] else ""
    lines = [
        "",
        "## Export",
        f"- File: `{block['file']}` ({block['format']}{opset}; {block['exporter']}).",
        f"- Input `{i['name']}`: {i['dtype']} {i['shape']}, RAW features: {i['meaning']}.",
        f"- Output `{o['name']}`: {o['dtype']} {o['shape']}, the {o['meaning']}.",
        f"- Inside the model: {block['inside']['normalisation']}; {block['inside']['link']}"
        + (
            f"; {block['inside']['calibration']} calibration"
            if block["inside"]["calibration"]
            else ""
        )
        + ".",
        f"- Checked on {v['customers']} test customers: max abs difference to PyTorch "
        f"{v['max_abs_diff']:.3g} (tolerance {v['tolerance']:g}); {v['check']}.",
    ]
    return "\n".join(lines) + "\n"
