"""Shared fixtures: one tiny prepared data set per test session.

Three synthetic retailers of 200 customers over 70 days, prepared with a fixed pseudonym
key (about a second to build). Tests that need to damage or change the data copy it first
(``copy_prepared``): the session copy is shared and the clients' partition cache is keyed
by its path.
"""

from __future__ import annotations

import base64
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

TINY_RETAILERS = 3
TINY_CUSTOMERS = 200
TINY_DAYS = 70


@pytest.fixture(autouse=True)
def _restore_logging():
    """CLI commands point fedmarket's log at the console and filter Flower's console handler;
    undo it after each test so later tests (caplog among them) see the loggers as they were."""
    import flwr.supercore.logger  # noqa: F401  (Flower's console handler exists before it is saved)

    loggers = [logging.getLogger(name) for name in ("fedmarket", "flwr", "py.warnings")]
    saved = [(lg, list(lg.handlers), lg.level, lg.propagate, list(lg.filters)) for lg in loggers]
    handler_filters = {h: list(h.filters) for lg in loggers for h in lg.handlers}
    yield
    for logger, handlers, level, propagate, filters in saved:
        logger.handlers[:], logger.level, logger.propagate = handlers, level, propagate
        logger.filters[:] = filters
    for handler, filters in handler_filters.items():
        handler.filters[:] = filters


# Every metric a client's train reply carries (DP runs; without DP the last three are absent).
TRAIN_METRIC_KEYS = frozenset(
    {
        "num-examples",
        "unit-weight",
        "partition-id",
        "train-loss",
        "steps",
        "train-wall-s",
        "epsilon",
        "delta",
        "noise-multiplier",
    }
)


@pytest.fixture
def one_torch_thread(monkeypatch: pytest.MonkeyPatch):
    """Train on one intra-op thread for the test, then restore the previous setting.

    On a loaded 2-core machine torch's two default threads wait on each other: a DP round
    of the tiny data took 0.4-6 s with two threads and a steady 0.25 s with one.
    $FEDMARKET_THREADS keeps it so where fedmarket chooses the threads (fedmarket.threads).
    Opt in per module with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("FEDMARKET_THREADS", "1")
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fedmarket.data.synth.generate import generate_retailers

    raw = tmp_path_factory.mktemp("tiny") / "raw"
    generate_retailers(
        raw, n_retailers=TINY_RETAILERS, n_customers=TINY_CUSTOMERS, days=TINY_DAYS, seed=0
    )
    return raw


# 8 weekly time steps (pinned: the default step may change and longer sequences train slower)
TINY_PREPARE = {"pseudonym_key": b"k" * 32, "window_days": 56, "step_days": 7}


@pytest.fixture(scope="session")
def tiny_data(tiny_raw: Path) -> Path:
    """A prepared directory: partitions 0..2 (one per retailer), train and test splits."""
    from fedmarket.data.prepare import PrepareOptions, prepare

    out = tiny_raw.parent / "prepared"
    prepare(PrepareOptions(raw=tiny_raw, out=out, **TINY_PREPARE))
    return out


@dataclass(frozen=True)
class EncryptedData:
    """``tiny_data`` prepared again with ``--encrypt``: the same arrays, Fernet-encrypted."""

    data: Path
    key_file: Path  # outside the data, mode 0600, as `fedmarket` wants it
    # the file's one line: what $FEDMARKET_ENCRYPTION_KEY would hold
    key_text: str = field(repr=False)

    def secret_forms(self) -> list[bytes]:
        """Every spelling of the key that must never land in a file or a log: its text in
        both base64 alphabets (unpadded, so padded copies match too), the raw bytes, and
        each half (Fernet's signing and encryption keys: what a pickled Fernet holds)."""
        raw = base64.urlsafe_b64decode(self.key_text)
        text = [self.key_text.rstrip("=").encode(), base64.b64encode(raw).rstrip(b"=")]
        return [*text, raw, raw[:16], raw[16:]]


@pytest.fixture(scope="session")
def tiny_encrypted(tiny_raw: Path, tmp_path_factory: pytest.TempPathFactory) -> EncryptedData:
    from fedmarket.data.prepare import PrepareOptions, prepare
    from fedmarket.data.protect import keys

    key_file = tmp_path_factory.mktemp("keys") / "encryption.key"
    fernet = keys.fernet_from_key(keys.create_key_file(key_file, "fernet"))
    out = tiny_raw.parent / "prepared-encrypted"
    prepare(PrepareOptions(raw=tiny_raw, out=out, fernet=fernet, **TINY_PREPARE))
    return EncryptedData(out, key_file, key_file.read_text().strip())


def files_holding(directory: Path, secrets: list[bytes]) -> list[str]:
    """Files under ``directory`` whose bytes contain any of ``secrets``."""
    return sorted(
        str(path.relative_to(directory))
        for path in Path(directory).rglob("*")
        if path.is_file() and any(s in path.read_bytes() for s in secrets)
    )


def copy_prepared(src: Path, dst: Path) -> Path:
    """A private copy of a prepared directory that a test may change."""
    shutil.copytree(src, dst)
    return dst


def pseudonyms(data_dir: Path) -> set[str]:
    """Every customer pseudonym in every split of every partition."""
    found: set[str] = set()
    for path in sorted(Path(data_dir).glob("partitions/*/*/customer.npy")):
        found.update(str(c) for c in np.load(path, allow_pickle=False))
    return found


def raw_customer_ids(raw_dir: Path) -> set[int]:
    """The retailers' own customer ids, as the raw exports carry them."""
    import pandas as pd

    ids: set[int] = set()
    for path in sorted(Path(raw_dir).glob("*/events.parquet")):
        ids.update(int(u) for u in pd.read_parquet(path, columns=["user_id"])["user_id"].unique())
    return ids
