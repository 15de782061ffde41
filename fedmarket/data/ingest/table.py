"""A customer table (one row per customer: an id, attribute columns, a label) described by a
mapping with ``kind = "table"``, and read into one frame per retailer.

The mapping names the id column (``customer``), the label column (``label``; required to
prepare the table on its own, optional for attributes joined to event data) and the
attributes: ``numeric = [...]`` and ``categorical = [...]``, or ``attributes = "all"`` (every
other column, less ``exclude``; a column is numeric when every non-missing value is a number,
otherwise categorical; the lists still force a column's type). Reading options are those of
event exports (``csv_delimiter``, ``encoding``, ``format``). Retailers: one file (or one
sub-directory of files) per retailer, as for events, or a ``retailer`` column.

Refused, with a message that says how to fix it: an attribute that looks like a direct
identifier (its name holds name / mail / phone / address ..., or most of its values are e-mail
addresses) unless it is excluded; a categorical column with more than ``max_levels`` levels in
the data (an id or free text in disguise); a missing or repeated customer id; a label that is
missing, negative, fractional or text (it must be 0/1, or a whole count of purchases).

Missing values: empty cells and ``NA``-like words (``MISSING_WORDS``) are missing; the
encoding (``fedmarket.data.table_encoding``) gives them an explicit indicator column.
"""

from __future__ import annotations

import re
from contextlib import ExitStack
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa

from fedmarket.checks import integer
from fedmarket.data.ingest import loaders
from fedmarket.data.ingest.mapping import ExportMapping
from fedmarket.errors import ConfigError, DataError

TABLE_KIND: Final[str] = "table"
ALL: Final[str] = "all"
MISSING_WORDS: Final[frozenset[str]] = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})
# Substrings of a normalised column name that mark a direct identifier.
IDENTIFIER_PARTS: Final[tuple[str, ...]] = (
    "name", "mail", "phone", "mobile", "address", "street", "passport", "iban", "ssn",
)  # fmt: skip
_EMAIL: Final[re.Pattern[str]] = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
RETAILER_KEY: Final[str] = "__retailer__"
WHERE_KEY: Final[str] = "__where__"  # "file data row n", for messages (never an id)
_LISTS: Final[tuple[str, ...]] = ("numeric", "categorical", "exclude")


@dataclass(frozen=True)
class TableMapping:
    """How to read one customer table; validated on construction (ConfigError naming the key)."""

    kind: str = TABLE_KIND
    customer: str | None = None
    label: str | None = None
    churn: str | None = None  # a 0/1 churn column, in place of label (the churn tasks' label)
    numeric: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    attributes: str | None = None
    exclude: tuple[str, ...] = ()
    retailer: str | None = None
    max_levels: int = 50
    csv_delimiter: str = ","
    format: str | None = None
    encoding: str = "utf-8"
    source: str = field(default="<mapping>", compare=False, repr=False)
    reader: ExportMapping = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        where = self.source
        if self.kind != TABLE_KIND:
            raise ConfigError(f"{where}: a table mapping has kind = {TABLE_KIND!r}")
        if not isinstance(self.customer, str) or not self.customer.strip():
            raise ConfigError(f"{where}: kind=table needs key 'customer' naming a column")
        for key in ("label", "churn"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ConfigError(f"{where}: {key} must name a column, got {value!r}")
        if self.label is not None and self.churn is not None:
            raise ConfigError(
                f"{where}: give label (bought or not, or a count) or churn (1 = the customer "
                "churned), not both: a table holds one label"
            )
        if self.retailer is not None and (not isinstance(self.retailer, str) or not self.retailer):
            raise ConfigError(f"{where}: retailer must name a column, got {self.retailer!r}")
        if self.attributes not in (None, ALL):
            raise ConfigError(
                f"{where}: attributes={self.attributes!r}; the only value is 'all' (every "
                "column but the id, label and exclude); or list columns as numeric/categorical"
            )
        if self.attributes is None and not (self.numeric or self.categorical):
            raise ConfigError(
                f"{where}: no attributes: list columns in numeric = [...] and/or "
                "categorical = [...], or set attributes = 'all'"
            )
        self._check_lists(where)
        integer(f"{where}: max_levels", self.max_levels, at_least=2)
        reader = ExportMapping(
            csv_delimiter=self.csv_delimiter,
            format=self.format,
            encoding=self.encoding,
            source=where,
        )
        object.__setattr__(self, "reader", reader)

    def _check_lists(self, where: str) -> None:
        seen: dict[str, str] = {}
        for key in _LISTS:
            for column in getattr(self, key):
                if not isinstance(column, str) or not column:
                    raise ConfigError(f"{where}: {key} must list column names, got {column!r}")
                if column in seen:
                    raise ConfigError(f"{where}: column {column!r} is in {seen[column]} and {key}")
                seen[column] = key
        for key in ("customer", "label", "churn", "retailer"):
            if getattr(self, key) in seen:
                raise ConfigError(
                    f"{where}: {key} column {getattr(self, key)!r} cannot also be in "
                    f"{seen[getattr(self, key)]}"
                )
        if self.customer in (self.label, self.churn):
            raise ConfigError(f"{where}: customer and label must be different columns")

    @property
    def target(self) -> str | None:
        """The label column, whichever key names it (``label`` or ``churn``)."""
        return self.label if self.label is not None else self.churn


_KEYS: Final[tuple[str, ...]] = tuple(
    f.name for f in fields(TableMapping) if f.name not in ("source", "reader")
)


def table_mapping(values: dict[str, Any], source: str) -> TableMapping:
    """A ``TableMapping`` from TOML values or inline text (lists inline: ``numeric=a;b;c``)."""
    for key in values:
        if key not in _KEYS:
            raise ConfigError(f"{source}: unknown key {key!r} for kind=table; known: "
                              f"{', '.join(_KEYS)}")  # fmt: skip
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key in _LISTS:
            if isinstance(value, str):
                value = [v.strip() for v in value.split(";") if v.strip()]
            if not isinstance(value, list):
                raise ConfigError(f"{source}: {key} must be a list of column names")
            value = tuple(value)
        elif key == "max_levels" and isinstance(value, str):
            try:
                value = int(value)
            except ValueError as exc:
                raise ConfigError(f"{source}: max_levels must be an integer") from exc
        elif key != "max_levels" and not isinstance(value, str):
            raise ConfigError(f"{source}: key {key!r} must be text, got {value!r}")
        out[key] = value
    return TableMapping(**out, source=source)


def read_retailers(raw: Path, mapping: TableMapping) -> dict[str, pd.DataFrame]:
    """Retailer -> its rows, every file read whole (a customer table is one row per customer).

    Each frame keeps the file's columns plus ``RETAILER_KEY`` and ``WHERE_KEY``."""
    frames = []
    for retailer, files in loaders.find_exports(raw, mapping.reader).items():
        for path in files:
            frame = _read_file(path, mapping)
            frame[RETAILER_KEY] = retailer
            frames.append(frame)
    columns = {tuple(f.columns) for f in frames}
    if len(columns) > 1:
        raise DataError(f"{raw}: the table files have different columns; give them one header")
    rows = pd.concat(frames, ignore_index=True)
    if mapping.retailer is not None:
        _column(rows, mapping.retailer, "retailer", raw)
        names = _text(rows[mapping.retailer])
        if names.isna().any():
            bad = rows.loc[names.isna(), WHERE_KEY].iloc[0]
            raise DataError(f"{bad}: retailer column {mapping.retailer!r} is empty; fill it")
        rows[RETAILER_KEY] = names
    return {str(r): g.reset_index(drop=True) for r, g in rows.groupby(RETAILER_KEY, sort=True)}


def _read_file(path: Path, mapping: TableMapping) -> pd.DataFrame:
    suffix = loaders.check_file(path, mapping.reader)
    with ExitStack() as stack:
        tables = list(loaders.read_tables(path, suffix, mapping.reader, 1 << 20, stack))
    if not tables or sum(t.num_rows for t in tables) == 0:
        raise DataError(f"{path}: no data rows (the file has only a header or an empty table)")
    frame = pa.concat_tables(tables).to_pandas()
    frame.columns = [str(c).strip() for c in frame.columns]
    frame[WHERE_KEY] = [f"{path.name} data row {i + 1}" for i in range(len(frame))]
    return frame


def _column(frame: pd.DataFrame, name: str, key: str, where: object) -> None:
    if name not in frame.columns:
        found = ", ".join(c for c in frame.columns if c not in (RETAILER_KEY, WHERE_KEY))
        raise DataError(
            f"{where}: the mapping says {key}={name!r} but there is no such column; found {found}"
        )


def _text(values: pd.Series) -> pd.Series:
    """Values as stripped text; empty cells and NA-like words missing (None)."""
    text = values.astype("string").str.strip()
    return text.where(~text.isna() & ~text.str.lower().isin(MISSING_WORDS), None).astype(object)


@dataclass(frozen=True)
class ColumnPlan:
    """Which columns are attributes, and of which type; ``inferred`` is set for ``all``."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    inferred: dict[str, str]
    excluded: tuple[str, ...]


def plan_columns(frames: dict[str, pd.DataFrame], mapping: TableMapping) -> ColumnPlan:
    """The attribute columns and their types, checked against every retailer's file."""
    rows = pd.concat(list(frames.values()), ignore_index=True)
    where = mapping.source
    for key in ("customer", "label", "churn", *_LISTS):
        names = getattr(mapping, key)
        for name in [names] if isinstance(names, str) else names or ():
            _column(rows, name, key, where)
    inferred: dict[str, str] = {}
    if mapping.attributes == ALL:
        taken = {mapping.customer, mapping.target, mapping.retailer, *mapping.exclude}
        taken |= {RETAILER_KEY, WHERE_KEY}
        for name in rows.columns:
            if name in taken or name in mapping.numeric or name in mapping.categorical:
                continue
            inferred[name] = "numeric" if _all_numbers(rows[name]) else "categorical"
    numeric = (*mapping.numeric, *(c for c, t in inferred.items() if t == "numeric"))
    categorical = (*mapping.categorical, *(c for c, t in inferred.items() if t == "categorical"))
    plan = ColumnPlan(tuple(numeric), tuple(categorical), inferred, tuple(mapping.exclude))
    _refuse_identifiers(rows, plan, mapping)
    _refuse_many_levels(rows, plan, mapping)
    if not plan.numeric and not plan.categorical:
        raise DataError(f"{where}: no attribute columns left (all excluded?)")
    return plan


def _all_numbers(values: pd.Series) -> bool:
    text = _text(values)
    present = text.dropna()
    return bool(len(present)) and bool(pd.to_numeric(present, errors="coerce").notna().all())


def _refuse_identifiers(rows: pd.DataFrame, plan: ColumnPlan, mapping: TableMapping) -> None:
    for name in (*plan.numeric, *plan.categorical):
        squashed = re.sub(r"[^a-z0-9]", "", name.lower())
        part = next((p for p in IDENTIFIER_PARTS if p in squashed), None)
        emails = _text(rows[name]).dropna().astype(str)
        mostly_emails = len(emails) > 0 and emails.str.match(_EMAIL).mean() > 0.5
        if part is not None or mostly_emails:
            why = f"its name holds {part!r}" if part else "most of its values are e-mail addresses"
            raise DataError(
                f"{mapping.source}: column {name!r} looks like a direct identifier ({why}); "
                f"identifiers never enter training: add it to exclude = [...]"
                + ("" if mapping.attributes == ALL else " and remove it from the attribute lists")
            )


def _refuse_many_levels(rows: pd.DataFrame, plan: ColumnPlan, mapping: TableMapping) -> None:
    for name in plan.categorical:
        levels = _text(rows[name]).dropna().nunique()
        if levels > mapping.max_levels:
            how = "it was inferred as text; " if name in plan.inferred else ""
            raise DataError(
                f"{mapping.source}: categorical column {name!r} has {levels} distinct values, "
                f"more than max_levels={mapping.max_levels} (an id, a date or free text one-hot "
                f"encodes into one column per customer); {how}exclude it, list it as numeric "
                "if it holds numbers, or raise max_levels"
            )


def numbers(values: pd.Series, name: str, rows: pd.DataFrame) -> np.ndarray:
    """A numeric attribute as float64, NaN where missing; text in it is refused."""
    text = _text(values)
    parsed = pd.to_numeric(text, errors="coerce").astype("float64")
    bad = text.notna() & (parsed.isna() | ~np.isfinite(parsed))
    if bad.any():
        first = np.flatnonzero(bad.to_numpy())[0]
        raise DataError(
            f"{rows[WHERE_KEY].iloc[first]}: numeric column {name!r} holds {text.iloc[first]!r} "
            f"({int(bad.sum())} such value(s)); list the column as categorical, or clean it"
        )
    return parsed.to_numpy()


def levels(values: pd.Series) -> pd.Series:
    """A categorical attribute as text (None where missing)."""
    return _text(values)


def labels(values: pd.Series, name: str, rows: pd.DataFrame) -> np.ndarray:
    """The label as a whole, non-negative count (0/1 for bought or not), float32.

    Refused: missing, text, negative or fractional values, naming the first row and the fix."""
    if pd.api.types.is_bool_dtype(values.dtype):
        values = values.astype("Int64")
    text = _text(values)
    parsed = pd.to_numeric(text, errors="coerce").astype("float64")
    checks = (
        (text.isna(), "is empty", "fill it or drop the row"),
        (parsed.isna(), "is not a number", "recode it as 0/1 (e.g. no -> 0, yes -> 1)"),
        (~np.isfinite(parsed) | (parsed < 0), "is negative or infinite", "a label is >= 0"),
        (parsed != np.round(parsed), "is not a whole number", "a label is 0/1 or a count"),
    )
    for bad, what, fix in checks:
        bad = bad.fillna(False).to_numpy(dtype=bool)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            value = "" if pd.isna(text.iloc[first]) else f" value {text.iloc[first]!r}"
            raise DataError(
                f"{rows[WHERE_KEY].iloc[first]}: label column {name!r}{value} "
                f"{what} ({int(bad.sum())} row(s)); the label must be 0/1 "
                f"(bought or not) or a whole count of purchases: {fix}"
            )
    return parsed.to_numpy(dtype=np.float32)


def customer_ids(values: pd.Series, name: str, rows: pd.DataFrame) -> pd.Series:
    """The id column as text; a missing or repeated id is refused (one row per customer)."""
    if pd.api.types.is_float_dtype(values.dtype):
        raise DataError(
            f"{rows[WHERE_KEY].iloc[0]}: customer column {name!r} holds decimals; ids must be "
            "text or whole numbers (an integer column with gaps reads as decimals in Parquet: "
            "write it as text)"
        )
    ids = _text(values)
    for bad, what in ((ids.isna(), "is empty"), (ids.duplicated(keep=False), "repeats")):
        if bad.any():
            first = np.flatnonzero(bad.to_numpy())[:2]
            at = " and ".join(str(rows[WHERE_KEY].iloc[i]) for i in first)
            raise DataError(
                f"{at}: customer id {what} ({int(bad.sum())} row(s)); a customer table has "
                "exactly one row per customer: fill, merge or drop those rows"
            )
    return ids.astype(str)
