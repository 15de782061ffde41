"""A multilayer perceptron over the flattened sequence: the model for customer tables.

A customer table is prepared as one time step per customer (``fedmarket.data.table``), so
``[B, 1, F]`` flattens to the attributes themselves; on event data set ``n_steps`` to the
sequence length (the manifest's ``window.n_steps``) to flatten all steps. Output ``[B]``, a
raw score (logit or log-rate) like ``SequenceModel``'s (``[B, 2]`` with a negative-binomial
``count_loss``).

Plain ``Linear`` + ReLU + dropout layers, no BatchNorm: Opacus computes per-sample gradients
for every layer as is, so the fast and the DP form are one and the same module (``dp`` is
accepted and recorded only so the registry treats every model alike).
"""

from __future__ import annotations

from torch import Tensor, nn

from fedmarket.checks import integer, number
from fedmarket.errors import DataError
from fedmarket.models.sequence import _head_bias, dispersion_head, with_dispersion
from fedmarket.tasks import get_task


class MLPModel(nn.Module):
    """flatten -> ``num_layers`` x (Linear(hidden_size) -> ReLU -> dropout) -> Linear(1)."""

    def __init__(
        self,
        n_features: int,
        *,
        task: str = "purchase",
        dp: bool | str = False,
        n_steps: int = 1,
        hidden_size: int = 64,
        num_layers: int = 2,
        dropout: float = 0.1,
        base_rate: float | None = None,
        count_loss: str = "poisson",
    ) -> None:
        super().__init__()
        get_task(task)
        self.n_features = integer("model hyper-parameter 'n_features'", n_features, at_least=1)
        self.task, self.dp = task, bool(dp)
        self.hparams = {
            "n_steps": integer("model hyper-parameter 'n_steps'", n_steps, at_least=1),
            "hidden_size": integer("model hyper-parameter 'hidden_size'", hidden_size, at_least=1),
            "num_layers": integer("model hyper-parameter 'num_layers'", num_layers, at_least=0),
            "dropout": number(
                "model hyper-parameter 'dropout'", dropout, at_least=0.0, below=1.0, numpy=True
            ),
            "base_rate": base_rate,
            "count_loss": count_loss,
        }
        layers: list[nn.Module] = []
        width = n_steps * n_features
        for _ in range(num_layers):
            layers += [nn.Linear(width, hidden_size), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden_size
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, 1)
        nn.init.constant_(self.head.bias, _head_bias(task, base_rate))
        self.dispersion = dispersion_head(task, count_loss)

    def forward(self, x: Tensor) -> Tensor:
        steps = self.hparams["n_steps"]
        if x.dim() != 3 or x.shape[1] != steps or x.shape[2] != self.n_features:
            raise DataError(
                f"mlp input must be [batch, {steps} step(s), {self.n_features} features], got "
                f"shape {tuple(x.shape)}; on event data build it with n_steps = the window's "
                "number of steps"
            )
        score = self.head(self.body(x.flatten(1))).squeeze(-1)
        return with_dispersion(score, self.dispersion)

    def extra_repr(self) -> str:
        return f"task={self.task!r}, dp={self.dp}"
