"""A cheap upper bound on the latest event time of an export, without validating its rows.

The default cut-off depends on the latest *valid* event, and reading and validating every row
twice (once for that one number, once for the features) was a quarter of `data prepare`. The
bound read here is the latest time that parses at all: from Parquet's row-group statistics when
the column is a tz-aware timestamp (no row is read), otherwise from the ``event_time`` column
alone. Valid rows are a subset of the parseable ones, so the bound is never below the true value;
``prepare`` checks it against the latest valid event it sees anyway and reads again when the two
give different cut-offs (only when the latest rows of the data are all invalid).
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from fedmarket.data.ingest import loaders
from fedmarket.data.ingest.mapping import REES46
from fedmarket.data.ingest.timestamps import parse_event_time

_COLUMN = "event_time"


def latest_event_ns(path: Path) -> int | None:
    """Latest parseable REES46 ``event_time`` in UTC ns (None: no such time, or no column)."""
    suffix = loaders.export_suffix(path)
    try:
        values = _parquet_times(path) if suffix == ".parquet" else _csv_times(path, suffix or "")
    except (pa.ArrowException, OSError, UnicodeDecodeError, KeyError, ValueError):
        return None  # the full read reports what is wrong with the file, with context
    if values is None or len(values) == 0:
        return None
    ns, problems = parse_event_time(
        values,
        timestamp_format=REES46.timestamp_format,
        assume_tz=REES46.assume_tz,
        source=str(path),
    )
    ok = ns[problems == 0]
    return int(ok.max()) if len(ok) else None


def _parquet_times(path: Path) -> pa.Array | None:
    with pq.ParquetFile(path) as parquet:
        names = parquet.schema_arrow.names
        if _COLUMN not in names:
            return None
        kind = parquet.schema_arrow.field(_COLUMN).type
        stats = _row_group_maxima(parquet, names.index(_COLUMN))
        if stats is not None and pa.types.is_timestamp(kind) and kind.tz is not None:
            return pa.array(stats, type=kind)
        return parquet.read(columns=[_COLUMN]).column(_COLUMN).combine_chunks()


def _row_group_maxima(parquet: pq.ParquetFile, column: int) -> list[object] | None:
    maxima = []
    for group in range(parquet.metadata.num_row_groups):
        stats = parquet.metadata.row_group(group).column(column).statistics
        if stats is None or not stats.has_min_max:
            return None
        maxima.append(stats.max)
    return maxima


def _csv_times(path: Path, suffix: str) -> pa.Array | None:
    with ExitStack() as stack:
        names = loaders._open_csv(path, suffix, REES46, None, stack).schema.names
        if _COLUMN not in names:
            return None
        reader = loaders._open_csv(path, suffix, REES46, names, stack, include=[_COLUMN])
        parts = [batch.column(0) for batch in reader]
    return pa.concat_arrays(parts) if parts else None
