"""Key files and environment keys: permissions, placement, formats, and every refusal."""

from __future__ import annotations

import base64
import os
import re
import shutil
import stat

import numpy as np
import pytest
from cryptography.fernet import Fernet

from fedmarket.data import store
from fedmarket.data.protect.keys import (
    ENCRYPTION_KEY_ENV,
    PSEUDONYM_KEY_ENV,
    check_key_outside,
    create_key_file,
    encryption_fernet,
    fernet_from_key,
    load_key,
    prepared_data_fernet,
)
from fedmarket.errors import ConfigError, DataError
from tests.conftest import copy_prepared

ENV = "FEDMARKET_TEST_KEY_C"  # private name so tests never read a real key from the shell
KEY32 = bytes(range(32))


def _write(path, text: str | bytes, mode: int = 0o600):
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    path.chmod(mode)
    return path


def test_env_names_are_the_documented_ones():
    assert PSEUDONYM_KEY_ENV == "FEDMARKET_PSEUDONYM_KEY"
    assert ENCRYPTION_KEY_ENV == "FEDMARKET_ENCRYPTION_KEY"


@pytest.mark.parametrize("kind", ["hmac", "fernet"])
def test_create_key_file_is_0600_and_loads_back(tmp_path, kind):
    path = tmp_path / "keys" / f"{kind}.key"
    key = create_key_file(path, kind)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert len(key) == 32
    assert load_key(path, ENV, purpose="test key") == key
    # The file holds one line of URL-safe base64 of exactly these bytes.
    assert path.read_text() == base64.urlsafe_b64encode(key).decode() + "\n"


def test_create_key_file_is_0600_even_with_a_permissive_umask(tmp_path):
    old = os.umask(0)
    try:
        path = tmp_path / "k.key"
        create_key_file(path, "hmac")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_two_created_keys_differ(tmp_path):
    assert create_key_file(tmp_path / "a", "hmac") != create_key_file(tmp_path / "b", "hmac")


def test_fernet_key_file_encrypts_and_decrypts(tmp_path):
    key = create_key_file(tmp_path / "enc.key", "fernet")
    token = fernet_from_key(load_key(tmp_path / "enc.key", ENV, purpose="encryption key")).encrypt(
        b"x"
    )
    assert fernet_from_key(key).decrypt(token) == b"x"


def test_create_key_file_never_overwrites(tmp_path):
    path = _write(tmp_path / "k.key", "old-content\n")
    with pytest.raises(ConfigError, match="already exists"):
        create_key_file(path, "hmac")
    assert path.read_text() == "old-content\n"


def test_create_key_file_rejects_unknown_kind(tmp_path):
    with pytest.raises(ConfigError, match="unknown key kind"):
        create_key_file(tmp_path / "k.key", "rsa")  # type: ignore[arg-type]
    assert not (tmp_path / "k.key").exists()


def test_refuses_key_inside_data_dir(tmp_path):
    data = tmp_path / "data"
    (data / "raw").mkdir(parents=True)
    with pytest.raises(ConfigError, match="inside data directory"):
        create_key_file(data / "raw" / "k.key", "hmac", data_dirs=[tmp_path / "other", data])
    assert not (data / "raw" / "k.key").exists()
    with pytest.raises(ConfigError, match="inside data directory"):
        check_key_outside(data, [data])  # the directory itself counts as inside


def test_refuses_key_inside_data_dir_through_symlinks(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "link_to_data").symlink_to(data)
    with pytest.raises(ConfigError, match="inside data directory"):
        check_key_outside(tmp_path / "link_to_data" / "k.key", [data])
    with pytest.raises(ConfigError, match="inside data directory"):
        check_key_outside(data / "k.key", [tmp_path / "link_to_data"])


def test_sibling_with_shared_name_prefix_is_outside(tmp_path):
    (tmp_path / "data").mkdir()
    check_key_outside(tmp_path / "data2" / "k.key", [tmp_path / "data"])
    check_key_outside(tmp_path / "k.key", [])


@pytest.mark.parametrize("encode", [base64.b64encode, base64.urlsafe_b64encode])
def test_load_from_env_var_either_alphabet(monkeypatch, encode):
    key = bytes([0xFB, 0xFF] * 20)  # encodes with '+/' or '-_', so both alphabets are exercised
    monkeypatch.setenv(ENV, encode(key).decode())
    assert load_key(None, ENV, purpose="test key") == key


def test_load_from_env_var_without_padding_and_with_whitespace(monkeypatch):
    text = base64.urlsafe_b64encode(KEY32).decode().rstrip("=")
    monkeypatch.setenv(ENV, f"  {text}\n")
    assert load_key(None, ENV, purpose="test key") == KEY32


def test_path_wins_over_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV, base64.b64encode(b"e" * 32).decode())
    path = _write(tmp_path / "k.key", base64.b64encode(b"f" * 32).decode())
    assert load_key(path, ENV, purpose="test key") == b"f" * 32


def test_no_key_at_all_names_the_env_var(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    with pytest.raises(ConfigError, match=ENV):
        load_key(None, ENV, purpose="test key")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "empty"),
        ("   \n", "empty"),
        ("not base64 at all!", "not base64"),
        (base64.b64encode(b"k" * 16).decode(), "16 bytes; at least 32"),
    ],
)
def test_malformed_env_key(monkeypatch, text, match):
    monkeypatch.setenv(ENV, text)
    with pytest.raises(ConfigError, match=match):
        load_key(None, ENV, purpose="test key")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "empty"),
        (b"%%%%", "not base64"),
        ("cl\u00e9".encode(), "non-ASCII"),
        (base64.b64encode(b"k" * 31), "31 bytes"),
        (b"A" * 5000, "5000 bytes"),
    ],
)
def test_malformed_key_file(tmp_path, content, match):
    path = _write(tmp_path / "k.key", content)
    with pytest.raises(ConfigError, match=match):
        load_key(path, ENV, purpose="test key")


def test_unreadable_key_file(tmp_path):
    with pytest.raises(ConfigError, match=r"test key file .*missing\.key does not exist"):
        load_key(tmp_path / "missing.key", ENV, purpose="test key")
    with pytest.raises(ConfigError, match="not a regular file"):
        load_key(tmp_path, ENV, purpose="test key")


@pytest.mark.skipif(os.name == "nt", reason="POSIX mode bits")
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_group_or_world_readable_key_file_is_refused(tmp_path, mode):
    path = _write(tmp_path / "k.key", base64.b64encode(KEY32).decode(), mode=mode)
    with pytest.raises(ConfigError, match=f"mode {mode:04o}.*chmod 600"):
        load_key(path, ENV, purpose="test key")


def test_owner_only_modes_are_accepted(tmp_path):
    path = _write(tmp_path / "k.key", base64.b64encode(KEY32).decode(), mode=0o400)
    assert load_key(path, ENV, purpose="test key") == KEY32


def test_fernet_from_key_accepts_raw_and_fernet_forms():
    raw_token = fernet_from_key(KEY32).encrypt(b"data")
    assert fernet_from_key(base64.urlsafe_b64encode(KEY32)).decrypt(raw_token) == b"data"
    assert fernet_from_key(bytearray(KEY32)).decrypt(raw_token) == b"data"
    generated = Fernet.generate_key()
    assert fernet_from_key(generated).decrypt(Fernet(generated).encrypt(b"y")) == b"y"


@pytest.mark.parametrize("bad", [b"", b"k" * 16, b"k" * 33, b"!" * 44])
def test_fernet_from_key_bad_bytes(bad):
    with pytest.raises(ConfigError, match="Fernet needs exactly 32"):
        fernet_from_key(bad)


def test_fernet_from_key_rejects_text():
    with pytest.raises(ConfigError, match="must be bytes"):
        fernet_from_key(base64.urlsafe_b64encode(KEY32).decode())  # type: ignore[arg-type]


# --- the key of a prepared directory ---------------------------------------------------------


def no_env_key(monkeypatch):
    monkeypatch.delenv(ENCRYPTION_KEY_ENV, raising=False)


def assert_opens(fernet, encrypted, plain) -> None:
    """The key reads every split of the encrypted copy as the plain copy reads."""
    for pid in store.partition_ids(store.read_manifest(plain)):
        for split in store.SPLITS:
            a = store.load_split(encrypted, pid, split, fernet, mmap=False)
            b = store.load_split(plain, pid, split, mmap=False)
            for name in ("X", "agg", "y_purchase", "y_count", "customer"):
                np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_plain_data_needs_no_key(tiny_data, monkeypatch, caplog):
    no_env_key(monkeypatch)
    assert prepared_data_fernet(tiny_data) is None
    monkeypatch.setenv(ENCRYPTION_KEY_ENV, Fernet.generate_key().decode())  # not even looked at
    assert prepared_data_fernet(tiny_data) is None


def test_a_key_file_given_for_plain_data_is_not_used_and_said_so(tiny_data, tiny_encrypted, caplog):
    with caplog.at_level("WARNING", logger="fedmarket"):
        assert prepared_data_fernet(tiny_data, tiny_encrypted.key_file) is None
    assert "is not encrypted" in caplog.text and str(tiny_encrypted.key_file) in caplog.text


def test_key_from_file_opens_the_data(tiny_encrypted, tiny_data, monkeypatch):
    no_env_key(monkeypatch)
    fernet = prepared_data_fernet(tiny_encrypted.data, tiny_encrypted.key_file)
    assert fernet is not None
    assert_opens(fernet, tiny_encrypted.data, tiny_data)


def test_key_from_the_environment_opens_the_data(tiny_encrypted, tiny_data, monkeypatch):
    monkeypatch.setenv(ENCRYPTION_KEY_ENV, tiny_encrypted.key_text)
    fernet = prepared_data_fernet(tiny_encrypted.data)
    assert fernet is not None
    assert_opens(fernet, tiny_encrypted.data, tiny_data)


def test_the_file_wins_over_the_environment(tiny_encrypted, monkeypatch):
    monkeypatch.setenv(ENCRYPTION_KEY_ENV, Fernet.generate_key().decode())
    assert prepared_data_fernet(tiny_encrypted.data, tiny_encrypted.key_file) is not None


def test_no_key_names_the_directory_and_both_ways_to_give_one(tiny_encrypted, monkeypatch):
    no_env_key(monkeypatch)
    expected = (
        f"{tiny_encrypted.data} holds encrypted prepared data; pass --encryption-key-file "
        f"or set {ENCRYPTION_KEY_ENV}"
    )
    with pytest.raises(ConfigError, match=re.escape(expected)):
        prepared_data_fernet(tiny_encrypted.data)


@pytest.mark.parametrize("source", ["file", "env"])
def test_a_wrong_key_is_its_own_error_naming_the_file_it_does_not_open(
    tiny_encrypted, tmp_path, monkeypatch, source
):
    no_env_key(monkeypatch)
    key_file = None
    if source == "file":
        key_file = tmp_path / "other.key"
        create_key_file(key_file, "fernet")
        where = f"the encryption key from file {key_file}"
    else:
        monkeypatch.setenv(ENCRYPTION_KEY_ENV, Fernet.generate_key().decode())
        where = f"the encryption key in ${ENCRYPTION_KEY_ENV}"
    with pytest.raises(ConfigError) as caught:
        prepared_data_fernet(tiny_encrypted.data, key_file)
    message = str(caught.value)
    assert message.startswith(f"{where} does not decrypt {tiny_encrypted.data}/partitions/0/")
    assert ".npy.enc: wrong key for this prepared data" in message
    assert "holds encrypted prepared data" not in message  # not the no-key text


def test_a_bad_key_in_the_environment_is_a_format_error(tiny_encrypted, monkeypatch):
    monkeypatch.setenv(ENCRYPTION_KEY_ENV, "not a key!")
    with pytest.raises(
        ConfigError, match=f"environment variable {ENCRYPTION_KEY_ENV} is not base64"
    ):
        prepared_data_fernet(tiny_encrypted.data)


def test_key_file_inside_the_data_or_an_output_directory_is_refused(
    tiny_encrypted, tmp_path, monkeypatch
):
    no_env_key(monkeypatch)
    data = copy_prepared(tiny_encrypted.data, tmp_path / "data")
    inside = data / "encryption.key"
    inside.write_text(tiny_encrypted.key_text)
    inside.chmod(0o600)
    with pytest.raises(ConfigError, match="is inside data directory"):
        prepared_data_fernet(data, inside)
    with pytest.raises(ConfigError, match="is inside data directory"):
        prepared_data_fernet(
            data, tiny_encrypted.key_file, outside=[tiny_encrypted.key_file.parent]
        )


def test_the_key_is_tried_on_a_partition_that_is_on_disk(tiny_encrypted, tmp_path, monkeypatch):
    """A SuperNode may hold only its own partition of a prepared directory."""
    no_env_key(monkeypatch)
    data = copy_prepared(tiny_encrypted.data, tmp_path / "data")
    shutil.rmtree(data / "partitions" / "0")
    assert prepared_data_fernet(data, tiny_encrypted.key_file) is not None
    with pytest.raises(ConfigError, match=f"does not decrypt {data}/partitions/1/"):
        monkeypatch.setenv(ENCRYPTION_KEY_ENV, Fernet.generate_key().decode())
        prepared_data_fernet(data)


def test_encrypted_manifest_without_encrypted_files_is_a_data_error(
    tiny_encrypted, tmp_path, monkeypatch
):
    no_env_key(monkeypatch)
    data = copy_prepared(tiny_encrypted.data, tmp_path / "data")
    for path in data.glob("partitions/*/*/*.npy.enc"):
        path.unlink()
    with pytest.raises(DataError, match="says the data is encrypted, but no partition holds"):
        prepared_data_fernet(data, tiny_encrypted.key_file)


def test_the_preparing_key_comes_from_the_file_or_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(ENCRYPTION_KEY_ENV, raising=False)
    data = tmp_path / "data"
    data.mkdir()
    assert encryption_fernet(False, None, [data]) is None  # plain files
    with pytest.raises(ConfigError, match=ENCRYPTION_KEY_ENV):
        encryption_fernet(True, None, [data])  # --encrypt without a key
    key_file = tmp_path / "keys" / "enc.key"
    create_key_file(key_file, "fernet")
    token = encryption_fernet(False, key_file, [data]).encrypt(b"x")  # a key file implies it
    monkeypatch.setenv(ENCRYPTION_KEY_ENV, key_file.read_text().strip())
    assert encryption_fernet(True, None, [data]).decrypt(token) == b"x"
    inside = data / "enc.key"
    shutil.copy(key_file, inside)
    inside.chmod(0o600)
    with pytest.raises(ConfigError):
        encryption_fernet(True, inside, [data])  # a key next to the data protects nothing


def test_a_missing_key_file_names_the_command_that_makes_one(tmp_path):
    path = tmp_path / "missing.key"
    made = re.escape(f"make one with `fedmarket keys new {path}`")
    with pytest.raises(ConfigError, match=made):
        load_key(path, ENV, purpose="pseudonym key")
    made = re.escape(f"`fedmarket keys new --kind encryption {path}`")
    with pytest.raises(ConfigError, match=made):
        load_key(path, ENV, purpose="encryption key")


def test_create_key_file_replaces_only_when_asked(tmp_path):
    path = _write(tmp_path / "k.key", "old-content\n")
    key = create_key_file(path, "hmac", replace=True)
    assert load_key(path, ENV, purpose="test key") == key
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["k.key"]
