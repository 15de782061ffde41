"""Task next-categories' view of prepared data: one split as model inputs and target sets.

``RecSplit`` has what ``fedmarket.training.fit`` reads of a split (``X``, the task's target
``y_categories``, ``len``, ``take``), so the recommender trains in the one training loop.
The arrays come from ``recs.npz`` next to each split (``fedmarket.data.category_vocab``),
row i being row i of the split's other arrays (same customer).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.fernet import Fernet

from fedmarket.data import store
from fedmarket.data.category_vocab import (
    MANIFEST_KEY,
    RECS_ENCRYPTED,
    RECS_NAME,
    Vocabulary,
    read_recs,
)
from fedmarket.errors import DataError
from fedmarket.names import PRODUCTS_TASK, RANKING_TASK

# A customer with fewer window events (with a category) than this at the cut-off is "cold":
# evaluated apart from the warm ones. 3: fewer than three events give a GRU almost no order.
COLD_EVENTS = 3


@dataclass(frozen=True)
class RecSplit:
    """Row i: one customer. ``partition`` says which partition (retailer) it comes from."""

    X: np.ndarray  # float32 [N, L, 3]
    y_categories: np.ndarray  # float32 [N, V] 0/1: the target set
    n_events: np.ndarray  # int32 [N]
    partition: np.ndarray  # int32 [N]

    def __post_init__(self) -> None:
        n = len(self.X)
        for f in fields(self):
            if len(getattr(self, f.name)) != n:
                raise DataError(f"recommender split: X has {n} rows, {f.name} another count")

    def __len__(self) -> int:
        return len(self.X)

    def take(self, index: np.ndarray) -> RecSplit:
        return type(self)(*(np.asarray(getattr(self, f.name))[index] for f in fields(self)))

    @staticmethod
    def concat(parts: Iterable[RecSplit]) -> RecSplit:
        parts = list(parts)
        if not parts:
            raise DataError("nothing to concatenate: no partitions selected")
        return RecSplit(
            *(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(RecSplit))
        )

    def with_targets(self) -> RecSplit:
        """The customers with at least one target: the ones a ranking can be trained and
        judged on (the others have nothing to rank first)."""
        return self.take(np.flatnonzero(self.y_categories.any(axis=1)))

    def cold(self) -> np.ndarray:
        """bool [N]: fewer than ``COLD_EVENTS`` category events in the window."""
        return self.n_events < COLD_EVENTS


def vocabulary_entry(manifest: store.Manifest | dict[str, Any]) -> dict[str, Any]:
    """The manifest's ``recommend`` entry; DataError saying how to make it if absent."""
    entry = manifest.get(MANIFEST_KEY)
    if not isinstance(entry, dict):
        raise DataError(
            "the prepared data has no recommender vocabulary (manifest key 'recommend'): task "
            "next-categories needs events with a category_code; prepare such an export with "
            "`fedmarket data prepare`"
        )
    return entry


def encode_inputs(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """float32 ``[N, L, 3]`` (item, event type, brand token) from ``recs.npz`` arrays: the
    model's ``X`` (small integers, exact in float32), so the one training loop can carry it."""
    return np.stack(
        [arrays["hist_item"], arrays["hist_type"], arrays["hist_brand"]], axis=-1
    ).astype(np.float32)


def from_arrays(arrays: dict[str, np.ndarray], n_items: int, partition: int) -> RecSplit:
    n = len(arrays["hist_item"])
    y = np.zeros((n, n_items), dtype=np.float32)
    ptr, ind = arrays["target_indptr"], arrays["target_indices"]
    y[np.repeat(np.arange(n), np.diff(ptr)), ind] = 1.0
    return RecSplit(
        encode_inputs(arrays),
        y,
        arrays["n_events"].astype(np.int32),
        np.full(n, partition, np.int32),
    )


def load_rec_split(
    data_dir: Path, partition: int, split: str, fernet: Fernet | None = None
) -> RecSplit:
    """One split of one partition for task next-categories."""
    manifest = store.read_manifest(data_dir)
    n_items = len(Vocabulary.from_manifest(vocabulary_entry(manifest)).items)
    arrays = read_recs(store.split_dir(data_dir, partition, split), fernet)
    return from_arrays(arrays, n_items, partition)


def load_rec_partitions(data_dir: Path, split: str, fernet: Fernet | None = None) -> list[RecSplit]:
    """One split of every partition, in partition order."""
    ids = store.partition_ids(store.read_manifest(data_dir))
    return [load_rec_split(data_dir, p, split, fernet) for p in ids]


def model_inputs(
    manifest: store.Manifest | dict[str, Any], task: str
) -> tuple[int, dict[str, Any]]:
    """(features per step, extra ``build_model`` arguments) of ``task``'s model on this data:
    the recommender reads 3 values per event and needs the vocabulary; every other task the
    manifest's features and nothing more. The one place the builders of a run's model (clients,
    server, run log) learn what the data gives the model."""
    if task == RANKING_TASK:
        return 3, {"vocabulary": vocabulary_entry(manifest)}
    if task == PRODUCTS_TASK:  # the shared part; a client adds its own catalogue
        return 5, {"vocabulary": vocabulary_entry(manifest)}
    return store.n_features(manifest), {}


def load_task_split(
    data_dir: Path, partition: int, split: str, task: str, fernet: Fernet | None = None
) -> store.SplitArrays | RecSplit:
    """One split as ``task`` trains on it: the purchase arrays, or the recommender's split
    (training customers with a target only: the others have nothing to rank)."""
    if task == PRODUCTS_TASK:
        from fedmarket.recommend.products import load_product_split

        rec = load_product_split(data_dir, partition, split, fernet)
        return rec.with_targets() if split == "train" else rec
    if task != RANKING_TASK:
        return store.load_split(data_dir, partition, split, fernet, mmap=False)
    rec = load_rec_split(data_dir, partition, split, fernet)
    return rec.with_targets() if split == "train" else rec


def check_prepared(data_dir: Path, manifest: store.Manifest) -> None:
    """Before a run of task next-categories starts: the vocabulary and every split's
    ``recs.npz`` are there (a DataError naming the first missing one, and how to make it)."""
    vocabulary_entry(manifest)
    for pid in store.partition_ids(manifest):
        for split in store.SPLITS:
            directory = store.split_dir(data_dir, pid, split)
            if not ((directory / RECS_NAME).exists() or (directory / RECS_ENCRYPTED).exists()):
                raise DataError(
                    f"{directory / RECS_NAME}: missing; task next-categories needs the "
                    "recommender's files of every split: re-run `fedmarket data prepare`"
                )
