"""A served run over ``tiny_data`` and customers of ``tiny_raw`` as the service receives them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from fedmarket.data.ingest import loaders
from fedmarket.data.ingest.validate import DropReport
from fedmarket.scoring.run_model import RunModel, load_run_model
from tests.scoring.conftest import scoring_run  # noqa: F401  (the run this package serves)

FIELDS = ("event_time", "event_type", "product_id", "category_id", "category_code", "brand")


@pytest.fixture(scope="session")
def served_run(scoring_run: Path) -> RunModel:  # noqa: F811
    return load_run_model(scoring_run)


@pytest.fixture(scope="session")
def retailer_events(tiny_raw: Path) -> tuple[Path, pd.DataFrame]:
    """The first retailer's export file and its validated events."""
    exports = loaders.find_exports(tiny_raw, None)
    retailer = sorted(exports)[0]
    path = exports[retailer][0]
    frames = loaders.iter_events(
        path, mapping=None, chunksize=10**6, strict=False, report=DropReport(), retailer_id=retailer
    )
    return path, pd.concat(list(frames), ignore_index=True)


def as_json(events: pd.DataFrame) -> list[dict[str, Any]]:
    """Validated events as the service receives them (ISO times, nulls left out)."""
    out = []
    for row in events.itertuples(index=False):
        event = {
            "event_time": row.event_time.isoformat(),
            "event_type": str(row.event_type),
            "price": float(row.price),
            "product_id": int(row.product_id),
            "category_id": int(row.category_id),
        }
        for name in ("category_code", "brand", "user_session"):
            value = getattr(row, name)
            if not pd.isna(value):
                event[name] = str(value)
        out.append(event)
    return out


@pytest.fixture(scope="session")
def busy_customer(retailer_events: tuple[Path, pd.DataFrame]) -> tuple[str, list[dict[str, Any]]]:
    """The first retailer's customer with the most events, as a request's events."""
    _, events = retailer_events
    who = events["user_id"].value_counts().index[0]
    return str(who), as_json(events[events["user_id"] == who].sort_values("event_time"))
