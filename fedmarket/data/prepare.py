"""`fedmarket data prepare`: raw retailer exports to per-partition training tensors.

Each retailer's data is validated, pseudonymised and featurised on its own, as it would be
on that retailer's machine; the only things combined across retailers are aggregates
(the time range, normalisation moments, label rates), which is also what a real
consortium could agree on without sharing customers.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fedmarket.data import (
    categories,
    category_vocab,
    event_pass,
    features,
    normalise,
    partition,
    product_vocab,
    store,
)
from fedmarket.data.ingest import customers, loaders
from fedmarket.data.ingest.mapping import ExportMapping
from fedmarket.data.ingest.table import TableMapping
from fedmarket.data.ingest.validate import DropReport
from fedmarket.data.protect import anonymise
from fedmarket.data.protect.keys import PSEUDONYM_KEY_ENV
from fedmarket.errors import ConfigError, DataError

if TYPE_CHECKING:
    from fedmarket.data.static_join import StaticAttributes


@dataclass(frozen=True)
class PrepareOptions:
    """Every knob of `data prepare`, validated before any file is read."""

    raw: Path
    out: Path
    scheme: str = "natural"
    n_partitions: int | None = None
    alpha: float = 0.5
    window_days: int = 56
    step_days: int = 2
    horizon_days: int = 7
    count_unit: str = "transactions"  # what y_count counts: features.COUNT_UNITS
    cutoff: str | None = None
    test_fraction: float = 0.2
    k: int = 5
    seed: int = 0
    strict: bool = False
    mapping: ExportMapping | TableMapping | None = None
    pseudonym_key: bytes = field(default=b"", repr=False)
    fernet: Any | None = field(default=None, repr=False)
    chunksize: int = 500_000
    overwrite: bool = False
    static: StaticAttributes | None = None  # a customer table's attributes, joined
    btyd_inputs: bool = False  # BG/NBD's per-customer predictions as inputs (data.btyd_inputs)
    history_length: int = 20  # task next-categories: category events kept per customer

    def __post_init__(self) -> None:
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"--test-fraction must be in (0, 1), got {self.test_fraction}")
        features.check_count_unit(self.count_unit)
        if self.chunksize < 1:
            raise ConfigError(f"--chunksize must be positive, got {self.chunksize}")
        if len(self.pseudonym_key) < 32:
            raise ConfigError(
                "a pseudonym key of at least 32 bytes is required (--key-file or "
                f"{PSEUDONYM_KEY_ENV})"
            )
        if not self.raw.exists():
            raise ConfigError(f"--raw {self.raw}: no such file or directory")
        # Checked here too, not only in partition.assign_partitions: that runs after every
        # event has been read, and a typo should not cost a pass over gigabytes.
        if self.scheme not in partition.SCHEMES:
            raise ConfigError(
                f"--partition {self.scheme!r} is not a partition scheme; use one of "
                f"{', '.join(partition.SCHEMES)}"
            )
        if self.scheme != "natural" and self.n_partitions is None:
            raise ConfigError(f"--partitions is required with --partition {self.scheme}")


@dataclass(frozen=True)
class PrepareResult:
    out: Path
    manifest: dict[str, Any]


Advance = Callable[..., None]


def prepare(opts: PrepareOptions, advance: Advance | None = None) -> PrepareResult:
    """Run the whole pipeline; ``advance(n_rows)`` is called as event rows are processed."""
    if isinstance(opts.mapping, TableMapping):  # a customer table: one step per customer
        from fedmarket.data.table import prepare_table

        return prepare_table(opts)
    advance = advance or (lambda *a, **k: None)
    exports = loaders.find_exports(opts.raw, opts.mapping)
    _check_output_dir(opts.out, opts.overwrite)
    pseudonymiser = anonymise.Pseudonymiser(opts.pseudonym_key)
    retailers = sorted(exports)
    window, scans = event_pass.scan_all(opts, exports, pseudonymiser, advance)
    per_retailer = {
        r: _finish_retailer(r, exports[r], scans[r], window, pseudonymiser, opts) for r in retailers
    }

    stats = normalise.NormStats.from_moments(
        sum(
            (r.train_moments for r in per_retailer.values()),
            normalise.FeatureMoments.zeros(len(features.FEATURE_NAMES)),
        )
    )
    assignment = _assign(opts, per_retailer, retailers)
    tmp = opts.out.with_name(opts.out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    partitions_meta = _write_partitions(tmp, per_retailer, retailers, assignment, stats, opts)
    recommend = _write_recs(tmp, per_retailer, retailers, assignment, opts, pseudonymiser)
    for retailer, r in per_retailer.items():
        if r.customers is not None:
            _write_customers(tmp / "customers", retailer, r.customers, opts.fernet)

    manifest = _manifest(opts, window, retailers, per_retailer, stats, partitions_meta)
    if recommend is not None:
        manifest[category_vocab.MANIFEST_KEY] = recommend
    if opts.static is not None:  # a customer table's attributes onto every step (and agg)
        from fedmarket.data.static_join import join_static

        manifest = join_static(tmp, manifest, opts.static, pseudonymiser, opts.fernet)
    if opts.btyd_inputs:  # after the static join: BG/NBD reads the event aggregates by name
        from fedmarket.data.btyd_inputs import join_btyd_inputs

        manifest = join_btyd_inputs(tmp, manifest, opts.fernet)
    store.write_manifest(tmp, manifest)
    if opts.out.exists():
        shutil.rmtree(opts.out)
    tmp.rename(opts.out)
    return PrepareResult(opts.out, store.read_manifest(opts.out))


@dataclass(frozen=True)
class RetailerPreparation:
    """One retailer's featurised, pseudonymised customers and its split (before the pooled
    normalisation): what ``prepare`` combines, and what a SuperNode prepares alone."""

    feats: features.CustomerFeatures
    is_test: np.ndarray
    train_moments: normalise.FeatureMoments
    drops: DropReport
    n_events: int
    customers: pd.DataFrame | None
    kanon: dict[str, Any] | None
    categories: categories.CategoryHistories | None = None  # task next-categories


def _check_output_dir(out: Path, overwrite: bool) -> None:
    # --overwrite deletes the old directory, so it only ever applies to prepared data:
    # pointed at the wrong directory by a typo, it must not remove someone's files.
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a directory")
    if out.exists() and any(out.iterdir()):
        if not (out / store.MANIFEST_NAME).exists():
            raise ConfigError(
                f"--out {out} exists, is not empty and is not a prepared data "
                "directory; choose another directory (--overwrite only replaces "
                "prepared data)"
            )
        if not overwrite:
            raise ConfigError(
                f"--out {out} already holds prepared data; pass --overwrite to replace it"
            )


def prepare_retailer(
    retailer: str,
    files: list[Path],
    window: features.FeatureWindow,
    pseudonymiser: anonymise.Pseudonymiser,
    opts: PrepareOptions,
    advance: Advance,
) -> RetailerPreparation:
    scanned = event_pass.scan_retailer(retailer, files, window, pseudonymiser, opts, advance)
    event_pass.warn_own_event_names([scanned.drops])
    return _finish_retailer(retailer, files, scanned, window, pseudonymiser, opts)


def _finish_retailer(
    retailer: str,
    files: list[Path],
    scanned: event_pass.Scan,
    window: features.FeatureWindow,
    pseudonymiser: anonymise.Pseudonymiser,
    opts: PrepareOptions,
) -> RetailerPreparation:
    event_pass.check_scan(retailer, scanned, window, opts)
    feats = scanned.builder.finish()
    if len(feats.customer) < 2:
        raise DataError(
            f"retailer {retailer}: only {len(feats.customer)} customer(s) active in the feature "
            f"window before {window.cutoff:%Y-%m-%d}; need at least 2 for a train/test split"
        )
    rng = np.random.default_rng(np.random.SeedSequence([opts.seed, _stable_index(retailer)]))
    n_test = max(1, round(opts.test_fraction * len(feats.customer)))
    is_test = np.zeros(len(feats.customer), dtype=bool)
    is_test[rng.permutation(len(feats.customer))[:n_test]] = True
    customers, kanon = _anonymise_customer_table(retailer, files, pseudonymiser, opts, window)
    histories = None
    if scanned.categories is not None:
        histories = scanned.categories.finish(feats.customer)
        categories.check_lengths(histories, len(feats.customer), retailer)
    return RetailerPreparation(
        feats,
        is_test,
        normalise.FeatureMoments.from_raw(feats.X[~is_test]),
        scanned.drops,
        scanned.n_events,
        customers,
        kanon,
        histories,
    )


def _stable_index(name: str) -> int:
    # A seed component derived from the retailer's name, stable across runs and platforms
    # (Python's hash() is salted per process).
    return int.from_bytes(name.encode()[:8].ljust(8, b"\0"), "little")


def _anonymise_customer_table(retailer, files, pseudonymiser, opts, window):
    table = customers.read_customers(files[0].parent)
    if table is None:
        return None, None
    released, report = anonymise.anonymise_customers(
        table, pseudonymiser, k=opts.k, reference_date=window.cutoff.date()
    )
    return released, report.to_dict()


def _assign(
    opts: PrepareOptions, results: dict[str, RetailerPreparation], retailers: list[str]
) -> np.ndarray:
    retailer_index = np.concatenate(
        [np.full(len(results[r].feats.customer), i) for i, r in enumerate(retailers)]
    )
    labels = np.concatenate([results[r].feats.y_purchase for r in retailers])
    return partition.assign_partitions(
        opts.scheme,
        n_partitions=opts.n_partitions,
        retailer_index=retailer_index,
        labels=labels,
        alpha=opts.alpha,
        seed=opts.seed,
    )


def _write_partitions(
    tmp: Path,
    results: dict[str, RetailerPreparation],
    retailers: list[str],
    assignment: np.ndarray,
    stats: normalise.NormStats,
    opts: PrepareOptions,
) -> list[dict[str, Any]]:
    feats = [results[r].feats for r in retailers]
    X = stats.apply(np.concatenate([f.X for f in feats]))
    pooled = store.SplitArrays(
        X=X,
        agg=np.concatenate([f.agg for f in feats]),
        y_purchase=np.concatenate([f.y_purchase for f in feats]),
        y_count=np.concatenate([f.y_count for f in feats]),
        y_active=np.concatenate([f.y_active for f in feats]),
        customer=np.concatenate([f.customer for f in feats]),
    )
    is_test = np.concatenate([results[r].is_test for r in retailers])
    retailer_of = np.concatenate(
        [np.full(len(f.customer), r) for r, f in zip(retailers, feats, strict=True)]
    )
    meta = []
    for pid in range(int(assignment.max()) + 1):
        entry: dict[str, Any] = {"id": pid}
        if opts.scheme == "natural":
            entry["retailer"] = retailers[pid]
        for split, mask in (("train", ~is_test), ("test", is_test)):
            idx = np.flatnonzero((assignment == pid) & mask)
            part = pooled.take(idx)
            store.write_split(store.split_dir(tmp, pid, split), part, opts.fernet)
            entry[split] = _split_summary(part)
        entry["retailers"] = {
            str(r): int(c)
            for r, c in zip(
                *np.unique(retailer_of[assignment == pid], return_counts=True), strict=True
            )
        }
        meta.append(entry)
    return meta


def _write_recs(
    tmp: Path,
    results: dict[str, RetailerPreparation],
    retailers: list[str],
    assignment: np.ndarray,
    opts: PrepareOptions,
    pseudonymiser: anonymise.Pseudonymiser,
) -> dict[str, Any] | None:
    """Task next-categories' files next to each split (``fedmarket.data.category_vocab``) and
    the manifest entry; None (nothing written) when the events carry no category code. With
    one partition per retailer (``--partition natural``), each retailer's product catalogue
    and product files too (task next-products, ``fedmarket.data.product_vocab``)."""
    parts = [results[r].categories for r in retailers]
    if any(p is None for p in parts) or not categories.has_taxonomy(parts):  # type: ignore[arg-type]
        return None
    pooled = categories.CategoryHistories.concat(parts)  # type: ignore[arg-type]
    is_test = np.concatenate([results[r].is_test for r in retailers])
    vocab = category_vocab.Vocabulary.build(pooled, is_test)
    encoded = category_vocab.encode(pooled, vocab)
    for pid in range(int(assignment.max()) + 1):
        for split, mask in (("train", ~is_test), ("test", is_test)):
            idx = np.flatnonzero((assignment == pid) & mask)
            directory = store.split_dir(tmp, pid, split)
            category_vocab.write_recs(directory, category_vocab.take(encoded, idx), opts.fernet)
    entry = vocab.to_manifest(opts.history_length)
    if opts.scheme == "natural":
        entry["products"] = _write_products(tmp, results, retailers, vocab, opts, pseudonymiser)
    return entry


def _write_products(
    tmp: Path,
    results: dict[str, RetailerPreparation],
    retailers: list[str],
    vocab: category_vocab.Vocabulary,
    opts: PrepareOptions,
    pseudonymiser: anonymise.Pseudonymiser,
) -> dict[str, Any]:
    """Each retailer's catalogue and product files, built from its own data only (partition
    i is retailer i under the natural scheme); the manifest gets the counts, no product."""
    sizes = {}
    for pid, retailer in enumerate(retailers):
        histories, is_test = results[retailer].categories, results[retailer].is_test
        if histories is None:  # no category-coded event: _write_recs wrote nothing either
            continue
        keyed = product_vocab.pseudonyms(retailer, histories, pseudonymiser)
        catalogue = product_vocab.Catalogue.build(histories, is_test, vocab, keyed)
        encoded = product_vocab.encode(histories, catalogue, keyed)
        product_vocab.write_catalogue(tmp / "partitions" / str(pid), catalogue, opts.fernet)
        for split, mask in (("train", ~is_test), ("test", is_test)):
            directory = store.split_dir(tmp, pid, split)
            part = product_vocab.take(encoded, np.flatnonzero(mask))
            product_vocab.write_products(directory, part, opts.fernet)
        sizes[str(pid)] = {"products": len(catalogue), "known": catalogue.n_known}
    return {
        "task": "next-products",
        "catalogues": "partitions/<i>/catalogue.npz, built at each retailer from its own "
        "events; known products: in training customers' windows; the others are new "
        "(content only)",
        "partitions": sizes,
    }


def _write_customers(
    directory: Path, retailer: str, table: pd.DataFrame, fernet: Any | None
) -> None:
    # Pseudonymised, k-anonymous attributes are still personal data: encrypted like the arrays.
    directory.mkdir(exist_ok=True)
    if fernet is None:
        table.to_parquet(directory / f"{retailer}.parquet", index=False)
        return
    buf = io.BytesIO()
    table.to_parquet(buf, index=False)
    (directory / f"{retailer}.parquet.enc").write_bytes(fernet.encrypt(buf.getvalue()))


def _split_summary(part: store.SplitArrays) -> dict[str, Any]:
    n = len(part)
    return {
        "n": n,
        "purchase_rate": float(np.mean(part.y_purchase)) if n else None,
        "mean_purchase_count": float(np.mean(part.y_count)) if n else None,
    }


def labels_manifest(count_unit: str, window: features.FeatureWindow) -> dict[str, Any]:
    """The manifest's ``labels`` entry: what y_purchase, y_count, y_active and the churn
    labels derived from them mean, in words too."""
    counted = {
        "transactions": "purchase events (order lines)",
        "customer-days": "distinct UTC days with a purchase",
        "periods": f"distinct {window.step_days}-day periods with a purchase",
    }[count_unit]
    return {
        "count_unit": count_unit,
        "y_count": f"{counted} in the {window.horizon_days} days after the cut-off",
        "y_purchase": f"1 if any purchase in the {window.horizon_days} days after the cut-off",
        "y_active": f"1 if any event in the {window.horizon_days} days after the cut-off",
        "y_churn": f"1 if active in the {window.window_days}-day window before the cut-off "
        f"and no purchase in the {window.horizon_days} days after it (1 - y_purchase)",
        "y_churn_inactive": f"1 if active in the {window.window_days}-day window before the "
        f"cut-off and no event at all in the {window.horizon_days} days after it (1 - y_active)",
    }


def _manifest(opts, window, retailers, results, stats, partitions_meta) -> dict[str, Any]:
    drops_total = DropReport()
    for r in results.values():
        drops_total.merge(r.drops)
    return {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": str(opts.raw),
        "feature_names": list(features.FEATURE_NAMES),
        "aggregate_names": list(features.AGGREGATE_NAMES),
        "window": window.to_manifest(),
        "labels": labels_manifest(opts.count_unit, window),
        "normalisation": {
            "transform": "log1p then z-score; statistics from training customers only",
            **stats.to_dict(),
        },
        "split": {"test_fraction": opts.test_fraction, "unit": "customer", "seed": opts.seed},
        "partitioning": {
            "scheme": opts.scheme,
            "n_partitions": len(partitions_meta),
            "alpha": opts.alpha if opts.scheme in ("dirichlet", "quantity") else None,
            "seed": opts.seed,
        },
        "retailers": {
            r: {
                "events": results[r].n_events,
                "customers": len(results[r].feats.customer),
                "dropped_rows": results[r].drops.to_dict(),
                "k_anonymity": results[r].kanon,
            }
            for r in retailers
        },
        "dropped_rows": drops_total.to_dict(),
        "encrypted": opts.fernet is not None,
        "partitions": partitions_meta,
    }
