"""Latency and throughput of `fedmarket serve`: a real server process, a real HTTP load.

Usage::

    .venv/bin/python scripts/bench_serve.py --raw RAW (--run RUN_DIR | --data PREPARED)
        [--requests 2000] [--seconds 30] [--concurrency 1 8 32] [--batch-size 100 (0: none)]
        [--stub-scoring] [--onnx] [--rates R ...]
        [--out /tmp/fedmarket-bench-serve]

The server is ``fedmarket serve RUN --port 0`` in its own process (one worker, as shipped).
Without ``--run`` a run is made in ``--out`` from the prepared ``--data`` with the default model
untrained (latency does not depend on the weights; the window and normalisation are the
data's). The customer sent is a typical one: in the first retailer of ``RAW``, the customer
with the median number of events in the model's window before the midnight after the export's
last event, with those events. An asyncio loop of httpx clients, each with one request in
flight, sends one customer per request to ``/v1/score`` at each concurrency, bounded by
``--requests`` and ``--seconds`` (after 50 warm-up requests); then ``/v1/score/batch`` with
``--batch-size`` customers of the retailer per request. Latency is measured at the client, from
sending to the whole answer read. The load generator shares the machine with the server: the
load average is printed with each line, and the CPU time per request of the server process
and of the load generator (over the warm-up and the measured requests), which a loaded machine
inflates far less than latency. Also printed: the time of each stage of one request in
process (parse, columns, validation, features, model), the median of 200 calls.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from wrk_load import wrk_load

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CLI = "import sys; from fedmarket.cli import app; app(sys.argv[1:])"
# --stub-scoring: every customer gets a fixed answer, so what is measured is the HTTP floor
# (uvicorn, the app, the body, the hand-off to the scoring thread), not the scoring
STUB = """
from fedmarket.experiments.serve.scorer import Scorer
ANSWER = {"customer_id": None, "as_of": "2020-01-01", "propensity": 0.5,
          "expected_count": None, "selected": True}
Scorer.score = lambda self, customers, prefixes: [dict(ANSWER) for _ in customers]
"""
WARM_UP = 50  # requests before the measured ones, at each setting
GENERATOR = ["httpx"]  # --generator: the asyncio httpx loop, or wrk (scripts/wrk_load.py)


def make_run(data: Path, out: Path) -> Path:
    """A run over ``data`` with the default model, untrained (a committed round 1)."""
    from fedmarket.config import RunConfig
    from fedmarket.data import store
    from fedmarket.models import build_model
    from fedmarket.rundir import RunDir

    run = out / "run"
    if (run / "checkpoints" / "latest.json").is_file():
        return run
    cfg = RunConfig.from_mapping({"data-dir": str(data), "out-dir": str(run), "dp": "none"})
    files = RunDir(run)
    run.mkdir(parents=True, exist_ok=True)
    files.write_config(cfg)
    net = build_model(cfg.model, store.n_features(store.read_manifest(data)), seed=0)
    files.save_checkpoint(1, net.state_dict())
    files.latest_marker.write_text('{"round": 1, "path": "round-0001.pt"}')
    return run


def customers(raw: Path, run_dir: Path, batch_size: int) -> tuple[dict, list[dict], int]:
    """(the typical customer's request, a batch of requests, its number of events)."""
    from fedmarket.scoring.run_model import load_run_model

    window_days = load_run_model(run_dir).window.window_days
    recent, as_of, typical, counts = typical_customer(raw, window_days)
    by_customer = dict(list(recent.groupby("user_id", observed=True)))
    rng = np.random.default_rng(0)
    picked = rng.choice(counts.index.to_numpy(), size=min(batch_size, len(counts)), replace=False)

    def request(who: object) -> dict[str, Any]:
        return request_body(by_customer[who], who, as_of)

    return request(typical), [request(w) for w in picked], int(counts[typical])


def typical_customer(
    raw: Path, window_days: int
) -> tuple[pd.DataFrame, pd.Timestamp, object, pd.Series]:
    """(the first retailer of ``raw``'s events in the window before ``as_of``, ``as_of`` (the
    midnight after the export's last event), the typical customer (the median number of
    events in that window), every customer's number of events in it). Shared by the
    propensity and the recommendation benchmarks, so both send the same customer."""
    from fedmarket.data.ingest import loaders
    from fedmarket.data.ingest.validate import DropReport

    exports = loaders.find_exports(raw)
    retailer = sorted(exports)[0]
    frames = loaders.iter_events(exports[retailer][0], report=DropReport(), retailer_id=retailer)
    events = pd.concat(list(frames), ignore_index=True)
    as_of = events["event_time"].max().normalize() + pd.Timedelta(days=1)
    recent = events[events["event_time"] >= as_of - pd.Timedelta(days=window_days)]
    counts = recent["user_id"].value_counts()
    typical = counts.index[np.argsort(counts.to_numpy())[len(counts) // 2]]
    return recent, as_of, typical, counts


def request_body(rows: pd.DataFrame, who: object, as_of: pd.Timestamp) -> dict[str, Any]:
    """One customer's request: ``rows`` (its events) in time order, as JSON values."""
    rows = rows.sort_values("event_time")
    return {"customer_id": str(who), "as_of": f"{as_of:%Y-%m-%d}", "events": _json(rows)}


def _json(rows: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for r in rows.itertuples(index=False):
        event = {
            "event_time": f"{r.event_time:%Y-%m-%d %H:%M:%S} UTC",  # the REES46 text
            "event_type": str(r.event_type),
            "price": float(r.price),
            "product_id": int(r.product_id),
            "category_id": int(r.category_id),
        }
        for name in ("category_code", "brand", "user_session"):
            if not pd.isna(getattr(r, name)):
                event[name] = str(getattr(r, name))
        out.append(event)
    return out


def start_server(
    run_dir: Path, stub: bool = False, onnx: bool = False, workers: int = 1
) -> tuple[subprocess.Popen[str], str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "NO_COLOR": "1"}
    t0 = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", (STUB if stub else "") + CLI, "serve", str(run_dir), "--port", "0"]
        + (["--onnx"] if onnx else [])
        + (["--workers", str(workers)] if workers > 1 else []),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    for line in process.stdout:
        print("  server:", line.rstrip(), flush=True)
        found = re.search(r"on (http://\S+)", line)
        if found:
            return process, found.group(1), time.perf_counter() - t0
    raise SystemExit("the server exited before it listened")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds so far of process ``pid`` and its workers (--workers)."""
    import psutil

    root = psutil.Process(pid)
    return sum(sum(p.cpu_times()[:2]) for p in [root, *root.children(recursive=True)])


def measured(pid: int, *args: Any) -> dict[str, float]:
    """``load(*args)`` with the server's and this client's CPU time per request: what the
    work costs, which a loaded machine inflates far less than it inflates latency."""
    if GENERATOR[0] == "wrk":  # closed loop; CPU from the end of its warm-up
        url, path, body, concurrency, _requests, seconds = args[:6]
        start: list[float] = []
        row = wrk_load(
            url, path, body, concurrency, seconds, lambda: start.append(cpu_seconds(pid))
        )
        row["server_cpu_ms_per_request"] = (
            (cpu_seconds(pid) - start[0]) * 1000 / max(row["requests"], 1)
        )
        return row
    server0, client0 = cpu_seconds(pid), time.process_time()
    row = asyncio.run(load(*args))
    sent = row["requests"] + WARM_UP
    row["server_cpu_ms_per_request"] = (cpu_seconds(pid) - server0) * 1000 / sent
    row["client_cpu_ms_per_request"] = (time.process_time() - client0) * 1000 / sent
    return row


async def load(
    url: str,
    path: str,
    body: dict,
    concurrency: int,
    requests: int,
    seconds: float,
    rate: float | None = None,
) -> dict[str, float]:
    """Closed loop (``rate`` None): each client sends its next request when the last is
    answered, so latency at saturation is concurrency / throughput (Little's law). Open loop:
    each client sends ``rate`` requests per second on a seeded Poisson schedule, and latency
    runs from the scheduled send time, so a request delayed behind a slow one counts its wait
    (no coordinated omission)."""
    import httpx

    payload = json.dumps(body).encode()
    headers = {"content-type": "application/json"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    errors = 0
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        for _ in range(WARM_UP):  # connections, first calls
            await client.post(path, content=payload, headers=headers)
        deadline = time.perf_counter() + seconds
        sent = 0

        async def worker(seed: int) -> None:
            nonlocal sent, errors
            gaps = np.random.default_rng(seed)
            due = time.perf_counter()
            while sent < requests and time.perf_counter() < deadline:
                sent += 1
                t0 = time.perf_counter()
                if rate is not None:
                    due += gaps.exponential(1.0 / rate)
                    await asyncio.sleep(max(0.0, due - t0))
                    t0 = due
                answer = await client.post(path, content=payload, headers=headers)
                latencies.append(time.perf_counter() - t0)
                errors += answer.status_code != 200

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        wall = time.perf_counter() - t0
    ms = np.array(latencies) * 1000
    return {
        "requests": len(ms),
        "errors": errors,
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)),
        "requests_per_s": len(ms) / wall,
        "load_avg_1m": os.getloadavg()[0],
        "offered_per_s": None if rate is None else rate * concurrency,
    }


def stages(run_dir: Path, body: dict, repeats: int = 200) -> dict[str, float]:
    """Median milliseconds of each stage of one request, in this process (torch 1 thread):
    wall time, and this thread's CPU time, which a loaded machine inflates far less."""
    import torch

    from fedmarket.experiments.serve.decision import fixed_decision
    from fedmarket.experiments.serve.schema import ScoreRequest
    from fedmarket.experiments.serve.scorer import Limits, Scorer
    from fedmarket.scoring.run_model import load_run_model

    torch.set_num_threads(1)
    run = load_run_model(run_dir)
    scorer = Scorer(run, fixed_decision(run, 0.5), Limits())
    raw = json.dumps(body).encode()
    times: dict[str, list[float]] = {}

    def timed(name: str, fn: Any, *args: Any) -> Any:
        t0, c0 = time.perf_counter(), time.thread_time()
        out = fn(*args)
        times.setdefault(f"{name} (wall)", []).append((time.perf_counter() - t0) * 1000)
        times.setdefault(f"{name} (cpu)", []).append((time.thread_time() - c0) * 1000)
        return out

    prefixes = [("body",)]
    for _ in range(repeats):
        request = timed("json + pydantic", ScoreRequest.model_validate_json, raw)
        columns, starts = timed("events to columns", scorer._columns, [request], prefixes)
        valid = timed("validate_columns", scorer._validate, columns, [request], starts, prefixes)
        who = valid["user_id"].astype(np.int64).to_numpy()
        as_of = [pd.Timestamp(request.as_of).tz_localize("UTC")]
        X = timed("featurise_as_of", scorer._features, valid, who, as_of, prefixes)
        timed("model (predict)", run.predict, X)
        timed("whole score()", scorer.score, [request], prefixes)
    return {name: statistics.median(v) for name, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--raw", type=Path, required=True)
    parser.add_argument("--run", type=Path)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--batch-size", type=int, default=100, help="0: no batch requests")
    parser.add_argument("--onnx", action="store_true", help="fedmarket serve --onnx")
    parser.add_argument(
        "--rates",
        type=float,
        nargs="+",
        default=[],
        help="also open-loop runs: each client sends R requests/s (Poisson), per R given",
    )
    parser.add_argument(
        "--stub-scoring", action="store_true", help="fixed answers: the HTTP layer's own cost"
    )
    parser.add_argument("--workers", type=int, default=1, help="fedmarket serve --workers N")
    parser.add_argument(
        "--generator",
        choices=["httpx", "wrk"],
        default="httpx",
        help="closed-loop load from the asyncio httpx loop, or from wrk (C; apt-get install wrk)",
    )
    parser.add_argument("--out", type=Path, default=Path("/tmp/fedmarket-bench-serve"))
    args = parser.parse_args()
    if args.run is None and args.data is None:
        parser.error("give --run RUN_DIR or --data PREPARED")
    if args.generator == "wrk" and args.rates:
        parser.error("--rates (open loop) runs on the httpx generator; wrk is closed loop")
    GENERATOR[0] = args.generator
    args.out.mkdir(parents=True, exist_ok=True)
    run_dir = args.run or make_run(args.data, args.out)
    one, batch, n_events = customers(args.raw, run_dir, args.batch_size)
    print(f"typical customer: {n_events} events in the window; cores {os.cpu_count()}")
    results: dict[str, Any] = {"events_per_customer": n_events, "stages_ms": stages(run_dir, one)}
    for name, ms in results["stages_ms"].items():
        print(f"  in process: {name:<24} {ms:7.2f} ms")
    process, url, startup = start_server(run_dir, args.stub_scoring, args.onnx, args.workers)
    results["startup_s"] = startup
    try:
        for c in args.concurrency:
            row = measured(process.pid, url, "/v1/score", one, c, args.requests, args.seconds)
            results[f"score_c{c}"] = row
            print(f"/v1/score      c={c:<3} {_line(row)}", flush=True)
            for r in args.rates:
                row = measured(
                    process.pid, url, "/v1/score", one, c, args.requests, args.seconds, r
                )
                results[f"score_c{c}_rate{r:g}"] = row
                print(f"/v1/score      c={c:<3} {r * c:5.0f}/s offered {_line(row)}", flush=True)
        for c in (1, 4) if batch else ():
            body = {"customers": batch}
            row = measured(process.pid, url, "/v1/score/batch", body, c, 200, args.seconds)
            row["customers_per_s"] = row["requests_per_s"] * len(batch)
            results[f"batch{len(batch)}_c{c}"] = row
            print(
                f"/v1/score/batch {len(batch)} c={c:<3} {_line(row)} "
                f"{row['customers_per_s']:.0f} customers/s",
                flush=True,
            )
    finally:
        process.terminate()
        process.wait(timeout=30)
    (args.out / "bench_serve.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out / 'bench_serve.json'}")


def _line(row: dict[str, float]) -> str:
    return (
        f"n={row['requests']:<5} err={row['errors']} p50 {row['p50_ms']:6.2f} ms  "
        f"p95 {row['p95_ms']:6.2f}  p99 {row['p99_ms']:6.2f}  {row['requests_per_s']:7.1f} req/s  "
        f"load {row['load_avg_1m']:.2f}  cpu/request: server "
        f"{row['server_cpu_ms_per_request']:.1f} ms, "
        f"client {row['client_cpu_ms_per_request']:.1f} ms"
    )


if __name__ == "__main__":
    main()
