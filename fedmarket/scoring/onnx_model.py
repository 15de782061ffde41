"""A run's network in ONNX Runtime, for the scoring service's small model calls.

Scoring one customer with PyTorch is ~0.4-1.4 ms of CPU, almost all of it the dispatch of a few
dozen small operators; ONNX Runtime runs the same graph in ~0.05-0.15 ms. ``fedmarket serve
--onnx`` therefore exports the run's network (with the task's link, as ``RunModel.predict``
applies it) in memory at start-up, the way `fedmarket export` does (``torch.export``, then
``torch.onnx.export``; tens of seconds), and checks it against PyTorch on random inputs of the
run's shape before serving with it. The calibrator stays in NumPy, as ``RunModel.predict``
applies it. Needs the ``export`` extra.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import torch
from torch import Tensor, nn

from fedmarket.errors import ConfigError
from fedmarket.scoring.export import OPSET, quiet_onnx_exporter, require_onnx
from fedmarket.scoring.run_model import RunModel
from fedmarket.tasks import Task

TOLERANCE: Final[float] = 1e-5  # largest difference from PyTorch accepted at start-up
_CHECK_ROWS: Final[tuple[int, ...]] = (1, 8, 64)


class _Scores(nn.Module):
    def __init__(self, net: nn.Module, task: Task) -> None:
        super().__init__()
        self.net, self.task = net, task

    def forward(self, x: Tensor) -> Tensor:
        return self.task.prediction(self.net(x))


class OnnxModel:
    """``predict`` as ``RunModel.predict`` computes it, run by ONNX Runtime on one thread."""

    def __init__(self, run: RunModel, *, seed: int = 0) -> None:
        require_onnx()
        import onnxruntime as ort

        self.run = run
        module = _Scores(run.net, run.task).eval()
        example = torch.zeros((2, *run.input_shape), dtype=torch.float32)
        customers = torch.export.Dim("customers", min=1)
        with quiet_onnx_exporter():  # the exporter's notes; the result is checked below
            program = torch.export.export(module, (example,), dynamic_shapes=({0: customers},))
            exported = torch.onnx.export(
                program,
                (example,),
                input_names=["x"],
                output_names=["y"],
                opset_version=OPSET,
                dynamo=True,
                verbose=False,
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            exported.model_proto.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        self.max_abs_diff = self._check(np.random.default_rng(seed))

    def predict(self, X: np.ndarray, *, calibrated: bool = True) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype=np.float32)
        if X.ndim != 3 or X.shape[1:] != self.run.input_shape:
            return self.run.predict(X, calibrated=calibrated)  # its error names the shape
        (out,) = self._session.run(["y"], {"x": X})
        out = np.asarray(out, dtype=np.float64).reshape(len(X))
        if calibrated and self.run.calibrator is not None:
            out = self.run.calibrator.apply(out)
        return out

    def _check(self, rng: np.random.Generator) -> float:
        worst = 0.0
        for n in _CHECK_ROWS:
            X = rng.normal(size=(n, *self.run.input_shape)).astype(np.float32)
            diff = float(np.max(np.abs(self.predict(X) - self.run.predict(X))))
            worst = max(worst, diff)
        if not worst <= TOLERANCE:
            raise ConfigError(
                f"{self.run.run_dir}: ONNX Runtime's scores differ from PyTorch's by {worst:.2g} "
                f"(more than {TOLERANCE:g}); serve without --onnx"
            )
        return worst
