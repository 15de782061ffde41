import datetime as dt
import ipaddress
import socket
import ssl
import stat
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from fedmarket.deploy.certs import certificate_names, generate, node_names, parse_hosts
from fedmarket.errors import ConfigError


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("certs") / "certs"
    return generate(out, hosts=["10.251.7.1", "superlink.example.org"], nodes=node_names(2))


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_private_keys_are_0600_and_public_files_readable(bundle):
    for path in (bundle.ca_key, bundle.server_key, *(n.private for n in bundle.nodes)):
        assert mode(path) == 0o600, path
    for path in (bundle.ca_cert, bundle.server_cert, *(n.public for n in bundle.nodes)):
        assert mode(path) == 0o644, path
    assert mode(bundle.out) == 0o700


def test_server_certificate_names_and_chain(bundle):
    assert certificate_names(bundle.server_cert) == (
        "localhost",
        "superlink.example.org",
        "127.0.0.1",
        "::1",
        "10.251.7.1",
    )
    ca = x509.load_pem_x509_certificate(bundle.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(bundle.server_cert.read_bytes())
    server.verify_directly_issued_by(ca)  # raises if the signature or issuer is wrong
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    usage = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert server.not_valid_after_utc - server.not_valid_before_utc == dt.timedelta(
        days=365, minutes=5
    )


def test_node_keys_are_openssh_ecdsa_on_a_nist_curve(bundle):
    # flwr loads these with load_ssh_private_key / load_ssh_public_key and refuses Ed25519.
    for node in bundle.nodes:
        private = serialization.load_ssh_private_key(node.private.read_bytes(), password=None)
        public = serialization.load_ssh_public_key(node.public.read_bytes())
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        assert private.curve.name == "secp384r1"
        assert node.public.read_text().startswith("ecdsa-sha2-nistp384 ")
        assert private.public_key().public_numbers() == public.public_numbers()
    assert [n.name for n in bundle.nodes] == ["supernode-0", "supernode-1"]


def test_python_tls_client_trusts_the_server_only_through_the_ca(bundle, tmp_path):
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(bundle.server_cert, bundle.server_key)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve(count: int) -> None:
        for _ in range(count):
            conn, _ = listener.accept()
            try:
                with server_ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"ok")
            except (ssl.SSLError, OSError):
                pass

    thread = threading.Thread(target=serve, args=(2,), daemon=True)
    thread.start()
    trusting = ssl.create_default_context(cafile=str(bundle.ca_cert))
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        trusting.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.recv(2) == b"ok"
    other = generate(tmp_path / "other")  # another consortium's CA must not be trusted
    stranger = ssl.create_default_context(cafile=str(other.ca_cert))
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        stranger.wrap_socket(raw, server_hostname="127.0.0.1")
    thread.join(5)
    listener.close()


def test_rerun_keeps_everything_and_adds_new_nodes(bundle, tmp_path):
    before = {p: p.read_bytes() for p in (bundle.ca_cert, bundle.ca_key, bundle.server_cert)}
    again = generate(bundle.out, hosts=["10.251.7.1"], nodes=node_names(3))
    assert {p: p.read_bytes() for p in before} == before
    assert again.created == (again.nodes[2].private, again.nodes[2].public)


def test_server_certificate_not_covering_new_hosts_is_refused(bundle):
    with pytest.raises(ConfigError, match=r"does not cover 10\.9\.9\.9"):
        generate(bundle.out, hosts=["10.9.9.9"])


def test_existing_key_is_never_overwritten(tmp_path):
    out = tmp_path / "c"
    generate(out)
    (out / "server.crt").unlink()
    with pytest.raises(ConfigError, match=r"only one of server\.crt / server\.key"):
        generate(out)


@pytest.mark.parametrize("hosts", ["bad host", "a/b", "-x"])
def test_bad_host_names_are_refused(hosts):
    with pytest.raises(ConfigError, match="neither an IP address nor a DNS name"):
        parse_hosts(hosts)


def test_parse_hosts_adds_local_names_once():
    assert parse_hosts("LOCALHOST, 10.0.0.5,,sl") == (
        "localhost",
        "127.0.0.1",
        "::1",
        "10.0.0.5",
        "sl",
    )
    assert ipaddress.ip_address(parse_hosts(["::1"])[2]).version == 6


def test_bad_node_names_and_counts(tmp_path):
    with pytest.raises(ConfigError, match="SuperNode name"):
        generate(tmp_path / "c", nodes=["../evil"])
    with pytest.raises(ConfigError, match="--nodes"):
        node_names(-1)
    with pytest.raises(ConfigError, match="--days"):
        generate(tmp_path / "c", days=0)


def test_certs_command_prints_what_it_made_and_fails_cleanly(tmp_path):
    from typer.testing import CliRunner

    from fedmarket.cli import app

    runner = CliRunner()
    done = runner.invoke(
        app, ["certs", "--out", str(tmp_path / "c"), "--hosts", "10.0.0.5", "--nodes", "1"]
    )
    assert done.exit_code == 0, done.output
    assert "created" in done.output and "supernode-0" in done.output
    assert "10.0.0.5" in done.output
    again = runner.invoke(app, ["certs", "--out", str(tmp_path / "c"), "--hosts", "10.0.0.6"])
    assert again.exit_code == 2 and "error:" in again.output and "Traceback" not in again.output
