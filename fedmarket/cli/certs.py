"""`fedmarket certs`: TLS certificates for the SuperLink, keys for the SuperNodes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from fedmarket.cli.app import app, friendly_errors
from fedmarket.deploy.certs import certificate_names, generate, node_names
from fedmarket.progress import console


@app.command("certs")
@friendly_errors
def certs_cmd(
    out: Annotated[
        Path,
        typer.Option(
            help="Directory for ca.crt, server.crt/.key and supernodes/*.key|.pub (created 0700)."
        ),
    ],
    hosts: Annotated[
        str,
        typer.Option(
            help="Comma-separated names/IPs SuperNodes dial for the "
            "SuperLink; localhost, 127.0.0.1 and ::1 are "
            "always included."
        ),
    ] = "",
    nodes: Annotated[
        int, typer.Option(help="SuperNode key pairs to create (supernode-0 ... supernode-N-1).")
    ] = 3,
    days: Annotated[
        int, typer.Option(help="Validity of the server certificate in days (the CA: twice that).")
    ] = 365,
) -> None:
    """TLS certificates for the SuperLink and authentication keys for the SuperNodes."""
    bundle = generate(
        out, hosts=hosts.split(",") if hosts else (), nodes=node_names(nodes), days=days
    )
    made = set(bundle.created)
    for label, path in (
        ("CA certificate (give to every SuperNode and CLI)", bundle.ca_cert),
        ("CA key (keep offline; signs server certificates)", bundle.ca_key),
        ("SuperLink certificate", bundle.server_cert),
        ("SuperLink key", bundle.server_key),
    ):
        state = "created" if path in made else "kept"
        console.print(f"{state:8} {escape(str(path))}  {label}")
    for node in bundle.nodes:
        state = "created" if node.private in made else "kept"
        console.print(
            f"{state:8} {escape(str(node.private))} / .pub  {node.name} key pair "
            "(private key stays on that SuperNode; register the .pub)"
        )
    names = certificate_names(bundle.server_cert)
    console.print(f"SuperLink certificate names: {escape(', '.join(names))}")
