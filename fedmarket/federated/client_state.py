"""A client's privacy accountant, kept between rounds, across restarts and across replays.

Flower keeps ``context.state`` per node while the node lives; a resumed simulation or a
restarted SuperNode starts with an empty one. With a ``state-dir`` the accountant is also
written to that client's own directory (on the retailer's machine in deployment), and the
file wins, so epsilon stays cumulative over the whole run, resumes included.

The state is a journal, one entry per round: the accountant before and after the round and
a digest of the update the client released. A crash can make the server ask for a round
again (it resumes from its last commit, and the round in flight was trained but never
committed). If the retrained update is bit-for-bit the one already released, which it is on
CPU for the same global weights and round seed, releasing it again reveals nothing new (it
is a copy of a released value), so it adds nothing. If it differs (another global model,
another run in the same state-dir, nondeterministic kernels), both releases count: the new
one's steps are added to the running total of everything spent, and it is refused if that
would exceed the target. Every distinct release is charged, and none twice.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fedmarket.errors import PrivacyError
from fedmarket.privacy.accounting import AccountantState

JOURNAL_VERSION = 3


def state_file(state_dir: str, partition_id: int) -> Path:
    return Path(state_dir) / f"client-{partition_id}" / "accountant.json"


def update_digest(state_dict: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 of a model update (names, dtypes, shapes and bytes, in key order)."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


@dataclass
class RoundEntry:
    """One round as released: the accountant it was trained from, and every distinct update
    released for it (by digest)."""

    before: AccountantState | None
    updates: set[str] = field(default_factory=set)


@dataclass
class PrivacyJournal:
    """Everything a client spent (``spent``, a running total) and the rounds it released.

    ``spent`` only grows: every release of an update not released before adds its steps;
    an update that was released before (same round, same bytes) adds nothing.
    """

    spent: AccountantState | None = None
    rounds: dict[int, RoundEntry] = field(default_factory=dict)

    def latest(self) -> AccountantState | None:
        """Everything spent so far."""
        return self.spent

    def base_for(self, server_round: int) -> AccountantState | None:
        """The accountant a (re)training of ``server_round`` starts from: the state that round
        was first trained from, so a replay reproduces its update, else all spent so far."""
        entry = self.rounds.get(server_round)
        return entry.before if entry is not None else self.spent

    def charge(
        self, server_round: int, before: AccountantState | None, after: AccountantState, update: str
    ) -> AccountantState:
        """Record the round's release of ``update``; everything spent now.

        ``after`` is the accountant once training from ``before`` ended. An update already
        released for this round costs nothing new; any other adds its steps to ``spent``.
        """
        entry = self.rounds.setdefault(server_round, RoundEntry(before))
        if update in entry.updates:
            return self.spent if self.spent is not None else after
        entry.updates.add(update)
        self.spent = after if self.spent == before else _add_steps(self.spent, before, after)
        return self.spent

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": JOURNAL_VERSION,
            "spent": self.spent.to_dict() if self.spent is not None else None,
            "rounds": {
                str(r): {
                    "before": e.before.to_dict() if e.before is not None else None,
                    "updates": sorted(e.updates),
                }
                for r, e in sorted(self.rounds.items())
            },
        }

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> PrivacyJournal:
        if data.get("version") != JOURNAL_VERSION:  # a bare AccountantState (before journals)
            return PrivacyJournal(spent=AccountantState.from_dict(data))
        rounds = {
            int(r): RoundEntry(
                AccountantState.from_dict(e["before"]) if e["before"] is not None else None,
                {str(u) for u in e["updates"]},
            )
            for r, e in data["rounds"].items()
        }
        spent = data["spent"]
        return PrivacyJournal(AccountantState.from_dict(spent) if spent else None, rounds)


def _add_steps(
    spent: AccountantState | None, before: AccountantState | None, after: AccountantState
) -> AccountantState:
    """``spent`` plus the steps ``after`` took beyond ``before`` (one noise and rate a round)."""
    steps = after.steps - (before.steps if before is not None else 0)
    if spent is None:
        return after
    if steps <= 0:
        return spent
    noise, rate, _ = after.history[-1]
    return spent.extended(noise, rate, steps)


def load_journal(record: Any, state_dir: str, partition_id: int) -> PrivacyJournal:
    """The journal: the state-dir file if present, else Flower's context.state, else empty."""
    text = None
    if state_dir:
        path = state_file(state_dir, partition_id)
        if path.exists():
            text, where = path.read_text(), str(path)
    if text is None and record is not None and "accountant" in record:
        text, where = str(record["accountant"]), "context.state"
    if text is None:
        return PrivacyJournal()
    try:
        return PrivacyJournal.from_dict(json.loads(text))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise PrivacyError(
            f"{where}: unreadable accountant state ({exc}); refusing to guess the epsilon "
            "already spent"
        ) from exc


def save_journal(journal: PrivacyJournal, state_dir: str, partition_id: int) -> str:
    """Persist (atomically) and return the JSON text for context.state."""
    text = json.dumps(journal.to_dict())
    if state_dir:
        path = state_file(state_dir, partition_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return text


def load_accountant(record: Any, state_dir: str, partition_id: int) -> AccountantState | None:
    """Everything the client has spent (the journal's latest state)."""
    return load_journal(record, state_dir, partition_id).latest()


def save_accountant(state: AccountantState, state_dir: str, partition_id: int) -> str:
    """Start a client's journal from ``state`` (spent before this run, or by a test)."""
    return save_journal(PrivacyJournal(spent=state), state_dir, partition_id)
