"""Progress display for long work, kept out of the library functions.

Library code takes a plain callback (``advance(n)``) so it stays testable and silent;
the CLI turns that into a rich progress bar on stderr.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)


@contextmanager
def progress_bar(
    description: str, total: float | None, *, enabled: bool = True
) -> Iterator[Callable[..., None]]:
    """Yield ``advance(n=1, description=None)``; a no-op when disabled (tests, quiet mode)."""
    if not enabled:
        yield lambda n=1, description=None: None
        return
    columns = [
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(description, total=total)

        def advance(n: float = 1, description: str | None = None) -> None:
            bar.update(task, advance=n, **({"description": description} if description else {}))

        yield advance


class _ConsoleHandler(RichHandler):
    """The handler ``log_to_console`` installs (told apart from anyone else's)."""


class _DropFlowerNoise(logging.Filter):
    """Drops Flower records containing any of ``texts`` (notices repeated on every run)."""

    def __init__(self, texts: tuple[str, ...]) -> None:
        super().__init__()
        self.texts = texts

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(text in record.getMessage() for text in self.texts)


def log_to_console(level: int, *, drop_flower: tuple[str, ...] = ()) -> None:
    """fedmarket's log on the console through rich, at ``level``; Flower records containing
    any of ``drop_flower`` are dropped. Calling it again replaces, never stacks, the handler
    and the filter (the CLI's commands may run several times in one process)."""
    logger = logging.getLogger("fedmarket")
    for old in [h for h in logger.handlers if isinstance(h, _ConsoleHandler)]:
        logger.removeHandler(old)
    logger.addHandler(_ConsoleHandler(console=console, show_path=False, markup=False))
    logger.setLevel(level)
    logger.propagate = False  # flwr/ray install root handlers; print each line once
    flower = logging.getLogger("flwr")
    for old in [f for f in flower.filters if isinstance(f, _DropFlowerNoise)]:
        flower.removeFilter(old)
    if drop_flower:
        flower.addFilter(_DropFlowerNoise(drop_flower))
