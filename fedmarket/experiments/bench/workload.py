"""The benchmark's data: random customer sequences in the prepared-data layout.

Performance does not depend on what the numbers mean, only on their shapes, so the bench
writes random sequences of the default shape (28 steps x 11 features) with a label the
models can learn, as a prepared data directory: the federated run reads it through the
same store and ClientApp as real data, and the floor pools the same customers.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from fedmarket.data import store
from fedmarket.data.features import FEATURE_NAMES
from fedmarket.progress import progress_bar

TEST_CUSTOMERS = 64  # per client: the global evaluation stays a small share of a round


def workload_spec(clients: int, customers: int, seq_len: int, n_features: int, seed: int) -> dict:
    return {
        "clients": clients,
        "customers": customers,
        "seq_len": seq_len,
        "n_features": n_features,
        "test_customers": TEST_CUSTOMERS,
        "seed": seed,
    }


def random_split(n: int, seq_len: int, n_features: int, rng: np.random.Generator):
    """``n`` customers; the label depends on the last two steps, as purchases do."""
    X = rng.standard_normal((n, seq_len, n_features), dtype=np.float32)
    score = X[:, -1, 0] + X[:, -min(2, seq_len), 1 % n_features]
    y = (score > 1.0).astype(np.float32)  # ~16% positive, like the default data's ~13%
    customer = np.array([f"b{i:07d}" for i in range(n)])
    return store.SplitArrays(X, np.zeros((n, 1), np.float32), y, y.copy(), customer)


def ensure_workload(
    root: Path, *, clients: int, customers: int, seq_len: int, n_features: int, seed: int
) -> Path:
    """Write the data under ``root`` once; a later bench with the same shape reuses it."""
    spec = workload_spec(clients, customers, seq_len, n_features, seed)
    marker = root / "workload.json"
    if marker.is_file() and json.loads(marker.read_text()) == spec:
        return root
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    names = [
        *FEATURE_NAMES,
        *(f"extra_{i}" for i in range(max(0, n_features - len(FEATURE_NAMES)))),
    ]
    partitions = []
    with progress_bar("writing the benchmark data", clients, unit="clients") as advance:
        for pid in range(clients):
            rng = np.random.default_rng(np.random.SeedSequence([seed, pid]))
            for split, n in (("train", customers), ("test", TEST_CUSTOMERS)):
                store.write_split(
                    store.split_dir(root, pid, split), random_split(n, seq_len, n_features, rng)
                )
            partitions.append(
                {"id": pid, "retailer": f"bench_{pid:04d}", "train": {"n": customers},
                 "test": {"n": TEST_CUSTOMERS}}
            )  # fmt: skip
            advance(1)
    store.write_manifest(
        root,
        {
            "source": "fedmarket bench (random sequences)",
            "feature_names": names[:n_features],
            "aggregate_names": ["none"],
            "encrypted": False,
            "partitions": partitions,
        },
    )
    marker.write_text(json.dumps(spec) + "\n")
    return root
