"""What the synthetic retailers sell: a shared category taxonomy and per-retailer catalogues.

The taxonomy mimics the REES46 multi-category store (dotted ``category_code`` values,
19-digit ``category_id`` values, lower-case brands). Every retailer sells from the same
taxonomy but with its own mix, price level and data quality, which is what makes the
federated partitions non-IID in a realistic way.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

# (category_code, median price, log-sd of price, brands). Medians are rough REES46 levels.
_TAXONOMY: tuple[tuple[str, float, float, tuple[str, ...]], ...] = (
    (
        "electronics.smartphone",
        260.0,
        0.75,
        ("samsung", "apple", "xiaomi", "huawei", "oppo", "vivo"),
    ),
    ("electronics.audio.headphone", 45.0, 0.9, ("sony", "jbl", "apple", "sennheiser", "xiaomi")),
    ("electronics.video.tv", 420.0, 0.7, ("samsung", "lg", "sony", "philips", "hisense")),
    ("electronics.clocks", 120.0, 0.9, ("casio", "garmin", "apple", "samsung", "fossil")),
    ("electronics.tablet", 300.0, 0.6, ("apple", "samsung", "lenovo", "huawei")),
    ("computers.notebook", 650.0, 0.55, ("lenovo", "hp", "asus", "acer", "apple", "dell")),
    ("computers.desktop", 720.0, 0.6, ("hp", "dell", "lenovo", "asus")),
    ("computers.peripherals.printer", 150.0, 0.7, ("hp", "canon", "epson", "brother")),
    ("computers.components.videocards", 380.0, 0.65, ("msi", "gigabyte", "asus", "palit")),
    ("appliances.kitchen.refrigerators", 520.0, 0.5, ("bosch", "samsung", "lg", "beko", "indesit")),
    ("appliances.kitchen.washer", 380.0, 0.45, ("bosch", "lg", "samsung", "beko", "indesit")),
    ("appliances.kitchen.kettle", 30.0, 0.6, ("tefal", "philips", "bosch", "redmond")),
    ("appliances.environment.vacuum", 140.0, 0.8, ("dyson", "samsung", "philips", "xiaomi")),
    ("appliances.personal.hair_cutter", 35.0, 0.6, ("philips", "braun", "remington")),
    ("apparel.shoes", 70.0, 0.6, ("nike", "adidas", "puma", "reebok", "skechers")),
    ("apparel.shoes.keds", 55.0, 0.5, ("nike", "adidas", "converse", "vans")),
    ("apparel.costume", 60.0, 0.7, ("nike", "adidas", "zara", "mango")),
    ("apparel.jeans", 45.0, 0.5, ("levis", "wrangler", "lee", "mango")),
    ("furniture.living_room.sofa", 480.0, 0.6, ("ikea", "askona", "hoff")),
    ("furniture.bedroom.bed", 350.0, 0.6, ("ikea", "askona", "ormatek")),
    ("furniture.kitchen.table", 160.0, 0.6, ("ikea", "hoff", "stool_group")),
    ("kids.toys", 25.0, 0.9, ("lego", "hasbro", "mattel", "playmobil")),
    ("kids.carriage", 280.0, 0.6, ("chicco", "cybex", "peg-perego")),
    ("sport.bicycle", 330.0, 0.7, ("stels", "merida", "trek", "cube")),
    ("sport.ski", 220.0, 0.6, ("atomic", "rossignol", "head")),
    ("construction.tools.drill", 90.0, 0.7, ("bosch", "makita", "dewalt", "metabo")),
    ("construction.tools.saw", 110.0, 0.7, ("bosch", "makita", "dewalt")),
    ("auto.accessories.player", 80.0, 0.6, ("pioneer", "kenwood", "sony")),
    ("accessories.bag", 40.0, 0.8, ("samsonite", "xiaomi", "wenger")),
    ("country_yard.lawn_mower", 210.0, 0.6, ("bosch", "husqvarna", "stihl")),
    ("stationery.cartrige", 25.0, 0.6, ("hp", "canon", "epson")),
    ("medicine.tools.tonometer", 40.0, 0.4, ("omron", "microlife", "and")),
)

CATEGORY_CODES: tuple[str, ...] = tuple(row[0] for row in _TAXONOMY)
TOP_LEVELS: tuple[str, ...] = tuple(dict.fromkeys(code.split(".")[0] for code in CATEGORY_CODES))
# Leaf index -> top-level index; used to turn a retailer's top-level mix into a leaf mix.
LEAF_TOP: np.ndarray = np.array([TOP_LEVELS.index(c.split(".")[0]) for c in CATEGORY_CODES])
# Stable REES46-looking 19-digit ids: a fixed base plus a checksum of the code, so the same
# code has the same id in every retailer and every run.
CATEGORY_IDS: np.ndarray = np.array(
    [2_053_013_552_000_000_000 + zlib.crc32(c.encode()) * 97 for c in CATEGORY_CODES],
    dtype=np.int64,
)


@dataclass(frozen=True)
class Catalog:
    """One retailer's products; row i of every array is product i (sorted by category)."""

    product_id: np.ndarray  # int64
    category: np.ndarray  # int32 leaf index into CATEGORY_CODES
    category_code: list[str | None]  # None where the retailer left the code empty
    brand: list[str | None]
    price: np.ndarray  # float64, base price before promotions
    # Cumulative popularity where each category's products sum to exactly 1, so
    # searchsorted(cum, c + u) with u ~ U(0, 1) draws a product of category c.
    cum_popularity: np.ndarray

    def __len__(self) -> int:
        return len(self.product_id)

    def sample(self, category: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Product indices, one per entry of ``category``, by within-category popularity."""
        u = category + rng.random(len(category)) * (1.0 - 1e-9)
        idx = np.searchsorted(self.cum_popularity, u, side="right")
        return np.minimum(idx, len(self) - 1)


def leaf_mix(top_mix: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Spread a top-level mix over its leaves with a random within-tree split."""
    mix = np.empty(len(CATEGORY_CODES))
    for t in range(len(TOP_LEVELS)):
        leaves = np.flatnonzero(np.equal(LEAF_TOP, t))
        mix[leaves] = top_mix[t] * rng.dirichlet(np.full(len(leaves), 2.0))
    return mix / mix.sum()


def build_catalog(
    rng: np.random.Generator,
    mix: np.ndarray,
    n_products: int,
    price_level: float,
    missing_code_rate: float,
    missing_brand_rate: float,
) -> Catalog:
    """Draw products so a retailer's assortment follows its category mix.

    Every category gets at least one product so a customer's interest in any category can
    always be served; the remaining products follow the mix. Prices are log-normal per
    category, scaled by the retailer's price level: heavy-tailed like real price lists.
    """
    n_cat = len(CATEGORY_CODES)
    n_products = max(n_products, n_cat)
    cats = np.concatenate([np.arange(n_cat), rng.choice(n_cat, n_products - n_cat, p=mix)])
    cats = np.sort(cats).astype(np.int32)
    medians = np.array([row[1] for row in _TAXONOMY])
    sigmas = np.array([row[2] for row in _TAXONOMY])
    log_price = np.log(medians[cats] * price_level) + sigmas[cats] * rng.standard_normal(n_products)
    price = np.maximum(np.round(np.exp(log_price), 2), 0.77)

    popularity = rng.pareto(1.2, n_products) + 0.05  # a few products draw most views
    cum = np.empty(n_products)
    for c in range(n_cat):
        sel = np.flatnonzero(cats == c)
        cum[sel] = c + np.cumsum(popularity[sel]) / popularity[sel].sum()
    cum[np.r_[np.flatnonzero(np.diff(cats)), n_products - 1]] = np.arange(1, n_cat + 1)

    # REES46-like ids: 7-9 digits, unique within the retailer, unrelated to category order.
    ids = 1_000_000 + np.cumsum(rng.integers(1, 40_000, n_products, dtype=np.int64))
    product_id = rng.permutation(ids)

    code_missing = rng.random(n_products) < missing_code_rate
    brand_missing = rng.random(n_products) < missing_brand_rate
    codes: list[str | None] = []
    brands: list[str | None] = []
    for i, c in enumerate(cats):
        codes.append(None if code_missing[i] else CATEGORY_CODES[c])
        options = _TAXONOMY[c][3]
        pick = min(int(rng.pareto(1.0)), len(options) - 1)  # first brands dominate
        brands.append(None if brand_missing[i] else options[pick])
    return Catalog(product_id, cats, codes, brands, price, cum)
