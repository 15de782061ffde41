"""k-anonymity over already-generalised quasi-identifiers, enforced by local suppression.

The scheme (greedy local suppression, one quasi-identifier at a time):

1. Missing values count as suppressed ("*") from the start: a blank reveals nothing.
2. Group all records by their quasi-identifiers. Records in classes of at least k are
   final. Records in smaller classes ("at risk") lose one more quasi-identifier, set to
   "*" for those records only. The one chosen is the quasi-identifier whose suppression
   leaves the fewest records at risk (greedy; ties go to the one with more distinct
   values, i.e. the most specific, then to the caller's order). Regroup and repeat.
3. When every quasi-identifier has been suppressed for the records still at risk, they
   all share the all-"*" class; if it is still smaller than k, they are removed.

Why it is sound: a class of at least k never shrinks, because none of its members are
at risk and so none change; records that change can only join classes. Every record at
risk has had the same quasi-identifiers suppressed, so the order is one global sequence,
reported as ``suppression_order``. Why greedy: optimal k-anonymity by suppression is
NP-hard (Meyerson & Williams 2004); greedy per step keeps far more values than
suppressing every quasi-identifier of every small class at once, and stays predictable.

No library among the installed ones (pandas, sklearn) implements k-anonymity, hence
the hand-written loop; grouping itself is pandas.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pandas as pd

from fedmarket.checks import integer
from fedmarket.errors import ConfigError, DataError

SUPPRESSED: Final[str] = "*"


@dataclass(frozen=True)
class KAnonymityReport:
    """What enforcement did, for the manifest: enough to judge the release without the data."""

    k: int
    quasi_identifiers: tuple[str, ...]
    suppression_order: tuple[str, ...]
    records_in: int
    records_released: int
    records_removed: int
    # Released records whose value is "*" for each quasi-identifier, for any reason.
    suppressed: Mapping[str, int]
    # Input records whose value was already missing (or invalid, made missing upstream).
    missing_or_invalid: Mapping[str, int]
    equivalence_classes: int
    smallest_class: int  # 0 when nothing is released
    columns_dropped: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (lists, not tuples; dicts, not mappings)."""
        return {
            "k": self.k,
            "quasi_identifiers": list(self.quasi_identifiers),
            "suppression_order": list(self.suppression_order),
            "records_in": self.records_in,
            "records_released": self.records_released,
            "records_removed": self.records_removed,
            "suppressed": dict(self.suppressed),
            "missing_or_invalid": dict(self.missing_or_invalid),
            "equivalence_classes": self.equivalence_classes,
            "smallest_class": self.smallest_class,
            "columns_dropped": list(self.columns_dropped),
        }


def check_k(k: int) -> int:
    """Refuse k < 2: k = 1 is every table, so it would promise protection and give none."""
    return integer("k-anonymity k", k, at_least=2, numpy=True)


def _class_sizes(codes: pd.DataFrame) -> np.ndarray:
    """Size of each record's equivalence class, aligned with the rows."""
    if codes.empty:
        return np.zeros(len(codes), dtype=np.int64)
    group = codes.groupby(list(codes.columns), sort=False).ngroup().to_numpy()
    return np.bincount(group)[group]


def _encode(table: pd.DataFrame, qis: Sequence[str]) -> tuple[pd.DataFrame, dict[str, int]]:
    """Integer codes per column (faster to group than strings) and each column's "*" code."""
    codes, star = {}, {}
    for qi in qis:
        values = table[qi].astype("string").fillna(SUPPRESSED)
        col_codes, uniques = pd.factorize(values)
        hit = np.flatnonzero(np.asarray(uniques == SUPPRESSED))
        star[qi] = int(hit[0]) if len(hit) else len(uniques)
        codes[qi] = col_codes
    return pd.DataFrame(codes), star  # positional index: the input's may repeat labels


def _pick_next(
    codes: pd.DataFrame, at_risk: np.ndarray, remaining: list[str], star: dict[str, int], k: int
) -> str:
    """Greedy step: the quasi-identifier whose suppression leaves the fewest records at risk."""

    def cost(qi: str) -> tuple[int, int, int]:
        trial = codes.copy()
        trial.loc[at_risk, qi] = star[qi]
        still = int((_class_sizes(trial) < k).sum())
        specific = codes[qi][codes[qi] != star[qi]].nunique()
        return still, -specific, remaining.index(qi)

    return min(remaining, key=cost)


def enforce_k_anonymity(
    table: pd.DataFrame, quasi_identifiers: Sequence[str], k: int
) -> tuple[pd.DataFrame, KAnonymityReport]:
    """Suppress and, as a last resort, remove records until every class has >= k records.

    Quasi-identifier columns come back as pandas "string" with "*" for suppressed or
    missing values; other columns are untouched. The index is kept (minus removed rows).
    """
    k = check_k(k)
    qis = list(dict.fromkeys(quasi_identifiers))
    if not qis:
        raise ConfigError("k-anonymity needs at least one quasi-identifier column")
    missing = [qi for qi in qis if qi not in table.columns]
    if missing:
        raise DataError(
            f"quasi-identifier columns {missing} are not in the table "
            f"(columns: {list(table.columns)})"
        )
    codes, star = _encode(table, qis)
    missing_in = {qi: int((codes[qi] == star[qi]).sum()) for qi in qis}
    at_risk = _class_sizes(codes) < k
    remaining, order = list(qis), []
    while at_risk.any() and remaining:
        qi = _pick_next(codes, at_risk, remaining, star, k)
        codes.loc[at_risk, qi] = star[qi]
        remaining.remove(qi)
        order.append(qi)
        at_risk = _class_sizes(codes) < k
    # Whatever is still at risk is the all-"*" class, smaller than k: remove it.
    keep = ~at_risk
    released = table.loc[keep].copy()
    for qi in qis:
        # Positional arrays, not Series: an input index with duplicate labels must not realign.
        values = table[qi].astype("string").fillna(SUPPRESSED).to_numpy(dtype=object)[keep]
        hidden = codes[qi].to_numpy()[keep] == star[qi]
        released[qi] = pd.array(np.where(hidden, SUPPRESSED, values), dtype="string")
    sizes = _verify(released, qis, k)
    report = KAnonymityReport(
        k=k,
        quasi_identifiers=tuple(qis),
        suppression_order=tuple(order),
        records_in=len(table),
        records_released=len(released),
        records_removed=len(table) - len(released),
        suppressed={qi: int((released[qi] == SUPPRESSED).sum()) for qi in qis},
        missing_or_invalid=missing_in,
        equivalence_classes=len(sizes),
        smallest_class=int(sizes.min()) if len(sizes) else 0,
    )
    return released, report


def _verify(released: pd.DataFrame, qis: list[str], k: int) -> pd.Series:
    """Recount classes from the released values themselves, independently of the codes."""
    if released.empty:
        return pd.Series([], dtype=np.int64)
    sizes = released.groupby(qis, sort=False, dropna=False).size()
    if (sizes < k).any():
        # A bug, not bad input: refuse to hand out a table that breaks the promise.
        raise RuntimeError(
            f"internal error: k-anonymity enforcement left {int((sizes < k).sum())} "
            f"classes smaller than k={k}; the table was not released"
        )
    return sizes
