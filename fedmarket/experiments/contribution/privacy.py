"""What a valuation cost each retailer in privacy.

A retailer's epsilon accumulates over everything done with its data (DESIGN.md), every
coalition run included: under client DP each coalition run spends up to the run's own
target at that retailer. The total is composed exactly where every run's accountant
history is on disk (the histories concatenated, one epsilon at the run's delta: RDP and PRV
compose by adding histories); otherwise it is the sum of the runs' epsilons, a valid upper
bound by basic composition. Which of the two was used is said per retailer.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from fedmarket.contribution.values import Coalition
from fedmarket.errors import FedmarketError
from fedmarket.experiments.contribution.plan import Plan
from fedmarket.federated.client_state import load_accountant
from fedmarket.privacy.accounting import AccountantState, epsilon
from fedmarket.rundir import RunDir


def privacy_spent(plan: Plan, records: dict[Coalition, dict[str, Any]]) -> dict[str, Any]:
    """Per retailer: the run's epsilon, the valuation's, and their total."""
    run_eps = (plan.federated.get("epsilon") or {}).get("per_client") or {}
    delta = plan.federated.get("delta")
    out: dict[str, Any] = {
        "dp": plan.run.dp,
        "statement": _statement(plan.run.dp),
        "delta": delta,
        "retailers": {},
    }
    ok = [(c, r) for c, r in records.items() if r.get("status") == "ok"]
    for p in plan.players:
        mine = [(c, r) for c, r in ok if p in c]
        own = run_eps.get(str(p))
        spent = [(r.get("epsilon") or {}).get(str(p)) for _, r in mine]
        entry: dict[str, Any] = {"run_epsilon": own, "coalition_runs": len(mine)}
        if plan.run.dp == "client" and own is not None and None not in spent:
            entry["valuation_epsilon_sum"] = float(sum(spent))
            entry["total_epsilon"] = float(own + sum(spent))
            entry["composition"] = "basic (sum of each run's epsilon: an upper bound)"
            exact = _composed(plan, p, mine, delta)
            if exact is not None:
                entry["total_epsilon"] = exact
                entry["composition"] = "exact (accountant histories of every run, composed)"
        out["retailers"][str(p)] = entry
    return out


def _composed(
    plan: Plan, player: int, mine: list[tuple[Coalition, dict[str, Any]]], delta: Any
) -> float | None:
    """The epsilon of the run's and every coalition run's histories together, or None."""
    if not delta:
        return None
    dirs = [(RunDir(Path(plan.cfg.run_dir)).client_state, player)]
    for coalition, record in mine:
        dirs.append((RunDir(Path(record["run_dir"])).client_state, sorted(coalition).index(player)))
    try:
        states = [load_accountant(None, str(d), i) for d, i in dirs]
    except FedmarketError:
        return None  # an unreadable history: the sum stands
    if any(s is None or not s.history for s in states):
        return None
    if len({s.accountant for s in states if s is not None}) != 1:
        return None
    states = [s for s in states if s is not None]
    history = tuple(e for s in states for e in s.history)
    value = epsilon(AccountantState(states[0].accountant, history), float(delta))
    return value if math.isfinite(value) else None


def _statement(dp: str) -> str:
    if dp == "client":
        return (
            "Computed from DP runs only: every coalition run used the run's own client-DP "
            "settings (no non-private run of a retailer's data was made to value it); each "
            "run's epsilon counts against the retailer's budget. The epsilons here are the "
            "federated training's; the BG/NBD anchor each run also fits (under its own client "
            "DP, reported in that run's summary) is a further release, not counted here."
        )
    if dp == "central":
        return (
            "Computed from central-DP runs only (the run's own settings); each coalition run "
            "is a further release of the members' contributions under central DP."
        )
    return "The valued run has no DP, so neither have its coalition runs: no privacy guarantee."
