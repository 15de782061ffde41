import math

import numpy as np
import pytest
import torch
from scipy import stats

from fedmarket.errors import ConfigError
from fedmarket.negbin import NegativeBinomialNLLLoss, dispersion_of, nb_log_prob
from fedmarket.tasks import get_task


@pytest.mark.parametrize(
    ("y", "mu", "alpha"),
    [
        (0, 0.86, 1.0),
        (1, 0.86, 1.0),
        (7, 0.86, 2.5),
        (3, 3.0, 0.01),
        (40, 2.0, 5.0),
        (0, 25.0, 0.3),
        (2, 1e-3, 1e-3),
    ],
)
def test_log_prob_matches_scipy(y, mu, alpha):
    """scipy's nbinom(n, p) with n = 1/alpha, p = 1/(1 + alpha mu) is NB2 with mean mu."""
    expected = stats.nbinom.logpmf(y, 1 / alpha, 1 / (1 + alpha * mu))
    f64 = torch.float64
    got = nb_log_prob(
        torch.tensor([y], dtype=f64),
        torch.tensor([math.log(mu)], dtype=f64),
        torch.tensor([math.log(alpha)], dtype=f64),
    )
    assert got.item() == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_small_alpha_is_poisson_and_float32_keeps_dtype():
    y = torch.tensor([0.0, 1.0, 4.0])
    log_mu = torch.log(torch.tensor([0.5, 1.5, 3.0]))
    got = nb_log_prob(y, log_mu, torch.full((3,), math.log(1e-5)))
    assert got.dtype == torch.float32
    poisson = stats.poisson.logpmf(y.numpy(), torch.exp(log_mu).numpy())
    np.testing.assert_allclose(got.numpy(), poisson, atol=1e-3)


def test_loss_reductions_and_task_dispatch():
    score = torch.tensor([[math.log(2.0), math.log(0.5)], [math.log(0.2), math.log(0.5)]])
    y = torch.tensor([3.0, 0.0])
    ref = -stats.nbinom.logpmf([3, 0], 2.0, [1 / (1 + 0.5 * 2.0), 1 / (1 + 0.5 * 0.2)])
    np.testing.assert_allclose(NegativeBinomialNLLLoss("none")(score, y).numpy(), ref, rtol=1e-6)
    assert NegativeBinomialNLLLoss("sum")(score, y).item() == pytest.approx(ref.sum(), rel=1e-6)
    count = get_task("purchase-count")
    assert count.loss()(score, y).item() == pytest.approx(ref.mean(), rel=1e-6)
    np.testing.assert_allclose(count.prediction(score).numpy(), [2.0, 0.2], rtol=1e-6)
    # a one-column score is still Poisson (full=False: y log y - y + ... without log y!)
    rate = torch.log(torch.tensor([2.0, 0.2]))
    assert count.loss()(rate, y).item() == pytest.approx(((2.0 - 3 * math.log(2.0)) + 0.2) / 2)
    assert dispersion_of(score) == pytest.approx(0.5)
    assert dispersion_of(rate) is None


def test_bad_score_shape_and_reduction_are_refused():
    with pytest.raises(ConfigError, match=r"\[batch, 2\] score.*count_loss='negative-binomial'"):
        NegativeBinomialNLLLoss()(torch.zeros(4), torch.zeros(4))
    with pytest.raises(ConfigError, match="reduction"):
        NegativeBinomialNLLLoss("avg")
