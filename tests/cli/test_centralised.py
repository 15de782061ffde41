"""`fedmarket centralised` on encrypted prepared data: the same model as on the plain copy,
and a missing or wrong key as one error line before training or writing anything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from fedmarket.data.protect.keys import ENCRYPTION_KEY_ENV
from tests.cli.output import cli, ok, one_error_line
from tests.conftest import EncryptedData, files_holding

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TRAIN = ["--model", "lstm", "--epochs", "1", "--batch-size", "128", "--seed", "3"]


def centralised(data: Path, out: Path, *options: object):
    return cli("centralised", "--data", data, "--out", out, *TRAIN, *options)


def scores(out: Path) -> dict:
    test = json.loads((out / "metrics.json").read_text())["test"]
    return {k: v for k, v in test.items() if isinstance(v, int | float)}


@pytest.mark.parametrize("source", ["file", "env"])
def test_encrypted_data_trains_the_same_model_as_its_plain_copy(
    tiny_data: Path,
    tiny_encrypted: EncryptedData,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    source: str,
) -> None:
    monkeypatch.delenv(ENCRYPTION_KEY_ENV, raising=False)
    ok(centralised(tiny_data, tmp_path / "plain"))
    options: list[object] = ["--encryption-key-file", tiny_encrypted.key_file]
    if source == "env":
        monkeypatch.setenv(ENCRYPTION_KEY_ENV, tiny_encrypted.key_text)
        options = []
    printed = ok(centralised(tiny_encrypted.data, tmp_path / "encrypted", *options))
    assert scores(tmp_path / "encrypted") == pytest.approx(scores(tmp_path / "plain"))
    secrets = tiny_encrypted.secret_forms()
    assert not files_holding(tmp_path / "encrypted", secrets)
    assert not any(s.decode("latin-1") in printed for s in secrets)


@pytest.mark.parametrize("key", [None, "wrong"])
def test_a_missing_or_wrong_key_is_one_error_line_and_nothing_is_written(
    tiny_encrypted: EncryptedData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str | None
) -> None:
    monkeypatch.delenv(ENCRYPTION_KEY_ENV, raising=False)
    if key == "wrong":
        monkeypatch.setenv(ENCRYPTION_KEY_ENV, Fernet.generate_key().decode())
    line = one_error_line(centralised(tiny_encrypted.data, tmp_path / "out"))
    expected = "holds encrypted prepared data; pass" if key is None else "does not decrypt"
    assert expected in line
    assert not (tmp_path / "out").exists()
