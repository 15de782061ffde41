"""Sessions for exports that have none: a new session after a gap of inactivity.

Session counts are a feature, and transaction logs and many clickstreams carry no session id.
The usual web-analytics rule is used: a customer's next event more than ``gap_minutes`` (30 by
default) after the previous one starts a new session. Session ids are "<customer>#<n>", the
customer's n-th session in the file; the anonymiser pseudonymises them like customer ids.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

from fedmarket.errors import ConfigError

_UNSEEN: Final[int] = np.iinfo(np.int64).min


class SessionAssigner:
    """Derives ``user_session`` from inactivity gaps, one instance per file, chunk after chunk.

    State is one row per customer seen (last event time, sessions so far), so results do not
    depend on the chunk size when each customer's events come in time order across chunks
    (true for exports sorted by time). Within a chunk rows are sorted per customer first; an
    event up to ``gap`` before or after a customer's last event of an earlier chunk continues
    that session.
    """

    def __init__(self, gap_minutes: int = 30) -> None:
        if gap_minutes <= 0:
            raise ConfigError(f"session gap must be positive, got {gap_minutes} minutes")
        self._gap = np.int64(gap_minutes) * 60 * 10**9
        self._state = pd.DataFrame(
            {"last": pd.Series(dtype="int64"), "count": pd.Series(dtype="int64")}
        )

    def assign(self, events: pd.DataFrame) -> pd.DataFrame:
        if not len(events):
            return events
        codes, users = pd.factorize(events["user_id"])
        times = pd.DatetimeIndex(events["event_time"]).as_unit("ns").asi8
        order = np.lexsort((times, codes))
        c, t = codes[order], times[order]
        first = np.r_[True, c[1:] != c[:-1]]
        starts = np.flatnonzero(first)
        index = pd.Index(users)
        last = self._state["last"].reindex(index, fill_value=_UNSEEN).to_numpy()
        count = self._state["count"].reindex(index, fill_value=0).to_numpy()
        new = np.r_[True, np.diff(t) > self._gap]
        prev = last[c[starts]]
        seen = prev != _UNSEEN
        close = np.abs(t[starts] - np.where(seen, prev, t[starts])) <= self._gap
        new[starts] = ~(seen & close)
        running = np.cumsum(new)
        group = np.cumsum(first) - 1
        number = running - (running - new)[starts][group] + count[c]
        ends = np.r_[starts[1:] - 1, len(c) - 1]
        update = pd.DataFrame(
            {"last": np.maximum(t[ends], prev), "count": number[ends]}, index=index[c[starts]]
        )
        state = pd.concat([self._state, update])
        self._state = state[~state.index.duplicated(keep="last")]
        numbers = np.empty(len(c), dtype=np.int64)
        numbers[order] = number
        session = (
            events["user_id"].astype("string")
            + "#"
            + pd.Series(numbers, index=events.index).astype("string")
        )
        return events.assign(user_session=session.astype("string"))
