"""The personalised models' results in the run directory (RUN/personal).

Each client builds its personalised model at the end of the run (``fedmarket.federated.
personal``) and replies with aggregate metrics only; the per-customer scores stay in its
state-dir. In simulation the state-dirs are on this machine, and ``write_personal`` gathers
them into RUN/personal/test_scores.csv (the format of RUN/local/test_scores.csv), so the
report's per-retailer table and `fedmarket compare RUN --b personal` read them like the
local-only models'. In a deployment only RUN/personal/metrics.json is written.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fedmarket.federated.personal import scores_file
from fedmarket.predictions import Predictions, read_predictions, write_predictions
from fedmarket.rundir import RunDir, json_safe, write_json


def gather_scores(state_dir: str, partitions: Iterable[int]) -> Predictions | None:
    """Every listed partition's personalised predictions, in partition order; None where any
    client left none (it declined, failed, or ran on another machine)."""
    parts = []
    for pid in sorted(int(p) for p in partitions):
        path = scores_file(state_dir, pid)
        if not state_dir or not path.is_file():
            return None
        [scored] = read_predictions(path).values()
        parts.append(scored)
    if not parts:
        return None
    return Predictions(
        task=parts[0].task,
        model=parts[0].model,
        **{
            key: np.concatenate([np.asarray(getattr(p, key)) for p in parts])
            for key in ("partition", "customer", "label", "score")
        },
    )


def write_personal(
    run_dir: Path,
    method: str,
    per_client: list[Mapping[str, Any]],
    failures: list[str],
    *,
    state_dir: str = "",
    partitions: Iterable[int] = (),
) -> dict[str, Any]:
    """RUN/personal/metrics.json (each client's reply) and, where every listed partition's
    scores are in ``state_dir``, RUN/personal/test_scores.csv; the block federated.json keeps
    (``method``, ``status``: "scored", "metrics only" or "failed: ...", and under client DP
    ``epsilon_max``: the largest cumulative epsilon of a client, personal steps included)."""
    files = RunDir(run_dir)
    files.personal.mkdir(parents=True, exist_ok=True)
    clients = sorted(per_client, key=lambda m: m.get("partition-id", -1))
    scored = gather_scores(state_dir, partitions) if state_dir else None
    if scored is not None:
        write_predictions(files.personal_scores, scored)
    status = "scored" if scored is not None else "metrics only"
    if failures:
        status = "failed: " + "; ".join(failures)
    block = {"method": method, "status": status, "clients": clients}
    write_json(files.personal_metrics, json_safe(block))
    out: dict[str, Any] = {"method": method, "status": status}
    spent = [float(c["epsilon"]) for c in clients if "epsilon" in c]
    if spent:  # each client's cumulative epsilon: its rounds and its personal steps
        out["epsilon_max"] = max(spent)
    return out


def with_personal_epsilon(epsilon: Mapping[str, Any], run_dir: Path) -> dict[str, Any]:
    """federated.json's ``epsilon`` block counting the personal steps too: each client's
    epsilon is everything it spent on its data (DESIGN.md), so a fine-tune after the last
    round raises it. A client's epsilon is the larger of its rounds' and its personal reply's.
    """
    out = dict(epsilon)
    files = RunDir(run_dir)
    if not files.personal_metrics.is_file() or "per_client" not in out:
        return out
    clients = json.loads(files.personal_metrics.read_text()).get("clients") or []
    per_client = dict(out["per_client"] or {})
    for c in clients:
        if "epsilon" in c and "partition-id" in c:
            key = str(int(c["partition-id"]))
            per_client[key] = max(float(c["epsilon"]), float(per_client.get(key) or 0.0))
    out["per_client"] = per_client
    if per_client:
        out["max"] = max(float(v) for v in per_client.values())
    return out
