"""The optional customer table of a retailer (``customers.*``): ids and the quasi-identifiers
the anonymiser generalises, read whole (one row per customer, small beside the events).
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd
import pyarrow as pa

from fedmarket.data.ingest.loaders import check_file, export_suffix, file_stem, read_tables
from fedmarket.data.ingest.mapping import REES46
from fedmarket.data.ingest.schema import CUSTOMER_COLUMNS, CUSTOMERS_STEM, QUASI_IDENTIFIERS
from fedmarket.data.ingest.validate import DropReport
from fedmarket.errors import DataError

# A customer table needs ids and the quasi-identifiers the anonymiser generalises; the direct
# identifiers are optional (they are dropped anyway) and columns outside CUSTOMER_COLUMNS are
# not loaded at all, since an unknown column may identify people.
REQUIRED_CUSTOMER_COLUMNS: Final[tuple[str, ...]] = ("user_id", *QUASI_IDENTIFIERS)


def read_customers(path: Path, *, report: DropReport | None = None) -> pd.DataFrame | None:
    """The optional customer table in a retailer directory (or a given customers file).

    Returns None when a directory has no ``customers.*``. All columns come back as "string";
    only ``CUSTOMER_COLUMNS`` are kept. Rows without a user_id and repeats of a user_id are
    dropped and counted in ``report``; without a report they are an error.
    """
    path = Path(path)
    if path.is_dir():
        candidates = [
            p
            for p in sorted(path.iterdir())
            if p.is_file() and file_stem(p) == CUSTOMERS_STEM and export_suffix(p)
        ]
        if len(candidates) > 1:
            raise DataError(
                f"{path}: several customer tables ({', '.join(p.name for p in candidates)});"
                f" keep one"
            )
        if not candidates:
            return None
        path = candidates[0]
    suffix = check_file(path)
    with ExitStack() as stack:
        chunks = list(read_tables(path, suffix, REES46, 1 << 30, stack))
    if not chunks:
        raise DataError(f"{path}: no data rows (the file has only a header)")
    table = pa.concat_tables(chunks)
    missing = [c for c in REQUIRED_CUSTOMER_COLUMNS if c not in table.column_names]
    if missing:
        raise DataError(
            f"{path}: missing customer column(s) {', '.join(missing)}; found "
            f"{', '.join(table.column_names)}. Required: {', '.join(REQUIRED_CUSTOMER_COLUMNS)}"
        )
    keep = [c for c in CUSTOMER_COLUMNS if c in table.column_names]
    frame = pd.DataFrame({c: _customer_text(table[c]) for c in keep})
    return _drop_bad_customers(frame, str(path), report)


def _customer_text(column: pa.ChunkedArray) -> pd.Series:
    text = pd.Series(column.cast(pa.string()).to_pandas(), dtype="string").str.strip()
    return text.mask(text == "")


def _drop_bad_customers(
    frame: pd.DataFrame, source: str, report: DropReport | None
) -> pd.DataFrame:
    """Drop rows without a user_id and repeats of one; messages never quote the raw id."""
    ids = frame["user_id"]
    checks = {
        "missing_user_id": (ids.isna().to_numpy(), "user_id is empty"),
        "duplicate_customer": (
            ids.duplicated().to_numpy() & ids.notna().to_numpy(),
            "user_id repeats an earlier row",
        ),
    }
    drop = np.zeros(len(frame), dtype=bool)
    for reason, (mask, what) in checks.items():
        rows = mask.nonzero()[0] + 1
        if len(rows) and report is None:
            raise DataError(
                f"{source} data row {rows[0]} (1-based, header not counted): {reason} ({what}); "
                f"fix the customer table"
            )
        if len(rows) and report is not None:
            report.add(reason, len(rows))
            for row in rows[: report.max_examples]:
                report.add(reason, 0, f"{source} row {row}: {what}")
        drop |= mask
    if report is not None:
        report.rows_read += len(frame)
        report.rows_kept += int((~drop).sum())
    return frame[~drop].reset_index(drop=True)
