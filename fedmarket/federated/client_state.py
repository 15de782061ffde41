"""A client's privacy accountant, kept between rounds and across restarts.

Flower keeps ``context.state`` per node while the node lives; a resumed simulation or a
restarted SuperNode starts with an empty one. With a ``state-dir`` the accountant history
is also written to that client's own directory (on the retailer's machine in deployment),
and the file wins, so epsilon stays cumulative over the whole run, resumes included.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fedmarket.errors import PrivacyError
from fedmarket.privacy.accounting import AccountantState


def state_file(state_dir: str, partition_id: int) -> Path:
    return Path(state_dir) / f"client-{partition_id}" / "accountant.json"


def load_accountant(record: Any, state_dir: str, partition_id: int) -> AccountantState | None:
    """The latest saved history: the state-dir file if present, else Flower's context.state."""
    if state_dir:
        path = state_file(state_dir, partition_id)
        if path.exists():
            try:
                return AccountantState.from_dict(json.loads(path.read_text()))
            except (json.JSONDecodeError, ValueError) as exc:
                raise PrivacyError(
                    f"{path}: unreadable accountant state ({exc}); refusing to guess "
                    "the epsilon already spent"
                ) from exc
    if record is not None and "accountant" in record:
        return AccountantState.from_dict(json.loads(str(record["accountant"])))
    return None


def save_accountant(state: AccountantState, state_dir: str, partition_id: int) -> str:
    """Persist (atomically) and return the JSON text for context.state."""
    text = json.dumps(state.to_dict())
    if state_dir:
        path = state_file(state_dir, partition_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return text
