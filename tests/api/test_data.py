"""`fedmarket.synth` and `fedmarket.prepare`: the data commands as calls."""

from __future__ import annotations

import base64
import logging
import os
from pathlib import Path

import pandas as pd
import pytest

import fedmarket
from fedmarket.data import store
from fedmarket.data.protect.keys import PSEUDONYM_KEY_ENV
from fedmarket.errors import ConfigError
from tests.cli.output import cli, one_error_line
from tests.conftest import TINY_PREPARE, pseudonyms

# the fixture's key, as $FEDMARKET_PSEUDONYM_KEY holds it
TINY_KEY_TEXT = base64.b64encode(TINY_PREPARE["pseudonym_key"]).decode()


def test_synth_reports_what_it_wrote(tmp_path: Path):
    raw = fedmarket.synth(out=tmp_path / "raw", retailers=2, customers=50, days=30, seed=1)
    events = [pd.read_parquet(p) for p in sorted(raw.out.glob("*/events.parquet"))]
    customers = [pd.read_csv(p) for p in sorted(raw.out.glob("*/customers.csv"))]
    assert (raw.out, raw.retailers) == (tmp_path / "raw", 2)
    assert raw.events == sum(len(e) for e in events) > 0
    assert raw.customers == sum(len(c) for c in customers) > 0
    assert os.fspath(raw) == str(tmp_path / "raw")
    assert repr(raw).startswith(f"SyntheticData({str(tmp_path / 'raw')!r}: 2 retailers")


def test_prepare_gives_the_manifest_and_the_same_pseudonyms_as_the_library(
    tiny_raw: Path, tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, TINY_KEY_TEXT)
    data = fedmarket.prepare(
        raw=tiny_raw, out=tmp_path / "prepared", window_days=56, step_days=7, progress=False
    )
    assert data.out == tmp_path / "prepared"
    assert data.manifest == store.read_manifest(data.out)
    assert [p["id"] for p in data.partitions] == [0, 1, 2]
    expected = store.read_manifest(tiny_data)
    assert data.n_train == sum(p["train"]["n"] for p in expected["partitions"])
    assert data.n_test == sum(p["test"]["n"] for p in expected["partitions"])
    assert pseudonyms(data.out) == pseudonyms(tiny_data)
    text = repr(data)
    assert "3 partitions (natural)" in text and "\n" not in text and len(text) < 200


def test_prepare_takes_a_synth_result_and_creates_the_users_key_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    """Without a key the per-user key is created (and where it is said), then reused."""
    monkeypatch.delenv(PSEUDONYM_KEY_ENV, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    raw = fedmarket.synth(out=tmp_path / "raw", retailers=2, customers=60, days=70)
    key = tmp_path / "config" / "fedmarket" / "pseudonym.key"
    with caplog.at_level(logging.WARNING, logger="fedmarket"):
        first = fedmarket.prepare(raw=raw, out=tmp_path / "a", step_days=7, progress=False)
    assert key.is_file() and str(key) in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="fedmarket"):
        second = fedmarket.prepare(raw=raw, out=tmp_path / "b", step_days=7, progress=False)
    assert "pseudonym key" not in caplog.text
    assert pseudonyms(first.out) == pseudonyms(second.out)


def test_prepare_reports_bad_input_as_the_cli_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, TINY_KEY_TEXT)
    missing, out = tmp_path / "missing", tmp_path / "out"
    with pytest.raises(ConfigError) as raised:
        fedmarket.prepare(raw=missing, out=out)
    line = one_error_line(cli("data", "prepare", "--raw", missing, "--out", out))
    assert line == f"error: {raised.value}"
    assert "no such file or directory" in line and not out.exists()


def test_prepare_loads_a_directory_prepared_before(tiny_data: Path):
    data = fedmarket.PreparedData.load(tiny_data)
    assert data.manifest == store.read_manifest(tiny_data)
    table = data._repr_markdown_().splitlines()
    assert len([row for row in table if row.startswith("| ") and row[2].isdigit()]) == 3
