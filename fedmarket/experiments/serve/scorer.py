"""Customers' JSON events to scores, through the code batch scoring runs.

The events become columns in the event schema and go through ``validate_columns`` (the
validator of `data prepare` and `fedmarket score`, with its few-rows path that skips pandas),
then ``featurise_as_of`` (``featurise_frames`` in the run's window moved to each customer's
``as_of``), then ``RunModel.predict``: the service cannot drift from batch scoring, because it
has no feature code of its own. A request of many customers is one frame, one validation and
one model call.

A bad value is refused, never dropped: the batch validator runs first leniently (its fast
path, which drops exact copies of an event as batch scoring does) and, only when it found a
problem, again with ``strict=True`` to name the first bad event; its ``RowError`` says which
row and column, which the service turns into the event's index and field.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from fedmarket.data.ingest.schema import EVENT_COLUMNS
from fedmarket.data.ingest.timestamps import parse_event_time
from fedmarket.data.ingest.validate import DROP_REASONS, DropReport, RowError
from fedmarket.data.ingest.validate_small import validate_columns
from fedmarket.experiments.serve.decision import Decision
from fedmarket.experiments.serve.schema import ScoreRequest
from fedmarket.scoring.batch import is_count, propensities
from fedmarket.scoring.featurise import NoEventInWindow, default_as_of, featurise_as_of
from fedmarket.scoring.run_model import RunModel

RETAILER = "service"  # the retailer id the validator stamps on every event; never shown
Loc = tuple[str | int, ...]
_EARLIEST, _LATEST = date(1971, 1, 1), date(2199, 12, 31)


_EVENT_FIELDS = tuple(c for c in EVENT_COLUMNS if c != "user_id")


def _check_owner(customer: ScoreRequest, prefix: Loc) -> None:
    """Events that name a user all name the customer's (``customer_id``, else the first)."""
    owner = customer.customer_id
    for j, event in enumerate(customer.events):
        if event.user_id is None:
            continue
        owner = owner if owner is not None else event.user_id
        if event.user_id != owner:
            raise RequestError(
                (*prefix, "events", j, "user_id"),
                "user_id differs from the customer's (customer_id or the first event's "
                "user_id): send one customer's events per entry",
                "mixed_customers",
            )


class RequestError(Exception):
    """A request refused with ``status``: where (``loc``, as FastAPI words its own 422s) and
    what (``msg``); ``kind`` is a stable key (a DROP_REASONS key where the validator found it)."""

    def __init__(self, loc: Loc, msg: str, kind: str, status: int = 422) -> None:
        super().__init__(msg)
        self.loc, self.msg, self.kind, self.status = loc, msg, kind, status

    def detail(self) -> dict[str, Any]:
        return {"loc": list(self.loc), "msg": self.msg, "type": self.kind}


@dataclass(frozen=True)
class Limits:
    max_events: int = 10_000  # per customer
    max_customers: int = 1_000  # per batch request


class Scorer:
    """Scores requests with one run's model and one decision rule."""

    def __init__(
        self,
        run: RunModel,
        decision: Decision,
        limits: Limits,
        predict: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        """``predict``: ``run.predict`` in another runtime (``scoring.onnx_model``)."""
        self.run, self.decision, self.limits = run, decision, limits
        self.count = is_count(run)
        self.predict = predict

    def score(self, customers: Sequence[ScoreRequest], prefixes: Sequence[Loc]) -> list[dict]:
        """One result per customer, in order; ``prefixes[i]`` locates customer i in the body."""
        valid, who, as_of = self._checked(customers, prefixes)
        X = self._features(valid, who, as_of, prefixes)
        # the targeting list's rule (scoring.batch), so both paths give a customer one answer
        p, counts = propensities(self.run, X, predict=self.predict)
        scores = counts if self.count else p
        return [
            self._result(c, a, float(q), float(s))
            for c, a, q, s in zip(customers, as_of, p, scores, strict=True)
        ]

    def _checked(
        self, customers: Sequence[ScoreRequest], prefixes: Sequence[Loc]
    ) -> tuple[pd.DataFrame, np.ndarray, list[pd.Timestamp]]:
        """The request's valid events, each one's customer (its place in the request) and each
        customer's as-of date; a RequestError naming the field for anything refused. Shared by
        the propensity and the recommendation services."""
        if len(customers) > self.limits.max_customers:
            raise RequestError(
                ("body", "customers"),
                f"{len(customers):,} customers; at most {self.limits.max_customers:,} per "
                "request (--max-customers): split the batch",
                "too_many_customers",
                status=413,
            )
        columns, starts = self._columns(customers, prefixes)
        valid = self._validate(columns, customers, starts, prefixes)
        who = valid["user_id"].astype(np.int64).to_numpy()
        times = valid["event_time"].array.asi8  # UTC nanoseconds
        last = np.full(len(customers), np.iinfo(np.int64).min)
        np.maximum.at(last, who, times)
        as_of = [self._as_of(c, t, p) for c, t, p in zip(customers, last, prefixes, strict=True)]
        self._check_before(as_of, who, times, customers, prefixes)
        return valid, who, as_of

    def _columns(
        self, customers: Sequence[ScoreRequest], prefixes: Sequence[Loc]
    ) -> tuple[dict[str, list[Any]], np.ndarray]:
        """The events as the validator's columns of plain values, and where each customer's
        events start among them."""
        sizes = [len(c.events) for c in customers]
        for i, size in enumerate(sizes):
            if size > self.limits.max_events:
                raise RequestError(
                    (*prefixes[i], "events"),
                    f"{size:,} events; at most {self.limits.max_events:,} per customer "
                    "(--max-events): send the recent ones",
                    "too_many_events",
                    status=413,
                )
            _check_owner(customers[i], prefixes[i])
        events = [e for c in customers for e in c.events]
        columns: dict[str, list[Any]] = {
            name: [getattr(e, name) for e in events] for name in _EVENT_FIELDS
        }
        # the validator's user ids: the customer's place in the request
        columns["user_id"] = [str(i) for i, size in enumerate(sizes) for _ in range(size)]
        return columns, np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])

    def _validate(
        self,
        columns: dict[str, list[Any]],
        customers: Sequence[ScoreRequest],
        starts: np.ndarray,
        prefixes: Sequence[Loc],
    ) -> pd.DataFrame:
        report = DropReport()
        kw = {"source": "request", "row_offset": 0, "retailer_id": RETAILER}
        valid = validate_columns(columns, strict=False, report=report, **kw)
        if set(report.counts) <= {"duplicate_row"}:
            return valid  # exact copies dropped, as batch scoring drops them
        try:
            validate_columns(columns, strict=True, report=DropReport(), **kw)
        except RowError as exc:
            i = int(np.searchsorted(starts, exc.position, side="right")) - 1
            j = exc.position - int(starts[i])
            event = customers[i].events[j]
            got = getattr(event, exc.column, None)
            raise RequestError(
                (*prefixes[i], "events", j, exc.column),
                f"{exc.reason}: {DROP_REASONS[exc.reason]} (got {got!r})",
                exc.reason,
            ) from None
        raise AssertionError("lenient validation dropped rows that strict validation accepts")

    def _as_of(self, customer: ScoreRequest, last_ns: int, prefix: Loc) -> pd.Timestamp:
        as_of: pd.Timestamp | None = None
        if customer.as_of is not None:
            if _EARLIEST <= customer.as_of <= _LATEST:
                as_of = pd.Timestamp(customer.as_of.isoformat(), tz="UTC")
        else:
            last = pd.Timestamp(int(last_ns), unit="ns", tz="UTC")
            if _EARLIEST <= last.date() < _LATEST:
                as_of = default_as_of(last)
        if as_of is None:  # pandas' nanosecond times end in 2262; windows reach around as_of
            raise RequestError(
                (*prefix, "as_of"),
                f"as_of (given, or the day after the latest event) must lie in "
                f"[{_EARLIEST}, {_LATEST}]",
                "as_of_out_of_range",
            )
        return as_of

    def _check_before(
        self,
        as_of: list[pd.Timestamp],
        who: np.ndarray,
        times: np.ndarray,
        customers: Sequence[ScoreRequest],
        prefixes: Sequence[Loc],
    ) -> None:
        """No event at or after ``as_of``: those are the future the model predicts."""
        limit = np.array([a.value for a in as_of], dtype=np.int64)
        late = times >= limit[who]
        if not late.any():
            return
        i = int(who[np.flatnonzero(late)[0]])
        raw = pa.array([e.event_time for e in customers[i].events], pa.large_string())
        ns, _ = parse_event_time(raw, timestamp_format=None, assume_tz=None, source="request")
        j = int(np.flatnonzero(ns >= limit[i])[0])
        raise RequestError(
            (*prefixes[i], "events", j, "event_time"),
            f"event at {customers[i].events[j].event_time!r} is not before as_of "
            f"{as_of[i]:%Y-%m-%d} (00:00 UTC); send events up to as_of only, or a later as_of",
            "event_after_as_of",
        )

    def _features(
        self,
        valid: pd.DataFrame,
        who: np.ndarray,
        as_of: list[pd.Timestamp],
        prefixes: Sequence[Loc],
    ) -> np.ndarray:
        """Model inputs in request order, each customer in the window before its ``as_of``."""
        dates = np.array([a.value for a in as_of], dtype=np.int64)
        try:
            return featurise_as_of(self.run, valid, who, dates, retailer=RETAILER)
        except NoEventInWindow as exc:
            raise RequestError(
                (*prefixes[exc.customer], "events"), str(exc), "no_event_in_window"
            ) from None

    def _result(
        self, customer: ScoreRequest, as_of: pd.Timestamp, propensity: float, value: float
    ) -> dict:
        return {
            "customer_id": customer.customer_id,
            "as_of": f"{as_of:%Y-%m-%d}",
            "propensity": propensity,
            "expected_count": value if self.count else None,
            "selected": bool(value >= self.decision.threshold),
        }
