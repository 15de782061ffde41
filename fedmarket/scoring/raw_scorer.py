"""A run's model as one torch module from RAW features to the prediction a campaign reads.

An exported model leaves fedmarket behind: whoever runs it (a campaign tool with ONNX
Runtime, a Java or C++ service) has no ``NormStats`` and no ``Task``. So everything between
the features `data prepare` builds and the number a retailer acts on is folded into the
module as tensor operations on constant buffers, in the order fedmarket's own scoring applies
them (``RunModel.predict`` after ``NormStats.apply``):

1. ``log1p`` on the heavy-tailed features (``normalise.LOG1P_FEATURES``), identity elsewhere;
2. ``(x - mean) / std`` per feature with the run's float32 statistics;
3. the network (eval mode: dropout off);
4. the task's link: ``sigmoid`` (probability of a purchase) or ``exp`` of the log-mean
   (expected purchase count; a negative-binomial model's dispersion column is dropped);
5. the run's calibrator, when it has one, in float64 as ``Calibrator.apply`` computes it:
   Platt as ``sigmoid(slope * logit(clip(p)) + intercept)``; isotonic as the piecewise-linear
   interpolation between its thresholds that ``np.interp`` computes, written as a sum of
   clamped ramps (``min``/``max``/``mul``/``sum`` only, so every ONNX opset and TorchScript
   run it; no ``searchsorted``), constant outside the fitted range as sklearn's ``clip`` is.

Output: one float32 per customer, ``[customers]``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from fedmarket.calibration import EPS, Calibrator
from fedmarket.data.features import FEATURE_NAMES
from fedmarket.data.normalise import LOG1P_FEATURES, NormStats
from fedmarket.errors import ConfigError, DataError
from fedmarket.scoring.run_model import RunModel
from fedmarket.tasks import Task


def check_exportable_features(run: RunModel) -> None:
    """Refuse a run whose inputs are not exactly the event features: the normalisation that
    is folded in covers those, not the attribute columns `data prepare --attributes` joins."""
    if tuple(run.feature_names) != tuple(FEATURE_NAMES):
        extra = [n for n in run.feature_names if n not in FEATURE_NAMES]
        raise ConfigError(
            f"{run.run_dir}: the run's model reads {len(run.feature_names)} features "
            f"({len(extra)} attribute column(s) such as {', '.join(extra[:3]) or '-'} besides "
            f"the {len(FEATURE_NAMES)} event features); export folds in the event features' "
            "normalisation only, so export a run trained on event features alone"
        )


class _Platt(nn.Module):
    def __init__(self, slope: float, intercept: float) -> None:
        super().__init__()
        self.register_buffer("slope", torch.tensor(slope, dtype=torch.float64))
        self.register_buffer("intercept", torch.tensor(intercept, dtype=torch.float64))

    def forward(self, p: Tensor) -> Tensor:
        p = torch.clamp(p, EPS, 1 - EPS)
        return torch.sigmoid(self.slope * torch.log(p / (1 - p)) + self.intercept)


class _Isotonic(nn.Module):
    """``np.interp(p, x, y)``: ``y[0] + sum_i slope_i * (clamp(p, x_i, x_i+1) - x_i)``."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        super().__init__()
        if x.ndim != 1 or x.shape != y.shape or x.size == 0 or (np.diff(x) <= 0).any():
            raise DataError(
                "isotonic calibration: thresholds must be one strictly increasing list with "
                "one value each; fit the calibration again with --calibrate isotonic"
            )
        self.register_buffer("y0", torch.tensor(y[0], dtype=torch.float64))
        self.register_buffer("lo", torch.from_numpy(x[:-1].astype(np.float64)))
        self.register_buffer("hi", torch.from_numpy(x[1:].astype(np.float64)))
        self.register_buffer("slope", torch.from_numpy(np.diff(y) / np.diff(x)))

    def forward(self, p: Tensor) -> Tensor:
        ramp = torch.minimum(torch.maximum(p.unsqueeze(-1), self.lo), self.hi) - self.lo
        return self.y0 + (ramp * self.slope).sum(-1)


def calibration_module(calibrator: Calibrator | None) -> nn.Module | None:
    """The calibrator as a float64 torch module on probabilities (None: none to fold)."""
    if calibrator is None:
        return None
    params = calibrator.params
    if calibrator.method == "platt":
        return _Platt(float(params["slope"]), float(params["intercept"]))
    return _Isotonic(np.asarray(params["x"], np.float64), np.asarray(params["y"], np.float64))


class RawScorer(nn.Module):
    """RAW features ``[customers, steps, features]`` (float32, the card's feature order) ->
    prediction ``[customers]`` (float32); see the module docstring for the steps."""

    def __init__(
        self, net: nn.Module, norm: NormStats, task: Task, calibrator: Calibrator | None
    ) -> None:
        super().__init__()
        mask = torch.tensor([name in LOG1P_FEATURES for name in FEATURE_NAMES])
        self.register_buffer("log1p_mask", mask)
        self.register_buffer("mean", torch.from_numpy(norm.mean.astype(np.float32)))
        self.register_buffer("std", torch.from_numpy(norm.std.astype(np.float32)))
        self.net = net.eval()
        self.link = task.prediction  # a plain function of tensors: traced, not stored
        self.calibration = calibration_module(calibrator)
        # an inference module: its outputs carry no autograd graph, in torch and once exported
        self.requires_grad_(False)

    @classmethod
    def from_run(cls, run: RunModel) -> RawScorer:
        check_exportable_features(run)
        return cls(run.net, run.norm, run.task, run.calibrator).eval()

    def normalise(self, features: Tensor) -> Tensor:
        """``NormStats.apply`` as tensor operations (float32)."""
        x = torch.where(self.log1p_mask, torch.log1p(features), features)
        return (x - self.mean) / self.std

    def forward(self, features: Tensor) -> Tensor:
        prediction = self.link(self.net(self.normalise(features)))
        if self.calibration is not None:
            prediction = self.calibration(prediction.to(torch.float64))
        return prediction.to(torch.float32)


def raw_features(norm: NormStats, X: np.ndarray) -> np.ndarray:
    """Normalised inputs ``X`` turned back into raw features (float32, never negative):
    ``x * std + mean``, then ``expm1`` on the ``log1p`` features. What the export checks its
    model with: the prepared test customers are stored normalised only."""
    Z = np.asarray(X, np.float64) * norm.std + norm.mean
    mask = np.array([name in LOG1P_FEATURES for name in FEATURE_NAMES])
    Z[..., mask] = np.expm1(Z[..., mask])
    return np.maximum(Z, 0.0).astype(np.float32)
