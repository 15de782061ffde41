"""Fake but plausible customer records (the CRM side of a synthetic retailer).

Written by hand rather than with Faker: the project does not depend on Faker, and the
anonymiser needs a specific structure that a generic fake-data library does not promise.
Each city owns one two-digit postcode prefix, so generalising a postcode to its prefix is
meaningful, and city sizes are skewed like real populations: big cities fill every
(age band x postcode prefix x gender) class, small towns do not, so k-anonymity suppresses
a minority of records rather than none or most. Emails use the reserved example domains.
"""

from __future__ import annotations

import zlib
from datetime import date, timedelta

import numpy as np
import pyarrow as pa

from fedmarket.data.ingest.schema import CUSTOMER_COLUMNS

# (city, postcode prefix, population in thousands): prefixes follow the German scheme.
_CITIES: tuple[tuple[str, str, int], ...] = (
    ("Berlin", "10", 3650),
    ("Hamburg", "20", 1850),
    ("München", "80", 1480),
    ("Köln", "50", 1080),
    ("Frankfurt am Main", "60", 760),
    ("Stuttgart", "70", 630),
    ("Düsseldorf", "40", 620),
    ("Leipzig", "04", 600),
    ("Dortmund", "44", 590),
    ("Essen", "45", 580),
    ("Bremen", "28", 565),
    ("Dresden", "01", 555),
    ("Hannover", "30", 535),
    ("Nürnberg", "90", 515),
    ("Duisburg", "47", 500),
    ("Bielefeld", "33", 335),
    ("Bonn", "53", 330),
    ("Münster", "48", 315),
    ("Mannheim", "68", 310),
    ("Karlsruhe", "76", 308),
    ("Augsburg", "86", 295),
    ("Kiel", "24", 246),
    ("Freiburg im Breisgau", "79", 230),
    ("Rostock", "18", 209),
    ("Erfurt", "99", 213),
    ("Regensburg", "93", 153),
    ("Göttingen", "37", 118),
    ("Jena", "07", 110),
    ("Passau", "94", 52),
    ("Husum", "25", 23),
    ("Görlitz", "02", 56),
)
CITY_NAMES: tuple[str, ...] = tuple(c[0] for c in _CITIES)
CITY_PREFIX: dict[str, str] = {c[0]: c[1] for c in _CITIES}


def _words(text: str) -> tuple[str, ...]:
    """Space-separated word lists keep the name data compact and readable."""
    return tuple(text.split())


_FEMALE = _words(
    "Anna Maria Sophie Laura Julia Lea Hannah Lena Sarah Lisa Katharina Johanna Emma Mia Elif "
    "Zeynep Olga Natalia Sabine Petra Monika Claudia Ursula Ingrid Fatma Aylin Nina Clara"
)
_MALE = _words(
    "Thomas Michael Andreas Stefan Christian Jan Lukas Felix Paul Jonas Leon Maximilian Tobias "
    "Daniel Markus Peter Klaus Jürgen Mehmet Ali Mustafa Dmitri Sergei Piotr Marco Luca David "
    "Ben"
)
_LAST = _words(
    "Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann Schäfer Koch "
    "Bauer Richter Klein Wolf Schröder Neumann Schwarz Zimmermann Braun Krüger Hofmann Hartmann "
    "Lange Schmitt Werner Krause Meier Lehmann Yilmaz Kaya Demir Nowak Kowalski Ivanov Popov "
    "Rossi Nguyen Lang Vogel Frank Berger"
)
_STREETS = _words(
    "Hauptstraße Schulstraße Gartenstraße Bahnhofstraße Dorfstraße Bergstraße Lindenstraße "
    "Kirchstraße Waldstraße Ringstraße Mozartweg Goethestraße Schillerstraße Birkenweg Rosenweg "
    "Feldstraße Parkallee Friedrichstraße Wiesenweg Lessingstraße Uhlandstraße"
)
_DOMAINS = ("example.com", "example.org", "example.net")
_ASCII = str.maketrans(
    {"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue"}
)


def _districts(city: str, population: int) -> np.ndarray:
    """The postcode suffixes a city uses; fixed per city so retailers agree on them."""
    own = np.random.default_rng(zlib.crc32(city.encode()))
    n = int(np.clip(np.sqrt(population) / 2, 2, 40))
    return np.sort(own.choice(1000, size=n, replace=False))


_DISTRICTS = [_districts(name, pop) for name, _, pop in _CITIES]


def city_weights(home_city: str) -> np.ndarray:
    """Population shares, with a retailer's home city boosted (regional store footprint)."""
    pop = np.array([c[2] for c in _CITIES], float)
    w = pop / pop.sum()
    home = CITY_NAMES.index(home_city)
    w[home] += 0.35
    return w / w.sum()


def customer_table(
    rng: np.random.Generator, user_ids: np.ndarray, home_city: str, reference: date
) -> pa.Table:
    """One row per customer, columns ``schema.CUSTOMER_COLUMNS``; ages measured at ``reference``."""
    n = len(user_ids)
    city = rng.choice(len(_CITIES), size=n, p=city_weights(home_city))
    district = rng.random(n)
    gender = rng.choice(np.array(["F", "M", "X"]), size=n, p=[0.505, 0.485, 0.01])
    age_days = np.clip(rng.normal(40.0, 14.0, n), 18.0, 92.0) * 365.25
    female = (gender == "F") | ((gender == "X") & (rng.random(n) < 0.5))
    first = np.where(
        female,
        np.array(_FEMALE)[rng.integers(len(_FEMALE), size=n)],
        np.array(_MALE)[rng.integers(len(_MALE), size=n)],
    )
    last = np.array(_LAST)[rng.integers(len(_LAST), size=n)]
    names = [f"{f} {s}" for f, s in zip(first, last, strict=True)]
    domains = np.array(_DOMAINS)[rng.integers(len(_DOMAINS), size=n)]
    email_num = rng.integers(1, 100, size=n)
    phone = rng.integers(10_000_000, 100_000_000, size=n)
    phone_net = rng.choice(np.array(["151", "152", "157", "160", "170", "176", "178"]), size=n)
    street = np.array(_STREETS)[rng.integers(len(_STREETS), size=n)]
    house = np.minimum(rng.geometric(0.06, size=n), 240)
    columns = {
        "user_id": pa.array(np.asarray(user_ids, np.int64)),
        "name": names,
        "email": [
            f"{m.translate(_ASCII).lower().replace(' ', '.')}{k}@{d}"
            for m, k, d in zip(names, email_num, domains, strict=True)
        ],
        "phone": [f"+49 {a} {b}" for a, b in zip(phone_net, phone, strict=True)],
        "street_address": [f"{a} {b}" for a, b in zip(street, house, strict=True)],
        "birth_date": [(reference - timedelta(days=int(d))).isoformat() for d in age_days],
        "postcode": [
            f"{_CITIES[c][1]}{_DISTRICTS[c][int(u * len(_DISTRICTS[c]))]:03d}"
            for c, u in zip(city, district, strict=True)
        ],
        "gender": gender.tolist(),
        "city": [_CITIES[c][0] for c in city],
    }
    return pa.table(
        {
            c: pa.array(columns[c], pa.string()) if c != "user_id" else columns[c]
            for c in CUSTOMER_COLUMNS
        }
    )
