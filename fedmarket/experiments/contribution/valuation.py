"""`fedmarket contribution`: each retailer's leave-one-out or Shapley value to a finished run.

Coalitions are trained one at a time on one Ray runtime, each recorded in
``coalitions.jsonl`` as it ends (a failed one is recorded, not fatal), so a call that stops
resumes where it was; the outputs are rebuilt from the records every time.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fedmarket.contribution.records import append_record, coalition_key, read_records
from fedmarket.contribution.report import write_outputs
from fedmarket.contribution.values import (
    BudgetSpent,
    CachedGame,
    Coalition,
    CoalitionFailed,
    Estimate,
    leave_one_out,
    monte_carlo_shapley,
)
from fedmarket.data import store
from fedmarket.experiments.contribution.coalition import (
    CoalitionRunner,
    empty_metric,
    make_runner,
    model_metric,
    signed,
)
from fedmarket.experiments.contribution.plan import (
    ContributionConfig,
    Plan,
    coalition_settings,
    make_plan,
)
from fedmarket.experiments.contribution.privacy import privacy_spent
from fedmarket.experiments.ray_session import ray_session
from fedmarket.rundir import RunDir, write_json
from fedmarket.tasks import get_task

log = logging.getLogger("fedmarket")


def run_contribution(
    cfg: ContributionConfig,
    *,
    plan: Plan | None = None,
    runner: CoalitionRunner | None = None,
    advance: Callable[..., None] | None = None,
) -> dict[str, Any]:
    """Value every retailer of ``cfg.run_dir``; the result (also in contribution.json).

    ``runner(coalition, run_dir)`` trains one coalition (default: the run's simulation on a
    view of the coalition's data); ``advance(n, description=)`` is told about each run.
    """
    plan = plan or make_plan(cfg)
    cfg = plan.cfg  # its run directory resolved
    advance = advance or (lambda n=1, description=None: None)
    files = RunDir(cfg.run_dir)
    task = get_task(plan.run.task)
    test = store.load_pooled(plan.data_dir, "test", fernet=plan.fernet)
    grand_metric, empty = model_metric(files.path, test, task), empty_metric(task, test)
    runner = runner or make_runner(plan, test, task)
    write_json(files.contribution_settings, coalition_settings(plan.rounds))
    records = read_records(files.contribution_records)
    started = [0]

    def value(coalition: Coalition) -> float:
        record = records.get(coalition)
        if record is not None and record.get("status") == "ok":
            return float(record["value"])
        if cfg.max_runs is not None and started[0] >= cfg.max_runs:
            raise BudgetSpent
        started[0] += 1
        advance(0, description=coalition_key(coalition))
        record = train_coalition(coalition, runner, files, plan.rounds)
        records[coalition] = record
        advance(1, description=coalition_key(coalition))
        if record["status"] != "ok":
            log.warning("coalition %s failed: %s", record["key"], record["error"])
            raise CoalitionFailed(record["error"])
        return float(record["value"])

    game = CachedGame(plan.players, value, signed(task, grand_metric), signed(task, empty))
    with ray_session():  # one Ray runtime and its actors for every coalition
        estimate = _estimate(game, cfg)
    result = _result(plan, task.primary_metric, grand_metric, estimate, records, started[0])
    result["empty_metric"] = empty
    result["privacy"] = privacy_spent(plan, records)
    result["paths"] = {k: str(v) for k, v in write_outputs(files, result).items()}
    return result


def _estimate(game: CachedGame, cfg: ContributionConfig) -> Estimate:
    if cfg.method == "loo":
        return leave_one_out(game)
    return monte_carlo_shapley(game, cfg.permutations, tolerance=cfg.tolerance, seed=cfg.seed)


def train_coalition(
    coalition: Coalition, runner: CoalitionRunner, files: RunDir, rounds: int
) -> dict[str, Any]:
    """Train one coalition and append its record, failure included."""
    key = coalition_key(coalition)
    out = files.coalition_run(key)
    started = time.perf_counter()
    record: dict[str, Any] = {"key": key, "members": sorted(coalition), "run_dir": str(out)}
    try:
        record.update(status="ok", **runner(coalition, out))
    except Exception as exc:  # one failed coalition must not cost the others
        record.update(
            status="error", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()
        )
    record.setdefault("rounds", rounds)
    record.update(
        wall_s=time.perf_counter() - started,
        finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    append_record(files.contribution_records, record)
    return record


def _result(
    plan: Plan,
    primary: tuple[str, bool],
    grand_metric: float,
    estimate: Estimate,
    records: dict[Coalition, dict[str, Any]],
    runs_now: int,
) -> dict[str, Any]:
    cfg = plan.cfg
    ok = [r for r in records.values() if r.get("status") == "ok"]
    return {
        "run_dir": str(Path(cfg.run_dir).resolve()),
        "method": cfg.method,
        "metric": primary[0],
        "higher_is_better": primary[1],
        "test_set": "every retailer's test customers, pooled (the full consortium's)",
        "grand_metric": grand_metric,
        "empty_value": "the metric of a constant score (no model): 0.5 for ROC-AUC",
        "retailers": {
            str(p): {
                "name": plan.names[p],
                "value": estimate.values[p],
                "se": estimate.se[p],
            }
            for p in plan.players
        },
        "permutations": cfg.permutations if cfg.method == "shapley" else None,
        "permutations_used": estimate.permutations if cfg.method == "shapley" else None,
        "failed_permutations": estimate.failed_permutations,
        "truncated_values": estimate.truncated,
        "tolerance": cfg.tolerance if cfg.method == "shapley" else None,
        "seed": cfg.seed if cfg.method == "shapley" else None,
        "stopped_at_max_runs": estimate.stopped_early,
        "max_runs": cfg.max_runs,
        "rounds": plan.rounds,
        "run_rounds": plan.run.num_server_rounds,
        "coalition_runs": {"trained_now": runs_now, "ok": len(ok), "recorded": len(records)},
        "coalition_wall_s": sum(float(r.get("wall_s") or 0) for r in ok),
        "failed": [
            {"members": r["members"], "error": r.get("error")}
            for r in records.values()
            if r.get("status") != "ok"
        ],
        "dp": plan.run.dp,
    }
