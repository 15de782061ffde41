"""Strict checks of one setting at a time, so every module refuses the same values alike.

Python lets ``True`` pass for ``1`` and ``2.0`` compare equal to ``2``, so a setting checked
with ``<`` alone quietly accepts ``--rounds true`` or a float where a count was meant, and the
mistake surfaces far from where it was made. These checks refuse what a setting cannot mean
and say where the value came from, what it must be and what it was, e.g.
``training.epochs must be a positive integer, got 0``.

Modules that report bad data or privacy input pass their own ``error`` class, so callers keep
catching what they caught before. ``numpy=True`` also admits numpy scalars (any
``numbers.Integral`` / ``numbers.Real``, which numpy's scalar types register as) for settings
that are often read out of arrays. This module sits below the whole library: it imports
nothing from fedmarket but the errors.
"""

from __future__ import annotations

import math
import numbers
import os
from pathlib import Path
from typing import Any

from fedmarket.errors import ConfigError, FedmarketError


def is_int(value: Any, *, numpy: bool = False) -> bool:
    """An integer that is not a bool: ``True`` is an int to Python but never a count."""
    kind = numbers.Integral if numpy else int
    return isinstance(value, kind) and not isinstance(value, bool)


def is_number(value: Any, *, numpy: bool = False) -> bool:
    """A real number that is not a bool; NaN and infinity count here, ``number`` refuses them."""
    kind = numbers.Real if numpy else int | float
    return isinstance(value, kind) and not isinstance(value, bool)


def integer(
    name: str,
    value: Any,
    *,
    at_least: int | None = None,
    at_most: int | None = None,
    numpy: bool = False,
    must: str | None = None,
    error: type[FedmarketError] = ConfigError,
) -> int:
    """``value`` as an int, or ``error`` naming ``name``, the bounds (or ``must``) and the value.

    ``must`` replaces the generated "an integer >= 2" where a unit or an alternative helps
    whoever reads the message ("a positive number of retailers", "... or None").
    """
    if (
        not is_int(value, numpy=numpy)
        or (at_least is not None and value < at_least)
        or (at_most is not None and value > at_most)
    ):
        raise error(f"{name} must be {must or _integer_phrase(at_least, at_most)}, got {value!r}")
    return int(value)


def number(
    name: str,
    value: Any,
    *,
    at_least: float | None = None,
    above: float | None = None,
    at_most: float | None = None,
    below: float | None = None,
    numpy: bool = False,
    must: str | None = None,
    error: type[FedmarketError] = ConfigError,
) -> float:
    """``value`` as a finite float within the bounds, or ``error`` saying what it must be.

    NaN fails every comparison and infinity passes every lower bound, so either would slip
    past a bare bounds check and poison the arithmetic later; both are refused.
    """
    if (at_least is not None and above is not None) or (at_most is not None and below is not None):
        raise TypeError("number: give at most one lower bound and one upper bound")
    if (
        not is_number(value, numpy=numpy)
        or not math.isfinite(value)
        or (at_least is not None and value < at_least)
        or (above is not None and value <= above)
        or (at_most is not None and value > at_most)
        or (below is not None and value >= below)
    ):
        phrase = must or _number_phrase(at_least, above, at_most, below)
        raise error(f"{name} must be {phrase}, got {value!r}")
    return float(value)


def _integer_phrase(at_least: int | None, at_most: int | None) -> str:
    if at_least is not None and at_most is not None:
        return f"an integer between {at_least:,} and {at_most:,}"
    if at_least == 1:
        return "a positive integer"
    if at_least is not None:
        return f"an integer >= {at_least:,}"
    return "an integer" if at_most is None else f"an integer <= {at_most:,}"


def _number_phrase(
    at_least: float | None, above: float | None, at_most: float | None, below: float | None
) -> str:
    low = f"[{at_least:g}" if at_least is not None else f"({above:g}" if above is not None else ""
    high = f"{at_most:g}]" if at_most is not None else f"{below:g})" if below is not None else ""
    if low and high:  # an interval: finite goes without saying
        return f"a number in {low}, {high}"
    if above == 0:
        return "a positive finite number"
    for op, limit in ((">=", at_least), (">", above), ("<=", at_most), ("<", below)):
        if limit is not None:
            return f"a finite number {op} {limit:g}"
    return "a finite number"


def check_writable(directory: Path, option: str) -> None:
    """A directory that can be made and written here (its nearest existing ancestor is a
    writable directory): a clear error before the work, rather than a traceback when the
    first file is written."""
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{option} {directory}: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {directory}: {existing} is not writable by this user")
