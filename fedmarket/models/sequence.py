"""One configurable sequence model: optional Conv1d front, recurrent stack, one score per customer.

All four recurrent models (cnn-lstm, lstm, gru, rnn) are this class with different settings, so
fast and DP forms, initialisation and the head behave the same everywhere. Input is
``[B, T, F]`` float32 (batch first: customers x time steps x per-step features); output is
``[B]``, a raw score: a logit for task ``purchase``, a log-rate for ``purchase-count``; with
``count_loss='negative-binomial'`` ``[B, 2]``, the log-mean and the learned log-dispersion
(``fedmarket.negbin``). The link and the loss live with the task, not here.

No BatchNorm anywhere: Opacus cannot privatise it (its running statistics mix customers).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from fedmarket.checks import integer, number
from fedmarket.errors import ConfigError, DataError
from fedmarket.models.dispersion import Dispersion
from fedmarket.models.recurrent import RECURRENT_KINDS, RecurrentStack
from fedmarket.names import BINARY_TASKS, COUNT_LOSSES, did_you_mean
from fedmarket.tasks import get_task


def _head_bias(task: str, base_rate: Any) -> float:
    """Start the head at the training base rate, so early rounds do not spend budget finding it.

    ``base_rate`` is the share of buyers (purchase) or the mean purchase count (purchase-count);
    ``None`` starts at a neutral 0 (probability 0.5, rate 1).
    """
    if base_rate is None:
        return 0.0
    name = f"model hyper-parameter 'base_rate' for task {task!r}"
    if task in BINARY_TASKS:
        rate = number(
            name, base_rate, above=0.0, below=1.0, numpy=True, must="a share of buyers in (0, 1)"
        )
        return math.log(rate / (1 - rate))
    return math.log(number(name, base_rate, above=0.0, numpy=True, must="a mean count > 0"))


def dispersion_head(task: str, count_loss: Any) -> Dispersion | None:
    """The learned NB dispersion for ``count_loss='negative-binomial'`` (None for Poisson).

    A negative-binomial model's score is ``[B, 2]`` (log-mean, log-alpha), see
    ``fedmarket.negbin``; any other loss keeps the one-column score.
    """
    if count_loss not in COUNT_LOSSES:
        raise ConfigError(
            f"model hyper-parameter 'count_loss' {count_loss!r} is unknown; "
            f"{did_you_mean(count_loss, COUNT_LOSSES)}known: {', '.join(COUNT_LOSSES)}"
        )
    if count_loss == "poisson":
        return None
    if task != "purchase-count":
        raise ConfigError(
            f"count_loss={count_loss!r} is a loss of task 'purchase-count', not of {task!r}; "
            "use task 'purchase-count' or leave count_loss at 'poisson'"
        )
    return Dispersion()


def with_dispersion(score: Tensor, dispersion: Dispersion | None) -> Tensor:
    """``[B]`` score, or ``[B, 2]`` (score, log-alpha) for a negative-binomial model."""
    return score if dispersion is None else torch.stack([score, dispersion(score)], dim=-1)


def _conv_front(n_features: int, layers: int, channels: int, kernel_size: int) -> nn.Sequential:
    """Conv1d over time; odd kernels with padding k//2 keep T, so the LSTM sees every step."""
    modules: list[nn.Module] = []
    in_channels = n_features
    for _ in range(layers):
        modules += [nn.Conv1d(in_channels, channels, kernel_size, padding=kernel_size // 2)]
        modules += [nn.ReLU()]
        in_channels = channels
    return nn.Sequential(*modules)


class SequenceModel(nn.Module):
    """Conv1d front (``conv_layers`` may be 0) -> recurrent stack -> last step -> dropout -> head.

    ``dp=True`` swaps only the recurrent layers for DP layers (see ``recurrent_layer``); the
    state-dict layout is the same, and for one RNG state both forms start from identical
    weights. Prefer ``fedmarket.models.build_model``, which also seeds construction without
    touching global RNG.
    """

    def __init__(
        self,
        n_features: int,
        *,
        cell: str = "lstm",
        task: str = "purchase",
        dp: bool | str = False,
        conv_layers: int = 0,
        conv_channels: int = 32,
        kernel_size: int = 3,
        hidden_size: int = 50,
        num_layers: int = 2,
        dropout: float = 0.2,
        base_rate: float | None = None,
        count_loss: str = "poisson",
    ) -> None:
        super().__init__()
        if cell not in RECURRENT_KINDS:
            raise ConfigError(f"unknown cell {cell!r}; known: {', '.join(RECURRENT_KINDS)}")
        get_task(task)  # ConfigError naming the known tasks; fedmarket/tasks.py owns the list
        self.n_features = integer(
            "model hyper-parameter 'n_features'", n_features, at_least=1, numpy=True
        )
        self.task, self.cell, self.dp = task, cell, bool(dp)
        self.hparams: dict[str, Any] = {
            name: integer(f"model hyper-parameter {name!r}", value, at_least=low, numpy=True)
            for name, value, low in (
                ("conv_layers", conv_layers, 0),
                ("conv_channels", conv_channels, 1),
                ("kernel_size", kernel_size, 1),
                ("hidden_size", hidden_size, 1),
                ("num_layers", num_layers, 1),
            )
        }
        self.hparams["dropout"] = number(
            "model hyper-parameter 'dropout'", dropout, at_least=0.0, below=1.0, numpy=True
        )
        self.hparams["base_rate"] = base_rate
        self.hparams["count_loss"] = count_loss
        if kernel_size % 2 == 0:
            raise ConfigError(
                f"model hyper-parameter 'kernel_size' must be odd to keep the sequence length, "
                f"got {kernel_size}"
            )
        bias = _head_bias(task, base_rate)
        hp = self.hparams
        self.conv = _conv_front(n_features, hp["conv_layers"], hp["conv_channels"], kernel_size)
        rnn_input = hp["conv_channels"] if hp["conv_layers"] else n_features
        self.recurrent = RecurrentStack(
            cell, rnn_input, hp["hidden_size"], hp["num_layers"], hp["dropout"], dp=dp
        )
        self.dropout = nn.Dropout(hp["dropout"])
        self.head = nn.Linear(hp["hidden_size"], 1)
        nn.init.constant_(self.head.bias, bias)
        self.dispersion = dispersion_head(task, count_loss)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 3 or x.shape[1] < 1 or x.shape[2] != self.n_features:
            raise DataError(
                f"model input must be [batch, time >= 1, {self.n_features} features], "
                f"got shape {tuple(x.shape)}; check the feature arrays match the model"
            )
        if len(self.conv):
            x = self.conv(x.transpose(1, 2)).transpose(1, 2)
        last = self.recurrent(x)[:, -1, :]
        return with_dispersion(self.head(self.dropout(last)).squeeze(-1), self.dispersion)

    def extra_repr(self) -> str:
        return f"task={self.task!r}, dp={self.dp}"
