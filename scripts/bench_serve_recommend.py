"""Latency and CPU per request of `fedmarket serve` on a recommendation run (next-categories).

Usage::

    .venv/bin/python scripts/bench_serve_recommend.py --raw RAW (--run RUN_DIR | --data PREPARED)
        [--requests 1000] [--seconds 20] [--concurrency 1 8] [--k 10]
        [--out /tmp/fedmarket-bench-serve-recommend]

The same harness as ``scripts/bench_serve.py`` (a real ``fedmarket serve RUN --port 0``
process, httpx clients each with one request in flight, CPU time of the server process per
request), on a recommendation run: without ``--run`` one is made in ``--out`` from the prepared
``--data`` (which must have the recommender's vocabulary) with an untrained ``gru-ncf``. The
customer sent is ``bench_serve.typical_customer``'s, the one the propensity benchmark sends (the
median number of events in the window before the midnight after the first retailer's last
event), to ``/v1/score?k=K``. Also printed: the time of each stage of one request in process
(body, checks, history, model, ranking, the whole ``RecScorer.recommend``), medians of 200.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_serve import (  # noqa: E402
    _line,
    measured,
    request_body,
    start_server,
    typical_customer,
)


def make_run(data: Path, out: Path) -> Path:
    """A next-categories run over ``data`` with an untrained ``gru-ncf`` (a committed round 1):
    latency does not depend on the weights; the window and vocabulary are the data's."""
    from fedmarket.config import RunConfig
    from fedmarket.data import store
    from fedmarket.models import build_model
    from fedmarket.names import RANKING_TASK
    from fedmarket.recommend.data import vocabulary_entry
    from fedmarket.rundir import RunDir

    run = out / "run"
    if (run / "checkpoints" / "latest.json").is_file():
        return run
    cfg = RunConfig.from_mapping(
        {
            "data-dir": str(data),
            "out-dir": str(run),
            "dp": "none",
            "task": RANKING_TASK,
            "model": "gru-ncf",
        }
    )
    files = RunDir(run)
    run.mkdir(parents=True, exist_ok=True)
    files.write_config(cfg)
    entry = vocabulary_entry(store.read_manifest(data))
    net = build_model(cfg.model, 3, task=RANKING_TASK, dp=False, vocabulary=entry, seed=0)
    files.save_checkpoint(1, net.state_dict())
    files.latest_marker.write_text('{"round": 1, "path": "round-0001.pt"}')
    return run


def typical_request(raw: Path, run_dir: Path) -> tuple[dict[str, Any], int]:
    """The typical customer's request (``bench_serve.typical_customer``) and its events."""
    from fedmarket.scoring.rec_model import load_rec_model

    window_days = load_rec_model(run_dir).window.window_days
    recent, as_of, typical, counts = typical_customer(raw, window_days)
    rows = recent[recent["user_id"] == typical]
    return request_body(rows, typical, as_of), int(counts[typical])


def stages(run_dir: Path, body: dict[str, Any], k: int, repeats: int = 200) -> dict[str, float]:
    """Median milliseconds (wall, and this thread's CPU) of each stage of one request in this
    process, torch on one thread, after 20 warm-up calls."""
    import torch

    from fedmarket.experiments.serve.recommender import RecScorer
    from fedmarket.experiments.serve.schema import ScoreRequest
    from fedmarket.experiments.serve.scorer import Limits
    from fedmarket.scoring.rec_model import load_rec_model
    from fedmarket.scoring.rec_rank import rank_inputs

    torch.set_num_threads(1)
    model = load_rec_model(run_dir)
    scorer = RecScorer(model, Limits())
    raw = json.dumps(body).encode()
    prefixes = [("body",)]
    times: dict[str, list[float]] = {}

    def timed(name: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        t0, c0 = time.perf_counter(), time.thread_time()
        out = fn(*args, **kwargs)
        times.setdefault(f"{name} (wall)", []).append((time.perf_counter() - t0) * 1000)
        times.setdefault(f"{name} (cpu)", []).append((time.thread_time() - c0) * 1000)
        return out

    for i in range(repeats + 20):
        if i == 20:
            times.clear()
        request = timed("json + pydantic", ScoreRequest.model_validate_json, raw)
        valid, who, as_of = timed("checks (_checked)", scorer._checked, [request], prefixes)
        ((_, inputs),) = timed(
            "histories (featurise_rec_frames)", scorer._histories, valid, who, as_of, prefixes,
            False,
        )  # fmt: skip
        timed("model (RecModel.scores)", model.scores, inputs.X)
        timed("rank_inputs (model, top k)", rank_inputs, model, inputs, k=k)
        timed("whole recommend()", scorer.recommend, [request], prefixes, k=k)
        timed(
            "whole recommend(exclude_bought)", scorer.recommend, [request], prefixes, k=k,
            exclude_bought=True,
        )  # fmt: skip
    return {name: statistics.median(v) for name, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path)
    parser.add_argument("--data", type=Path, help="prepared data with a recommend vocabulary")
    parser.add_argument("--out", type=Path, default=Path("/tmp/fedmarket-bench-serve-recommend"))
    parser.add_argument("--raw", type=Path, required=True)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()
    if args.run is None and args.data is None:
        parser.error("give --run RUN_DIR or --data PREPARED")
    args.out.mkdir(parents=True, exist_ok=True)
    run_dir = args.run or make_run(args.data, args.out)
    body, n_events = typical_request(args.raw, run_dir)
    print(f"typical customer: {n_events} events in the window; load {os.getloadavg()[0]:.2f}")
    results: dict[str, Any] = {"events": n_events, "stages_ms": stages(run_dir, body, args.k)}
    for name, ms in results["stages_ms"].items():
        print(f"  in process: {name:<40} {ms:7.2f} ms", flush=True)
    process, url, startup = start_server(run_dir)
    results["startup_s"] = startup
    try:
        for c in args.concurrency:
            path = f"/v1/score?k={args.k}"
            row = measured(process.pid, url, path, body, c, args.requests, args.seconds)
            results[f"score_c{c}"] = row
            print(f"{path} c={c:<3} {_line(row)}", flush=True)
    finally:
        process.terminate()
        process.wait(timeout=30)
    (args.out / "bench_serve_recommend.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out / 'bench_serve_recommend.json'}")


if __name__ == "__main__":
    main()
