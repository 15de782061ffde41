"""`fedmarket baselines` on encrypted prepared data: classical and sequence models read it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedmarket.data.protect.keys import ENCRYPTION_KEY_ENV
from tests.cli.output import cli, ok, one_error_line
from tests.conftest import EncryptedData

pytestmark = pytest.mark.usefixtures("one_torch_thread")

OPTIONS = ["--sequence-models", "lstm", "--epochs", "1", "--seed", "2"]


def baselines(data: Path, out: Path, *options: object):
    return cli("baselines", "--data", data, "--out", out, *OPTIONS, *options)


def results(out: Path) -> dict:
    """Each model's metrics, without its timing."""
    rows = json.loads((out / "baselines.json").read_text())
    return {
        r["model"]: {k: v for k, v in r.items() if k not in ("fit_seconds", "notes")} for r in rows
    }


def test_baselines_read_encrypted_data(
    tiny_data: Path, tiny_encrypted: EncryptedData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENCRYPTION_KEY_ENV, raising=False)
    line = one_error_line(baselines(tiny_encrypted.data, tmp_path / "refused"))
    assert "holds encrypted prepared data" in line and not (tmp_path / "refused").exists()
    ok(baselines(tiny_data, tmp_path / "plain"))
    key = ["--encryption-key-file", tiny_encrypted.key_file]
    ok(baselines(tiny_encrypted.data, tmp_path / "encrypted", *key))
    plain, encrypted = results(tmp_path / "plain"), results(tmp_path / "encrypted")
    assert "lstm" in encrypted and len(encrypted) > 1  # the sequence model and the classical ones
    assert encrypted == plain
