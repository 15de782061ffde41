"""TLS certificates and SuperNode keys for a Flower deployment, made with ``cryptography``.

A consortium needs three kinds of material, each in the format flwr 1.41 reads:

- a private CA (``ca.crt``, ``ca.key``): every SuperNode and the ``flwr`` CLI trust the
  SuperLink because its certificate chains to ``ca.crt`` (``--root-certificates``);
- the SuperLink's server certificate (``server.crt``, ``server.key``, PEM), whose subject
  alternative names must hold every name or address a client dials: the SuperNodes dial
  the public host name, the SuperLink's own SuperExec and the CLI often dial 127.0.0.1;
- one EC key pair per SuperNode (``supernodes/<name>.key`` OpenSSH private key,
  ``supernodes/<name>.pub`` OpenSSH public line) for ``--enable-supernode-auth``: flwr
  loads the private key with ``load_ssh_private_key`` and accepts only NIST curves, so
  these are ECDSA P-384 keys (Ed25519 is refused by flwr).

Private keys are written 0600 and never overwritten. Running again in the same directory
keeps what exists and adds what is missing (e.g. more SuperNode keys); a server
certificate whose names no longer cover ``--hosts`` is an error, not a silent reuse.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fedmarket.checks import integer
from fedmarket.errors import ConfigError

# Names every server certificate carries: the SuperLink's own SuperExec, the CLI on the
# SuperLink host and a one-machine deployment dial these.
LOCAL_NAMES: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
CURVE = ec.SECP384R1
DEFAULT_DAYS = 365
_NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_HOST_NAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_*]([A-Za-z0-9_.-]*[A-Za-z0-9])?$")


@dataclass(frozen=True)
class NodeKey:
    """One SuperNode's key pair: the private key stays on that node, the .pub is registered."""

    name: str
    private: Path
    public: Path


@dataclass(frozen=True)
class CertBundle:
    """Where everything was written; ``created`` lists the files made by this call."""

    out: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    nodes: tuple[NodeKey, ...]
    hosts: tuple[str, ...]
    created: tuple[Path, ...]


def parse_hosts(text: str | Iterable[str] | None) -> tuple[str, ...]:
    """``"a,b"`` or an iterable of names/addresses, with LOCAL_NAMES added, validated, unique."""
    items = text.split(",") if isinstance(text, str) else list(text or ())
    out: list[str] = []
    for raw in [*LOCAL_NAMES, *items]:
        host = str(raw).strip()
        if not host:
            continue
        if _ip(host) is None and not _HOST_NAME.match(host):
            raise ConfigError(
                f"--hosts: {host!r} is neither an IP address nor a DNS name; give "
                "names such as superlink.example.org or 10.0.0.5, comma-separated"
            )
        if host.lower() not in (h.lower() for h in out):
            out.append(host)
    return tuple(out)


def node_names(count: int, prefix: str = "supernode") -> tuple[str, ...]:
    """``supernode-0`` … ``supernode-{count-1}``."""
    integer("--nodes", count, at_least=0)
    return tuple(f"{prefix}-{i}" for i in range(count))


def generate(
    out: Path,
    *,
    hosts: Sequence[str] = (),
    nodes: Sequence[str] = (),
    days: int = DEFAULT_DAYS,
    now: dt.datetime | None = None,
) -> CertBundle:
    """Create (or complete) the CA, server certificate and SuperNode keys under ``out``."""
    if days < 1:
        raise ConfigError(f"--days must be at least 1, got {days}")
    for name in nodes:
        if not _NODE_NAME.match(name):
            raise ConfigError(f"SuperNode name {name!r}: use letters, digits, '.', '_' or '-'")
    hosts = parse_hosts(hosts)
    now = now or dt.datetime.now(dt.UTC)
    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    created: list[Path] = []
    ca_cert_path, ca_key_path = out / "ca.crt", out / "ca.key"
    ca_cert, ca_key = _ensure_ca(ca_cert_path, ca_key_path, days, now, created)
    server_cert, server_key = out / "server.crt", out / "server.key"
    _ensure_server(server_cert, server_key, ca_cert, ca_key, hosts, days, now, created)
    node_dir = out / "supernodes"
    keys = tuple(_ensure_node(node_dir, name, created) for name in nodes)
    return CertBundle(
        out, ca_cert_path, ca_key_path, server_cert, server_key, keys, hosts, tuple(created)
    )


def certificate_names(cert_path: Path) -> tuple[str, ...]:
    """The DNS names and IP addresses in a certificate's subject alternative names."""
    cert = _load_cert(cert_path)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    return (
        *san.get_values_for_type(x509.DNSName),
        *(str(ip) for ip in san.get_values_for_type(x509.IPAddress)),
    )


# --- CA and server certificate ---------------------------------------------------------
def _ensure_ca(
    cert_path: Path, key_path: Path, days: int, now: dt.datetime, created: list[Path]
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    if cert_path.exists() != key_path.exists():
        missing = key_path if cert_path.exists() else cert_path
        raise ConfigError(
            f"{missing} is missing but its pair exists; restore it, or remove "
            f"{cert_path.parent} and re-run (every key must then be re-issued)"
        )
    if cert_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ConfigError(f"{key_path}: not an EC private key made by `fedmarket certs`")
        return _load_cert(cert_path), key
    key = ec.generate_private_key(CURVE())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fedmarket consortium"),
            x509.NameAttribute(NameOID.COMMON_NAME, "fedmarket private CA"),
        ]
    )
    cert = (
        _builder(name, name, key.public_key(), now, days * 2)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA384())
    )
    _write_private(key_path, _pem_key(key), created)
    _write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM), created)
    return cert, key


def _ensure_server(
    cert_path: Path,
    key_path: Path,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    hosts: Sequence[str],
    days: int,
    now: dt.datetime,
    created: list[Path],
) -> None:
    if cert_path.exists() and key_path.exists():
        have = {h.lower() for h in certificate_names(cert_path)}
        missing = [h for h in hosts if _canonical(h) not in have]
        if missing:
            raise ConfigError(
                f"{cert_path} does not cover {', '.join(missing)}; delete "
                f"{cert_path.name} and {key_path.name} to re-issue it for --hosts"
            )
        return
    if cert_path.exists() or key_path.exists():
        raise ConfigError(
            f"only one of {cert_path.name} / {key_path.name} exists in "
            f"{cert_path.parent}; delete it to re-issue the server certificate"
        )
    key = ec.generate_private_key(CURVE())
    common = next((h for h in hosts if h not in LOCAL_NAMES), "localhost")[:64]
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fedmarket consortium"),
            x509.NameAttribute(NameOID.COMMON_NAME, common),
        ]
    )
    san = [x509.IPAddress(ip) if (ip := _ip(h)) is not None else x509.DNSName(h) for h in hosts]
    cert = (
        _builder(subject, ca_cert.subject, key.public_key(), now, days)
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA384())
    )
    _write_private(key_path, _pem_key(key), created)
    _write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM), created)


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    now: dt.datetime,
    days: int,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
    )


# --- SuperNode keys -------------------------------------------------------------------
def _ensure_node(directory: Path, name: str, created: list[Path]) -> NodeKey:
    private, public = directory / f"{name}.key", directory / f"{name}.pub"
    if private.exists():
        key = serialization.load_ssh_private_key(private.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ConfigError(f"{private}: not an EC key; flwr needs ECDSA on a NIST curve")
        if not public.exists():  # derivable, so restore it rather than fail
            _write_public(public, _ssh_public(key), created)
        return NodeKey(name, private, public)
    if public.exists():
        raise ConfigError(
            f"{public} exists without {private.name}; delete it to create a new "
            "pair (and re-register the node)"
        )
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(CURVE())
    text = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    _write_private(private, text, created)
    _write_public(public, _ssh_public(key), created)
    return NodeKey(name, private, public)


def _ssh_public(key: ec.EllipticCurvePrivateKey) -> bytes:
    return (
        key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        + b"\n"
    )


# --- files ----------------------------------------------------------------------------
def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write_private(path: Path, data: bytes, created: list[Path]) -> None:
    """0600 from the first byte (O_EXCL: an existing key is never replaced)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise ConfigError(f"{path} already exists; fedmarket never overwrites a key") from exc
    try:
        os.fchmod(fd, 0o600)  # the umask may have narrowed it further; make it exact
        os.write(fd, data)
    finally:
        os.close(fd)
    created.append(path)


def _write_public(path: Path, data: bytes, created: list[Path]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    created.append(path)


def _load_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(Path(path).read_bytes())
    except ValueError as exc:
        raise ConfigError(f"{path}: not a PEM certificate ({exc})") from exc


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _canonical(host: str) -> str:
    ip = _ip(host)
    return str(ip) if ip is not None else host.lower()
