"""The `fedmarket` typer app and its error handling; each command is a module beside this one.

Errors fedmarket raises on purpose are printed as one red line without a traceback and
exit with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from fedmarket.errors import FedmarketError
from fedmarket.progress import console

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    help="Federated, differentially private consumer-behaviour prediction.",
)


def _print_version(value: bool) -> None:
    if value:
        from fedmarket import __version__

        typer.echo(f"fedmarket {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,  # before the missing-command check, as `--help` is
            help="Print fedmarket's version and exit.",
        ),
    ] = False,
) -> None:
    """Federated, differentially private consumer-behaviour prediction."""


data_app = typer.Typer(no_args_is_help=True, help="Synthesise, prepare and inspect retailer data.")
app.add_typer(data_app, name="data")

# Every command that reads prepared data takes the key of encrypted data the same way.
EncryptionKeyFile = Annotated[
    Path | None,
    typer.Option(
        "--encryption-key-file",
        help="Key of encrypted prepared data (else $FEDMARKET_ENCRYPTION_KEY); keep it "
        "outside every data and run directory.",
    ),
]


def friendly_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except FedmarketError as exc:
            # escape: messages quote paths and values, and "[...]" in them is not rich markup;
            # soft_wrap: one line however narrow the terminal, so logs and grep keep it whole.
            console.print(
                f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(code=2) from None

    return wrapper
