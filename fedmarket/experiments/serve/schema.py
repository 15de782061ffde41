"""What a caller of the scoring service sends: one customer's recent events, or many customers.

An event is a row of fedmarket's event schema (``fedmarket.data.ingest.schema``) as JSON, the
REES46 export's columns: the shop sends what it already logs. Types are checked here (a price
that is not a number, a missing field, a field the schema does not have), values by the batch
path's own validator afterwards (``fedmarket.experiments.serve.scorer``), so an unknown event
type or an unparseable time reads the same through ``fedmarket score`` and the service.
"""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field

MAX_ID_CHARS = 256
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1  # ids are int64 in the event schema


class Event(BaseModel):
    """One event; ``user_id`` may be left out (the request is about one customer)."""

    model_config = ConfigDict(extra="forbid")

    event_time: str = Field(
        max_length=64,
        description='"2019-10-01 00:00:04 UTC" or ISO 8601 with Z or an offset',
    )
    event_type: str = Field(max_length=64, description="view, cart, remove_from_cart, purchase")
    price: float
    product_id: int | None = Field(default=None, ge=_INT64_MIN, le=_INT64_MAX)
    category_id: int | None = Field(default=None, ge=_INT64_MIN, le=_INT64_MAX)
    category_code: str | None = Field(default=None, max_length=256)
    brand: str | None = Field(default=None, max_length=256)
    user_session: str | None = Field(default=None, max_length=256)
    user_id: str | None = Field(default=None, max_length=MAX_ID_CHARS)


class ScoreRequest(BaseModel):
    """One customer: its events up to ``as_of`` (a UTC date; default: the midnight after the
    latest event, as `fedmarket score` does)."""

    model_config = ConfigDict(extra="forbid")

    customer_id: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    as_of: date | None = None
    events: list[Event] = Field(min_length=1)


class BatchRequest(BaseModel):
    """Many customers scored in one model call."""

    model_config = ConfigDict(extra="forbid")

    customers: list[ScoreRequest] = Field(min_length=1)
