"""How synthetic customers behave, one day at a time, vectorised across a retailer's customers.

The model is built so that *when* things happened predicts the next week, not only how
often (a sequence model must have something to find that totals cannot show):

- A cart leaves a pending intent: the customer comes back more often and buys the carted
  product with a hazard that decays over a few days, or abandons it. A cart yesterday
  predicts a purchase; the same cart a month ago does not.
- Engagement follows a persistent trend (a random walk on its slope), so rising activity
  predicts more visits and falling activity fewer; customers go dormant and come back.
- A purchase starts a refractory period (fewer carts and purchases for a couple of weeks)
  and lowers interest in that category, so recent buyers are not the next week's buyers.
- Purchases are always preceded by a view and a cart of the same product, in the same
  session (impulse buys) or in an earlier one (considered buys).

Totals still matter (heavy-tailed activity, a latent purchase propensity), so a logistic
regression on counts is a fair but beatable baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedmarket.data.synth.catalog import Catalog
from fedmarket.data.synth.profiles import RetailerProfile

VIEW, CART, REMOVE, PURCHASE = 0, 1, 2, 3  # indices into schema.EVENT_TYPES
SECONDS_PER_DAY = 86_400

# Behavioural constants, in days where they are times. Tuned so the marginals look like
# REES46 (views > 90 %, purchases ~1-2 %) and next-week purchase AUC lands in ~0.75-0.9.
_CART_BOOST, _CART_BOOST_DAYS = 3.0, 2.0  # extra visit rate right after a cart, decay
_RETURN_BUY, _RETURN_BUY_DAYS = 0.8, 4.0  # chance a visit buys the pending cart, decay
_ABANDON = 0.06  # chance a visit removes the pending cart instead
_REMOVE_NOW = 0.25  # chance a fresh cart is removed in the same session
_REFRACTORY, _REFRACTORY_DAYS = 0.8, 8.0  # dip in buying after a purchase, decay
_DORMANT_RATE = 0.03  # visit-rate multiplier while dormant


@dataclass(frozen=True)
class DayEvents:
    """One day's events, already in time order."""

    second: np.ndarray  # int64 seconds since the day's midnight (UTC)
    event: np.ndarray  # int8 index into EVENT_TYPES
    product: np.ndarray  # int64 catalogue row
    customer: np.ndarray  # int64 customer row
    session: np.ndarray  # int64 index into this day's sessions
    n_sessions: int

    def __len__(self) -> int:
        return len(self.second)


class Shoppers:
    """Latent state of one retailer's customers; ``simulate_day`` advances it by a day."""

    def __init__(
        self,
        rng: np.random.Generator,
        n: int,
        profile: RetailerProfile,
        mix: np.ndarray,
        first_weekday: int,
    ) -> None:
        """``first_weekday``: weekday of day 0, Monday = 0 (indexes ``profile.weekly``)."""
        self.profile, self.mix, self.n, self.first_weekday = profile, mix, n, first_weekday
        self.rate = np.minimum(profile.traffic * rng.lognormal(np.log(0.10), 1.1, n), 4.0)
        self.rate[rng.random(n) < 0.06] = 0.0  # registered, never shops (real CRMs have them)
        self.affinity = rng.lognormal(-0.06, 0.35, n)  # latent purchase propensity, mean 1
        self.depth = 1.0 + rng.lognormal(np.log(3.0), 0.45, n)  # mean views per session
        self.log_eng = rng.normal(0.0, 0.4, n)
        self.trend = rng.normal(0.0, 0.04, n)
        self.alive = rng.random(n) > 0.1
        self.churn = 1.0 / rng.lognormal(np.log(60.0), 0.5, n)
        self.revive = 1.0 / rng.lognormal(np.log(40.0), 0.5, n)
        self.logits = np.log(mix)[None, :] + rng.normal(0.0, 1.2, (n, len(mix)))
        self.cart_product = np.full(n, -1, np.int64)
        self.cart_time = np.full(n, -np.inf)
        self.last_buy = np.full(n, -np.inf)
        hourly = np.asarray(profile.hourly, float)
        self._hour_cum = np.cumsum(hourly / hourly.sum())

    def _evolve(self, day: int, rng: np.random.Generator) -> None:
        """Engagement trend, dormancy and interest drift (weekly, which is cheaper and enough)."""
        self.trend = 0.85 * self.trend + rng.normal(0.0, 0.08, self.n)
        self.log_eng = np.clip(0.97 * self.log_eng + self.trend, -3.0, 2.0)
        u = rng.random(self.n)
        self.alive = np.where(self.alive, u >= self.churn, u < self.revive)
        if day % 7 == 6:
            self.logits += rng.normal(0.0, 0.25, self.logits.shape)

    def simulate_day(self, day: int, catalog: Catalog, rng: np.random.Generator) -> DayEvents:
        """Advance by one day and return its events; ``day`` counts from the start date."""
        p = self.profile
        self._evolve(day, rng)
        promo = day in p.promo_days
        conv = p.promo_conversion if promo else 1.0
        since_cart = np.where(self.cart_product >= 0, day - self.cart_time, np.inf)
        refractory = 1.0 - _REFRACTORY * np.exp(-(day - self.last_buy) / _REFRACTORY_DAYS)
        lam = (
            self.rate
            * np.exp(self.log_eng)
            * np.where(self.alive, 1.0, _DORMANT_RATE)
            * p.weekly[(self.first_weekday + day) % 7]
            * (p.promo_traffic if promo else 1.0)
            * (1.0 + _CART_BOOST * np.exp(-since_cart / _CART_BOOST_DAYS))
        )
        n_sess = np.minimum(rng.poisson(lam), 6)
        cust = np.repeat(np.arange(self.n), n_sess)
        start = np.searchsorted(
            self._hour_cum, rng.random(len(cust)) * self._hour_cum[-1]
        ) * 3600 + rng.integers(0, 3600, len(cust))
        order = np.lexsort((start, cust))  # a customer's sessions in time order
        cust, start = cust[order], start[order].astype(np.int64)
        first = np.r_[True, cust[1:] != cust[:-1]] if len(cust) else np.zeros(0, bool)
        s = _Sessions(cust, start, first)
        self._decide(s, day, refractory, conv, rng)
        events = self._events(s, catalog, rng)
        self._update(s)
        return events

    def _decide(
        self, s: _Sessions, day: int, refractory: np.ndarray, conv: float, rng: np.random.Generator
    ) -> None:
        """What each session does; only a customer's first session of the day may act on a
        cart from earlier days, so one pending cart is never bought twice."""
        c, p = s.cust, self.profile
        when = day + s.start / SECONDS_PER_DAY
        pending = s.first & (self.cart_product[c] >= 0)
        p_return = np.minimum(
            _RETURN_BUY
            * np.sqrt(self.affinity[c])
            * refractory[c]
            * conv
            * np.exp(-(when - self.cart_time[c]) / _RETURN_BUY_DAYS),
            0.95,
        )
        u = rng.random((5, len(c)))
        s.buy_pending = pending & (u[0] < p_return)
        s.drop_pending = pending & ~s.buy_pending & (u[1] < _ABANDON)
        p_cart = np.minimum(p.cart_rate * self.affinity[c] * refractory[c] * conv, 0.9)
        s.cart = ~s.buy_pending & ~s.drop_pending & (u[2] < p_cart)
        s.buy_now = s.cart & (u[3] < min(p.buy_now_rate * conv, 0.9))
        s.drop_now = s.cart & ~s.buy_now & (u[4] < _REMOVE_NOW)
        s.when = when

    def _events(self, s: _Sessions, catalog: Catalog, rng: np.random.Generator) -> DayEvents:
        c, n_s = s.cust, len(s.cust)
        n_views = np.minimum(rng.geometric(1.0 / self.depth[c]), 40)
        # Each session has a mission (one category from the customer's interests); a fifth
        # of views wander off to whatever the shop promotes (its assortment mix).
        logits = self.logits[c]
        z = np.exp(logits - logits.max(axis=1, keepdims=True))
        cum = np.cumsum(z, axis=1)
        mission = (cum < rng.random(n_s)[:, None] * cum[:, -1:]).sum(axis=1)
        view_sess = np.repeat(np.arange(n_s), n_views)
        wander = rng.random(len(view_sess)) < 0.2
        cat = np.where(
            wander, rng.choice(len(self.mix), len(view_sess), p=self.mix), mission[view_sess]
        )
        view_prod = catalog.sample(cat, rng)
        offsets = np.cumsum(n_views) - n_views
        view_pos = np.arange(len(view_sess)) - offsets[view_sess]
        last_viewed = view_prod[offsets + n_views - 1] if n_s else view_prod[:0]
        pend = self.cart_product[c]
        s.cart_prod = last_viewed
        s.bought_category = np.where(
            s.buy_pending, catalog.category[np.maximum(pend, 0)], catalog.category[last_viewed]
        )
        parts = [(view_sess, view_pos, np.full(len(view_sess), VIEW), view_prod)]
        for mask, pos, kind, prod in (
            (s.buy_pending, 0, VIEW, pend),
            (s.buy_pending, 1, PURCHASE, pend),
            (s.drop_pending, 0, REMOVE, pend),
            (s.cart, 0, CART, last_viewed),
            (s.buy_now, 1, PURCHASE, last_viewed),
            (s.drop_now, 1, REMOVE, last_viewed),
        ):
            idx = np.flatnonzero(mask)
            parts.append((idx, n_views[idx] + pos, np.full(len(idx), kind), prod[idx]))
        sess, pos, kind, prod = (np.concatenate(x) for x in zip(*parts, strict=True))

        order = np.lexsort((pos, sess))  # session by session, in click order
        sess, kind, prod = sess[order], kind[order], prod[order]
        gaps = np.rint(rng.exponential(45.0, len(sess))).astype(np.int64) + 2
        elapsed = np.cumsum(gaps)
        first_of_sess = np.r_[True, sess[1:] != sess[:-1]] if len(sess) else np.zeros(0, bool)
        elapsed -= np.maximum.accumulate(np.where(first_of_sess, elapsed, 0))
        # A session that would run past midnight starts earlier instead of being clamped
        # at 23:59:59, which would stack clicks on one second and make duplicate rows.
        length = np.zeros(len(s.start), dtype=np.int64)
        np.maximum.at(length, sess, elapsed)
        start = np.maximum(np.minimum(s.start, SECONDS_PER_DAY - 1 - length), 0)
        second = np.minimum(start[sess] + elapsed, SECONDS_PER_DAY - 1)
        final = np.lexsort((np.arange(len(sess)), second))  # stable: ties keep click order
        return DayEvents(
            second[final],
            kind[final].astype(np.int8),
            prod[final],
            c[sess[final]],
            sess[final],
            n_s,
        )

    def _update(self, s: _Sessions) -> None:
        """Carry the day's outcomes into tomorrow's state (later sessions overwrite earlier)."""
        c = s.cust
        self.cart_product[c[s.buy_pending | s.drop_pending]] = -1
        keep = s.cart & ~s.buy_now & ~s.drop_now
        self.cart_product[c[keep]] = s.cart_prod[keep]
        self.cart_time[c[keep]] = s.when[keep]
        bought = s.buy_pending | s.buy_now
        self.last_buy[c[bought]] = s.when[bought]
        self.logits[c[bought], s.bought_category[bought]] -= 1.0  # needs met: interest moves on


class _Sessions:
    """One day's sessions as parallel arrays in (customer, start) order; ``Shoppers._decide``
    fills in the decisions and ``Shoppers._events`` the products."""

    buy_pending: np.ndarray  # bool: buys the cart left on an earlier day
    drop_pending: np.ndarray  # bool: removes that cart instead
    cart: np.ndarray  # bool: adds its last viewed product to the cart ...
    buy_now: np.ndarray  # bool: ... and buys it in the same session
    drop_now: np.ndarray  # bool: ... or removes it in the same session
    when: np.ndarray  # float: days since the start date, at session start
    cart_prod: np.ndarray  # int: the last viewed product (what a new cart holds)
    bought_category: np.ndarray  # int: category of whatever the session bought

    def __init__(self, cust: np.ndarray, start: np.ndarray, first: np.ndarray) -> None:
        self.cust, self.start, self.first = cust, start, first
