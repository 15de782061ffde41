"""The customer-base anchors in the baselines table: BG/NBD and Pareto/NBD, pooled and federated.

A buy-'til-you-die model is the classical answer to both of fedmarket's questions: will this
customer buy in the horizon (1 - P(no purchase in t)) and how often (the conditional expected
number of transactions in t). Decisions a reader of the table should know:

* Inputs come from the prepared aggregates (``fedmarket.btyd.from_aggregates``): birth is the
  customer's first event in the feature window, x counts the purchase days after it, time in
  weeks. Nothing else about the customer is used, which is the point of an anchor.
* The models count customer-days (one transaction per customer and day, as the literature
  does). Against ``purchase-count`` labels in another unit the note says so: prepare with
  ``--count-unit customer-days`` for a like-for-like comparison.
* "federated" rows fit the same likelihood without pooling: each retailer answers the
  server's parameters with the sum of its customers' log-likelihoods and gradients
  (``fedmarket.btyd.federated``), in process here. No noise is added, so these rows are not
  differentially private (the note says so). With ``AnchorPrivacy`` a "federated DP" row is
  added: each customer's log-likelihood and gradient are clipped to fixed bounds (chosen
  before seeing any data: |ll| <= 30, ||grad|| <= 5, which on CDNOW leave >99% of customers
  untouched), Gaussian noise is added to each answer, and each retailer answers at most
  ``releases`` times; the noise multiplier is the smallest that keeps the RDP-composed
  epsilon of those answers within the target, so the guarantee holds however the optimiser
  behaves (a retailer refuses an answer past its budget).
* The fit uses the training customers only; predictions are for the test customers, the
  same ones every other row of the table scores.
"""

from fedmarket.anchors.privacy import DEFAULT_CLIPPING, AnchorPrivacy
from fedmarket.anchors.run import (
    ANCHOR_MODELS,
    HISTORY_COLUMNS,
    AnchorData,
    run_btyd_anchors,
    run_manifest_anchors,
)

__all__ = [
    "ANCHOR_MODELS",
    "DEFAULT_CLIPPING",
    "HISTORY_COLUMNS",
    "AnchorData",
    "AnchorPrivacy",
    "run_btyd_anchors",
    "run_manifest_anchors",
]
