"""The negative-binomial (NB2) likelihood of purchase counts, the count loss for over-dispersion.

Purchase counts have many zeros and a heavy tail: their variance exceeds their mean, which
the Poisson loss assumes equal. NB2 keeps the mean ``mu`` and adds one dispersion
``alpha >= 0``: ``Var = mu + alpha mu^2`` (alpha -> 0 is Poisson). With ``r = 1 / alpha`` it
is scipy's ``nbinom(n=r, p=r / (r + mu)) = nbinom(1 / alpha, 1 / (1 + alpha mu))``.

A negative-binomial model's raw score is ``[B, 2]``: (log-mean, log-alpha) per customer; the
log-alpha column is one learned weight of the model (``fedmarket.models.dispersion``), so it
is averaged by FedAvg and privatised by DP-SGD like every other weight.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from fedmarket.errors import ConfigError

# log-alpha is clamped here: below, NB is Poisson to float precision (r = 1/alpha > 1e5 and
# lgamma(y + r) - lgamma(r) cancels); above, the mean carries no information.
LOG_ALPHA_RANGE = (math.log(1e-5), math.log(1e3))


def nb_log_prob(y: Tensor, log_mu: Tensor, log_alpha: Tensor) -> Tensor:
    """log P(Y = y) under NB2 with mean ``exp(log_mu)`` and dispersion ``exp(log_alpha)``.

    Computed in float64 from the logs (``log(1 + alpha mu)`` as a softplus), so a large mean
    or a tiny dispersion neither overflows nor loses the count's own terms; returned in the
    dtype of ``log_mu``.
    """
    dtype = log_mu.dtype
    y, log_mu = y.double(), log_mu.double()
    log_alpha = log_alpha.double().clamp(*LOG_ALPHA_RANGE)
    r = torch.exp(-log_alpha)
    z = log_alpha + log_mu  # log(alpha mu)
    log1p_am = F.softplus(z)  # log(1 + alpha mu)
    out = (
        torch.lgamma(y + r)
        - torch.lgamma(r)
        - torch.lgamma(y + 1)
        - r * log1p_am
        + y * (z - log1p_am)
    )
    return out.to(dtype)


class NegativeBinomialNLLLoss(nn.Module):
    """Mean (or sum, or per-customer) NB2 negative log-likelihood of ``target`` given a
    ``[B, 2]`` score of (log-mean, log-alpha): the full likelihood, log(y!) included, so
    its value compares with other models' held-out log-likelihoods."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ConfigError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.reduction = reduction

    def forward(self, score: Tensor, target: Tensor) -> Tensor:
        if score.dim() != 2 or score.shape[-1] != 2:
            raise ConfigError(
                f"the negative-binomial loss needs a [batch, 2] score (log-mean, log-alpha), "
                f"got shape {tuple(score.shape)}; build the model with "
                "count_loss='negative-binomial'"
            )
        nll = -nb_log_prob(target, score[:, 0], score[:, 1])
        if self.reduction == "mean":
            return nll.mean()
        return nll.sum() if self.reduction == "sum" else nll


def dispersion_of(score: Tensor) -> float | None:
    """The model's alpha from a ``[B, 2]`` score (None for a one-column Poisson score)."""
    if score.dim() != 2 or len(score) == 0:
        return None
    return float(torch.exp(score[0, 1].double().clamp(*LOG_ALPHA_RANGE)))
