"""`fedmarket keys new`: make a pseudonym or encryption key file in one line.

A user bringing a real export was told `--key-file` must exist, and not how to make one; the
`openssl` recipe in the README needs a umask trick to get the mode right. This command writes
the key the way fedmarket reads it (one line of base64, mode 0600) and says who may hold it.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from fedmarket.cli.app import Group, Typer, app, friendly_errors
from fedmarket.progress import console

keys_app = Typer(cls=Group, no_args_is_help=True, help="Make secret key files.")
app.add_typer(keys_app, name="keys")


class KeyKind(StrEnum):
    pseudonym = "pseudonym"
    encryption = "encryption"


# What each key protects and who may hold it, printed once when it is made.
_ABOUT = {
    KeyKind.pseudonym: (
        "It turns this retailer's customer and session ids into pseudonyms (HMAC-SHA256): keep "
        "it at the retailer, outside every data directory, and never send it to the server or "
        "to another retailer (whoever holds it can re-identify customers by hashing candidate "
        "ids). Reuse it for every export of this retailer so pseudonyms stay the same. "
        "Use it with: fedmarket data prepare --key-file {path} ..."
    ),
    KeyKind.encryption: (
        "It encrypts prepared data at rest (Fernet): keep it outside every data and run "
        "directory, only on the machines that read that data; without it the data cannot be "
        "opened. Use it with: fedmarket data prepare --encrypt --encryption-key-file {path} "
        "..., then --encryption-key-file {path} on every command that reads the data."
    ),
}


@keys_app.command("new")
@friendly_errors
def keys_new(
    path: Annotated[Path, typer.Argument(help="Where to write the key (created 0600).")],
    kind: Annotated[
        KeyKind,
        typer.Option(help="pseudonym: for data prepare --key-file; encryption: for --encrypt."),
    ] = KeyKind.pseudonym,
    force: Annotated[
        bool,
        typer.Option(
            help="Replace an existing key file (every pseudonym or file made with the old "
            "key is then orphaned)."
        ),
    ] = False,
) -> None:
    """Write a new random key (32 bytes from `secrets`, base64, mode 0600)."""
    from fedmarket.data.protect.keys import create_key_file

    create_key_file(path, "hmac" if kind is KeyKind.pseudonym else "fernet", replace=force)
    shown = escape(str(path))
    console.print(f"wrote a new {kind.value} key to {shown} (mode 0600).", soft_wrap=True)
    console.print(escape(_ABOUT[kind].format(path=path)), soft_wrap=True)
