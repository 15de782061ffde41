"""Streaming writers for one synthetic retailer's event file, in REES46's column layout.

Days arrive in time order and are buffered into row groups (Parquet) or appended chunks
(CSV), so a retailer's file is sorted by time without ever holding all its events.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from fedmarket.data.ingest.schema import EVENT_COLUMNS, EVENT_TYPES, RETAILER_COLUMN
from fedmarket.data.synth.behaviour import DayEvents
from fedmarket.data.synth.catalog import CATEGORY_IDS, Catalog

ROW_GROUP_ROWS = 250_000

# On-disk types, in ``schema.EVENT_COLUMNS`` order. user_id is int64 as in the public
# REES46 export; loaders turn it into the string dtype of ``schema.EVENT_COLUMNS``.
_ON_DISK = {
    "event_time": pa.timestamp("ns", tz="UTC"),
    "event_type": pa.string(),
    "product_id": pa.int64(),
    "category_id": pa.int64(),
    "category_code": pa.string(),
    "brand": pa.string(),
    "price": pa.float64(),
    "user_id": pa.int64(),
    "user_session": pa.string(),
}
EVENT_SCHEMA = pa.schema(
    [*((c, _ON_DISK[c]) for c in EVENT_COLUMNS), (RETAILER_COLUMN, pa.string())]
)
_EVENT_TYPES = pa.array(EVENT_TYPES, pa.string())
_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)
_UUID_DIGITS = np.r_[0:8, 9:13, 14:18, 19:23, 24:36]  # character slots that hold hex digits


def session_ids(rng: np.random.Generator, n: int) -> pa.Array:
    """``n`` random version-4 UUID strings, built as one buffer (millions per second)."""
    nibbles = rng.integers(0, 16, (n, 32), dtype=np.uint8)
    nibbles[:, 12] = 4  # version 4
    nibbles[:, 16] = 8 | (nibbles[:, 16] & 3)  # RFC 4122 variant
    chars = np.full((n, 36), ord("-"), np.uint8)
    chars[:, _UUID_DIGITS] = _HEX[nibbles]
    offsets = np.arange(0, 36 * (n + 1), 36, dtype=np.int32)
    return pa.Array.from_buffers(
        pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(chars.tobytes())]
    )


class EventWriter:
    """Turns simulated days into REES46 rows and writes them in order."""

    def __init__(
        self,
        path: Path,
        fmt: str,
        retailer_id: str,
        catalog: Catalog,
        user_ids: np.ndarray,
        start_epoch_s: int,
    ) -> None:
        self.path, self.fmt, self.retailer_id = path, fmt, retailer_id
        self.catalog, self.user_ids, self.start_epoch_s = catalog, user_ids, start_epoch_s
        self._codes = pa.array(catalog.category_code, pa.string())
        self._brands = pa.array(catalog.brand, pa.string())
        self._category_id = CATEGORY_IDS[catalog.category]
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._sink: pq.ParquetWriter | pacsv.CSVWriter | None = None
        self._file: BinaryIO | None = None

    def add_day(self, day: int, events: DayEvents, sessions: pa.Array, discount: float) -> None:
        ns = (self.start_epoch_s + day * 86_400 + events.second) * 1_000_000_000
        price = np.round(self.catalog.price[events.product] * (1.0 - discount), 2)
        table = pa.table(
            [
                pa.array(ns.view("datetime64[ns]"), EVENT_SCHEMA.field("event_time").type),
                _EVENT_TYPES.take(pa.array(events.event)),
                pa.array(self.catalog.product_id[events.product]),
                pa.array(self._category_id[events.product]),
                self._codes.take(pa.array(events.product)),
                self._brands.take(pa.array(events.product)),
                pa.array(np.maximum(price, 0.01)),
                pa.array(self.user_ids[events.customer]),
                sessions.take(pa.array(events.session)),
                pa.repeat(pa.scalar(self.retailer_id, pa.string()), len(events)),
            ],
            schema=EVENT_SCHEMA,
        )
        self._pending.append(table)
        self._pending_rows += len(table)
        if self._pending_rows >= ROW_GROUP_ROWS:
            self._flush()

    def close(self) -> None:
        self._flush(final=True)
        if self._sink is not None:
            self._sink.close()
        if self._file is not None:
            self._file.close()

    def _flush(self, final: bool = False) -> None:
        if not self._pending and not (final and self._sink is None):
            return
        table = pa.concat_tables(self._pending) if self._pending else EVENT_SCHEMA.empty_table()
        self._pending, self._pending_rows = [], 0
        if self.fmt == "parquet":
            if self._sink is None:
                self._sink = pq.ParquetWriter(self.path, EVENT_SCHEMA, compression="zstd")
            self._sink.write_table(table, row_group_size=max(len(table), 1))
            return
        # REES46 CSV: "2019-10-01 00:00:04 UTC", no quoting, empty fields for missing values.
        text_time = pc.strftime(
            table["event_time"].cast(pa.timestamp("s", tz="UTC")), format="%Y-%m-%d %H:%M:%S UTC"
        )
        table = table.set_column(0, "event_time", text_time)
        if self._sink is None:
            self._file = open(self.path, "wb")  # noqa: SIM115 - closed in close()
            self._file.write((",".join(table.column_names) + "\n").encode())
            options = pacsv.WriteOptions(include_header=False, quoting_style="none")
            self._sink = pacsv.CSVWriter(self._file, table.schema, write_options=options)
        self._sink.write_table(table)
