"""The BG/NBD anchor of every `fedmarket simulate` run: the classical customer-base model,
fitted the federation's way and scored on the run's test customers.

A reader of a run should see what a 20-year-old closed-form model does on the same
customers before crediting the sequence model with anything. Choices, and why:

* BG/NBD only: its fit takes well under a second on the default data; Pareto/NBD takes
  5-20 s and stays in `fedmarket baselines`, next to the pooled fits.
* Federated over the run's partitions, never pooled: each retailer answers the server's
  parameters with its customers' log-likelihood sum and gradient (``fedmarket.btyd``), as a
  consortium would fit it without a data-sharing agreement.
* Under client DP (``dp = 'client'``) the anchor is fitted under client DP too
  (``AnchorPrivacy``: clipped, noised sums, each retailer refusing answers past its budget),
  at the run's target epsilon and the run's delta, so the report compares two models at the
  same privacy level; a DP model beside a noise-free anchor would be an anchor a consortium
  could compute only under a separate agreement. The price is said, not hidden: the
  anchor's answers are a second release about the same customers, so a retailer that
  answers both spends both, at most (epsilon_train + epsilon_anchor, 2 delta) by basic
  composition, which summary.json and the report's privacy section
  state. With ``target-epsilon = 0`` (a fixed noise multiplier) the anchor takes the epsilon
  the training spent.
* Under central DP (a retailer-level guarantee at a trusted server) and without DP, the
  anchor adds no noise and its row says it is not DP.
* It predicts what the run's task asks: P(buy in the horizon) for ``purchase``, the expected
  number of purchase days for ``purchase-count`` (customer-days: labels in another unit are
  named in its note).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from fedmarket.anchors.privacy import AnchorPrivacy, dp_job
from fedmarket.anchors.run import AnchorData, federated_job, history, predict, unit_note
from fedmarket.config import RunConfig
from fedmarket.data import store
from fedmarket.predictions import Predictions, write_predictions
from fedmarket.tasks import get_task

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

ANCHOR_MODEL: Final[str] = "bg-nbd"


@dataclass(frozen=True)
class RunAnchor:
    """The anchor of one run: how it was fitted, its test metrics (the same report as the
    federated model's, intervals included) and its parameters (weeks as the time unit)."""

    model: str
    fitted: str  # how, in words
    retailers: int
    dp: bool
    epsilon: float | None  # per retailer, on top of the training's; None without DP
    delta: float | None
    fit_s: float
    params: dict[str, float]
    test: dict[str, Any]
    note: str = ""
    prediction: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("prediction")
        return out


def anchor_privacy(
    cfg: RunConfig, spent_epsilon: float | None, delta: float | None
) -> AnchorPrivacy | None:
    """The anchor's client DP for a run (None: fitted without noise): under ``dp =
    'client'``, the run's target epsilon (else the epsilon its training spent) at the run's
    delta."""
    if cfg.dp != "client" or delta is None or not 0 < delta < 1:
        return None
    epsilon = cfg.target_epsilon if cfg.target_epsilon > 0 else spent_epsilon
    if epsilon is None or not np.isfinite(epsilon) or epsilon <= 0:
        return None
    return AnchorPrivacy(float(epsilon), float(delta))


def fit_run_anchor(
    cfg: RunConfig,
    scores_path: Path,
    *,
    privacy: AnchorPrivacy | None = None,
    fernet: Fernet | None = None,
) -> RunAnchor:
    """Fit BG/NBD federated over the run's partitions (under ``privacy`` when given), score
    the pooled test customers and write their predictions to ``out_dir/test_scores.csv``.

    The caller checks ``AnchorData.missing(manifest)`` first (a customer table, or data
    prepared by an older fedmarket, has no purchase history to fit)."""
    data_dir = Path(cfg.data_dir)
    manifest = store.read_manifest(data_dir)
    data = AnchorData.from_manifest(manifest)
    task = get_task(cfg.task)
    train_parts = store.load_partitions(data_dir, "train", store.partition_ids(manifest), fernet)
    histories = [history(p, data) for p in train_parts if len(p)]
    test = store.load_pooled(data_dir, "test", fernet=fernet)
    if privacy is None:
        _, fit_model, how = federated_job(ANCHOR_MODEL, histories)
    else:
        _, fit_model, how = dp_job(ANCHOR_MODEL, histories, privacy, cfg.seed)
    start = time.perf_counter()
    fit = fit_model()
    seconds = time.perf_counter() - start
    prediction = predict(fit, history(test, data), task.name, data)
    y_test = task.targets(test).astype(np.float64)
    scores = Predictions.pooled(
        data_dir, test, task=task.name, model=ANCHOR_MODEL, score=prediction
    )
    write_predictions(scores_path, scores)
    return RunAnchor(
        model=ANCHOR_MODEL,
        fitted=how,
        retailers=len(histories),
        dp=privacy is not None,
        epsilon=None if privacy is None else privacy.epsilon,
        delta=None if privacy is None else privacy.delta,
        fit_s=seconds,
        params={k: float(v) for k, v in fit.params.items()},
        test=task.report(y_test, prediction),
        note=unit_note(task.name, data).removeprefix("; "),
        prediction=prediction,
    )
