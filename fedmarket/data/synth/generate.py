"""`fedmarket data synth`: synthetic retailers' raw exports in the public REES46 event schema.

Layout written under ``out_dir``::

    synth.json                       parameters, each retailer's profile and totals
    retailer_00/events.parquet       (or events.csv) REES46 columns + retailer_id, time-sorted
    retailer_00/customers.csv        schema.CUSTOMER_COLUMNS, fake identities
    retailer_01/...

Output directory policy: a missing or empty directory is used as is; a directory that holds
a ``synth.json`` written by this generator is regenerated in place (the files its old
``synth.json`` lists are deleted first, anything else there is left alone); any other
non-empty directory is refused, so a typo cannot delete someone's data. ``synth.json`` is
written first with ``"status": "incomplete"`` and rewritten at the end as ``"complete"``,
so an interrupted run can simply be re-run into the same directory.

Randomness: ``SeedSequence(seed).spawn`` gives each retailer its own stream, and each
retailer splits that again into profile, catalogue, customers and days, so retailer k is
identical whatever the number of retailers, and its profile does not depend on its size.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow.csv as pacsv

from fedmarket.checks import integer
from fedmarket.data.ingest.schema import CUSTOMERS_STEM, EVENT_TYPES, EVENTS_STEM
from fedmarket.data.synth.behaviour import Shoppers
from fedmarket.data.synth.catalog import build_catalog, leaf_mix
from fedmarket.data.synth.launches import Launches, check_launch_options
from fedmarket.data.synth.people import customer_table
from fedmarket.data.synth.profiles import RetailerProfile, draw_profile
from fedmarket.data.synth.writer import EventWriter, session_ids
from fedmarket.errors import ConfigError

SYNTH_JSON = "synth.json"
GENERATOR = "fedmarket data synth"
FORMATS = ("parquet", "csv")
MAX_RETAILERS, MAX_CUSTOMERS, MAX_DAYS = 1000, 1_000_000, 3660
_USER_ID_BASE, _USER_ID_BLOCK = 510_000_000, 20_000_000  # retailer k owns one id block


@dataclass(frozen=True)
class RetailerSummary:
    retailer_id: str
    events_path: Path
    customers_path: Path
    n_customers: int
    n_events: int
    event_counts: dict[str, int]  # event type -> rows
    launches: dict[int, int] = field(default_factory=dict)  # product_id -> launch day offset


@dataclass(frozen=True)
class SynthSummary:
    out_dir: Path
    manifest_path: Path
    retailers: tuple[RetailerSummary, ...]

    @property
    def total_events(self) -> int:
        return sum(r.n_events for r in self.retailers)

    @property
    def total_customers(self) -> int:
        return sum(r.n_customers for r in self.retailers)

    @property
    def event_counts(self) -> dict[str, int]:
        return {t: sum(r.event_counts[t] for r in self.retailers) for t in EVENT_TYPES}


def plan_retailers(
    n_retailers: int = 10, n_customers: int = 5000, days: int = 120, seed: int = 0
) -> list[RetailerProfile]:
    """The profiles ``generate_retailers`` will use (cheap): e.g. to size a progress bar,
    whose total is ``sum(p.n_customers for p in plan_retailers(...))``."""
    _check_numbers(n_retailers, n_customers, days, seed)
    return [
        draw_profile(np.random.default_rng(_streams(seed, k)[0]), k, n_retailers, n_customers, days)
        for k in range(n_retailers)
    ]


def generate_retailers(
    out_dir: Path,
    n_retailers: int = 10,
    n_customers: int = 5000,
    days: int = 120,
    seed: int = 0,
    fmt: Literal["parquet", "csv"] = "parquet",
    start: str = "2019-10-01",
    progress: Callable[[int], None] | None = None,
    new_products: float = 0.0,
    launch_from: float = 0.0,
) -> SynthSummary:
    """Write ``n_retailers`` synthetic retailers under ``out_dir``; same arguments, same bytes.

    ``progress(k)`` is called as simulation advances, with k customers' worth of work just
    finished (a retailer's customers are credited in proportion to days simulated); the
    calls add up to ``SynthSummary.total_customers``. ``new_products``: the share of each
    retailer's products launched during the period (``fedmarket.data.synth.launches``); 0,
    the default, keeps a static catalogue and exactly the bytes written before the option;
    ``launch_from``: launches fall from this fraction of the period on (0: anywhere).
    """
    out_dir = Path(out_dir)
    _check_numbers(n_retailers, n_customers, days, seed)
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r} is not supported; use one of {', '.join(FORMATS)}")
    first_day = _parse_start(start)
    new_products, launch_from = check_launch_options(new_products, launch_from)
    profiles = plan_retailers(n_retailers, n_customers, days, seed)
    _prepare_out_dir(out_dir)
    params = {
        "n_retailers": n_retailers,
        "n_customers": n_customers,
        "days": days,
        "seed": seed,
        "format": fmt,
        "start": first_day.isoformat(),
    }
    if new_products:  # only then, so the default synth.json keeps its bytes
        params["new_products"] = new_products
        params["launch_from"] = launch_from
    manifest = out_dir / SYNTH_JSON
    planned = [_profile_json(p, first_day) for p in profiles]
    _write_json(
        manifest,
        {
            "generator": GENERATOR,
            "status": "incomplete",
            "parameters": params,
            "retailers": planned,
        },
    )
    report = progress or (lambda k: None)
    summaries = [
        _generate_one(out_dir, p, seed, days, fmt, first_day, report, new_products, launch_from)
        for p in profiles
    ]
    entries = [
        {**_profile_json(p, first_day), **_summary_json(s, out_dir, first_day)}
        for p, s in zip(profiles, summaries, strict=True)
    ]
    _write_json(
        manifest,
        {"generator": GENERATOR, "status": "complete", "parameters": params, "retailers": entries},
    )
    return SynthSummary(out_dir, manifest, tuple(summaries))


def _generate_one(
    out_dir: Path,
    profile: RetailerProfile,
    seed: int,
    days: int,
    fmt: str,
    first_day: date,
    progress: Callable[[int], None],
    new_products: float = 0.0,
    launch_from: float = 0.0,
) -> RetailerSummary:
    catalog_rng, people_rng, shopper_rng, day_rng = (
        np.random.default_rng(s) for s in _streams(seed, profile.index)[1:]
    )
    mix = leaf_mix(profile.top_mix_array, catalog_rng)
    catalog = build_catalog(
        catalog_rng,
        mix,
        profile.n_products,
        profile.price_level,
        profile.missing_code_rate,
        profile.missing_brand_rate,
    )
    launches = None
    if new_products:
        launch_rng = np.random.default_rng(_launch_stream(seed, profile.index))
        launches = Launches(launch_rng, catalog, new_products, days, launch_from)
    n = profile.n_customers
    # Disjoint across retailers (each owns an id block), REES46-like 9-digit ids, shuffled.
    block = _USER_ID_BASE + profile.index * _USER_ID_BLOCK
    user_ids = people_rng.permutation(block + np.cumsum(people_rng.integers(1, 12, n)))
    directory = out_dir / profile.retailer_id
    directory.mkdir(parents=True, exist_ok=True)
    customers_path = directory / f"{CUSTOMERS_STEM}.csv"
    pacsv.write_csv(
        customer_table(people_rng, user_ids, profile.home_city, first_day), customers_path
    )

    events_path = directory / f"{EVENTS_STEM}.{fmt}"
    start_s = int(np.datetime64(first_day.isoformat(), "s").astype(np.int64))
    writer = EventWriter(events_path, fmt, profile.retailer_id, catalog, user_ids, start_s)
    shoppers = Shoppers(shopper_rng, n, profile, mix, first_day.weekday())
    counts = np.zeros(len(EVENT_TYPES), np.int64)
    try:
        for day in range(days):
            on_sale = launches.on(day) if launches else catalog
            events = shoppers.simulate_day(day, on_sale, day_rng)
            discount = profile.promo_discount if day in profile.promo_days else 0.0
            writer.add_day(day, events, session_ids(day_rng, events.n_sessions), discount)
            counts += np.bincount(events.event, minlength=len(EVENT_TYPES))
            done = n * (day + 1) // days - n * day // days
            if done:
                progress(done)
    finally:
        writer.close()
    event_counts = {t: int(c) for t, c in zip(EVENT_TYPES, counts, strict=True)}
    launched = (
        {int(catalog.product_id[i]): int(launches.launch_day[i]) for i in launches.launched}
        if launches
        else {}
    )
    return RetailerSummary(
        profile.retailer_id,
        events_path,
        customers_path,
        n,
        int(counts.sum()),
        event_counts,
        launched,
    )


def _streams(seed: int, index: int) -> list[np.random.SeedSequence]:
    """Retailer ``index``'s five streams: profile, catalogue, people, shoppers, days.

    ``SeedSequence(seed, spawn_key=(index,))`` is exactly ``SeedSequence(seed).spawn(...)[index]``,
    built directly so retailer k never depends on how many retailers there are.
    """
    return np.random.SeedSequence(seed, spawn_key=(index,)).spawn(5)


def _launch_stream(seed: int, index: int) -> np.random.SeedSequence:
    """Retailer ``index``'s launch stream: a sixth child next to ``_streams``' five, so
    drawing launches leaves every other stream, and so the default output, untouched."""
    return np.random.SeedSequence(seed, spawn_key=(index,)).spawn(6)[5]


def _check_numbers(n_retailers: int, n_customers: int, days: int, seed: int) -> None:
    for name, value, top in (
        ("--retailers", n_retailers, MAX_RETAILERS),
        ("--customers", n_customers, MAX_CUSTOMERS),
        ("--days", days, MAX_DAYS),
    ):
        integer(name, value, at_least=1, at_most=top, numpy=True)
    integer("--seed", seed, at_least=0, numpy=True)


def _parse_start(start: str) -> date:
    try:
        return date.fromisoformat(str(start))
    except ValueError:
        raise ConfigError(
            f"--start {start!r} is not a date; use YYYY-MM-DD, e.g. 2019-10-01"
        ) from None


def _prepare_out_dir(out_dir: Path) -> None:
    """Apply the output directory policy in the module docstring."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir} is a file; give a directory")
    if not out_dir.exists() or not any(out_dir.iterdir()):
        out_dir.mkdir(parents=True, exist_ok=True)
        return
    old = _read_own_manifest(out_dir)
    entries = old.get("retailers")
    for entry in entries if isinstance(entries, list) else []:
        name = entry.get("dir") if isinstance(entry, dict) else None
        # Only ever delete inside retailer_NN folders directly under out_dir.
        if not isinstance(name, str) or not re.fullmatch(r"retailer_\d+", name):
            continue
        directory = out_dir / name
        if not directory.is_dir():
            continue
        for stem in (f"{EVENTS_STEM}.parquet", f"{EVENTS_STEM}.csv", f"{CUSTOMERS_STEM}.csv"):
            (directory / stem).unlink(missing_ok=True)
        if not any(directory.iterdir()):
            directory.rmdir()
    (out_dir / SYNTH_JSON).unlink()


def _read_own_manifest(out_dir: Path) -> dict[str, Any]:
    path = out_dir / SYNTH_JSON
    refuse = (
        f"--out {out_dir} is not empty and was not written by `fedmarket data synth`; "
        "choose a new or empty directory"
    )
    if not path.is_file():
        raise ConfigError(refuse)
    try:
        old = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ConfigError(f"{path}: not readable JSON; " + refuse) from None
    if not isinstance(old, dict) or old.get("generator") != GENERATOR:
        raise ConfigError(f"{path}: not written by `fedmarket data synth`; " + refuse)
    return old


def _profile_json(p: RetailerProfile, first_day: date) -> dict[str, Any]:
    dates = [(first_day + timedelta(days=d)).isoformat() for d in p.promo_days]
    return {"dir": p.retailer_id, "profile": {**p.to_json(), "promo_dates": dates}}


def _summary_json(s: RetailerSummary, out_dir: Path, first_day: date) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "events_file": str(s.events_path.relative_to(out_dir)),
        "customers_file": str(s.customers_path.relative_to(out_dir)),
        "n_customers": s.n_customers,
        "n_events": s.n_events,
        "event_counts": s.event_counts,
    }
    if s.launches:  # the ground truth of --new-products: product_id -> launch date
        entry["launches"] = {
            str(p): (first_day + timedelta(days=d)).isoformat()
            for p, d in sorted(s.launches.items(), key=lambda kv: (kv[1], kv[0]))
        }
    return entry


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
