"""`fedmarket simulate` on encrypted prepared data: the key by file or environment, and the
two ways it can be missing, each one error line before Ray starts and before any file is made.

The runs through Ray are slow (about 10 s of start-up each); the refusals are fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from fedmarket.data.protect.keys import ENCRYPTION_KEY_ENV, create_key_file
from fedmarket.experiments import simulate as simulate_module
from tests.cli.output import cli, ok, one_error_line
from tests.conftest import EncryptedData, files_holding

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RUN = ["--run-config", "num-server-rounds=2 dp='none'", "--client-cpus", "1"]
COMPARED = ("roc_auc", "pr_auc", "log_loss", "accuracy", "n")


def simulate(data: Path, out: Path, *options: object):
    return cli("simulate", "--data", data, "--out", out, *RUN, *options)


def scored(summary: dict, part: str) -> dict:
    return {k: summary[part]["test"][k] for k in COMPARED}


@pytest.fixture(scope="module")
def plain_summary(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("plain") / "run"
    ok(simulate(tiny_data, out))
    return json.loads((out / "summary.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("source", ["file", "env"])
def test_encrypted_data_trains_as_its_plain_copy_and_the_key_is_written_nowhere(
    plain_summary: dict,
    tiny_encrypted: EncryptedData,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    source: str,
) -> None:
    """The server's pooled test set, every Ray client's partition and the centralised
    reference all read the encrypted copy: the same seed gives the same summary."""
    monkeypatch.delenv(ENCRYPTION_KEY_ENV, raising=False)
    options: list[object] = []
    if source == "file":  # then nothing but the app's pickled closure brings the key to Ray
        options = ["--encryption-key-file", tiny_encrypted.key_file]
    else:
        monkeypatch.setenv(ENCRYPTION_KEY_ENV, tiny_encrypted.key_text)
    out = tmp_path / "run"
    printed = ok(simulate(tiny_encrypted.data, out, *options))
    summary = json.loads((out / "summary.json").read_text())
    for part in ("federated", "centralised"):
        assert scored(summary, part) == pytest.approx(
            scored(plain_summary, part), rel=1e-6, abs=1e-6
        )
    assert summary["federated"]["failures"] == {"failed": 0, "declined": 0, "timed_out": 0}
    secrets = tiny_encrypted.secret_forms()
    assert not files_holding(out, secrets)  # config.json, summary.json, rounds.csv, checkpoints
    assert not any(s.decode("latin-1") in printed for s in secrets)


@pytest.fixture
def no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail loudly if the command gets as far as starting the Flower simulation."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the simulation started: the key was not checked before Ray")

    monkeypatch.setattr(simulate_module, "_run_flower", refuse)


@pytest.mark.parametrize("way", ["no key", "wrong key file", "wrong key in env"])
def test_a_missing_or_wrong_key_is_one_error_line_before_ray_and_before_any_file(
    tiny_encrypted: EncryptedData,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_ray: None,
    way: str,
) -> None:
    monkeypatch.delenv(ENCRYPTION_KEY_ENV, raising=False)
    options: list[object] = []
    if way == "wrong key file":
        create_key_file(tmp_path / "other.key", "fernet")
        options = ["--encryption-key-file", tmp_path / "other.key"]
    elif way == "wrong key in env":
        monkeypatch.setenv(ENCRYPTION_KEY_ENV, Fernet.generate_key().decode())
    out = tmp_path / "run"
    line = one_error_line(simulate(tiny_encrypted.data, out, *options))
    if way == "no key":
        assert "holds encrypted prepared data" in line
        assert "--encryption-key-file" in line and ENCRYPTION_KEY_ENV in line
    else:
        assert "does not decrypt" in line and "wrong key for this prepared data" in line
        assert "holds encrypted prepared data" not in line
    assert not out.exists()


def test_a_key_file_inside_the_run_directory_is_refused(
    tiny_encrypted: EncryptedData, tmp_path: Path, no_ray: None
) -> None:
    out = tmp_path / "run"
    create_key_file(out / "encryption.key", "fernet")
    line = one_error_line(
        simulate(tiny_encrypted.data, out, "--encryption-key-file", out / "encryption.key")
    )
    assert "is inside data directory" in line
