"""`fedmarket data prepare` for a customer table (``kind = "table"``): the same store contract as
event data, so every model, the federated simulation, DP and the baselines need no special case.

A table becomes a one-step sequence: ``X[n, 1, F]`` holds a customer's encoded attributes
(``fedmarket.data.table_encoding``), ``agg[n, F]`` the same columns unscaled, ``y_count`` the
label and ``y_purchase`` = label > 0 (a 0/1 label is both). A table knows no horizon events
beyond its label, so ``y_active`` = ``y_purchase`` and both churn tasks read 1 - (label > 0).
A churn table maps its 0/1 churn column as ``churn`` instead of ``label``: then every label
array holds 1 - churn ("stays"), so tasks ``churn`` and ``churn-inactive`` read the column
itself (and ``purchase`` reads "stays").
Customer ids are pseudonymised with the retailer's key exactly as event data's are; raw ids
are never written.

Splits: per retailer, per customer, seeded (``--seed`` and the retailer's name, as for events)
and stratified by bought-or-not, so train and test keep each retailer's buyer share; the
validation split is carved out of train by the training loop (``val_fraction``), as for
events. The event-window options (window, step, horizon, cut-off, k) do not apply.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from fedmarket.data import partition, store
from fedmarket.data.ingest import table as table_io
from fedmarket.data.ingest.table import TableMapping
from fedmarket.data.ingest.validate import DropReport
from fedmarket.data.prepare import (
    PrepareOptions,
    PrepareResult,
    _check_output_dir,
    _split_summary,
    _stable_index,
)
from fedmarket.data.protect import anonymise
from fedmarket.data.table_encoding import TableEncoding
from fedmarket.errors import ConfigError, DataError

INFERENCE_RULE = (
    "attributes = 'all': a column is numeric when every non-missing value is a number, "
    "otherwise categorical"
)


def prepare_table(opts: PrepareOptions) -> PrepareResult:
    """Read, check, pseudonymise, split, encode and write a customer table."""
    mapping = opts.mapping
    if not isinstance(mapping, TableMapping):
        raise ConfigError("prepare_table needs a kind = 'table' mapping")
    if opts.static is not None:
        raise ConfigError(
            "--attributes joins a customer table to event data; this --raw is itself a table: "
            "list its attributes in its own mapping instead"
        )
    if mapping.target is None:
        raise ConfigError(
            f"{mapping.source}: a customer table prepared on its own needs key 'label' (the column "
            "to predict; or 'churn', a 0/1 churn column); a table of attributes alone joins event "
            "data with `data prepare --attributes`"
        )
    frames = table_io.read_retailers(opts.raw, mapping)
    _check_output_dir(opts.out, opts.overwrite)
    plan = table_io.plan_columns(frames, mapping)
    pseudonymiser = anonymise.Pseudonymiser(opts.pseudonym_key)
    retailers = sorted(frames)
    parts = {r: _retailer(r, frames[r], mapping, pseudonymiser, opts) for r in retailers}
    labels = np.concatenate([parts[r]["y"] for r in retailers])
    if len(np.unique(labels > 0)) < 2:
        raise DataError(
            f"{opts.raw}: label column {mapping.target!r} says every customer "
            f"{'bought' if labels.all() else 'did not buy'}; there is nothing to learn"
        )
    train_rows = pd.concat([frames[r][~parts[r]["is_test"]] for r in retailers])
    encoding = TableEncoding.fit(train_rows, plan, pd.concat([frames[r] for r in retailers]))
    unseen: dict[str, dict[str, int]] = {}
    for r in retailers:
        parts[r]["X"], parts[r]["agg"], unseen[r] = encoding.encode(frames[r])
    assignment = partition.assign_partitions(
        opts.scheme,
        n_partitions=opts.n_partitions,
        retailer_index=np.concatenate(
            [np.full(len(frames[r]), i) for i, r in enumerate(retailers)]
        ),
        labels=(labels > 0).astype(np.float32),
        alpha=opts.alpha,
        seed=opts.seed,
    )
    tmp = opts.out.with_name(opts.out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    meta = _write_partitions(tmp, parts, retailers, assignment, opts)
    manifest = _manifest(opts, mapping, plan, encoding, parts, retailers, unseen, labels, meta)
    store.write_manifest(tmp, manifest)
    if opts.out.exists():
        shutil.rmtree(opts.out)
    tmp.rename(opts.out)
    return PrepareResult(opts.out, store.read_manifest(opts.out))


def _retailer(
    retailer: str,
    rows: pd.DataFrame,
    mapping: TableMapping,
    pseudonymiser: anonymise.Pseudonymiser,
    opts: PrepareOptions,
) -> dict[str, Any]:
    if len(rows) < 2:
        raise DataError(
            f"retailer {retailer}: {len(rows)} customer(s); need at least 2 for a train/test split"
        )
    customer, label = str(mapping.customer), str(mapping.target)  # both required
    ids = table_io.customer_ids(rows[customer], customer, rows)
    y = table_io.labels(rows[label], label, rows)
    if mapping.churn is not None:
        y = _stays(y, label, rows)
    rng = np.random.default_rng(np.random.SeedSequence([opts.seed, _stable_index(retailer)]))
    return {
        "customer": pseudonymiser.map(ids).to_numpy(dtype=str),
        "y": y,
        "is_test": stratified_test_mask(y > 0, opts.test_fraction, rng),
    }


def _stays(churn: np.ndarray, name: str, rows: pd.DataFrame) -> np.ndarray:
    """1 - churn, the label arrays' "stays" (so the churn tasks read the column itself)."""
    bad = np.flatnonzero(churn > 1)
    if bad.size:
        raise DataError(
            f"{rows[table_io.WHERE_KEY].iloc[bad[0]]}: churn column {name!r} holds "
            f"{churn[bad[0]]:g} ({bad.size} row(s)); churn must be 0/1 (1 = churned)"
        )
    return (1.0 - churn).astype(np.float32)


def stratified_test_mask(
    strata: np.ndarray, test_fraction: float, rng: np.random.Generator
) -> np.ndarray:
    """True for test customers: ``round(test_fraction * n_class)`` of each class, at least one
    test and one training customer overall (one class alone may then go unrepresented)."""
    is_test = np.zeros(len(strata), dtype=bool)
    for value in np.unique(strata):
        members = np.flatnonzero(strata == value)
        take = round(test_fraction * len(members))
        is_test[rng.permutation(members)[:take]] = True
    if not is_test.any():
        is_test[rng.integers(len(strata))] = True
    if is_test.all():
        is_test[rng.integers(len(strata))] = False
    return is_test


def _write_partitions(tmp, parts, retailers, assignment, opts) -> list[dict[str, Any]]:
    pooled = store.SplitArrays(
        X=np.concatenate([parts[r]["X"] for r in retailers]),
        agg=np.concatenate([parts[r]["agg"] for r in retailers]),
        y_purchase=np.concatenate([(parts[r]["y"] > 0).astype(np.float32) for r in retailers]),
        y_count=np.concatenate([parts[r]["y"] for r in retailers]),
        y_active=np.concatenate([(parts[r]["y"] > 0).astype(np.float32) for r in retailers]),
        customer=np.concatenate([parts[r]["customer"] for r in retailers]),
    )
    is_test = np.concatenate([parts[r]["is_test"] for r in retailers])
    retailer_of = np.concatenate([np.full(len(parts[r]["y"]), r) for r in retailers])
    meta = []
    for pid in range(int(assignment.max()) + 1):
        entry: dict[str, Any] = {"id": pid}
        if opts.scheme == "natural":
            entry["retailer"] = retailers[pid]
        for split, mask in (("train", ~is_test), ("test", is_test)):
            part = pooled.take(np.flatnonzero((assignment == pid) & mask))
            store.write_split(store.split_dir(tmp, pid, split), part, opts.fernet)
            entry[split] = _split_summary(part)
        names, counts = np.unique(retailer_of[assignment == pid], return_counts=True)
        entry["retailers"] = {str(r): int(c) for r, c in zip(names, counts, strict=True)}
        meta.append(entry)
    return meta


def _manifest(opts, mapping, plan, encoding, parts, retailers, unseen, labels, meta):
    names = encoding.feature_names
    binary = bool(np.isin(labels, (0.0, 1.0)).all())
    return {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": str(opts.raw),
        "kind": table_io.TABLE_KIND,
        "feature_names": names,
        "aggregate_names": names,
        "table": {
            "customer": mapping.customer,
            "label": mapping.target,
            "label_kind": "churn" if mapping.churn is not None else "binary" if binary else "count",
            "labels": (
                "y_purchase = y_count = y_active = 1 - churn (stays), "
                "y_churn = y_churn_inactive = churn"
                if mapping.churn is not None
                else "y_count = label, y_purchase = y_active = label > 0, "
                "y_churn = y_churn_inactive = 1 - (label > 0)"
            ),
            "attributes": "all" if mapping.attributes == table_io.ALL else "listed",
            "inferred": dict(plan.inferred),
            "inference_rule": INFERENCE_RULE if mapping.attributes == table_io.ALL else None,
            "excluded": list(plan.excluded),
            "retailer_column": mapping.retailer,
            "max_levels": mapping.max_levels,
            "encoding": encoding.to_manifest(),
        },
        "normalisation": {
            "transform": "X: numeric attributes z-scored with the training customers' mean and "
            "std, missing -> 0 plus a ':missing' indicator; one-hot columns 0/1, unseen levels "
            "all 0. agg: the same columns unscaled, missing numeric -> training mean",
        },
        "split": {
            "test_fraction": opts.test_fraction,
            "unit": "customer",
            "seed": opts.seed,
            "stratified_by": "label > 0 (bought or not), per retailer",
        },
        "partitioning": {
            "scheme": opts.scheme,
            "n_partitions": len(meta),
            "alpha": opts.alpha if opts.scheme in ("dirichlet", "quantity") else None,
            "seed": opts.seed,
        },
        "retailers": {
            r: {
                "customers": len(parts[r]["y"]),
                "buyers": int((parts[r]["y"] > 0).sum()),
                "unseen_levels": {c: n for c, n in unseen[r].items() if n},
                "k_anonymity": None,
            }
            for r in retailers
        },
        "dropped_rows": DropReport().to_dict(),
        "encrypted": opts.fernet is not None,
        "partitions": meta,
    }
