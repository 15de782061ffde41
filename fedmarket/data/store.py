"""Prepared-data layout on disk: per-partition train/test arrays plus ``manifest.json``.

The layout is the contract between `fedmarket data prepare` and everything that trains::

    DIR/manifest.json
    DIR/partitions/<id>/<split>/X.npy           float32 [N, T, F]  normalised sequences
    DIR/partitions/<id>/<split>/agg.npy         float32 [N, A]     raw per-customer aggregates
    DIR/partitions/<id>/<split>/y_purchase.npy  float32 [N]        1.0 if the customer buys in
                                                                   the horizon
    DIR/partitions/<id>/<split>/y_count.npy     float32 [N]        purchases in the horizon, in
                                                                   the manifest's labels.count_unit
    DIR/partitions/<id>/<split>/y_active.npy    float32 [N]        1.0 if the customer has any
                                                                   event in the horizon
    DIR/partitions/<id>/<split>/customer.npy    <U64    [N]        keyed pseudonym (never a raw id)

A customer table (``kind = "table"`` mapping) fills the same files with one time step (T = 1)
per customer; its manifest has ``kind`` and ``table`` instead of ``window``.

Plain ``.npy`` files are memory-mapped on load so a client touches only the pages it
reads. With encryption at rest each file is a Fernet token (``.npy.enc``) instead and
is decrypted into memory on load; ``manifest.json`` stays in the clear (it holds only
aggregates) and says ``"encrypted": true``, so a reader knows it needs a key before it
opens a partition (``fedmarket.data.protect.keys.prepared_data_fernet``).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Required, TypedDict, cast

import numpy as np
from cryptography.fernet import Fernet, InvalidToken

from fedmarket.errors import ConfigError, DataError

# 2: three more aggregates (first_event_days, first_purchase_days, purchase_days) and the
# manifest's ``labels`` (count unit); 3: ``y_active`` (any event in the horizon, the label of
# task churn-inactive). An older directory is refused: prepare it again.
SCHEMA_VERSION = 3
SPLITS = ("train", "test")
MANIFEST_NAME = "manifest.json"
_ARRAYS = ("X", "agg", "y_purchase", "y_count", "y_active", "customer")
ENCRYPTED_SUFFIX = ".npy.enc"


class SplitSummary(TypedDict):
    """One split of one partition in the manifest."""

    n: int
    purchase_rate: float | None
    mean_purchase_count: float | None


class PartitionEntry(TypedDict, total=False):
    """One partition: its id, its splits, and the retailer(s) its customers come from."""

    id: Required[int]
    train: SplitSummary
    test: SplitSummary
    retailer: str  # natural partitions: the one retailer
    retailers: dict[str, int]  # other schemes: customers per retailer


class Manifest(TypedDict, total=False):
    """``manifest.json``: what `fedmarket data prepare` made, and how (see the README)."""

    schema_version: Required[int]
    partitions: Required[list[PartitionEntry]]
    feature_names: list[str]
    aggregate_names: list[str]
    created_at: str
    source: str
    window: dict[str, Any]  # FeatureWindow.to_manifest (event data)
    labels: dict[str, Any]  # prepare.labels_manifest: the count unit of y_count
    kind: str  # "table" for a customer table (absent: event data)
    table: dict[str, Any]  # a customer table's columns and encoding (fedmarket.data.table)
    normalisation: dict[str, Any]
    split: dict[str, Any]
    partitioning: dict[str, Any]
    retailers: dict[str, dict[str, Any]]
    dropped_rows: dict[str, Any]
    encrypted: bool


@dataclass(frozen=True)
class SplitArrays:
    """One split of one partition; row i of every array is the same customer.

    ``y_active`` (any event in the horizon) defaults to ``y_purchase`` where a source knows
    only purchases (a purchase is an event): a customer table, a hand-built split. The churn
    labels are derived, not stored, so they can never disagree with the purchase label.
    """

    X: np.ndarray
    agg: np.ndarray
    y_purchase: np.ndarray
    y_count: np.ndarray
    customer: np.ndarray
    y_active: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.y_active is None:
            object.__setattr__(self, "y_active", self.y_purchase)
        n = len(self.X)
        for f in fields(self):
            if len(getattr(self, f.name)) != n:
                other = len(getattr(self, f.name))
                raise DataError(
                    f"split arrays disagree in length: X has {n} rows, {f.name} has {other}"
                )

    def __len__(self) -> int:
        return len(self.X)

    @property
    def y_churn(self) -> np.ndarray:
        """1.0 for a customer active in the feature window who buys nothing in the horizon."""
        return 1.0 - np.asarray(self.y_purchase, dtype=np.float32)

    @property
    def y_churn_inactive(self) -> np.ndarray:
        """1.0 for a customer active in the feature window with no event in the horizon."""
        return 1.0 - np.asarray(self.y_active, dtype=np.float32)

    @staticmethod
    def concat(parts: Iterable[SplitArrays]) -> SplitArrays:
        parts = list(parts)
        if not parts:
            raise DataError("nothing to concatenate: no partitions selected")
        return SplitArrays(
            **{k: np.concatenate([np.asarray(getattr(p, k)) for p in parts]) for k in _ARRAYS}
        )

    def take(self, index: np.ndarray) -> SplitArrays:
        return SplitArrays(**{k: np.asarray(getattr(self, k))[index] for k in _ARRAYS})


def split_dir(data_dir: Path, partition: int, split: str) -> Path:
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    return Path(data_dir) / "partitions" / str(partition) / split


def write_split(directory: Path, arrays: SplitArrays, fernet: Fernet | None = None) -> None:
    """Write one split; ``fernet`` encrypts at rest."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in _ARRAYS:
        value = np.ascontiguousarray(getattr(arrays, name))
        if fernet is None:
            np.save(directory / f"{name}.npy", value, allow_pickle=False)
        else:
            buf = io.BytesIO()
            np.save(buf, value, allow_pickle=False)
            (directory / f"{name}{ENCRYPTED_SUFFIX}").write_bytes(fernet.encrypt(buf.getvalue()))


def load_split(
    data_dir: Path, partition: int, split: str, fernet: Fernet | None = None, mmap: bool = True
) -> SplitArrays:
    directory = split_dir(data_dir, partition, split)
    if not directory.is_dir():
        raise DataError(
            f"{directory}: no such prepared split; run `fedmarket data prepare` first "
            f"or check the partition id"
        )
    loaded = {}
    for name in _ARRAYS:
        plain, enc = directory / f"{name}.npy", directory / f"{name}{ENCRYPTED_SUFFIX}"
        if plain.exists():
            loaded[name] = _load_npy(plain, mmap)
        elif enc.exists():
            if fernet is None:
                raise DataError(
                    f"{enc}: prepared data is encrypted; give the key with --encryption-key-file "
                    f"or FEDMARKET_ENCRYPTION_KEY"
                )
            loaded[name] = np.load(io.BytesIO(decrypt_file(enc, fernet)), allow_pickle=False)
        else:
            raise DataError(
                f"{directory}: missing {name}.npy; the prepared directory is incomplete"
            )
    return SplitArrays(**loaded)


def _load_npy(path: Path, mmap: bool) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(
            f"{path}: damaged array file ({exc}); re-run `fedmarket data prepare`"
        ) from None


def verify_prepared(data_dir: Path, manifest: Manifest) -> None:
    """Every partition the manifest names has both splits, each array whole, with as many
    customers as the manifest says and its number of features: checked by mapping the files
    (no data is read), so damaged data is one clear error before any training.
    Encrypted files can only be checked once decrypted; here they must exist."""
    n_feat = len(manifest["feature_names"]) if "feature_names" in manifest else None
    for entry in manifest["partitions"]:
        for split in SPLITS:
            directory = split_dir(data_dir, entry["id"], split)
            expected = entry.get(split, {}).get("n")
            for name in _ARRAYS:
                plain, enc = directory / f"{name}.npy", directory / f"{name}{ENCRYPTED_SUFFIX}"
                if enc.exists() and not plain.exists():
                    continue
                if not plain.exists():
                    raise DataError(
                        f"{plain}: missing; partition {entry['id']} of {data_dir / MANIFEST_NAME} "
                        "is incomplete: re-run `fedmarket data prepare`"
                    )
                shape = _load_npy(plain, mmap=True).shape  # the header; a short file fails
                if expected is not None and (not shape or shape[0] != expected):
                    raise DataError(
                        f"{plain}: {shape[0] if shape else 0:,} customers, but "
                        f"{MANIFEST_NAME} says {expected:,} for partition {entry['id']} "
                        f"({split}); the manifest or the arrays changed after `fedmarket data "
                        "prepare`: re-run it"
                    )
                if name == "X" and n_feat is not None and (len(shape) != 3 or shape[2] != n_feat):
                    raise DataError(
                        f"{plain}: shape {shape}, but {MANIFEST_NAME} names {n_feat} features; "
                        "re-run `fedmarket data prepare`"
                    )


def decrypt_file(path: Path, fernet: Fernet, *, key: str = "this key") -> bytes:
    """The plaintext of one encrypted file; a key that does not open it is named as such.

    Fernet cannot tell a wrong key from an altered file (both fail its HMAC), but a wrong
    key is by far the likelier mistake, so the message leads with it. ``key`` says where
    the key came from (a file, the environment) when the caller knows.
    """
    try:
        return fernet.decrypt(Path(path).read_bytes())
    except InvalidToken:
        raise ConfigError(
            f"{key} does not decrypt {path}: wrong key for this prepared data; give the key it "
            f"was prepared with (--encryption-key-file or FEDMARKET_ENCRYPTION_KEY). If the key "
            f"is right, the file is damaged: prepare the data again"
        ) from None


def key_probe(data_dir: Path, manifest: Manifest) -> Path | None:
    """The smallest encrypted file of the first partition on disk; None for plain data.

    A reader tries its key on this file before it trains, so a wrong key fails at once and
    cheaply. Partitions that are not on disk are skipped: a SuperNode may hold only its own.
    Manifests written before the ``encrypted`` flag existed are judged by their files.
    """
    flag = manifest.get("encrypted")
    if flag is False:
        return None
    for pid in partition_ids(manifest):
        found = sorted(
            (Path(data_dir) / "partitions" / str(pid)).glob(f"*/*{ENCRYPTED_SUFFIX}"),
            key=lambda p: (p.stat().st_size, p.name),
        )
        if found:
            return found[0]
    if flag:
        raise DataError(
            f"{Path(data_dir) / MANIFEST_NAME} says the data is encrypted, but no partition "
            f"holds a *{ENCRYPTED_SUFFIX} file; the directory is incomplete, re-run "
            f"`fedmarket data prepare --encrypt`"
        )
    return None


def load_pooled(
    data_dir: Path,
    split: str,
    partitions: Iterable[int] | None = None,
    fernet: Fernet | None = None,
) -> SplitArrays:
    """All customers of a split across partitions, in partition order (the centralised view)."""
    return SplitArrays.concat(load_partitions(data_dir, split, partitions, fernet, mmap=False))


def load_partitions(
    data_dir: Path,
    split: str,
    partitions: Iterable[int] | None = None,
    fernet: Fernet | None = None,
    mmap: bool = True,
) -> list[SplitArrays]:
    """One split of each partition (every partition by default), in partition order: what
    a computation that keeps the retailers apart (a federated fit) reads."""
    ids = list(partitions) if partitions is not None else partition_ids(read_manifest(data_dir))
    return [load_split(data_dir, p, split, fernet, mmap=mmap) for p in ids]


def write_manifest(data_dir: Path, manifest: dict[str, Any]) -> None:
    manifest = {"schema_version": SCHEMA_VERSION, **manifest}
    (Path(data_dir) / MANIFEST_NAME).write_text(
        json.dumps(manifest, indent=2, sort_keys=False) + "\n"
    )


def read_manifest(data_dir: Path) -> Manifest:
    path = Path(data_dir) / MANIFEST_NAME
    if not path.is_file():
        raise DataError(
            f"{path}: not found; {data_dir} is not a prepared data directory "
            f"(run `fedmarket data prepare --raw RAW --out {data_dir}`)"
        )
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise DataError(
            f"{path}: schema version {version!r}, this fedmarket reads {SCHEMA_VERSION}; "
            f"re-run `fedmarket data prepare`"
        )
    partitions = manifest.get("partitions")
    if not isinstance(partitions, list) or not all(
        isinstance(p, dict) and isinstance(p.get("id"), int) for p in partitions
    ):
        raise DataError(
            f"{path}: 'partitions' must be a list of entries with an integer 'id'; the file "
            f"is damaged, re-run `fedmarket data prepare`"
        )
    return cast(Manifest, manifest)


def partition_ids(manifest: Manifest) -> list[int]:
    return [int(p["id"]) for p in manifest["partitions"]]


def n_train_total(manifest: Manifest) -> int:
    """Training customers over every partition: the n of the run's default delta."""
    return sum(int(p["train"]["n"]) for p in manifest["partitions"])


def n_features(manifest: Manifest) -> int:
    return len(manifest["feature_names"])
