"""Progress display for long work, kept out of the library functions.

Library code takes a plain callback (``advance(n)``) so it stays testable and silent;
the CLI turns that into a rich progress bar on stderr.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
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
