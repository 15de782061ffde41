"""Product launches: a share of a retailer's products enter the catalogue during the period.

Without launches the catalogue is static, so every product a test customer buys after the
cut-off was already on sale before it and a recommender's cold path (a product first seen
after the cut-off, ``fedmarket.data.product_vocab``) is never exercised. With
``fedmarket data synth --new-products SHARE``, that share of each retailer's products gets a
launch day drawn uniformly over days 1..days-1 (``--launch-from F``: over the last part of
the period only, from day F * days on, e.g. 0.8 for the last fifth). Before it the product
has no popularity (no view can draw it, so nobody carts or buys it either: a cart only ever
holds a viewed product); from it on, customers whose session mission is its category find it, with a
launch boost (a fresh product draws about ``_ATTENTION`` times the views of an average
product of its category, decaying over ``_ATTENTION_DAYS``) on top of its own popularity.

The first product of every category is never launched, so each category always has
something on sale. The draws come from their own stream, so a share of 0 changes nothing
(no draw, the very same catalogue object every day): the default output is byte-identical.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from fedmarket.checks import number
from fedmarket.data.synth.catalog import CATEGORY_CODES, Catalog
from fedmarket.errors import ConfigError

MAX_SHARE = 0.9
_ATTENTION, _ATTENTION_DAYS = 2.0, 14.0


def check_launch_from(launch_from: float) -> float:
    """``launch_from`` as a float in [0, 1), or a ConfigError naming the option."""
    return number(
        "--launch-from",
        launch_from,
        at_least=0.0,
        below=1.0,
        numpy=True,
        must="a fraction of the period in [0, 1) (e.g. 0.8: launches in its last fifth)",
    )


def check_share(share: float) -> float:
    """``share`` as a float in [0, MAX_SHARE], or a ConfigError naming the option."""
    return number(
        "--new-products",
        share,
        at_least=0.0,
        at_most=MAX_SHARE,
        numpy=True,
        must=f"a share of products between 0 and {MAX_SHARE} (e.g. 0.1)",
    )


def check_launch_options(share: float, launch_from: float) -> tuple[float, float]:
    """Both options checked, and ``--launch-from`` refused without launches to place (it was
    accepted and ignored)."""
    share, launch_from = check_share(share), check_launch_from(launch_from)
    if launch_from > 0 and share == 0:
        raise ConfigError(
            f"--launch-from {launch_from:g} places product launches in the period; give "
            "--new-products SHARE too (e.g. --new-products 0.1), or leave --launch-from out"
        )
    return share, launch_from


class Launches:
    """One retailer's launch days and the catalogue as it stands on a given day."""

    def __init__(
        self,
        rng: np.random.Generator,
        catalog: Catalog,
        share: float,
        days: int,
        launch_from: float = 0.0,
    ) -> None:
        self.catalog = catalog
        n = len(catalog)
        cats = catalog.category
        starts = np.r_[0, np.flatnonzero(np.diff(cats)) + 1]  # first row of each category
        candidates = np.setdiff1d(np.arange(n), starts)
        n_launch = min(round(check_share(share) * n), len(candidates))
        self.launch_day = np.zeros(n, np.int64)  # 0: on sale from the first day
        chosen = rng.choice(candidates, n_launch, replace=False)
        first = max(1, int(check_launch_from(launch_from) * days))
        self.launch_day[chosen] = rng.integers(first, max(days, first + 1), n_launch)
        # Each product's own popularity, recovered from the catalogue's cumulative shares.
        cum = catalog.cum_popularity
        within = cum - cats
        self._popularity = np.diff(np.r_[0.0, within])
        self._popularity[starts] = within[starts]
        counts = np.bincount(cats, minlength=len(CATEGORY_CODES))
        self._category_mean = 1.0 / counts[cats]  # each category's shares sum to 1

    @property
    def launched(self) -> np.ndarray:
        """Rows of the products launched during the period (launch day > 0)."""
        return np.flatnonzero(self.launch_day > 0)

    def on(self, day: int) -> Catalog:
        """The catalogue on ``day``: products not yet launched cannot be drawn, fresh ones
        draw extra attention. With nothing launched, the catalogue itself."""
        if not len(self.launched):
            return self.catalog
        age = day - self.launch_day
        boost = np.where(
            self.launch_day > 0,
            _ATTENTION * self._category_mean * np.exp(-np.maximum(age, 0) / _ATTENTION_DAYS),
            0.0,
        )
        weight = np.where(age >= 0, self._popularity + boost, 0.0)
        return dataclasses.replace(self.catalog, cum_popularity=_cumulative(self.catalog, weight))


def _cumulative(catalog: Catalog, weight: np.ndarray) -> np.ndarray:
    """``Catalog.cum_popularity`` for ``weight``: category c's rows run from c to exactly
    c + 1, and a zero-weight row repeats the value before it, so ``Catalog.sample`` (first
    row whose value exceeds c + u, u < 1) can never land on it."""
    cats = catalog.category
    cum = np.empty(len(cats))
    for c in np.unique(cats):
        sel = np.flatnonzero(cats == c)
        w = weight[sel]
        share = np.cumsum(w) / w.sum()
        share[np.flatnonzero(w > 0)[-1] :] = 1.0  # exact end, zero rows after it included
        cum[sel] = c + share
    return cum
