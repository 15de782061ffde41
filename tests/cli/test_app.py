"""The `fedmarket` app itself: its options before any command, and a mistyped command or
option answered once, with the one meant."""

from __future__ import annotations

import pytest

import fedmarket
from fedmarket.cli.app import Command, app
from tests.cli.output import cli, ok, usage_error


def test_version_prints_the_package_version_and_exits():
    assert ok(cli("--version")) == f"fedmarket {fedmarket.__version__}\n"


def test_version_comes_before_the_missing_command_check():
    """Eager, as --help is: no command is needed, and a command after it does not run."""
    assert ok(cli("--version", "simulate", "--run-config", "num-server-rounds=0")).startswith(
        "fedmarket "
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["simulat"], "No such command 'simulat'. Did you mean 'simulate'?"),
        (["centralized"], "No such command 'centralized'. Did you mean 'centralised'?"),
        (["data", "synt"], "No such command 'synt'. Did you mean 'synth'?"),
        (["zzz"], "No such command 'zzz'."),
    ],
)
def test_a_mistyped_command_names_the_command_meant_once(args, message):
    """typer and click each add a "Did you mean" of their own; the app says it once."""
    assert usage_error(cli(*args)) == message


def test_a_mistyped_option_of_a_command_without_run_settings_names_the_option_meant():
    text = usage_error(cli("baselines", "--sequence-model", "lstm"))
    assert text == "No such option '--sequence-model'. Did you mean '--sequence-models'?"


def test_every_command_suggests_through_the_app():
    """Commands are ``Command`` (one suggestion, run settings pointed to) without asking."""
    commands = [
        c
        for group in (app, *(t.typer_instance for t in app.registered_groups))
        for c in group.registered_commands
    ]
    assert commands and all(issubclass(c.cls, Command) for c in commands)


def _all_commands(command, path=()):
    """Every (name path, click command) under ``command``, groups walked."""
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _all_commands(sub, (*path, name))


def test_no_help_text_loses_brackets_to_rich_markup():
    """The help is rich markup: an unescaped ``'fedmarket[export]'`` printed as
    ``'fedmarket'``, dropping the extra a user must install; brackets are written ``\\[``."""
    from rich.text import Text
    from typer.main import get_command

    lost = []
    for path, command in _all_commands(get_command(app)):
        texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
        for text in texts:
            if Text.from_markup(text).plain != text.replace("\\[", "["):
                lost.append((" ".join(path), text))
    assert lost == []
