"""The one maximum-likelihood optimiser of the BTYD models, pooled or federated alike.

A model's log-likelihood is a sum over customers, so the optimiser only ever asks a
``Sums`` callable for (log-likelihood sum, its gradient in the log-parameters, customer
count) at a point: pooled, that is one sum over all customers; federated, the server adds
the retailers' parts. Parameters are optimised on the log scale (all are positive) with
L-BFGS-B from a few fixed starts, the best kept, so a fit is deterministic.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize

from fedmarket.errors import DataError, FedmarketError

Sums = Callable[[np.ndarray], tuple[float, np.ndarray, int]]
# (parameters, customers) -> per-customer log-likelihood (n,) and gradient in the
# log-parameters (n, k); the customers are a CustomerHistory, or Spend for Gamma-Gamma.
LoglikGrad = Callable[[np.ndarray, Any], tuple[np.ndarray, np.ndarray]]

# log-parameters stay in [-BOUND, BOUND]: e^+-12 is far outside any fitted value in the
# literature, and the box keeps gammaln and hyp2f1 away from overflow while searching.
BOUND = 12.0


@dataclass(frozen=True)
class LikelihoodModel:
    """What the optimiser needs of a model: names, per-customer log-likelihood and gradient
    (with respect to the log-parameters), and the fixed starting points."""

    name: str
    param_names: tuple[str, ...]
    loglik_grad: LoglikGrad
    starts: tuple[tuple[float, ...], ...]


@dataclass(frozen=True)
class Optimum:
    """The best of the starts: parameters, summed log-likelihood, and how it got there."""

    params: np.ndarray
    loglik: float
    n: int
    evaluations: int
    converged: bool
    message: str
    seconds: float


def pooled_sums(model: LikelihoodModel, history: Any) -> Sums:
    """The sums over all of ``history`` at once: the centralised (pooled) fit."""
    if len(history) == 0:
        raise DataError(f"{model.name}: cannot fit on no customers; give at least one")

    def sums(log_params: np.ndarray) -> tuple[float, np.ndarray, int]:
        ll, grad = model.loglik_grad(np.exp(log_params), history)
        return float(ll.sum()), grad.sum(axis=0), len(history)

    return sums


def maximise(
    model: LikelihoodModel,
    sums: Sums,
    *,
    max_iter: int = 2000,
    max_evaluations: int = 15000,
    polish: bool = True,
) -> Optimum:
    """Maximise the summed log-likelihood from each of ``model.starts``; keep the best.

    The objective is the mean negative log-likelihood (sum / n, with n from the first
    evaluation) so the tolerances mean the same at any number of customers.
    ``max_evaluations`` bounds the calls of ``sums`` over all starts (a noisy federated
    fit spends privacy per call): no new start or iteration begins past it, though a line
    search under way finishes and the polish adds up to 3 * (2k + 1) more; the count made
    is ``Optimum.evaluations``. ``polish`` ends with Newton steps on the gradient (see
    ``_newton_polish``); leave it off when the sums are noisy.
    """
    start_time, evaluations, scale = time.perf_counter(), 0, None

    def objective(z: np.ndarray) -> tuple[float, np.ndarray]:
        nonlocal evaluations, scale
        ll, grad, n = sums(z)
        evaluations += 1
        if scale is None:
            scale = float(max(n, 1))
        if not np.isfinite(ll) or not np.all(np.isfinite(grad)):
            return 1e10, np.zeros_like(z)  # outside where the likelihood is computable
        return -ll / scale, -np.asarray(grad, dtype=np.float64) / scale

    best = None
    for start in model.starts:
        if evaluations >= max_evaluations:
            break
        result = minimize(
            objective,
            np.log(np.asarray(start, dtype=np.float64)),
            jac=True,
            method="L-BFGS-B",
            bounds=[(-BOUND, BOUND)] * len(model.param_names),
            options={
                "maxiter": max_iter,
                "ftol": 0.0,
                "gtol": 1e-10,
                "maxcor": 20,
                "maxfun": max_evaluations - evaluations,
            },
        )
        if np.isfinite(result.fun) and (best is None or result.fun < best.fun):
            best = result
    if best is None or best.fun >= 1e10:
        raise FedmarketError(f"{model.name}: the likelihood is not finite at any start")
    z, fun, grad = best.x, best.fun, best.jac
    if polish and evaluations < max_evaluations:
        z, fun, grad = _newton_polish(objective, z, fun)
    return Optimum(
        params=np.exp(z),
        loglik=float(-fun * scale),
        n=int(scale),
        evaluations=evaluations,
        # L-BFGS-B may end "ABNORMAL" in a line search at the optimum itself (f cannot
        # decrease in floating point): converged is judged by the mean gradient instead
        converged=bool(best.success) or float(np.max(np.abs(grad))) < 1e-6,
        message=str(best.message),
        seconds=time.perf_counter() - start_time,
    )


def _newton_polish(
    objective: Callable[[np.ndarray], tuple[float, np.ndarray]], z: np.ndarray, fun: float
) -> tuple[np.ndarray, float, np.ndarray]:
    """A few Newton steps on the gradient from L-BFGS-B's end point.

    L-BFGS-B stops when the objective stops decreasing in floating point, which near a flat
    optimum leaves the parameters uncertain at ~1e-7 (f's rounding is ~1e-16, and f moves
    with the square of the step). The gradient is exact far below that, so solving
    gradient = 0 (Hessian by central differences of the gradient) pins the optimum down to
    ~1e-10: then pooled and federated fits agree, whatever order they add customers in.
    A step is kept only if it shrinks the gradient and does not lose likelihood.
    """
    _, grad = objective(z)
    for _ in range(3):
        hessian = _hessian(lambda point: objective(point)[1], z)
        try:
            if np.linalg.eigvalsh(hessian).min() <= 0:
                break  # not at a strict minimum (e.g. on the bound): leave it
            candidate = np.clip(z - np.linalg.solve(hessian, grad), -BOUND, BOUND)
        except np.linalg.LinAlgError:
            break
        new_fun, new_grad = objective(candidate)
        tolerance = 1e-13 * max(abs(fun), 1.0)
        if not (np.linalg.norm(new_grad) < np.linalg.norm(grad) and new_fun <= fun + tolerance):
            break
        z, fun, grad = candidate, new_fun, new_grad
    return z, fun, grad


def _hessian(gradient: Callable[[np.ndarray], np.ndarray], z: np.ndarray) -> np.ndarray:
    """Symmetrised central differences (step 1e-5) of an exact gradient."""
    step, columns = 1e-5, []
    for j in range(len(z)):
        e = np.zeros_like(z)
        e[j] = step
        columns.append((gradient(z + e) - gradient(z - e)) / (2 * step))
    hessian = np.array(columns)
    return (hessian + hessian.T) / 2


def log_covariance(model: LikelihoodModel, data: Any, params: np.ndarray) -> np.ndarray:
    """Asymptotic covariance of the log-parameters at the optimum ``params``: the inverse
    observed information (minus the Hessian of the summed log-likelihood). Its diagonal's
    square roots are the standard errors of log(param), ~ relative standard errors."""
    sums = pooled_sums(model, data)
    information = -_hessian(lambda z: sums(z)[1], np.log(np.asarray(params, dtype=np.float64)))
    try:
        return np.linalg.inv(information)
    except np.linalg.LinAlgError as exc:
        raise FedmarketError(
            f"{model.name}: the information matrix is singular at {params}; the parameters "
            "are not identified by this data"
        ) from exc
