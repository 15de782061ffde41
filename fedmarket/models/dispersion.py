"""The negative-binomial dispersion as a weight Opacus can privatise.

A bare ``nn.Parameter`` outside a layer gets no per-sample gradient from Opacus'
``GradSampleModule`` (it refuses the model), yet DP-SGD must clip and noise every trainable
weight. So log-alpha is the weight of a ``Linear(1, 1, bias=False)`` fed a column of ones:
its output is log-alpha for every customer, each customer's gradient flows through a layer
Opacus knows, and FedAvg averages it like any other weight (``dispersion.log_alpha.weight``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class Dispersion(nn.Module):
    """Log-alpha of NB2 (``Var = mu + alpha mu^2``), one value shared by every customer."""

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.log_alpha = nn.Linear(1, 1, bias=False)
        nn.init.constant_(self.log_alpha.weight, math.log(alpha))

    def forward(self, like: Tensor) -> Tensor:
        """``[B]`` log-alpha, one per row of ``like`` (on its device and dtype).

        The ones are shaped like ``like`` rather than sized with ``len(like)``: an exported
        model (TorchScript trace, ONNX) would freeze a Python ``len`` to the example batch."""
        return self.log_alpha(torch.ones_like(like).unsqueeze(-1)).squeeze(-1)

    @property
    def alpha(self) -> float:
        return math.exp(float(self.log_alpha.weight.detach().reshape(())))
