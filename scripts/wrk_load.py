"""A closed-loop load from wrk (C, one thread): the load generator's own CPU stays small.

The asyncio httpx loop of ``bench_serve.py`` costs about as much CPU per request as the service
itself (1.5 against 1.8 ms), and on a 2-core machine the two share the cores, so the loop sets
part of the latency it measures. wrk keeps ``concurrency`` connections, each sending its next
request when the last is answered, for ``seconds``; its Lua ``done`` hook prints the figures
as JSON. Debian/Ubuntu: ``apt-get install wrk``.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("%(body)s", "rb")
wrk.body = f:read("*a")
f:close()
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %%d, "errors": %%d, "p50_us": %%d, "p95_us": %%d, "p99_us": %%d, '
    .. '"duration_us": %%d}\\n',
    summary.requests, e.status + e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), summary.duration))
end
"""
WARM_UP_S = 2


def wrk_path() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("--generator wrk: wrk is not on PATH (Debian/Ubuntu: apt-get install wrk)")
    return found


def wrk_load(
    url: str,
    path: str,
    body: dict,
    concurrency: int,
    seconds: float,
    measuring: Callable[[], None] = lambda: None,
) -> dict:
    """The closed-loop figures of ``concurrency`` wrk connections for ``seconds`` (after a
    short warm-up, then ``measuring()``), with wrk's own CPU per request."""
    with tempfile.TemporaryDirectory() as tmp:
        body_file = Path(tmp) / "body.json"
        body_file.write_text(json.dumps(body))
        script = Path(tmp) / "post.lua"
        script.write_text(_SCRIPT % {"body": body_file})

        def run(duration: float) -> dict:
            command = [wrk_path(), "-t1", f"-c{concurrency}", f"-d{duration:g}s", "-s", str(script)]
            done = subprocess.run(
                [*command, url + path], capture_output=True, text=True, check=True
            )
            return json.loads(done.stdout.strip().splitlines()[-1])

        run(WARM_UP_S)
        measuring()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        got = run(seconds)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    n = max(got["requests"], 1)
    return {
        "requests": got["requests"],
        "errors": got["errors"],
        "p50_ms": got["p50_us"] / 1000,
        "p95_ms": got["p95_us"] / 1000,
        "p99_ms": got["p99_us"] / 1000,
        "requests_per_s": got["requests"] / (got["duration_us"] / 1e6),
        "load_avg_1m": os.getloadavg()[0],
        "offered_per_s": None,
        "client_cpu_ms_per_request": cpu * 1000 / n,
    }
