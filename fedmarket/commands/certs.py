"""Body of `fedmarket certs`."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape

from fedmarket.certs import certificate_names, generate, node_names
from fedmarket.progress import console


def certs(out: Path, hosts: str, nodes: int, days: int) -> None:
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
