"""A retailer's own export described by a few column names, and its conversion to REES46 events.

Three shapes are understood (``kind``):

* ``rees46``: already event-shaped; the mapping may only rename columns and event names.
* ``transactions``: a sales log, one row per order line. Each row becomes ONE ``purchase`` event
  with price = amount / quantity (quantity 1 when no quantity column is mapped), i.e. the unit
  price; the quantity itself is not kept. Rows whose quantity is empty, not a number or not
  positive (returns, refunds) are dropped as ``bad_quantity``: they are not purchases.
* ``clickstream``: one row per interaction with an event-name column; ``event_names`` maps their
  names to view / cart / remove_from_cart / purchase, or to ``ignore`` (dropped, counted as
  ``ignored_event_type``, never an error). The four canonical names map to themselves unless
  listed; any other name is a bad row (``unknown_event_type``), or, with
  ``unmapped_events = "ignore"``, ignored like a listed one (a site with dozens of event names
  lists only those it keeps). Price comes from ``amount`` or is 0.

For transactions and clickstream, product and category ids that are integers (up to 18 digits)
are kept; other ids (SKUs like "AB-12") become a stable 63-bit hash so equal ids stay equal across
chunks, files and runs, and a text category is also kept as ``category_code``. Unmapped product /
category ids are 0. Without a session column, sessions are derived after validation by
``SessionAssigner``: a customer's new session starts after ``session_gap_minutes`` (30) without
events; the id is "<customer>#<n>" (n-th session of that customer in the file), which the
anonymiser pseudonymises like the customer id.

A CSV without a header line names its columns in ``columns`` (in file order; the keys above then
refer to these names). ``keep_duplicates = true`` (kind=transactions only) keeps identical lines
as repeat purchases: a log without order ids, such as CDNOW's, writes two equal orders of one
day as two equal lines, which the default (drop exact copies as ``duplicate_row``) would merge.

``kind = "table"`` is not an event export but a customer table (an id, attributes, a label):
``_from_dict`` hands it to ``fedmarket.data.ingest.table``, which has its own keys.

A mapping comes from a small TOML file (``load_mapping``; see docs/mappings/) or from one CLI
string (``parse_mapping_option``), e.g.
``kind=clickstream,customer=uid,timestamp=t,event=action,event.click=view,event.order=purchase``.
"""

from __future__ import annotations

import codecs
import tomllib
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fedmarket.checks import integer
from fedmarket.data.ingest.schema import EVENT_TYPES, RETAILER_COLUMN
from fedmarket.data.ingest.timestamps import EPOCH_FORMATS
from fedmarket.data.ingest.validate import (
    ISSUE_COLUMN,
    ISSUE_DETAIL_COLUMN,
    as_text,
    parse_float,
    to_arrow,
)
from fedmarket.errors import ConfigError, DataError

if TYPE_CHECKING:
    from fedmarket.data.ingest.table import TableMapping

KINDS: Final[tuple[str, ...]] = ("rees46", "transactions", "clickstream")
IGNORE: Final[str] = "ignore"
UNMAPPED_EVENTS: Final[tuple[str, ...]] = ("error", IGNORE)  # what an unlisted event name is
# mapping key -> REES46 column it fills (and the default column name for kind=rees46)
TARGETS: Final[dict[str, str]] = {
    "customer": "user_id",
    "timestamp": "event_time",
    "event": "event_type",
    "amount": "price",
    "quantity": "quantity",
    "product": "product_id",
    "category": "category_id",
    "category_code": "category_code",
    "brand": "brand",
    "session": "user_session",
}
_REQUIRED: Final[dict[str, tuple[str, ...]]] = {
    "rees46": (),
    "transactions": ("customer", "timestamp", "amount"),
    "clickstream": ("customer", "timestamp", "event"),
}
_DELIMITERS: Final[dict[str, str]] = {
    "tab": "\t",
    "\\t": "\t",
    "comma": ",",
    "semicolon": ";",
    "pipe": "|",
    "space": " ",
}
# csv_delimiter for logs whose columns are separated by runs of spaces or tabs
WHITESPACE: Final[str] = "whitespace"
FORMATS: Final[tuple[str, ...]] = ("csv", "parquet")
_ID_HASH_KEY: Final[str] = "fedmarket-ids-v1"  # 16 bytes, fixed so hashed ids never change


@dataclass(frozen=True)
class ExportMapping:
    """How to read one retailer's export; validated on construction (ConfigError naming the key)."""

    kind: str = "rees46"
    customer: str | None = None
    timestamp: str | None = None
    event: str | None = None
    amount: str | None = None
    quantity: str | None = None
    product: str | None = None
    category: str | None = None
    category_code: str | None = None
    brand: str | None = None
    session: str | None = None
    event_names: Mapping[str, str] = field(default_factory=dict, hash=False)
    unmapped_events: str = "error"
    timestamp_format: str | None = None
    assume_tz: str | None = None
    csv_delimiter: str = ","
    format: str | None = None  # read every file as this, whatever its name (else by extension)
    encoding: str = "utf-8"
    session_gap_minutes: int = 30
    columns: tuple[str, ...] | None = None  # a header-less CSV's column names, in file order
    keep_duplicates: bool = False  # transactions: identical lines are repeat purchases
    source: str = field(default="<mapping>", compare=False, repr=False)

    def __post_init__(self) -> None:
        where = self.source
        if self.kind not in KINDS:
            raise ConfigError(
                f"{where}: kind={self.kind!r} is unknown; use one of {', '.join(KINDS)} "
                f"(or table, for a customer table: fedmarket.data.ingest.table)"
            )
        for key in TARGETS:
            value = getattr(self, key)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ConfigError(f"{where}: {key} must name a column, got {value!r}")
        for key in _REQUIRED[self.kind]:
            if getattr(self, key) is None:
                raise ConfigError(
                    f"{where}: kind={self.kind} needs key {key!r} (the column "
                    f"that holds {TARGETS[key]})"
                )
        if self.kind == "transactions" and self.event is not None:
            raise ConfigError(
                f"{where}: key 'event' is not used by kind=transactions "
                f"(every row is a purchase); use kind=clickstream"
            )
        if self.kind != "transactions" and self.quantity is not None:
            raise ConfigError(f"{where}: key 'quantity' only applies to kind=transactions")
        self._check_event_names(where)
        self._check_options(where)
        self._check_reading(where)

    def _check_reading(self, where: str) -> None:
        if self.keep_duplicates and self.kind != "transactions":
            raise ConfigError(
                f"{where}: keep_duplicates only applies to kind=transactions (identical sales "
                f"lines as repeat purchases); event exports repeat rows by mistake"
            )
        if self.columns is None:
            return
        names = tuple(self.columns)
        if not names or not all(isinstance(c, str) and c.strip() for c in names):
            raise ConfigError(f"{where}: columns must list non-empty column names, got {names!r}")
        if len(set(names)) != len(names):
            twice = sorted({c for c in names if names.count(c) > 1})
            raise ConfigError(f"{where}: columns names {', '.join(twice)} more than once")
        if self.format == "parquet":
            raise ConfigError(f"{where}: columns names a header-less CSV's columns, not Parquet's")
        object.__setattr__(self, "columns", names)

    def _check_event_names(self, where: str) -> None:
        if self.event_names and self.kind == "transactions":
            raise ConfigError(f"{where}: event names are not used by kind=transactions")
        for name, target in self.event_names.items():
            if not isinstance(name, str) or not name:
                raise ConfigError(f"{where}: event name {name!r} must be non-empty text")
            if target not in (*EVENT_TYPES, IGNORE):
                raise ConfigError(
                    f"{where}: event.{name}={target!r} is not a valid target; use "
                    f"one of {', '.join((*EVENT_TYPES, IGNORE))}"
                )
        if self.unmapped_events not in UNMAPPED_EVENTS:
            raise ConfigError(
                f"{where}: unmapped_events={self.unmapped_events!r} is unknown; use 'ignore' "
                "(event names the mapping does not list are dropped and counted) or 'error'"
            )
        if self.unmapped_events == IGNORE and self.kind == "transactions":
            raise ConfigError(f"{where}: unmapped_events is not used by kind=transactions")
        object.__setattr__(self, "event_names", MappingProxyType(dict(self.event_names)))

    def _check_options(self, where: str) -> None:
        fmt = self.timestamp_format
        if fmt is not None and fmt not in EPOCH_FORMATS and "%" not in str(fmt):
            raise ConfigError(
                f"{where}: timestamp_format={fmt!r} has no strftime codes; use e.g. "
                f"'%d/%m/%Y %H:%M' or one of {', '.join(EPOCH_FORMATS)}"
            )
        if self.assume_tz is not None:
            try:
                zoneinfo.ZoneInfo(self.assume_tz)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError) as exc:
                raise ConfigError(
                    f"{where}: assume_tz={self.assume_tz!r} is not an IANA time "
                    f"zone (e.g. 'UTC', 'Europe/Berlin')"
                ) from exc
        if self.format is not None and self.format not in FORMATS:
            raise ConfigError(
                f"{where}: format={self.format!r} is unknown; use one of {', '.join(FORMATS)} "
                f"(or omit it to go by the file's extension)"
            )
        if self.csv_delimiter != WHITESPACE:
            self._check_delimiter(where)
        self._check_encoding(where)

    def _check_delimiter(self, where: str) -> None:
        delimiter = _DELIMITERS.get(self.csv_delimiter, self.csv_delimiter)
        if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in '"\r\n':
            raise ConfigError(
                f"{where}: csv_delimiter={self.csv_delimiter!r} must be one "
                f"character or one of {', '.join((*_DELIMITERS, WHITESPACE))}"
            )
        object.__setattr__(self, "csv_delimiter", delimiter)

    def _check_encoding(self, where: str) -> None:
        try:
            codecs.lookup(self.encoding)
        except (LookupError, TypeError) as exc:
            raise ConfigError(f"{where}: encoding={self.encoding!r} is unknown") from exc
        integer(f"{where}: session_gap_minutes", self.session_gap_minutes, at_least=1)

    def column(self, key: str) -> str | None:
        """Their column for a mapping key; kind=rees46 defaults to the REES46 names."""
        value = getattr(self, key)
        if value is None and self.kind == "rees46" and key != "quantity":
            return TARGETS[key]
        return value


REES46: Final[ExportMapping] = ExportMapping()
_KEYS: Final[tuple[str, ...]] = tuple(f.name for f in fields(ExportMapping) if f.name != "source")


def _from_dict(values: dict[str, Any], source: str) -> ExportMapping | TableMapping:
    if values.get("kind") == "table":  # a customer table, not events: fedmarket.data.ingest.table
        from fedmarket.data.ingest.table import table_mapping

        return table_mapping(values, source)
    for key in values:
        if key not in _KEYS:
            raise ConfigError(
                f"{source}: unknown key {key!r}; known keys: {', '.join(_KEYS)} "
                f"(event names as event.<their name>=<event type>)"
            )
    if "kind" not in values:
        raise ConfigError(f"{source}: missing key 'kind' ({', '.join(KINDS)} or table)")
    for key, value in values.items():
        expected = _TYPES.get(key, str)
        if not isinstance(value, expected):
            raise ConfigError(f"{source}: key {key!r} must be {expected.__name__}, got {value!r}")
    if "columns" in values:
        values["columns"] = tuple(values["columns"])
    return ExportMapping(**values, source=source)


_TYPES: Final[dict[str, type]] = {
    "event_names": dict,
    "session_gap_minutes": int,
    "columns": list,
    "keep_duplicates": bool,
}


def mapping_option(value: str | Path | None) -> ExportMapping | TableMapping | None:
    """``--mapping``: a TOML file, or inline ``"kind=...,customer=..."`` text (only text
    holds "="); None when not given."""
    if value is None:
        return None
    if isinstance(value, str) and "=" in value:
        return parse_mapping_option(value)
    return load_mapping(Path(value))


def load_mapping(path: Path) -> ExportMapping | TableMapping:
    """Read a mapping TOML file: the keys of ``ExportMapping`` plus an ``[event_names]`` table."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            values = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read mapping file ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    return _from_dict(values, str(path))


def parse_mapping_option(text: str) -> ExportMapping | TableMapping:
    """Parse "key=value,key=value"; "event.<name>=<type>" maps one event name (``ignore`` skips);
    ``columns=cust date qty amount`` names a header-less file's columns (space-separated)."""
    source = f"--mapping {text!r}"
    values: dict[str, Any] = {}
    names: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = (s.strip() for s in item.partition("="))
        if not sep or not key:
            raise ConfigError(f"{source}: {item!r} is not key=value")
        target: dict[str, Any] = names if key.startswith("event.") else values
        key = key.removeprefix("event.") if target is names else key
        if key in target:
            raise ConfigError(f"{source}: key {key!r} given twice")
        target[key] = value
    if "session_gap_minutes" in values:
        try:
            values["session_gap_minutes"] = int(values["session_gap_minutes"])
        except ValueError as exc:
            raise ConfigError(f"{source}: session_gap_minutes must be an integer") from exc
    if "columns" in values:
        values["columns"] = values["columns"].split()
    if "keep_duplicates" in values:
        flag = values["keep_duplicates"].lower()
        if flag not in ("true", "false"):
            raise ConfigError(f"{source}: keep_duplicates must be true or false")
        values["keep_duplicates"] = flag == "true"
    if names:
        values["event_names"] = names
    return _from_dict(values, source)


def _external_ids(column: pd.Series) -> tuple[pa.Array, pa.Array]:
    """(int64 ids, category text or null): integers kept, other text hashed to 63 bits."""
    text = as_text(to_arrow(column))
    integral = pc.match_substring_regex(text, r"^[+-]?\d{1,18}$").fill_null(False)
    ints = pc.cast(pc.if_else(integral, text, "0"), pa.int64()).to_numpy()
    raw = text.to_numpy(zero_copy_only=False)
    hashed = pd.util.hash_array(raw, hash_key=_ID_HASH_KEY) & np.uint64(2**63 - 1)
    ids = np.where(integral.to_numpy(zero_copy_only=False), ints, hashed.astype(np.int64))
    ids[pc.is_null(text).to_numpy(zero_copy_only=False)] = 0
    words = pc.if_else(integral, pa.scalar(None, text.type), text)
    return pa.array(ids), words


def _map_events(column: pd.Series, mapping: ExportMapping) -> tuple[pa.Array, np.ndarray]:
    """(event types, ignored mask); unmapped names stay as written so validation can name them,
    unless the mapping ignores them (an empty name stays a bad row either way)."""
    text = as_text(to_arrow(column))
    table = {e: e for e in EVENT_TYPES} | dict(mapping.event_names)
    index = pc.index_in(text, value_set=pa.array(list(table), text.type))
    mapped = pc.take(pa.array(list(table.values()), text.type), index)
    if mapping.unmapped_events == IGNORE:
        unlisted = pc.and_(pc.is_null(mapped), pc.invert(pc.is_null(text)))
        mapped = pc.if_else(unlisted, pa.scalar(IGNORE, text.type), mapped)
    ignored = pc.equal(mapped, IGNORE).fill_null(False)
    keep_raw = pc.or_(pc.is_null(mapped), ignored)
    return pc.if_else(keep_raw, text, mapped), ignored.to_numpy(zero_copy_only=False)


def unlisted_own_names(df: pd.DataFrame, mapping: ExportMapping) -> dict[str, int]:
    """Rows per fedmarket event name the site also uses but ``event_names`` does not list.

    A mapping with its own names (or ``unmapped_events = "ignore"``) describes a site's
    vocabulary, in which a name like ``cart`` may mean something else (a cart-page view); an
    unlisted one is still read as fedmarket's own, silently. Counted so prepare can warn.
    """
    column = mapping.column("event")
    if column is None or column not in df.columns:
        return {}
    if not mapping.event_names and mapping.unmapped_events != IGNORE:
        return {}
    unlisted = [name for name in EVENT_TYPES if name not in mapping.event_names]
    counts = df[column].value_counts()
    return {name: int(counts[name]) for name in unlisted if name in counts.index}


def _flag(issues: dict[str, np.ndarray], column: pd.Series, mask: np.ndarray, reason: str) -> None:
    """Record an issue (first one wins) with the raw value in their column for messages."""
    free = np.flatnonzero(mask & pd.isna(issues["reason"]))
    if len(free):
        issues["reason"][free] = reason
        values = column.iloc[free].tolist()
        issues["detail"][free] = [f"{column.name}={None if pd.isna(v) else v!r}" for v in values]


def apply_mapping(
    df: pd.DataFrame, mapping: ExportMapping, *, source: str = "<frame>"
) -> pd.DataFrame:
    """Their columns -> REES46 columns (not yet validated), one output row per input row, in order.

    Problems only the mapping can see (bad quantity, ignored event names, bad amounts) are
    written to ``validate.ISSUE_COLUMN`` so ``validate_events`` counts them with the others.
    Unmapped columns pass through (validation lists them as extra) unless their name clashes.
    """
    used = {key: mapping.column(key) for key in TARGETS}
    for key, name in used.items():
        explicit = getattr(mapping, key) is not None
        if name is not None and name not in df.columns and explicit:
            raise DataError(
                f"{source}: the mapping says {key}={name!r} but there is no such "
                f"column; found {', '.join(map(str, df.columns))}"
            )
    present = {k: n for k, n in used.items() if n is not None and n in df.columns}
    n = len(df)
    issues = {"reason": np.full(n, None, dtype=object), "detail": np.full(n, None, dtype=object)}
    out: dict[str, Any] = {TARGETS[k]: df[name] for k, name in present.items()}
    out.pop("quantity", None)
    if mapping.kind != "rees46":
        _apply_kind(df, mapping, present, out, issues)
    elif "event" in present and (mapping.event_names or mapping.unmapped_events == IGNORE):
        out["event_type"], ignored = _map_events(df[present["event"]], mapping)
        _flag(issues, df[present["event"]], ignored, "ignored_event_type")
    frame = pd.DataFrame({k: _series(v, n) for k, v in out.items()})
    if RETAILER_COLUMN in df.columns and RETAILER_COLUMN not in frame:
        frame[RETAILER_COLUMN] = df[RETAILER_COLUMN].reset_index(drop=True)
    for extra in df.columns:
        if extra not in present.values() and extra not in frame:
            frame[extra] = df[extra].reset_index(drop=True)
    if any(r is not None for r in issues["reason"]):
        frame[ISSUE_COLUMN] = pd.array(issues["reason"], dtype="string")
        frame[ISSUE_DETAIL_COLUMN] = pd.array(issues["detail"], dtype="string")
    return frame


def _series(values: Any, n: int) -> pd.Series:
    if isinstance(values, pd.Series):
        return values.reset_index(drop=True)
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return pd.Series(values, dtype=pd.ArrowDtype(values.type))
    return pd.Series(np.asarray(values)) if np.ndim(values) else pd.Series(np.full(n, values))


def _apply_kind(
    df: pd.DataFrame,
    mapping: ExportMapping,
    present: dict[str, str],
    out: dict[str, Any],
    issues: dict[str, np.ndarray],
) -> None:
    if mapping.kind == "transactions":
        amount = df[present["amount"]]
        values, unparseable = parse_float(to_arrow(amount))
        _flag(issues, amount, unparseable, "unparseable_price")
        _flag(issues, amount, np.isnan(values) & ~unparseable, "nan_price")
        if "quantity" in present:
            quantity = df[present["quantity"]]
            counts, _ = parse_float(to_arrow(quantity))
            bad = ~(np.isfinite(counts) & (counts > 0))
            _flag(issues, quantity, bad, "bad_quantity")
            values = values / np.where(bad, 1.0, counts)
        out["price"] = values
        out["event_type"] = "purchase"
    else:
        out["event_type"], ignored = _map_events(df[present["event"]], mapping)
        _flag(issues, df[present["event"]], ignored, "ignored_event_type")
        if "amount" not in present:
            out["price"] = 0.0
    for key, target in (("product", "product_id"), ("category", "category_id")):
        if key in present:
            out[target], words = _external_ids(df[present[key]])
            if key == "category" and "category_code" not in present:
                out["category_code"] = words
