"""BPR with sampled negatives: the recommender's training loss.

Bayesian personalised ranking (Rendle et al., 2009) asks that a customer's relevant item score
above an irrelevant one: ``-log sigmoid(s_pos - s_neg)``. Per customer, one relevant item and
``n_negatives`` items drawn uniformly (with replacement) from the catalogue are compared; drawn
items that are relevant are masked out. Why BPR rather than a sampled softmax: it optimises the
pairwise order that HR/NDCG/MRR judge, and each customer's loss is a mean of bounded-gradient
terms (the sigmoid saturates), which suits DP-SGD's per-customer clipping; with a catalogue of
a few dozen categories a sampled softmax would be almost a full softmax and gain nothing.

The draws use torch's default generator on the scores' device: ``fedmarket.training.fit``
seeds it for the call (``_scoped_torch_rng``), so a training run is repeatable from its seed.
Items scored ``MASKED`` (not the customer's to rank) are never drawn as negatives.
A customer without any relevant item contributes 0 (it has no positive to rank); the loss of
one customer depends on that customer's scores only, as per-sample DP needs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fedmarket.checks import integer
from fedmarket.errors import DataError

# The score a model gives an item that is not the customer's to rank (another retailer's
# product in the centralised next-products reference): never drawn as a negative.
MASKED = -1.0e4


class SampledBPRLoss(nn.Module):
    """BPR over (scores ``[B, V]``, 0/1 targets ``[B, V]``) with sampled negatives."""

    def __init__(self, reduction: str = "mean", n_negatives: int = 8) -> None:
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise DataError(f"reduction must be mean, sum or none, got {reduction!r}")
        self.reduction = reduction
        self.n_negatives = integer("n_negatives", n_negatives, at_least=1)

    def forward(self, score: Tensor, target: Tensor) -> Tensor:
        if score.dim() != 2 or score.shape != target.shape:
            raise DataError(
                f"BPR needs scores and targets of shape [customers, items], got "
                f"{tuple(score.shape)} and {tuple(target.shape)}"
            )
        batch, n_items = score.shape
        relevant = target > 0
        has = relevant.any(dim=1)
        weights = relevant.float() + (~has).float()[:, None]  # any row may be drawn from
        pos = torch.multinomial(weights, 1)  # [B, 1]
        allowed = score.detach() > MASKED / 2
        if bool(allowed.all()):
            neg = torch.randint(0, n_items, (batch, self.n_negatives), device=score.device)
        else:  # draw among the customer's own items only (a row of one customer's scores)
            neg = torch.multinomial(allowed.float() + (~allowed.any(1)).float()[:, None],
                                    self.n_negatives, replacement=True)  # fmt: skip
        valid = ~relevant.gather(1, neg) & has[:, None] & allowed.gather(1, neg)
        diff = score.gather(1, pos) - score.gather(1, neg)
        pair = nn.functional.softplus(-diff) * valid  # -log sigmoid(diff)
        per_customer = pair.sum(dim=1) / valid.sum(dim=1).clamp(min=1)
        if self.reduction == "none":
            return per_customer
        if self.reduction == "sum":
            return per_customer.sum()
        return per_customer.mean() if batch else per_customer.sum()
