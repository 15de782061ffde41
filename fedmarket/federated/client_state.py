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
is a copy of a released value), so the round is charged once. If it differs (another global
model, or nondeterministic kernels), both releases count: the new one is charged on top of
everything spent so far, and refused if that would exceed the target. Only real releases
are ever charged, and none twice.
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

JOURNAL_VERSION = 2


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


@dataclass(frozen=True)
class RoundEntry:
    """One released round: the accountant before and after it, and what was released."""

    before: AccountantState
    after: AccountantState
    update: str


@dataclass
class PrivacyJournal:
    """Every round a client released, so a replayed round is charged once."""

    rounds: dict[int, RoundEntry] = field(default_factory=dict)
    # a state written before the journal existed (no rounds): where counting starts
    legacy: AccountantState | None = None

    def latest(self) -> AccountantState | None:
        """Everything spent so far."""
        if self.rounds:
            return self.rounds[max(self.rounds)].after
        return self.legacy

    def base_for(self, server_round: int) -> AccountantState | None:
        """The accountant a (re)training of ``server_round`` starts from: what was spent
        before that round, so a replay that releases the same update is charged once."""
        if server_round in self.rounds:
            return self.rounds[server_round].before
        earlier = [r for r in self.rounds if r < server_round]
        return self.rounds[max(earlier)].after if earlier else self.legacy

    def charge(
        self, server_round: int, before: AccountantState | None, after: AccountantState, update: str
    ) -> AccountantState:
        """Record the round's release; the accountant state that is now spent.

        The same update as already released for this round: nothing new (the state recorded
        then). A new update for a round, or one trained from a state that is no longer the
        latest: its steps are added to everything spent so far.
        """
        prior = self.rounds.get(server_round)
        if prior is not None and prior.update == update:
            return prior.after
        spent = self.latest()
        if spent is not None and (prior is not None or spent != before):
            after = _add_steps(spent, before, after)
        self.rounds[server_round] = RoundEntry(before or _empty(after), after, update)
        return after

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": JOURNAL_VERSION,
            "rounds": {
                str(r): {
                    "before": e.before.to_dict(),
                    "after": e.after.to_dict(),
                    "update": e.update,
                }
                for r, e in sorted(self.rounds.items())
            },
            "legacy": self.legacy.to_dict() if self.legacy is not None else None,
        }

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> PrivacyJournal:
        if data.get("version") != JOURNAL_VERSION:  # a bare AccountantState (before journals)
            return PrivacyJournal(legacy=AccountantState.from_dict(data))
        rounds = {
            int(r): RoundEntry(
                AccountantState.from_dict(e["before"]),
                AccountantState.from_dict(e["after"]),
                str(e["update"]),
            )
            for r, e in data["rounds"].items()
        }
        legacy = data.get("legacy")
        return PrivacyJournal(rounds, AccountantState.from_dict(legacy) if legacy else None)


def _empty(like: AccountantState) -> AccountantState:
    return AccountantState(like.accountant, (), like.noise_multiplier)


def _add_steps(
    spent: AccountantState, before: AccountantState | None, after: AccountantState
) -> AccountantState:
    """``spent`` plus the steps ``after`` took beyond ``before`` (one noise and rate a round)."""
    steps = after.steps - (before.steps if before is not None else 0)
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
    return save_journal(PrivacyJournal(legacy=state), state_dir, partition_id)
