"""``RUN/contribution/coalitions.jsonl``: one line per coalition whose run finished (or failed),
appended as each ends, so a valuation that stops resumes without training a coalition twice.

A line is ``{"members": [original partition ids], "status": "ok"|"error", "value",
"metric", "wall_s", "epsilon": {partition id: epsilon}, "rounds", "error", "finished_at"}``.
The last line of a coalition wins (a failed coalition tried again); a torn last line (the
process died while writing it) is ignored.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fedmarket.contribution.values import Coalition


def coalition_key(members: Iterable[int]) -> str:
    """A coalition's directory name: its sorted original partition ids, ``c-0-2-3``."""
    return "c-" + "-".join(str(m) for m in sorted(int(m) for m in members))


def read_records(path: Path) -> dict[Coalition, dict[str, Any]]:
    """Each recorded coalition's latest record."""
    records: dict[Coalition, dict[str, Any]] = {}
    if not Path(path).is_file():
        return records
    for line in Path(path).read_text().splitlines():
        try:
            record = json.loads(line)
            members = frozenset(int(m) for m in record["members"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            continue  # a torn line: that coalition is trained again
        records[members] = record
    return records


def values_known(records: dict[Coalition, dict[str, Any]]) -> dict[Coalition, float]:
    """The value of every coalition whose run finished."""
    return {
        c: float(r["value"])
        for c, r in records.items()
        if r.get("status") == "ok" and r.get("value") is not None
    }


def append_record(path: Path, record: dict[str, Any]) -> None:
    """One line, flushed to disk before returning (a crash loses at most the run in flight)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(_finite(record), sort_keys=False) + "\n"
    path = Path(path)
    if path.is_file() and path.stat().st_size and not path.read_bytes().endswith(b"\n"):
        line = "\n" + line  # after a torn line, not glued to it
    with open(path, "a") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
