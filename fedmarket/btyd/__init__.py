"""Buy-'til-you-die customer-base models: the anchor of every comparison.

BG/NBD (``bgnbd``), Pareto/NBD (``paretonbd``) and the Gamma-Gamma spend model
(``gammagamma``) as small maximum-likelihood fits on (x, t_x, T) per customer
(``data.CustomerHistory``, built from fedmarket's aggregates by ``data.from_aggregates``),
and the federated fit of the same likelihoods (``federated``).

Hand-written on numpy + scipy rather than taken from a library because: ``lifetimes``
(the classic implementation) is unmaintained and pins numpy<2, which fedmarket cannot
take; PyMC-Marketing's CLV models (the maintained line) need pymc and pytensor, far too
heavy for a baseline; and the federated fit needs the per-customer log-likelihood and its
gradient as functions of the parameters, which neither exposes. The tests check the fits
against the published CDNOW estimates and recover parameters from simulated customers.

Use: ``fit = MODELS["bg-nbd"](history)``; then ``fit.params``, ``fit.loglik``,
``fit.p_alive(h)``, ``fit.expected_transactions(t, h)``, ``fit.p_purchase(t, h)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fedmarket.btyd.bgnbd import BGNBDFit, fit_bgnbd
from fedmarket.btyd.data import CustomerHistory, from_aggregates
from fedmarket.btyd.federated import Clipping, fit_federated, gaussian_epsilon, local_sums
from fedmarket.btyd.gammagamma import GammaGammaFit, Spend, fit_gammagamma
from fedmarket.btyd.paretonbd import ParetoNBDFit, fit_paretonbd

# The transaction models by name: history -> fit (with p_alive, expected_transactions,
# p_no_purchase, p_purchase).
MODELS: dict[str, Callable[[CustomerHistory], Any]] = {
    "bg-nbd": fit_bgnbd,
    "pareto-nbd": fit_paretonbd,
}

__all__ = [
    "MODELS",
    "BGNBDFit",
    "Clipping",
    "CustomerHistory",
    "GammaGammaFit",
    "ParetoNBDFit",
    "Spend",
    "fit_bgnbd",
    "fit_federated",
    "fit_gammagamma",
    "fit_paretonbd",
    "from_aggregates",
    "gaussian_epsilon",
    "local_sums",
]
