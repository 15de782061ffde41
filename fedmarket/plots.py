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
from matplotlib.ticker import MaxNLocator

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


def new_panels(n: int, size: tuple[float, float] = (9.0, 3.6)) -> tuple[Figure, list[Axes]]:
    """A figure with ``n`` axes side by side on the Agg canvas; call inside `style()`."""
    figure = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, [figure.add_subplot(1, n, i + 1) for i in range(n)]


def integer_ticks(ax: Axes, last: int) -> None:
    """Rounds and epochs are whole numbers: ticks at integers only, 1..last in view."""
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(0.5, max(last, 1) + 0.5)


def legend_below(ax: Axes, ncols: int = 1) -> None:
    """The legend under the axes, where long labels in words never hide a line."""
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=ncols, fontsize=7)


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


def reliability_plot(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: str | Path,
    title: str = "Reliability on test customers",
) -> Path:
    """Reliability diagram: per bin of predicted probability, its mean probability (x)
    against the observed buy rate (y), one line per model (empty bins left out); on the
    diagonal a probability means what it says (`fedmarket.calibration.reliability`)."""
    if not curves:
        raise ConfigError("reliability_plot: no curves given")
    with style():
        figure, ax = new_figure()
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
        for label, (x, y) in curves.items():
            full = [(a, b) for a, b in zip(x, y, strict=True) if math.isfinite(a)]
            ax.plot([a for a, _ in full], [b for _, b in full], marker="o", label=label)
        ax.set(
            xlim=(0, 1),
            ylim=(0, 1.02),
            title=title,
            xlabel="mean predicted probability (bin)",
            ylabel="observed buy rate (bin)",
        )
        legend_below(ax)
        return save_figure(figure, path)


def learning_curve_plot(
    history: Sequence[Mapping[str, Any]],
    path: str | Path,
    keys: Sequence[str],
    *,
    x_key: str = "round",
    title: str = "Learning curve",
    ylabel: str = "value",
    labels: Mapping[str, str] | None = None,
) -> Path:
    """One line per metric key over rounds/epochs; missing values show as gaps.

    ``history`` is a list of per-round dicts (e.g. rows of rounds.csv). The x axis is
    ``x_key`` when every row has it, else the position 1..n; ticks fall on whole numbers.
    ``labels`` names the lines in words (the key otherwise).
    """
    with style():
        figure, ax = new_figure()
        learning_curve_axes(ax, history, keys, x_key=x_key, labels=labels)
        ax.set(title=title, ylabel=ylabel)
        return save_figure(figure, path)


def learning_curve_axes(
    ax: Axes,
    history: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    *,
    x_key: str = "round",
    labels: Mapping[str, str] | None = None,
) -> None:
    """The lines of `learning_curve_plot` on ``ax`` (a panel of a larger figure)."""
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
    for key in keys:
        y = [_as_float(row.get(key), key) for row in history]
        ax.plot(x, y, marker="o", markersize=3, label=(labels or {}).get(key, key))
    ax.set(xlabel=xlabel)
    integer_ticks(ax, max(int(v) for v in x))
    legend_below(ax)


def gains_lift_figure(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    mark_k: float | None = None,
    title: str = "Targeting the customers the model ranks highest",
) -> Figure:
    """Two panels a marketing lead reads: the cumulative gains (share of buyers reached
    against share of customers contacted, random targeting the diagonal) and the lift
    (how many times random targeting's conversion rate) at each share contacted.

    ``curves``: label -> `marketing.cumulative_gains` output. ``mark_k`` draws the cut
    the report's tables use. Call inside `style()`.
    """
    if not curves:
        raise ConfigError("gains_lift_figure: no curves given")
    figure, (gains, lift) = new_panels(2)
    gains.plot([0, 1], [0, 1], linestyle="--", color="grey", label="random targeting")
    lift.axhline(1.0, linestyle="--", color="grey", label="random targeting (1x)")
    top = 1.0
    for label, (x, y) in curves.items():
        xs, ys = list(map(float, x)), list(map(float, y))
        (line,) = gains.plot(xs, ys, label=label)
        start = max(0.01, 1.0 / max(len(xs) - 1, 1))
        pts = [(a, b / a) for a, b in zip(xs, ys, strict=True) if a >= start - 1e-12]
        if pts:
            lift.plot(*zip(*pts, strict=True), color=line.get_color(), label=label)
            top = max(top, max(v for _, v in pts))
    for ax in (gains, lift):
        if mark_k is not None:
            ax.axvline(mark_k, color="black", linestyle=":", linewidth=1)
    gains.set(
        xlim=(0, 1),
        ylim=(0, 1.02),
        title="Cumulative gains",
        xlabel="share of customers contacted (best-ranked first)",
        ylabel="share of all buyers reached",
    )
    lift.set(
        xlim=(0, 1),
        ylim=(0, top * 1.08),
        title="Lift over random targeting",
        xlabel="share of customers contacted (best-ranked first)",
        ylabel="conversion rate / base rate (x random)",
    )
    gains.legend(loc="lower right")
    lift.legend(loc="upper right")  # short labels; the curves rarely reach the corners
    figure.suptitle(title)
    return figure


def _as_float(value: Any, key: str) -> float:
    """None and "" (a gap in a CSV row) plot as gaps; anything else must be a number."""
    if value is None or value == "":
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"learning_curve_plot: {key}={value!r} is not a number") from exc
