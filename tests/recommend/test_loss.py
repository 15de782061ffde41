from __future__ import annotations

import math

import pytest
import torch

from fedmarket.errors import DataError
from fedmarket.recommend.loss import SampledBPRLoss


def test_bpr_compares_a_positive_with_sampled_negatives_per_customer():
    torch.manual_seed(0)
    loss = SampledBPRLoss("none", n_negatives=50)
    score = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    target = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    out = loss(score, target)
    # customer 0: every valid negative scores 2 below the positive
    assert out[0].item() == pytest.approx(math.log1p(math.exp(-2.0)), rel=1e-5)
    assert out[1].item() == 0.0  # no positive: nothing to rank
    assert out[2].item() == pytest.approx(math.log(2.0), rel=1e-5)  # only item 0 is negative


def test_a_customers_loss_depends_on_its_own_scores_only():
    score = torch.zeros(4, 5, requires_grad=True)
    target = torch.eye(4, 5)
    torch.manual_seed(1)
    SampledBPRLoss("none")(score, target)[2].backward()
    assert score.grad[[0, 1, 3]].abs().sum() == 0 and score.grad[2].abs().sum() > 0


def test_bad_input():
    with pytest.raises(DataError, match="shape"):
        SampledBPRLoss()(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(DataError, match="reduction"):
        SampledBPRLoss("max")
