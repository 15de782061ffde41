"""`fedmarket keys new` through the real typer app: the file, its mode, what it says, and that
it never replaces a key unless told to."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from fedmarket.data.protect import keys
from tests.cli.output import cli, ok, one_error_line


def said(out: str) -> str:
    return " ".join(out.split())


def test_new_pseudonym_key_is_0600_loadable_and_says_who_holds_it(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "shop.key"
    out = said(ok(cli("keys", "new", path)))
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    key = keys.load_key(path, keys.PSEUDONYM_KEY_ENV, purpose="test")
    assert len(key) >= keys.MIN_KEY_BYTES
    assert f"wrote a new pseudonym key to {path} (mode 0600)." in out
    assert "keep it at the retailer" in out and "never send it to the server" in out
    assert f"fedmarket data prepare --key-file {path}" in out


def test_two_new_keys_differ(tmp_path: Path) -> None:
    ok(cli("keys", "new", tmp_path / "a.key"))
    ok(cli("keys", "new", tmp_path / "b.key"))
    assert (tmp_path / "a.key").read_text() != (tmp_path / "b.key").read_text()


def test_new_encryption_key_opens_fernet(tmp_path: Path) -> None:
    path = tmp_path / "data.key"
    out = said(ok(cli("keys", "new", "--kind", "encryption", path)))
    fernet = keys.fernet_from_key(keys.load_key(path, keys.ENCRYPTION_KEY_ENV, purpose="test"))
    assert fernet.decrypt(fernet.encrypt(b"x")) == b"x"
    Fernet(path.read_text().strip().encode())  # Fernet's own text form
    assert f"--encrypt --encryption-key-file {path}" in out


def test_refuses_to_overwrite_and_says_how(tmp_path: Path) -> None:
    path = tmp_path / "shop.key"
    ok(cli("keys", "new", path))
    before = path.read_text()
    line = one_error_line(cli("keys", "new", path))
    assert f"key file {path} already exists" in line
    assert f"fedmarket keys new --force {path}" in line
    assert path.read_text() == before


def test_force_replaces_with_a_fresh_0600_key(tmp_path: Path) -> None:
    path = tmp_path / "shop.key"
    path.write_text("old\n")
    path.chmod(0o644)
    ok(cli("keys", "new", "--force", path))
    assert path.read_text() != "old\n" and path.stat().st_mode & 0o777 == 0o600
    assert len(base64.urlsafe_b64decode(path.read_text().strip())) == 32
    assert [p.name for p in tmp_path.iterdir()] == ["shop.key"]  # nothing staged left behind


@pytest.mark.parametrize("kind", ["rsa", "hmac"])
def test_unknown_kind_is_a_usage_error(tmp_path: Path, kind: str) -> None:
    result = cli("keys", "new", "--kind", kind, tmp_path / "k.key")
    assert result.exit_code == 2 and not (tmp_path / "k.key").exists()
