"""Static per-customer attributes (a ``kind = "table"`` file) joined to prepared event data.

`fedmarket data prepare --attributes TABLE --attributes-mapping MAPPING` runs this on the
freshly written partitions, before the directory is moved into place: each event customer's
attribute row is found by pseudonym (the table's ids pseudonymised with the same key as the
events' ids), encoded as a customer table is (``fedmarket.data.table_encoding``, statistics and
levels from training customers only) and

* broadcast onto every time step of ``X``: ``X[n, T, F + A]``, the last A columns constant in
  time, so every sequence model sees them with no change;
* appended to ``agg``: ``agg[n, G + A]``, so the classical baselines see them too.

Their names are prefixed ``static:`` in ``feature_names`` and ``aggregate_names``. A customer
with events but no attribute row has every attribute missing (mean / no level, plus the
``:missing`` indicators); rows of customers without events are ignored. Natural partitions join
within their retailer (the table's retailer of the same name); other schemes join over all
retailers' rows, and refuse a pseudonym that appears at two retailers (ambiguous). The labels and
the splits are the events'; a ``label`` column in the table is not used, nor used as attribute.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from fedmarket.data import store
from fedmarket.data.ingest import table as table_io
from fedmarket.data.ingest.table import TableMapping
from fedmarket.data.protect.pseudonyms import Pseudonymiser
from fedmarket.data.table_encoding import TableEncoding
from fedmarket.errors import ConfigError, DataError

PREFIX: Final[str] = "static:"


@dataclass(frozen=True)
class StaticAttributes:
    """The attribute table and how to read it (``--attributes``, ``--attributes-mapping``)."""

    raw: Path
    mapping: TableMapping

    def __post_init__(self) -> None:
        if not isinstance(self.mapping, TableMapping):
            raise ConfigError(
                "--attributes-mapping must be a kind=table mapping (customer = ..., numeric = "
                "[...] / categorical = [...] or attributes = 'all')"
            )
        if not Path(self.raw).exists():
            raise ConfigError(f"--attributes {self.raw}: no such file or directory")


def static_option(table: Path | str | None, mapping: Path | str | None) -> StaticAttributes | None:
    """``--attributes`` with ``--attributes-mapping`` (a TOML file or inline text): both or
    neither."""
    if table is None and mapping is None:
        return None
    if table is None or mapping is None:
        raise ConfigError("--attributes and --attributes-mapping go together; give both")
    from fedmarket.data.ingest.mapping import mapping_option

    return StaticAttributes(Path(table), mapping_option(mapping))  # type: ignore[arg-type]


def join_static(
    data_dir: Path,
    manifest: dict[str, Any],
    static: StaticAttributes,
    pseudonymiser: Pseudonymiser,
    fernet: Any | None = None,
) -> dict[str, Any]:
    """Rewrite every split of ``data_dir`` with the attributes joined; the updated manifest."""
    mapping = static.mapping
    frames = table_io.read_retailers(Path(static.raw), mapping)
    plan = table_io.plan_columns(frames, mapping)
    keyed = {r: _by_pseudonym(rows, mapping, pseudonymiser) for r, rows in frames.items()}
    natural = manifest["partitioning"]["scheme"] == "natural"
    pooled = None if natural else _pooled(keyed)
    columns = next(iter(keyed.values())).columns
    splits: dict[tuple[int, str], store.SplitArrays] = {}
    rows: dict[tuple[int, str], pd.DataFrame] = {}
    for entry in manifest["partitions"]:
        table = keyed.get(entry.get("retailer", ""), pd.DataFrame(columns=columns))
        for split in store.SPLITS:
            arrays = store.load_split(data_dir, entry["id"], split, fernet, mmap=False)
            splits[entry["id"], split] = arrays
            found = (pooled if pooled is not None else table).reindex(arrays.customer.astype(str))
            found[table_io.WHERE_KEY] = found[table_io.WHERE_KEY].fillna("(no attribute row)")
            rows[entry["id"], split] = found.reset_index(drop=True)
    train = pd.concat([r for (_, split), r in rows.items() if split == "train"])
    encoding = TableEncoding.fit(train, plan, pd.concat(list(rows.values())))
    coverage: dict[str, float | None] = {}
    for key, arrays in splits.items():
        X_attr, agg_attr, _ = encoding.encode(rows[key])
        steps = arrays.X.shape[1]
        joined = store.SplitArrays(
            X=np.concatenate([arrays.X, np.repeat(X_attr, steps, axis=1)], axis=2),
            agg=np.concatenate([arrays.agg, agg_attr], axis=1),
            y_purchase=arrays.y_purchase,
            y_count=arrays.y_count,
            y_active=arrays.y_active,
            customer=arrays.customer,
        )
        store.write_split(store.split_dir(data_dir, key[0], key[1]), joined, fernet)
        have = ~rows[key][table_io.WHERE_KEY].eq("(no attribute row)")
        coverage[f"{key[0]}/{key[1]}"] = float(have.mean()) if len(have) else None
    names = [PREFIX + n for n in encoding.feature_names]
    return {
        **manifest,
        "feature_names": [*manifest["feature_names"], *names],
        "aggregate_names": [*manifest["aggregate_names"], *names],
        "static_attributes": {
            "source": str(static.raw),
            "customer": mapping.customer,
            "join": "by pseudonym within each retailer"
            if natural
            else "by pseudonym over all retailers",
            "inferred": dict(plan.inferred),
            "excluded": list(plan.excluded),
            "encoding": encoding.to_manifest(),
            "share_with_attributes": coverage,  # per partition/split: customers with a row
            "layout": f"broadcast onto every step of X, appended to agg, names prefixed {PREFIX!r}",
        },
    }


def _by_pseudonym(
    rows: pd.DataFrame, mapping: TableMapping, pseudonymiser: Pseudonymiser
) -> pd.DataFrame:
    customer = str(mapping.customer)
    ids = table_io.customer_ids(rows[customer], customer, rows)
    keep = [c for c in rows.columns if c not in (customer, mapping.target)]
    return rows[keep].set_index(pd.Index(pseudonymiser.map(ids).to_numpy(dtype=str)))


def _pooled(keyed: dict[str, pd.DataFrame]) -> pd.DataFrame:
    pooled = pd.concat(list(keyed.values()))
    if pooled.index.duplicated().any():
        raise DataError(
            "--attributes: the same customer id appears in the attribute tables of two "
            "retailers, and with partitions other than natural the join cannot tell which is "
            "meant; prepare with --partition natural, or give each customer one row"
        )
    return pooled
