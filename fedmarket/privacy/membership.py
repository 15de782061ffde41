"""Membership inference: the loss-threshold attack on a trained model, and its statistics.

The attack is the loss threshold of Yeom et al. (2018): a customer the model trained on
tends to have a lower loss than one it never saw, so ``score = -loss`` and "member" when
the score clears a threshold. Members are training customers, non-members held-out test
customers of the same retailers, in equal numbers per retailer (the larger side is
subsampled with a seed), so the retailer mix cannot give membership away.

What is reported, and how it is computed:

- ``roc_auc`` over every threshold (scikit-learn); 0.5 is guessing. ``roc_auc_ci`` is its
  two-sided confidence interval at ``confidence`` from DeLong's variance (DeLong et al. 1988,
  ``fedmarket.intervals.delong_interval``, the one every metrics table uses),
  so "weaker than the attack on another model" can be read as a difference of intervals.
- ``tpr_at_fpr``: the true-positive rate at a false-positive rate of 0.1% and 1%, the
  numbers Carlini et al. (2022) argue matter (an attack that is sure about a few people).
  Read off the ROC curve by linear interpolation between its points, which a randomised
  choice between the two neighbouring thresholds achieves exactly.
- An empirical epsilon lower bound. Any threshold test against an (epsilon, delta)-DP
  mechanism has ``TPR <= e^eps FPR + delta`` and ``1 - FPR <= e^eps (1 - TPR) + delta``
  (Kairouz et al. 2015), so ``eps >= max(log((TPR - delta) / FPR), log((1 - FPR - delta) /
  (1 - TPR)))``. The threshold is chosen on a random half of the customers (stratified) and
  the rates are measured on the other half, so the choice does not inflate the result.
  ``epsilon_point`` plugs in the measured rates; ``epsilon_lower_bound`` plugs in the
  Clopper-Pearson upper bound of FPR and lower bound of TPR at ``confidence`` (two-sided
  interval, so each one-sided bound fails with probability (1 - confidence) / 2 and both
  hold together with probability at least ``confidence``).

Caveat: the customers of one trained model are not independent trials in the strict sense
of the DP definition (which is about one customer, all others fixed); this is the usual
one-model audit heuristic (Jagielski et al. 2020 train many models for a strict one). A
bound far below the claimed epsilon does not prove the accountant is tight, it only shows
this attack is far from the worst case; a bound above it would reveal a bug.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.stats import beta
from sklearn.metrics import roc_auc_score, roc_curve
from torch import nn

from fedmarket.data import store
from fedmarket.errors import ConfigError, DataError
from fedmarket.intervals import delong_interval
from fedmarket.tasks import get_task

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

TARGET_FPRS: tuple[float, ...] = (0.001, 0.01)
DEFAULT_CONFIDENCE = 0.95
ATTACK = "loss-threshold"


@dataclass(frozen=True)
class AttackResult:
    """One attack on one model. ``tpr_at_fpr`` pairs (target FPR, TPR)."""

    attack: str
    n_members: int
    n_nonmembers: int
    roc_auc: float
    roc_auc_ci: tuple[float, float]
    tpr_at_fpr: tuple[tuple[float, float], ...]
    epsilon_point: float
    epsilon_lower_bound: float
    confidence: float
    delta: float

    def to_dict(self) -> dict[str, Any]:
        """Flat and JSON-ready (an infinite point estimate is written as ``Infinity``)."""
        out: dict[str, Any] = {
            "attack": self.attack,
            "n_members": self.n_members,
            "n_nonmembers": self.n_nonmembers,
            "roc_auc": self.roc_auc,
            "roc_auc_ci_low": self.roc_auc_ci[0],
            "roc_auc_ci_high": self.roc_auc_ci[1],
        }
        out.update({fpr_key(f): t for f, t in self.tpr_at_fpr})
        out.update(
            epsilon_point=self.epsilon_point,
            epsilon_lower_bound=self.epsilon_lower_bound,
            confidence=self.confidence,
            delta=self.delta,
        )
        return out


def fpr_key(fpr: float) -> str:
    """``tpr_at_fpr_0.1%`` for 0.001: one spelling for JSON, CSV and tables."""
    return f"tpr_at_fpr_{100 * fpr:g}%"


def rate_epsilon(fpr: Any, tpr: Any, delta: float) -> np.ndarray:
    """The least epsilon an (epsilon, delta)-DP mechanism needs to allow (FPR, TPR), >= 0.

    ``inf`` when no finite epsilon allows it (e.g. FPR = 0 with TPR > delta).
    """
    fpr, tpr = np.asarray(fpr, dtype=float), np.asarray(tpr, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        first = np.where(tpr > delta, np.log((tpr - delta) / fpr), 0.0)
        second = np.where(1 - fpr > delta, np.log((1 - fpr - delta) / (1 - tpr)), 0.0)
    clean = {"nan": 0.0, "posinf": np.inf, "neginf": 0.0}
    return np.maximum(
        np.maximum(np.nan_to_num(first, **clean), 0.0), np.nan_to_num(second, **clean)
    )


def clopper_pearson(k: Any, n: Any, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact two-sided binomial interval for ``k`` successes in ``n`` trials."""
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    alpha = 1.0 - confidence
    with np.errstate(invalid="ignore"):
        lo = np.where(k > 0, beta.ppf(alpha / 2, k, n - k + 1), 0.0)
        hi = np.where(k < n, beta.ppf(1 - alpha / 2, k + 1, n - k), 1.0)
    return lo, hi


def epsilon_lower_bound(
    fp: Any, n_neg: int, tp: Any, n_pos: int, delta: float, confidence: float = DEFAULT_CONFIDENCE
) -> np.ndarray:
    """``rate_epsilon`` at the pessimistic end of both rates' confidence intervals."""
    _, fpr_hi = clopper_pearson(fp, n_neg, confidence)
    tpr_lo, _ = clopper_pearson(tp, n_pos, confidence)
    return rate_epsilon(fpr_hi, tpr_lo, delta)


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, target: float) -> float:
    """TPR at ``target`` FPR, interpolated linearly on the ROC curve's upper envelope."""
    levels = np.unique(fpr)  # roc_curve is non-decreasing in both: last index = best TPR
    best = np.asarray(tpr)[np.searchsorted(fpr, levels, side="right") - 1]
    return float(np.interp(target, levels, best))


def empirical_epsilon(
    scores: np.ndarray,
    is_member: np.ndarray,
    *,
    delta: float,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> tuple[float, float]:
    """(point, lower bound): threshold picked on one half, measured on the other.

    Both are 0 when no threshold shows any evidence on the selection half.
    """
    rng = np.random.default_rng(seed)
    select = np.zeros(len(scores), dtype=bool)
    for label in (False, True):  # stratified: half the members and half the non-members
        idx = np.flatnonzero(is_member == label)
        select[rng.choice(idx, len(idx) // 2, replace=False)] = True
    fpr, tpr, thresholds = roc_curve(is_member[select], scores[select], drop_intermediate=False)
    n_pos, n_neg = int(is_member[select].sum()), int((~is_member[select]).sum())
    bounds = epsilon_lower_bound(
        np.rint(fpr * n_neg), n_neg, np.rint(tpr * n_pos), n_pos, delta, confidence
    )
    if not np.any(bounds > 0):
        return 0.0, 0.0
    guess = scores[~select] >= thresholds[int(np.argmax(bounds))]
    member = is_member[~select]
    tp, fp = int((guess & member).sum()), int((guess & ~member).sum())
    n_pos, n_neg = int(member.sum()), int((~member).sum())
    point = rate_epsilon(fp / n_neg, tp / n_pos, delta)
    return float(point), float(epsilon_lower_bound(fp, n_neg, tp, n_pos, delta, confidence))


def attack_metrics(
    scores: Any,
    is_member: Any,
    *,
    delta: float,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
    attack: str = ATTACK,
) -> AttackResult:
    """Every metric of an attack from its scores (higher = "member") and the truth."""
    scores = np.asarray(scores, dtype=float)
    is_member = np.asarray(is_member).astype(bool)
    if scores.ndim != 1 or scores.shape != is_member.shape:
        raise DataError(
            f"attack scores and membership must be 1-D of one length, got "
            f"{scores.shape} and {is_member.shape}"
        )
    if not np.isfinite(scores).all():
        raise DataError(
            f"attack scores: {int((~np.isfinite(scores)).sum())} non-finite value(s) "
            "(a diverged model?); the audit needs finite losses"
        )
    if is_member.sum() < 2 or (~is_member).sum() < 2:
        raise DataError("attack: need at least two members and two non-members")
    if not 0 < confidence < 1:
        raise ConfigError(f"audit: confidence must be in (0, 1), got {confidence}")
    if not 0 <= delta < 1:
        raise ConfigError(f"audit: delta must be in [0, 1), got {delta}")
    fpr, tpr, _ = roc_curve(is_member, scores, drop_intermediate=False)
    point, bound = empirical_epsilon(
        scores, is_member, delta=delta, confidence=confidence, seed=seed
    )
    return AttackResult(
        attack=attack,
        n_members=int(is_member.sum()),
        n_nonmembers=int((~is_member).sum()),
        roc_auc=float(roc_auc_score(is_member, scores)),
        roc_auc_ci=delong_interval(scores, is_member, confidence),
        tpr_at_fpr=tuple((f, tpr_at_fpr(fpr, tpr, f)) for f in TARGET_FPRS),
        epsilon_point=point,
        epsilon_lower_bound=bound,
        confidence=confidence,
        delta=delta,
    )


def per_example_losses(
    model: nn.Module, split: store.SplitArrays, task: str, *, batch_size: int = 4096
) -> np.ndarray:
    """The task's training loss for each customer, in eval mode (restored after) on the CPU."""
    from fedmarket.training import per_example_loss

    return per_example_loss(model, split, get_task(task), batch_size=batch_size, device="cpu")


def membership_samples(
    data_dir: Path, *, seed: int = 0, fernet: Fernet | None = None
) -> tuple[store.SplitArrays, store.SplitArrays]:
    """(members, non-members): per retailer, as many training as test customers."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xA0D17]))
    members, nonmembers = [], []
    for pid in store.partition_ids(store.read_manifest(data_dir)):
        train = store.load_split(data_dir, pid, "train", fernet, mmap=False)
        test = store.load_split(data_dir, pid, "test", fernet, mmap=False)
        n = min(len(train), len(test))
        members.append(train.take(np.sort(rng.choice(len(train), n, replace=False))))
        nonmembers.append(test.take(np.sort(rng.choice(len(test), n, replace=False))))
    return store.SplitArrays.concat(members), store.SplitArrays.concat(nonmembers)


def audit_model(
    model: nn.Module,
    task: str,
    members: store.SplitArrays,
    nonmembers: store.SplitArrays,
    *,
    delta: float,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> AttackResult:
    """The loss-threshold attack on ``model``: ``score = -loss``."""
    losses = np.concatenate(
        [per_example_losses(model, members, task), per_example_losses(model, nonmembers, task)]
    )
    is_member = np.concatenate([np.ones(len(members), bool), np.zeros(len(nonmembers), bool)])
    return attack_metrics(-losses, is_member, delta=delta, confidence=confidence, seed=seed)
