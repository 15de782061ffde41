"""Progress display and the terminal's log, kept out of the library functions.

Library code takes a plain callback (``advance(n)``) so it stays testable and silent;
the CLI turns that into a rich progress bar on stderr. Every bar names its unit, so a
count reads as "76,377 events", not "76377/?".

The terminal shows what a person acts on: fedmarket's lines, and Flower's warnings and
errors. Everything else a run produces (Flower's INFO and DEBUG lines, its deprecation
notices, third-party Python warnings from Ray, Flower, Opacus and torch) goes to the run
directory's log file only (``log_file``), where it is there when something goes wrong.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)

# Flower's notices that repeat on every run and ask nothing of the user (kept in the log file).
FLOWER_NOTICES = ("DEPRECATED FEATURE",)
# Python warnings from installed packages but these go to the log file, not the terminal.
OWN_PACKAGES = ("fedmarket", "clients", "server", "strategies")


@contextmanager
def progress_bar(
    description: str,
    total: float | None,
    *,
    unit: str,
    enabled: bool = True,
    completed: float = 0,
) -> Iterator[Callable[..., None]]:
    """Yield ``advance(n=1, description=None)``; a no-op when disabled (tests, quiet mode).

    With a ``total``: a bar, "3/12 epochs", elapsed time and the time remaining. Without
    one (rows of files not yet read): a spinner and the count so far, "76,377 events".
    ``completed``: work already done (a resumed run's rounds), counted in the bar. A bar
    opened inside another is removed when it is done.
    """
    if not enabled:
        yield lambda n=1, description=None: None
        return
    count = (
        f"{{task.completed:,.0f}}/{{task.total:,.0f}} {unit}"
        if total is not None
        else f"{{task.completed:,.0f}} {unit}"
    )
    columns: list[ProgressColumn | str] = [TextColumn("[progress.description]{task.description}")]
    if total is not None:
        columns += [BarColumn(), TextColumn(count), TimeElapsedColumn(), TimeRemainingColumn()]
    else:
        columns += [SpinnerColumn(), TextColumn(count), TimeElapsedColumn()]
    # A bar inside another (a sweep's runs, each with its rounds) goes when it is done,
    # so a sweep leaves one line per sweep, not one per point and stage.
    nested = _open_bars[0] > 0
    _open_bars[0] += 1
    try:
        with Progress(*columns, console=console, transient=nested) as bar:
            task = bar.add_task(description, total=total, completed=completed)

            def advance(n: float = 1, description: str | None = None) -> None:
                changes = {"description": description} if description else {}
                bar.update(task, advance=n, **changes)

            yield advance
    finally:
        _open_bars[0] -= 1


_open_bars = [0]  # progress bars open now (in this process)


class _ConsoleHandler(RichHandler):
    """The handler ``log_to_console`` installs (told apart from anyone else's)."""


class _FlowerConsole(logging.Filter):
    """On Flower's own console handler: its warnings and errors, less ``texts``.

    Flower logs every round's sampling and aggregation at INFO and its internals at DEBUG;
    fedmarket says the same in one line per round, and the log file keeps Flower's lines.
    """

    def __init__(self, texts: tuple[str, ...], level: int = logging.WARNING) -> None:
        super().__init__()
        self.texts, self.level = texts, level

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.partition(".")[0] == "flwr" and record.levelno < self.level:
            return False  # (the ServerApp under `flwr run` sends fedmarket's lines here too)
        return not any(text in record.getMessage() for text in self.texts)


class _OwnWarnings(logging.Filter):
    """Python warnings raised by fedmarket's code (third-party ones go to the file only).

    A captured warning's text starts with the file that raised it; fedmarket's own files are
    in a site-packages directory too when it is installed without ``-e``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        path = record.getMessage().split(":", 1)[0].replace("\\", "/")
        found = re.search(r"(?:^|/)(?:site|dist)-packages/([^/]+)", path)
        return found is None or found.group(1) in OWN_PACKAGES


# What Flower's console drops and the level it shows from: log_to_console's, kept for the
# quiet_flower() each run makes once Flower is imported (often after log_to_console, when
# Flower's console handler did not exist yet).
_flower_console: list[tuple[tuple[str, ...], int]] = [(FLOWER_NOTICES, logging.WARNING)]


def log_to_console(
    level: int, *, drop_flower: tuple[str, ...] = (), flower_level: int = logging.WARNING
) -> None:
    """fedmarket's log on the console through rich, at ``level``; Flower's console shows its
    records at ``flower_level`` and above, less its notices and any containing one of
    ``drop_flower``, until the next call: every ``quiet_flower()`` of the runs the command
    starts (each simulate of a bench or a sweep) applies these. Calling it again replaces,
    never stacks, the handlers and filters (the CLI's commands may run several times in one
    process)."""
    logger = logging.getLogger("fedmarket")
    for old in [h for h in logger.handlers if isinstance(h, _ConsoleHandler)]:
        logger.removeHandler(old)
    handler = _ConsoleHandler(console=console, show_path=False, markup=False)
    handler.setLevel(level)
    logger.addHandler(handler)
    logger.setLevel(min(level, logger.level or level))
    logger.propagate = False  # flwr/ray install root handlers; print each line once
    _flower_console[0] = (FLOWER_NOTICES + drop_flower, flower_level)
    quiet_flower()


def quiet_flower() -> None:
    """Flower's console: each record once, at the level and less the texts ``log_to_console``
    last asked for (Flower's notices, from WARNING, when nothing did).

    Opacus calls ``logging.basicConfig`` when it is imported, so every Flower record also
    reached the root logger's handler and was printed twice (with DEBUG lines among them):
    Flower's logger stops propagating, and its own console handler is filtered instead of
    the logger, so a file handler on it still receives everything. Called again (by every
    run once Flower is imported), it replaces its filter with the same settings.
    """
    drop, level = _flower_console[0]
    flower = logging.getLogger("flwr")
    flower.propagate = False
    for old in [f for f in flower.filters if isinstance(f, _FlowerConsole)]:
        flower.removeFilter(old)  # an older fedmarket filtered the logger itself
    for handler in _console_handlers(flower):
        for old in [f for f in handler.filters if isinstance(f, _FlowerConsole)]:
            handler.removeFilter(old)
        handler.addFilter(_FlowerConsole(drop, level))


def _console_handlers(logger: logging.Logger) -> list[logging.Handler]:
    """Handlers writing to a terminal stream (Flower's own), not to a file."""
    return [
        h
        for h in logger.handlers
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
    ]


class _ToRoot(logging.Handler):
    """Hands the root logger's handlers what they showed before the file asked for DEBUG."""

    def handle(self, record: logging.LogRecord) -> bool:
        if record.levelno >= self.level:
            logging.getLogger().callHandlers(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:  # handle() does the work
        pass


@contextmanager
def log_file(path: Path) -> Iterator[Path]:
    """Everything fedmarket and Flower log, at DEBUG, and every Python warning, in ``path``.

    Appends, so a resumed run adds to its log. Python warnings are captured through
    ``logging``: third-party ones (Ray's FutureWarning, Flower's and torch's deprecations)
    go to the file only, fedmarket's own also to the console. Undone on exit.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)-7s %(name)s [%(threadName)s] %(message)s")
    )
    loggers = [logging.getLogger(name) for name in ("fedmarket", "flwr", "py.warnings")]
    saved = [(lg, lg.level, lg.propagate) for lg in loggers]
    ours = loggers[0]
    to_root = _ToRoot(ours.getEffectiveLevel()) if ours.propagate else None
    if to_root is not None:  # no console of ours (the Python API): keep what root showed
        ours.addHandler(to_root)
        ours.propagate = False
    own_warnings = _ConsoleHandler(console=console, show_path=False, markup=False)
    own_warnings.addFilter(_OwnWarnings())
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    py_warnings = loggers[2]
    py_warnings.propagate = False  # not to the root handler Opacus installs
    py_warnings.addHandler(own_warnings)
    showwarning = warnings.showwarning
    logging.captureWarnings(True)
    try:
        yield path
    finally:
        logging.captureWarnings(False)
        warnings.showwarning = showwarning
        py_warnings.removeHandler(own_warnings)
        if to_root is not None:
            ours.removeHandler(to_root)
        for logger, level, propagate in saved:
            logger.removeHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate
        handler.close()
