"""Anonymisation on the retailer's side, before anything else touches the data.

Events: ``user_id`` becomes a keyed pseudonym and ``user_session`` a keyed 64-bit token
(``Pseudonymiser.tokens``: sessions too, so a session id cannot link back to a login either;
a token rather than the 64-character pseudonym because sessions are only counted per
customer and never written, and hashing 1.9M distinct sessions into pseudonyms was a quarter
of ``data prepare``); any column named like a direct identifier is dropped.

Customers: direct identifiers are dropped, ``user_id`` pseudonymised, quasi-identifiers
generalised (birth date -> age band, postcode -> prefix; gender and city kept as they
are) and then k-anonymity enforced by local suppression (see ``kanonymity``). City is
kept rather than generalised up front because no city -> region table is available for
arbitrary retailers; a rare city is exactly what suppression removes, and common cities
are worth keeping. Columns outside the customer schema are dropped too: an unknown
column may be an identifier, so it is not released unless the schema names it.

Decisions a caller must know:
- Birth dates must be ISO 8601 text (``1985-03-12``) or date/datetime values. Anything
  else (``12/03/1985`` is ambiguous), missing dates and ages outside 0..120 on
  ``reference_date`` are not errors: the age band is suppressed ("*") and counted in the
  report's ``missing_or_invalid``. One bad row should not stop a retailer's whole export.
- Postcodes must be text. A numeric postcode column is refused (DataError) because
  reading codes like 01067 as numbers has already lost the leading zero.
- Customers removed by k-anonymity are only missing from the customer table; their
  events stay (pseudonymised). k-anonymity covers the released attributes, not the
  behaviour: event sequences can still single a customer out, which is what DP is for.
"""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Final

import pandas as pd

from fedmarket.checks import integer
from fedmarket.data.ingest.schema import DIRECT_IDENTIFIERS, QUASI_IDENTIFIERS
from fedmarket.data.protect.kanonymity import (
    SUPPRESSED,
    KAnonymityReport,
    check_k,
    enforce_k_anonymity,
)
from fedmarket.data.protect.pseudonyms import Pseudonymiser
from fedmarket.errors import ConfigError, DataError

__all__ = [
    "RELEASED_CUSTOMER_COLUMNS",
    "RELEASED_QUASI_IDENTIFIERS",
    "SUPPRESSED",
    "KAnonymityReport",
    "Pseudonymiser",
    "anonymise_customers",
    "anonymise_events",
    "generalise_customers",
]

AGE_BAND: Final[str] = "age_band"
POSTCODE_PREFIX: Final[str] = "postcode_prefix"
RELEASED_QUASI_IDENTIFIERS: Final[tuple[str, ...]] = (AGE_BAND, POSTCODE_PREFIX, "gender", "city")
RELEASED_CUSTOMER_COLUMNS: Final[tuple[str, ...]] = ("user_id", *RELEASED_QUASI_IDENTIFIERS)
MAX_AGE: Final[int] = 120


def _is_direct_identifier(column: object) -> bool:
    """Match names loosely ("Email ", "PHONE"): a near-miss must not slip through."""
    return str(column).strip().lower() in DIRECT_IDENTIFIERS


def anonymise_events(chunk: pd.DataFrame, pseudonymiser: Pseudonymiser) -> pd.DataFrame:
    """Pseudonymise ids in one chunk of events; the input frame is left unchanged.

    ``user_id`` comes back as a Categorical of pseudonyms (``Pseudonymiser.map_categorical``)
    and ``user_session`` as nullable Int64 tokens (``Pseudonymiser.tokens``).
    """
    if "user_id" not in chunk.columns:
        raise DataError(f"event chunk has no user_id column (columns: {list(chunk.columns)})")
    out = chunk.drop(columns=[c for c in chunk.columns if _is_direct_identifier(c)])
    out["user_id"] = pseudonymiser.map_categorical(out["user_id"])  # one text per customer
    if "user_session" in out.columns:  # only counted, never released: see the module docstring
        out["user_session"] = pseudonymiser.tokens(out["user_session"])
    return out


def _age_bands(birth: pd.Series, reference_date: date, width: int) -> pd.Series:
    """Age in whole years on ``reference_date``, binned; NA where unknown or implausible."""
    if pd.api.types.is_datetime64_any_dtype(birth.dtype):
        when = birth
    else:
        # errors="coerce": unparseable dates become NaT and are suppressed, not fatal.
        when = pd.to_datetime(birth.astype(object), errors="coerce", format="ISO8601", utc=True)
    ref = pd.Timestamp(reference_date)
    not_yet = (when.dt.month > ref.month) | ((when.dt.month == ref.month) & (when.dt.day > ref.day))
    age = (ref.year - when.dt.year - not_yet.astype("Int64")).astype("Int64")
    age = age.where((age >= 0) & (age <= MAX_AGE))
    low = (age // width) * width
    if width == 1:
        return low.astype("string")
    return low.astype("string") + "-" + (low + width - 1).astype("string")


def _postcode_prefixes(postcode: pd.Series, length: int) -> pd.Series:
    if pd.api.types.is_numeric_dtype(postcode.dtype):
        raise DataError(
            f"customer column 'postcode' has numeric dtype {postcode.dtype}; leading "
            f"zeros are already lost. Read it as text (dtype=str) and try again"
        )
    cleaned = postcode.astype("string").str.replace(r"\s+", "", regex=True).str.upper()
    return cleaned.str[:length].replace("", pd.NA)


def _text(values: pd.Series) -> pd.Series:
    return values.astype("string").str.strip().replace("", pd.NA)


def generalise_customers(
    customers: pd.DataFrame,
    *,
    reference_date: date,
    age_band_years: int = 10,
    postcode_prefix_len: int = 2,
) -> pd.DataFrame:
    """Generalised quasi-identifiers, one column per RELEASED_QUASI_IDENTIFIERS; NA if unknown."""
    for name, value in (
        ("age_band_years", age_band_years),
        ("postcode_prefix_len", postcode_prefix_len),
    ):
        integer(name, value, at_least=1)
    if not isinstance(reference_date, date):
        raise ConfigError(
            f"reference_date must be a datetime.date, got {type(reference_date).__name__}"
        )
    missing = [c for c in QUASI_IDENTIFIERS if c not in customers.columns]
    if missing:
        raise DataError(
            f"customer table lacks quasi-identifier columns {missing} "
            f"(columns: {list(customers.columns)}); expected {list(QUASI_IDENTIFIERS)}"
        )
    return pd.DataFrame(
        {
            AGE_BAND: _age_bands(customers["birth_date"], reference_date, age_band_years),
            POSTCODE_PREFIX: _postcode_prefixes(customers["postcode"], postcode_prefix_len),
            "gender": _text(customers["gender"]),
            "city": _text(customers["city"]),
        },
        index=customers.index,
    )


def _check_ids(ids: pd.Series) -> None:
    """Null or repeated ids would break k-anonymity's count of distinct people."""
    positions = pd.RangeIndex(len(ids))
    bad = positions[ids.isna().to_numpy()]
    if len(bad):
        raise DataError(
            f"customer table: user_id is missing at rows {list(bad[:10])} (0-based, "
            f"{len(bad)} in all); every customer needs an id"
        )
    dup = positions[ids.duplicated().to_numpy()]
    if len(dup):
        raise DataError(
            f"customer table: rows {list(dup[:10])} (0-based, {len(dup)} in all) repeat "
            f"an earlier user_id; one row per customer, or k-anonymity would count a "
            f"person twice"
        )


def anonymise_customers(
    customers: pd.DataFrame,
    pseudonymiser: Pseudonymiser,
    *,
    k: int = 5,
    reference_date: date,
    age_band_years: int = 10,
    postcode_prefix_len: int = 2,
) -> tuple[pd.DataFrame, KAnonymityReport]:
    """Release the customer table as RELEASED_CUSTOMER_COLUMNS, k-anonymous over its QIs.

    Returns the table (pandas "string" columns, fresh 0-based index, input row order) and
    the report for the manifest.
    """
    check_k(k)
    if "user_id" not in customers.columns:
        raise DataError(
            f"customer table has no user_id column (columns: {list(customers.columns)})"
        )
    pseudonyms = pseudonymiser.map(customers["user_id"])
    # Checked after hashing so that 123 and "123", which share a pseudonym, count as repeats.
    _check_ids(pseudonyms)
    table = generalise_customers(
        customers,
        reference_date=reference_date,
        age_band_years=age_band_years,
        postcode_prefix_len=postcode_prefix_len,
    )
    table.insert(0, "user_id", pseudonyms)
    released, report = enforce_k_anonymity(table, RELEASED_QUASI_IDENTIFIERS, k)
    kept = {"user_id", *QUASI_IDENTIFIERS}
    dropped = tuple(str(c) for c in customers.columns if c not in kept)
    report = dataclasses.replace(report, columns_dropped=dropped)
    return released.reset_index(drop=True), report
