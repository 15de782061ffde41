"""The `fedmarket` typer app, its error handling and its help; each command is a module beside
this one.

Errors fedmarket raises on purpose are printed as one red line without a traceback and
exit with status 2; anything else is a bug and keeps its traceback.

A mistyped command or option says once what was probably meant (typer and click each add a
"Did you mean" of their own, so the stock app printed it twice, and click's guess for
``--rounds`` was ``--out``): ``Group`` and ``Command`` below word both through
``fedmarket.names.closest``, and an option that is really a run setting points to
``--run-config``. A command that reads ``--run-config`` lists the settings it reads, with their
defaults, under its ``--help`` (``Command.reading``), generated from ``fedmarket.config``.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

from fedmarket.config import DEFAULTS, SETTINGS_HELP, format_overrides
from fedmarket.errors import FedmarketError
from fedmarket.names import closest, did_you_mean, either
from fedmarket.progress import console


def _sentence(hint: str) -> str:
    """``"did you mean 'x'? "`` as a sentence of an error message."""
    return hint.strip()[:1].upper() + hint.strip()[1:]


class Group(TyperGroup):
    """A group whose unknown command names the closest commands once."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:  # click's own lookup, without typer's second suggestion
            return click.Group.resolve_command(self, ctx, args)
        except click.UsageError:
            name = args[0] if args else ""
            if not name or name.startswith("-") or self.get_command(ctx, name) is not None:
                raise
            hint = did_you_mean(name, self.list_commands(ctx))
            message = f"No such command {name!r}. {_sentence(hint)}".strip()
            raise click.UsageError(message, ctx) from None


class Command(TyperCommand):
    """A command whose unknown option names the closest real options, and, if it reads
    ``--run-config``, the run settings it may have meant, with the option's value in place.

    ``run_settings`` are the keys the command's help lists (the epilog, with their defaults);
    ``settable`` those its ``--run-config`` takes, which an unknown option may point to. Make
    such a command with ``cls=Command.reading(keys)``.
    """

    run_settings: tuple[str, ...] = ()
    settable: tuple[str, ...] = ()
    setting_defaults: Mapping[str, Any] = DEFAULTS
    setting_notes: Mapping[str, str] = {}
    settings_note: str = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.run_settings and not self.epilog:
            self.epilog = run_settings_epilog(
                self.run_settings,
                defaults=self.setting_defaults,
                notes=self.setting_notes,
                note=self.settings_note,
            )

    @classmethod
    def reading(
        cls,
        keys: Iterable[str],
        *,
        defaults: Mapping[str, Any] | None = None,
        notes: Mapping[str, str] | None = None,
        set_elsewhere: Mapping[str, str] | None = None,
        note: str = "",
    ) -> type[Command]:
        """A command class whose ``--run-config`` reads ``keys``: its help lists them (with
        ``defaults`` over DEFAULTS, ``notes`` over their one-line help, and ``note`` after),
        and an unknown option close to one of them says how to set it. Keys in
        ``set_elsewhere`` are listed with that text instead (e.g. "set with --data") and are
        never suggested for ``--run-config``, which refuses them."""
        keys = tuple(keys)
        elsewhere = dict(set_elsewhere or {})
        return type(
            "RunSettingsCommand",
            (cls,),
            {
                "run_settings": keys,
                "settable": tuple(k for k in keys if k not in elsewhere),
                "setting_defaults": {**DEFAULTS, **(defaults or {})},
                "setting_notes": {**(notes or {}), **elsewhere},
                "settings_note": note,
            },
        )

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        given = list(args)  # click's parser consumes the list it is given
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as exc:
            message = self._unknown_option(exc.option_name, given)
            raise click.NoSuchOption(exc.option_name, message=message, ctx=ctx) from None

    def _unknown_option(self, option: str, args: list[str]) -> str:
        name = option.lstrip("-").split("=", 1)[0]
        options = [o for p in self.params for o in (*p.opts, *p.secondary_opts)]
        long_names = [o.lstrip("-") for o in options if o.startswith("--")]
        parts = [f"No such option {option!r}."]
        real = closest(name, long_names)
        if real:
            parts.append(f"Did you mean {either([f'--{o}' for o in real])}?")
        keys = closest(name, self.settable)
        if keys:
            value = _value_after(option, args)
            examples = " or ".join(
                f'"{k}={value}"' if value is not None else f'"{format_overrides({k: DEFAULTS[k]})}"'
                for k in keys
            )
            parts.append(f"Run settings are set with --run-config, e.g. --run-config {examples}.")
        return " ".join(parts)


def _value_after(option: str, args: list[str]) -> str | None:
    """The value given to an unknown option, as a TOML value (a word quoted)."""
    value = None
    for i, arg in enumerate(args):
        if arg.startswith(option + "="):
            value = arg.split("=", 1)[1]
        elif arg == option and i + 1 < len(args) and not args[i + 1].startswith("--"):
            value = args[i + 1]
        if value is not None:
            break
    if value is None:
        return None
    try:
        tomllib.loads(f"v = {value}")
        return value
    except tomllib.TOMLDecodeError:
        return f"'{value}'"


def run_settings_epilog(
    keys: Iterable[str],
    *,
    defaults: Mapping[str, Any] = DEFAULTS,
    notes: Mapping[str, str] | None = None,
    note: str = "",
) -> str:
    """The help text listing ``keys`` as ``key=default  meaning``, one per line, in
    ``--run-config`` syntax so an entry can be copied as it is.

    Typer's rich help joins single line breaks and keeps double ones, so entries are
    separated by blank lines; the text is escaped, as the help is rich markup.
    """
    notes = notes or {}
    lines = [
        'Run settings (--run-config "key=value ..."; values are TOML, as flwr reads them, '
        "so strings are quoted: --run-config \"num-server-rounds=5 model='lstm'\"). "
        "Each with its default:"
    ]
    keys = list(keys)
    entries = {k: format_overrides({k: defaults[k]}) for k in keys}
    width = max(map(len, entries.values()), default=0)
    lines += [f"{entries[k]:<{width}}  {notes.get(k, SETTINGS_HELP[k])}" for k in keys]
    if note:
        lines.append(note)
    return escape("\n\n".join(lines))


class Typer(typer.Typer):
    """A typer app whose commands are ``Command`` (one suggestion for a mistyped option)
    unless they name a subclass, so a new command gets it without asking."""

    def command(
        self, name: str | None = None, *, cls: type[TyperCommand] | None = None, **kw: Any
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return super().command(name, cls=cls or Command, **kw)


app = Typer(
    cls=Group,
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


data_app = Typer(
    cls=Group, no_args_is_help=True, help="Synthesise, prepare and inspect retailer data."
)
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

# Every command that trains in its own process sets torch's threads the same way
# (fedmarket.threads: torch's default spin-waits on a loaded machine).
Threads = Annotated[
    int | None,
    typer.Option(
        "--threads",
        help="torch threads for training in this process (else $FEDMARKET_THREADS, else "
        "$OMP_NUM_THREADS, else the usable cores less the busy ones).",
        show_default=False,
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
