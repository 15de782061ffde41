"""How synthetic retailers differ: one seeded profile per retailer.

A profile is drawn only from that retailer's own generator, so ``retailer_03`` is the same
whether 4 or 40 retailers are generated, and it is written to ``synth.json`` so a user can
see why partitions differ (category mix, price level, conversion, size, seasonality,
promotions, data quality).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from fedmarket.data.synth.catalog import TOP_LEVELS
from fedmarket.data.synth.people import CITY_NAMES

# Hour-of-day shape of online shopping (UTC, one market): quiet nights, evening peak.
_HOURLY = np.array(
    [2, 1, 1, 1, 1, 2, 3, 5, 6, 7, 7, 7, 7, 7, 7, 7, 7, 8, 9, 10, 10, 9, 6, 4], float
)


@dataclass(frozen=True)
class RetailerProfile:
    """Everything that makes one synthetic retailer different from another."""

    retailer_id: str
    index: int
    n_customers: int
    n_products: int
    top_mix: dict[str, float]  # top-level category -> share of the assortment
    price_level: float  # multiplies every category's median price
    traffic: float  # multiplies every customer's visit rate
    cart_rate: float  # base probability that a session adds something to the cart
    buy_now_rate: float  # share of carts bought in the same session
    weekly: tuple[float, ...]  # Monday..Sunday traffic multipliers, mean 1
    hourly: tuple[float, ...]  # hour-of-day probabilities (UTC), sum 1
    promo_days: tuple[int, ...]  # day offsets from the start
    promo_traffic: float
    promo_conversion: float
    promo_discount: float  # fractional price cut on promotion days
    missing_code_rate: float  # share of products with an empty category_code
    missing_brand_rate: float
    home_city: str  # where most of its customers live

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def top_mix_array(self) -> np.ndarray:
        return np.array([self.top_mix[t] for t in TOP_LEVELS])


def retailer_name(index: int, n_retailers: int) -> str:
    """``retailer_03``: zero-padded to at least two digits so names sort in order."""
    return f"retailer_{index:0{max(2, len(str(n_retailers - 1)))}d}"


def draw_profile(
    rng: np.random.Generator, index: int, n_retailers: int, n_customers: int, days: int
) -> RetailerProfile:
    """One retailer's profile; the draws are in a fixed order so the seed alone decides it.

    Retailers specialise: two or three top-level trees carry most of the assortment
    (an electronics chain, a home-and-garden store, a fashion shop, ...).
    """
    n_top = len(TOP_LEVELS)
    special = rng.choice(n_top, size=int(rng.integers(2, 4)), replace=False)
    alpha = np.full(n_top, 0.4)
    alpha[special] = 6.0
    top_mix = rng.dirichlet(alpha)
    top_mix = np.maximum(top_mix, 0.002)
    top_mix /= top_mix.sum()

    size_factor = rng.uniform(0.5, 1.5)
    weekend_lover = rng.random() < 0.5
    weekly = np.exp(rng.normal(0.0, 0.08, 7))
    weekly[5:] *= 1.35 if weekend_lover else 0.8
    weekly /= weekly.mean()
    hourly = np.roll(_HOURLY, int(rng.integers(-1, 2))) * np.exp(rng.normal(0, 0.1, 24))
    hourly = np.round(hourly / hourly.sum(), 4)

    n_promo = min(int(rng.integers(2, 5)), max(days // 14, 0))
    promo_days = tuple(sorted(int(d) for d in rng.choice(days, size=n_promo, replace=False)))

    return RetailerProfile(
        retailer_id=retailer_name(index, n_retailers),
        index=index,
        n_customers=max(1, round(n_customers * size_factor)),
        n_products=int(np.clip(n_customers * size_factor * rng.uniform(0.15, 0.4), 80, 20_000)),
        top_mix={t: round(float(w), 4) for t, w in zip(TOP_LEVELS, top_mix, strict=True)},
        price_level=round(float(np.clip(rng.lognormal(0.0, 0.3), 0.6, 1.8)), 3),
        traffic=round(float(rng.lognormal(0.0, 0.2)), 3),
        cart_rate=round(float(rng.uniform(0.14, 0.32)), 3),
        buy_now_rate=round(float(rng.uniform(0.08, 0.25)), 3),
        weekly=tuple(round(float(w), 3) for w in weekly),
        hourly=tuple(float(h) for h in hourly),  # renormalised where used
        promo_days=promo_days,
        promo_traffic=round(float(rng.uniform(1.8, 3.2)), 2),
        promo_conversion=round(float(rng.uniform(1.3, 1.9)), 2),
        promo_discount=round(float(rng.uniform(0.1, 0.3)), 2),
        missing_code_rate=round(float(rng.uniform(0.05, 0.35)), 3),
        missing_brand_rate=round(float(rng.uniform(0.05, 0.2)), 3),
        home_city=str(CITY_NAMES[int(rng.integers(20))]),  # a regional chain in a big city
    )
