"""The tracking options every training command takes, and the line that says where the run
went. Tracking itself is ``fedmarket.tracking``; nothing here imports MLflow."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from fedmarket.progress import console

if TYPE_CHECKING:
    from fedmarket.tracking import Tracker, TrackingTarget

TrackingUri = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="Log settings, metrics and files to MLflow: a directory (e.g. mlruns, an SQLite "
        "store in it), sqlite:///path.db or a tracking server's http(s)://host:port. Off "
        "unless given; needs the tracking extra (pip install -e '.\\[tracking]').",
    ),
]
Experiment = Annotated[
    str, typer.Option("--experiment", help="MLflow experiment name (with --tracking-uri).")
]


def say_tracked(tracker: Tracker, target: TrackingTarget | None) -> None:
    """Where the run went and how to look at it; nothing when tracking is off or failed
    (the failure was a warning of its own)."""
    run_id = getattr(tracker, "run_id", None)
    if target is None or run_id is None:
        return
    view = f"mlflow ui --backend-store-uri {target.uri}" if target.artifacts else target.uri
    console.print(
        f"MLflow: run {run_id} in experiment {escape(target.experiment)!r} ({escape(view)})",
        highlight=False,
        soft_wrap=True,
    )
