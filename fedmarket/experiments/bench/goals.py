"""Issue #20's goals as figures `fedmarket bench` measures, and whether each is met.

Each goal names the key of ``bench.json``'s ``ratios`` it judges, its target and which side
of it passes. A goal whose stage was skipped is reported as not measured, not as failed.
The federated/floor target is the GPU one (four clients per GPU); on a CPU-only machine the
issue states none, and it is judged against the same number for comparison only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Goal:
    key: str  # in report["ratios"]
    what: str
    target: float
    at_most: bool  # True: value <= target passes; False: value >= target
    unit: str = "x"

    def met(self, value: float) -> bool:
        return value <= self.target if self.at_most else value >= self.target

    def target_text(self) -> str:
        sign = "<=" if self.at_most else ">="
        if self.unit == "%":
            return f"{sign} {100 * self.target:.0f}%"
        return f"{sign} {self.target:g}{'' if self.unit == 'x' else ' '}{self.unit}"

    def value_text(self, value: float) -> str:
        if self.unit == "%":
            return f"{100 * value:.0f}%"
        if self.unit == "x":
            return f"{value:.2f}x"
        return f"{value:.2f} {self.unit}"


GOALS = (
    Goal("startup_s", "start-up to the first round's training (fresh simulate)", 5.0, True, "s"),
    Goal("sweep_wall_over_training", "sweep's wall / its rounds' training", 1.3, True),
    Goal("contended_over_idle", "contended / idle, worst training path", 1.5, True),
    Goal("prepare_over_raw_read", "data prepare / raw read of the same files", 5.0, True),
    Goal("dp_over_fast_throughput", "DP-SGD / fast path throughput", 0.5, False, "%"),
    Goal("overhead_per_client_round_ms", "overhead per client per round", 3.0, True, "ms"),
    Goal("federated_over_floor_nodp", "federated / floor, steady round (GPU goal)", 1.25, True),
    Goal(
        "fedmarket_over_quickstart_wall", "fedmarket / Flower quickstart-style app, wall", 0.8, True
    ),
    Goal("fedmarket_over_pfl_wall", "fedmarket / pfl-research, end-to-end wall", 1.0, True),
    Goal("fedmarket_over_pfl_round", "fedmarket / pfl-research, steady round", 1.0, True),
)


def judge(ratios: dict[str, Any], notes: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Every goal with its measured value (None when its stage did not run) and verdict;
    ``notes``: what to show instead of "not measured" for a goal (why it was skipped)."""
    notes = notes or {}
    out = []
    for goal in GOALS:
        value = ratios.get(goal.key)
        out.append(
            {
                "key": goal.key,
                "goal": goal.what,
                "target": goal.target_text(),
                "value": value,
                "shown": notes.get(goal.key, "not measured")
                if value is None
                else goal.value_text(value),
                "met": None if value is None else goal.met(float(value)),
            }
        )
    return out
