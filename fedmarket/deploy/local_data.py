"""One retailer's raw export turned into a prepared partition, on that retailer's machine.

A SuperNode is given only the path of its own retailer's raw export (``data-path`` in
``--node-config``). This module validates, pseudonymises and featurises that export with
the same code `fedmarket data prepare` runs per retailer (``prepare.prepare_retailer``),
keeps the result in a cache directory next to the export (mode 0700: pseudonymised
per-customer features stay on the retailer's disk), and writes a prepared directory in the
``fedmarket.data.store`` layout that ``RetailerClient`` reads, normalised with the
statistics the consortium agreed (``fedmarket.deploy.agreement``).

For the same export, pseudonym key, cut-off and statistics the arrays are identical to the
natural partition `fedmarket data prepare` writes for that retailer (tested), so a
deployment trains on exactly what a simulation of the same retailers would.

Cache layout (``cache_dir`` defaults to ``<export's parent>/<export name>.fedmarket``)::

    <cache>/<plan fingerprint>/features.npz       raw features, labels, pseudonyms, split
    <cache>/<plan fingerprint>/features.json      events read, rows dropped, k-anonymity
    <cache>/<plan fingerprint>/prepared-<agreement fingerprint>/   store layout + manifest
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fedmarket.data import event_pass, features, prepare, store
from fedmarket.data.ingest import loaders
from fedmarket.data.ingest.mapping import ExportMapping, load_mapping, parse_mapping_option
from fedmarket.data.normalise import FeatureMoments
from fedmarket.data.prepare import PrepareOptions
from fedmarket.data.protect import anonymise, keys
from fedmarket.deploy.agreement import Agreement, RetailerSummary, WindowPlan
from fedmarket.errors import ConfigError, DataError
from fedmarket.names import NODE_DATA_PATH

NODE_CACHE_DIR = "cache-dir"
NODE_KEY_FILE = "key-file"
NODE_MAPPING = "mapping"
_ARRAYS = ("X", "agg", "y_purchase", "y_count", "y_active", "customer", "is_test")


@dataclass(frozen=True)
class LocalFeatures:
    """A retailer's featurised customers before normalisation, with the train/test split."""

    retailer: str
    split: store.SplitArrays  # X raw (untransformed)
    is_test: np.ndarray
    info: dict[str, Any]

    def summary(self, partition_id: int) -> RetailerSummary:
        train_x = np.asarray(self.split.X)[~self.is_test]
        return RetailerSummary(
            partition_id,
            FeatureMoments.from_raw(train_x),
            int((~self.is_test).sum()),
            int(self.is_test.sum()),
        )


def find_export(path: Path, mapping: ExportMapping | None = None) -> tuple[str, list[Path]]:
    """The one retailer in ``path`` (an export file or one retailer's directory) and its files;
    ``mapping`` for a ``format`` that reads files of any name."""
    exports = loaders.find_exports(Path(path), mapping)
    if len(exports) != 1:
        raise ConfigError(
            f"data-path {path} holds the exports of {len(exports)} retailers "
            f"({', '.join(sorted(exports))}); give each SuperNode only its own "
            "retailer's file or directory"
        )
    ((retailer, files),) = exports.items()
    return retailer, files


def default_cache_dir(data_path: Path) -> Path:
    path = Path(data_path).expanduser().resolve()
    return path.parent / f"{path.name}.fedmarket"


class LocalRetailer:
    """A retailer's export, its pseudonym key and its local cache."""

    def __init__(
        self,
        data_path: Path,
        *,
        partition_id: int,
        pseudonym_key: bytes,
        cache_dir: Path | None = None,
        mapping: ExportMapping | None = None,
        chunksize: int = 500_000,
    ) -> None:
        self.data_path = Path(data_path).expanduser()
        if not self.data_path.exists():
            raise ConfigError(
                f"data-path {self.data_path}: no such file or directory on this "
                "SuperNode; check --node-config"
            )
        self.retailer, self.files = find_export(self.data_path, mapping)
        self.partition_id = int(partition_id)
        self.cache_dir = (
            Path(cache_dir).expanduser() if cache_dir else default_cache_dir(self.data_path)
        )
        self._key = pseudonym_key
        self.mapping = mapping
        self.chunksize = chunksize

    @staticmethod
    def from_node_config(node: Mapping[str, Any]) -> LocalRetailer:
        """Built from a SuperNode's ``--node-config`` (``data-path`` required)."""
        if NODE_DATA_PATH not in node:
            raise ConfigError(
                "node config has no data-path; start the SuperNode with "
                "--node-config 'data-path=\"/path/to/export\" partition-id=0'"
            )
        data_path = Path(str(node[NODE_DATA_PATH]))
        key_file = str(node[NODE_KEY_FILE]) if node.get(NODE_KEY_FILE) else None
        return LocalRetailer(
            data_path,
            partition_id=int(node.get("partition-id", 0)),
            pseudonym_key=pseudonym_key(key_file, data_path),
            cache_dir=Path(str(node[NODE_CACHE_DIR])) if node.get(NODE_CACHE_DIR) else None,
            mapping=_mapping(node.get(NODE_MAPPING)),
        )

    def options(self, plan: WindowPlan) -> PrepareOptions:
        return PrepareOptions(
            raw=self.data_path,
            out=self.cache_dir,
            window_days=plan.window_days,
            step_days=plan.step_days,
            horizon_days=plan.horizon_days,
            cutoff=plan.cutoff,
            test_fraction=plan.test_fraction,
            k=plan.k,
            seed=plan.seed,
            mapping=self.mapping,
            pseudonym_key=self._key,
            chunksize=self.chunksize,
        )

    def last_event_time(self) -> pd.Timestamp:
        """The latest valid event in the export (the describe stage's one number)."""
        return event_pass.last_event_time({self.retailer: self.files}, self.options(WindowPlan()))

    def features(self, plan: WindowPlan) -> LocalFeatures:
        """Featurised customers for ``plan``, from the cache when the export is unchanged."""
        directory = self.cache_dir / self._plan_fingerprint(plan)
        if not (directory / "features.npz").is_file():
            self._featurise(plan, directory)
        with np.load(directory / "features.npz", allow_pickle=False) as blob:
            arrays = {k: blob[k] for k in _ARRAYS}
        is_test = arrays.pop("is_test").astype(bool)
        info = json.loads((directory / "features.json").read_text())
        return LocalFeatures(self.retailer, store.SplitArrays(**arrays), is_test, info)

    def summary(self, plan: WindowPlan) -> RetailerSummary:
        return self.features(plan).summary(self.partition_id)

    def prepared(self, agreement: Agreement) -> Path:
        """A store-layout directory for ``RetailerClient``, normalised as agreed (cached)."""
        base = self.cache_dir / self._plan_fingerprint(agreement.plan)
        out = base / f"prepared-{agreement.fingerprint()}"
        if (out / store.MANIFEST_NAME).is_file():
            return out
        local = self.features(agreement.plan)
        _atomic_dir(out, lambda tmp: self._write_prepared(tmp, local, agreement))
        return out

    # --- internals --------------------------------------------------------------------
    def _featurise(self, plan: WindowPlan, directory: Path) -> None:
        opts = self.options(plan)
        result = prepare.prepare_retailer(
            self.retailer,
            self.files,
            plan.feature_window(),
            anonymise.Pseudonymiser(self._key),
            opts,
            lambda *a, **k: None,
        )
        f = result.feats
        info = {
            "retailer": self.retailer,
            "events": result.n_events,
            "customers": len(f.customer),
            "dropped_rows": result.drops.to_dict(),
            "k_anonymity": result.kanon,
            "plan": plan.to_dict(),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }

        def write(tmp: Path) -> None:
            np.savez(
                tmp / "features.npz",
                X=f.X,
                agg=f.agg,
                y_purchase=f.y_purchase,
                y_count=f.y_count,
                y_active=f.y_active,
                customer=f.customer,
                is_test=result.is_test,
            )
            (tmp / "features.json").write_text(json.dumps(info, indent=2, default=str) + "\n")

        _atomic_dir(directory, write)

    def _write_prepared(self, tmp: Path, local: LocalFeatures, agreement: Agreement) -> None:
        normalised = store.SplitArrays(
            X=agreement.stats.apply(local.split.X),
            agg=local.split.agg,
            y_purchase=local.split.y_purchase,
            y_count=local.split.y_count,
            y_active=local.split.y_active,
            customer=local.split.customer,
        )
        entry: dict[str, Any] = {"id": self.partition_id, "retailer": self.retailer}
        for split, mask in (("train", ~local.is_test), ("test", local.is_test)):
            part = normalised.take(np.flatnonzero(mask))
            store.write_split(store.split_dir(tmp, self.partition_id, split), part)
            entry[split] = {
                "n": len(part),
                "purchase_rate": float(np.mean(part.y_purchase)) if len(part) else None,
            }
        plan = agreement.plan
        window = plan.feature_window()
        store.write_manifest(
            tmp,
            {
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "source": str(self.data_path),
                "feature_names": list(features.FEATURE_NAMES),
                "aggregate_names": list(features.AGGREGATE_NAMES),
                "window": window.to_manifest(),
                "labels": prepare.labels_manifest("transactions", window),
                "normalisation": {
                    "transform": "log1p then z-score; statistics agreed across "
                    "retailers from summed training moments",
                    **agreement.stats.to_dict(),
                },
                "split": {
                    "test_fraction": plan.test_fraction,
                    "unit": "customer",
                    "seed": plan.seed,
                },
                "partitioning": {
                    "scheme": "deployment",
                    "n_partitions": len(agreement.partitions),
                    "seed": plan.seed,
                },
                "federation": {
                    "n_train_total": agreement.n_train_total,
                    "partitions": list(agreement.partitions),
                },
                "retailers": {self.retailer: local.info},
                "encrypted": False,
                "partitions": [entry],
            },
        )

    def _plan_fingerprint(self, plan: WindowPlan) -> str:
        """Changes with the plan, the export files (size, mtime), the pseudonym key and the
        prepared-data schema (a cache of older features, e.g. fewer aggregates, is rebuilt)."""
        digest = hashlib.sha256(json.dumps(plan.to_dict(), sort_keys=True).encode())
        digest.update(f"schema {store.SCHEMA_VERSION}".encode())
        for path in self.files:
            st = path.stat()
            digest.update(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
        # A keyed tag, not the key: the directory name must not help anyone guess the key.
        digest.update(hmac.new(self._key, b"fedmarket-local-cache", "sha256").digest())
        digest.update(repr(self.mapping).encode())
        return digest.hexdigest()[:16]


def pseudonym_key(key_file: str | None, data_path: Path) -> bytes:
    """``key-file`` from the node config, else $FEDMARKET_PSEUDONYM_KEY, else the user's key."""
    return keys.resolve_pseudonym_key(Path(key_file) if key_file else None, [Path(data_path)])


def _mapping(value: Any) -> ExportMapping | None:
    if not value:
        return None
    text = str(value)
    mapping = load_mapping(Path(text)) if Path(text).is_file() else parse_mapping_option(text)
    if not isinstance(mapping, ExportMapping):
        raise ConfigError(
            f"node config mapping {text!r}: kind=table (a customer table) is not read on a "
            "SuperNode yet; prepare it with `fedmarket data prepare` and give data-path the result"
        )
    return mapping


def _atomic_dir(target: Path, fill: Any) -> None:
    """Build ``target`` in a private temporary sibling, then rename it into place.

    Two ClientApp processes of one SuperNode may prepare at once; the loser of the rename
    discards its copy and uses the winner's, which is identical.
    """
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        fill(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():
                raise DataError(
                    f"cannot create {target} (is the cache directory writable?)"
                ) from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
