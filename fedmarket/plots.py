"""Shared figure helpers: one style, PNG out, nothing on screen.

Figures are built from ``matplotlib.figure.Figure`` with the Agg canvas rather than
``pyplot``, so nothing here touches the global backend or pyplot's figure registry: safe in
Flower simulation workers, in tests and on headless servers, and no figure leaks memory.
Add new plot functions here; build them with `new_figure` and finish with `save_figure`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import matplotlib as mpl
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from fedmarket.errors import ConfigError

DPI: Final[int] = 120
STYLE: Final[dict[str, Any]] = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "lines.linewidth": 1.6,
}


@contextmanager
def style() -> Iterator[None]:
    """The project style, applied only inside the block (rcParams are global otherwise)."""
    with mpl.rc_context(STYLE):
        yield


def new_figure(size: tuple[float, float] = (5.0, 3.6)) -> tuple[Figure, Axes]:
    """A figure with one axes on the Agg canvas; call inside `style()`."""
    figure = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def save_figure(figure: Figure, path: str | Path) -> Path:
    """Write ``figure`` as PNG at the project DPI, creating parent folders."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ConfigError(f"{path}: figures are written as PNG; give a path ending in .png")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI, format="png")
    return path


def gains_plot(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: str | Path,
    title: str = "Cumulative gains",
) -> Path:
    """Cumulative-gains curves (from `marketing.cumulative_gains`) against random targeting."""
    if not curves:
        raise ConfigError("gains_plot: no curves given")
    with style():
        figure, ax = new_figure()
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="random targeting")
        for label, (x, y) in curves.items():
            ax.plot(x, y, label=label)
        ax.set(
            xlim=(0, 1),
            ylim=(0, 1.02),
            title=title,
            xlabel="fraction of customers targeted",
            ylabel="fraction of buyers captured",
        )
        ax.legend(loc="lower right")
        return save_figure(figure, path)


def learning_curve_plot(
    history: Sequence[Mapping[str, Any]],
    path: str | Path,
    keys: Sequence[str],
    *,
    x_key: str = "round",
    title: str = "Learning curve",
) -> Path:
    """One line per metric key over rounds/epochs; missing values show as gaps.

    ``history`` is a list of per-round dicts (e.g. rows of rounds.csv). The x axis is
    ``x_key`` when every row has it, else the position 1..n.
    """
    if not history:
        raise ConfigError("learning_curve_plot: history is empty; nothing to plot")
    if not keys:
        raise ConfigError("learning_curve_plot: no metric keys given")
    absent = [k for k in keys if not any(k in row for row in history)]
    if absent:
        known = sorted({k for row in history for k in row})
        raise ConfigError(
            f"learning_curve_plot: keys {absent} appear in no history row; available: {known}"
        )
    if all(x_key in row for row in history):
        x, xlabel = [float(row[x_key]) for row in history], x_key
    else:
        x, xlabel = list(range(1, len(history) + 1)), "step"
    with style():
        figure, ax = new_figure()
        for key in keys:
            y = [_as_float(row.get(key), key) for row in history]
            ax.plot(x, y, marker="o", markersize=3, label=key)
        ax.set(title=title, xlabel=xlabel, ylabel="value")
        ax.legend(loc="best")
        return save_figure(figure, path)


def _as_float(value: Any, key: str) -> float:
    """None and "" (a gap in a CSV row) plot as gaps; anything else must be a number."""
    if value is None or value == "":
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"learning_curve_plot: {key}={value!r} is not a number") from exc
