"""Secret keys for pseudonyms (HMAC) and encryption at rest (Fernet).

A key that sits next to the data it protects protects nothing: whoever copies the data
directory gets the key too. So keys live in their own file (0600, outside every data
directory) or in an environment variable, and are never written by fedmarket anywhere else.

Key text is one line of base64 (standard or URL-safe alphabet, padding optional): the
format ``Fernet.generate_key()`` already uses, so one loader serves both kinds. Every
loader returns the *decoded* secret bytes.

Decisions a caller must know:
- ``load_key`` prefers the file when a path is given; the environment variable is only
  consulted when ``path`` is None.
- A key file readable by group or others is refused (ConfigError), not warned about,
  the same way ``ssh`` refuses a private key: a warning in a log nobody reads would let
  the pseudonym key leak and every pseudonym be reversed by a dictionary attack on ids.
  The check is skipped on Windows, where POSIX mode bits mean nothing.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import secrets
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Final, Literal

from cryptography.fernet import Fernet

from fedmarket.data import store
from fedmarket.errors import ConfigError

log = logging.getLogger("fedmarket")
PSEUDONYM_KEY_ENV: Final[str] = "FEDMARKET_PSEUDONYM_KEY"
ENCRYPTION_KEY_ENV: Final[str] = "FEDMARKET_ENCRYPTION_KEY"
MIN_KEY_BYTES: Final[int] = 32  # HMAC-SHA256 key as long as the digest (RFC 2104 sec. 3)
FERNET_KEY_BYTES: Final[int] = 32
# A key file is one short line; refusing big files stops us slurping a data file given by mistake.
_MAX_KEY_FILE_BYTES: Final[int] = 4096


def _decode_key_text(text: str, *, source: str, purpose: str) -> bytes:
    """Decode one line of base64 key text, naming ``source`` in every error."""
    cleaned = "".join(text.split())
    if not cleaned:
        raise ConfigError(
            f"{purpose} from {source} is empty; it must hold base64 text such as "
            f"the output of `openssl rand -base64 32`"
        )
    # Accept both alphabets: users paste keys from `openssl rand -base64 32` and from Fernet.
    normalised = cleaned.replace("-", "+").replace("_", "/")
    normalised += "=" * (-len(normalised) % 4)
    try:
        key = base64.b64decode(normalised, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(
            f"{purpose} from {source} is not base64 text ({exc}); "
            f"a key is one line such as the output of `openssl rand -base64 32`"
        ) from exc
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(
            f"{purpose} from {source} decodes to {len(key)} bytes; at least "
            f"{MIN_KEY_BYTES} are needed. Generate one with `openssl rand -base64 32`"
        )
    return key


def _read_key_file(path: Path, purpose: str) -> str:
    """Read a key file through one descriptor, so the mode we check is the file we read."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError as exc:
        kind = " --kind encryption" if "encryption" in purpose else ""
        raise ConfigError(
            f"{purpose} file {path} does not exist; make one with "
            f"`fedmarket keys new{kind} {path}` (0600, keep it outside every data directory)"
        ) from exc
    except OSError as exc:
        raise ConfigError(
            f"cannot read {purpose} file {path}: {exc.strerror or exc}; "
            f"check the path and that this user may read it"
        ) from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{purpose} file {path} is not a regular file")
        if os.name != "nt" and info.st_mode & 0o077:
            raise ConfigError(
                f"{purpose} file {path} has mode {stat.S_IMODE(info.st_mode):04o}: readable by "
                f"group or others. Run `chmod 600 {path}` (and consider the key exposed if "
                f"others had access)"
            )
        if info.st_size > _MAX_KEY_FILE_BYTES:
            raise ConfigError(
                f"{purpose} file {path} is {info.st_size} bytes; a key file holds one "
                f"line of base64 text. Is this the right file?"
            )
        raw = os.read(fd, _MAX_KEY_FILE_BYTES + 1)
    finally:
        os.close(fd)
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{purpose} file {path} is not base64 text (non-ASCII byte at offset {exc.start})"
        ) from exc


def read_secret_text(path: Path, purpose: str) -> str:
    """One line of secret text (a key, the scoring service's bearer token) from a regular
    file only its owner may read, stripped; an empty file is refused."""
    text = _read_key_file(Path(path), purpose).strip()
    if not text:
        raise ConfigError(
            f"{purpose} file {path} is empty; write one with `fedmarket keys new {path}`"
        )
    return text


def load_key(path: Path | None, env_var: str, *, purpose: str) -> bytes:
    """Load a secret key from ``path`` or, when ``path`` is None, from ``env_var``.

    ``purpose`` (e.g. "pseudonym key") only names the key in error messages.
    Returns the decoded key bytes (at least 32).
    """
    if path is not None:
        path = Path(path).expanduser()
        return _decode_key_text(
            _read_key_file(path, purpose), source=f"file {path}", purpose=purpose
        )
    text = os.environ.get(env_var)
    if text is None:
        raise ConfigError(
            f"no {purpose} given: pass the path of a key file or set the environment "
            f"variable {env_var} to base64 key text"
        )
    return _decode_key_text(text, source=f"environment variable {env_var}", purpose=purpose)


def check_key_outside(key_path: Path, data_dirs: Iterable[Path]) -> None:
    """Refuse a key path inside any data directory (symlinks resolved on both sides)."""
    resolved = Path(key_path).expanduser().resolve()
    for data_dir in data_dirs:
        root = Path(data_dir).expanduser().resolve()
        if resolved.is_relative_to(root):
            raise ConfigError(
                f"key path {key_path} (resolves to {resolved}) is inside data "
                f"directory {data_dir}; keep keys apart from the data they protect, "
                f"e.g. under ~/.config/fedmarket/"
            )


def create_key_file(
    path: Path,
    kind: Literal["hmac", "fernet"],
    *,
    data_dirs: Iterable[Path] = (),
    replace: bool = False,
) -> bytes:
    """Generate a new key, write it to ``path`` (mode 0600), return its bytes.

    The returned bytes are what ``load_key(path, ...)`` will return later. Missing parent
    directories are created with mode 0700. An existing file is refused unless ``replace``
    (the caller has asked in words: a replaced pseudonym key orphans every pseudonym made with
    it); the new key is then written beside it and renamed over it, so a failure leaves the
    old key whole.
    """
    if replace and Path(path).expanduser().exists():
        path = Path(path).expanduser()
        staged = path.with_name(f".{path.name}.{secrets.token_hex(4)}.new")
        key = create_key_file(staged, kind, data_dirs=data_dirs)
        os.replace(staged, path)
        return key
    path = Path(path).expanduser()
    check_key_outside(path, data_dirs)
    if kind == "hmac":
        text = base64.urlsafe_b64encode(secrets.token_bytes(MIN_KEY_BYTES))
    elif kind == "fernet":
        text = Fernet.generate_key()
    else:
        raise ConfigError(
            f"unknown key kind {kind!r}; use 'hmac' (pseudonyms) or 'fernet' (encryption)"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # O_EXCL: never replace an existing key, that would orphan every pseudonym made with it.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise ConfigError(
            f"key file {path} already exists; fedmarket never overwrites a key. "
            f"Choose another path, or replace it deliberately with "
            f"`fedmarket keys new --force {path}` (pseudonyms or files made with the old key "
            f"are then orphaned)"
        ) from exc
    except OSError as exc:
        raise ConfigError(f"cannot create key file {path}: {exc.strerror or exc}") from exc
    try:
        if os.name != "nt":
            os.fchmod(fd, 0o600)  # the umask may have narrowed 0600 further; make it exact
        os.write(fd, text + b"\n")
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)  # no half-written key left behind
        raise
    os.close(fd)
    return base64.urlsafe_b64decode(text)


def fernet_from_key(key: bytes) -> Fernet:
    """Build a Fernet from the 32 decoded key bytes (or Fernet's own 44-byte base64 form)."""
    if not isinstance(key, bytes | bytearray):
        raise ConfigError(f"encryption key must be bytes, got {type(key).__name__}")
    key = bytes(key)
    token = base64.urlsafe_b64encode(key) if len(key) == FERNET_KEY_BYTES else key
    try:
        return Fernet(token)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise ConfigError(
            f"encryption key is {len(key)} bytes; Fernet needs exactly "
            f"{FERNET_KEY_BYTES} (generate one with `openssl rand -base64 32`)"
        ) from exc


def prepared_data_fernet(
    data_dir: Path, key_file: Path | None = None, *, outside: Iterable[Path] = ()
) -> Fernet | None:
    """The key that opens ``data_dir``'s prepared files, or None when they are plain.

    Every reader of prepared data calls this before it trains, so a missing or wrong key is
    one clear error at the start instead of a failure in every client (in a simulation,
    failures that are only counted). The key comes from ``key_file``, else from
    $FEDMARKET_ENCRYPTION_KEY, and is tried at once on the smallest encrypted file. A key
    file must lie outside ``data_dir`` and every directory in ``outside`` (a run directory
    is shared with its results). Plain data ignores a given key.
    """
    data_dir = Path(data_dir)
    probe = store.key_probe(data_dir, store.read_manifest(data_dir))
    if probe is None:
        if key_file is not None:
            log.warning("%s is not encrypted; the key file %s is not used", data_dir, key_file)
        return None
    if key_file is not None:
        check_key_outside(key_file, [data_dir, *outside])
        source = f"the encryption key from file {key_file}"
    elif ENCRYPTION_KEY_ENV in os.environ:
        source = f"the encryption key in ${ENCRYPTION_KEY_ENV}"
    else:
        raise ConfigError(
            f"{data_dir} holds encrypted prepared data; pass --encryption-key-file or set "
            f"{ENCRYPTION_KEY_ENV} to the key it was prepared with"
        )
    fernet = fernet_from_key(load_key(key_file, ENCRYPTION_KEY_ENV, purpose="encryption key"))
    store.decrypt_file(probe, fernet, key=source)
    return fernet


def encryption_fernet(
    encrypt: bool, key_file: Path | None, data_dirs: Iterable[Path]
) -> Fernet | None:
    """The key prepared files are encrypted with (``--encrypt``, or a key file given): a
    file outside the data, else $FEDMARKET_ENCRYPTION_KEY; None for plain files."""
    if not encrypt and key_file is None:
        return None
    if key_file is not None:
        check_key_outside(key_file, data_dirs)
    return fernet_from_key(load_key(key_file, ENCRYPTION_KEY_ENV, purpose="encryption at rest"))


def default_key_path() -> Path:
    """A per-user pseudonym key, outside any data directory, so repeated runs agree."""
    base = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config"))
    return base / "fedmarket" / "pseudonym.key"


def resolve_pseudonym_key(
    key_file: Path | None,
    data_dirs: list[Path],
    *,
    on_create: Callable[[Path], None] | None = None,
) -> bytes:
    """The pseudonym key: ``key_file``, else $FEDMARKET_PSEUDONYM_KEY, else the user's key.

    The user's key is created once (0600, outside ``data_dirs``); ``on_create`` is told its
    path so the caller can say where it is. A concurrent caller that created it first wins.
    """
    if key_file is None and not os.environ.get(PSEUDONYM_KEY_ENV):
        key_file = default_key_path()
        if not key_file.exists():
            try:
                create_key_file(key_file, "hmac", data_dirs=data_dirs)
            except ConfigError:
                if not key_file.exists():
                    raise
            else:
                if on_create is not None:
                    on_create(key_file)
    if key_file is not None:
        check_key_outside(key_file, data_dirs)
    return load_key(key_file, PSEUDONYM_KEY_ENV, purpose="pseudonym key")
