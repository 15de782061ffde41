"""Latency and CPU per request of `fedmarket serve` on a recommendation run (next-categories).

Usage::

    .venv/bin/python scripts/bench_serve_recommend.py --run RUN_DIR --raw RAW
        [--requests 1000] [--seconds 20] [--concurrency 1 8] [--k 10]

The same harness as ``scripts/bench_serve.py`` (a real ``fedmarket serve RUN --port 0``
process, httpx clients each with one request in flight, CPU time of the server process per
request), on a recommendation run: the customer sent is the typical one of the first retailer
of ``RAW`` (the median number of events in the window before the midnight after the export's
last event), to ``/v1/score?k=K``. Also printed: the median CPU time of one customer ranked in
process (``RecScorer.recommend``: validation, history, model, top k) over 200 calls.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_serve import _json, _line, measured, start_server  # noqa: E402


def typical_request(raw: Path, run_dir: Path) -> tuple[dict[str, Any], int]:
    from fedmarket.data.ingest import loaders
    from fedmarket.data.ingest.validate import DropReport
    from fedmarket.scoring.rec_model import load_rec_model

    window_days = load_rec_model(run_dir).window.window_days
    exports = loaders.find_exports(raw)
    retailer = sorted(exports)[0]
    frames = loaders.iter_events(exports[retailer][0], report=DropReport(), retailer_id=retailer)
    events = pd.concat(list(frames), ignore_index=True)
    as_of = events["event_time"].max().normalize() + pd.Timedelta(days=1)
    recent = events[events["event_time"] >= as_of - pd.Timedelta(days=window_days)]
    counts = recent["user_id"].value_counts()
    typical = counts.index[np.argsort(counts.to_numpy())[len(counts) // 2]]
    rows = recent[recent["user_id"] == typical].sort_values("event_time")
    body = {"customer_id": str(typical), "as_of": f"{as_of:%Y-%m-%d}", "events": _json(rows)}
    return body, int(counts[typical])


def in_process(run_dir: Path, body: dict[str, Any], k: int, repeats: int = 200) -> float:
    """Median CPU milliseconds of one customer ranked by ``RecScorer.recommend``."""
    import torch

    from fedmarket.experiments.serve.recommender import RecScorer
    from fedmarket.experiments.serve.schema import ScoreRequest
    from fedmarket.experiments.serve.scorer import Limits
    from fedmarket.scoring.rec_model import load_rec_model

    torch.set_num_threads(1)
    scorer = RecScorer(load_rec_model(run_dir), Limits())
    request = ScoreRequest.model_validate(body)
    times = []
    for _ in range(repeats):
        c0 = time.thread_time()
        scorer.recommend([request], [("body",)], k=k)
        times.append((time.thread_time() - c0) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--raw", type=Path, required=True)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()
    body, n_events = typical_request(args.raw, args.run)
    print(f"typical customer: {n_events} events in the window")
    cpu = in_process(args.run, body, args.k)
    print(f"  in process: RecScorer.recommend, median CPU {cpu:.2f} ms")
    process, url, startup = start_server(args.run)
    results: dict[str, Any] = {"events": n_events, "in_process_cpu_ms": cpu, "startup_s": startup}
    try:
        for c in args.concurrency:
            path = f"/v1/score?k={args.k}"
            row = measured(process.pid, url, path, body, c, args.requests, args.seconds)
            results[f"score_c{c}"] = row
            print(f"{path} c={c:<3} {_line(row)}", flush=True)
    finally:
        process.terminate()
        process.wait(timeout=30)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
