"""`fedmarket serve --workers N`: N processes answering on one listening socket.

One process scores on one core (its work holds the GIL). Where the machine has another core
to spare, a second process doubles what the service can answer, and with it how many callers
it can serve before they queue: under eight steady callers the latency is their number divided
by the throughput. The kernel hands each new connection to one of the processes accepting on
the shared socket.

uvicorn's own supervisor starts, watches and stops the processes (it restarts one that dies and
passes SIGINT/SIGTERM on). It starts them with ``spawn``, so each worker builds its own app
from a ``WorkerSpec``: the options, the token read once, and the decision fixed once by the
parent, so every worker selects by the same threshold (``--top`` is computed on the run's test
customers a single time).
"""

from __future__ import annotations

import functools
import multiprocessing
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fedmarket.experiments.serve.decision import Decision
from fedmarket.experiments.serve.runner import ServeOptions

# A worker loading its model (and, under --onnx, exporting and checking it) still answers the
# supervisor's pings from a thread of its own; this only bounds a worker that hangs.
HEALTH_CHECK_TIMEOUT_S = 60


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker needs to build the same app as its siblings (pickled to each)."""

    options: ServeOptions
    token: str | None
    decision: Decision | None  # None: a recommendation run (no decision)


def serve_in_workers(spec: WorkerSpec, sock: socket.socket, ready: Callable[[], None]) -> None:
    """Run ``spec.options.workers`` processes on ``sock`` until a signal; ``ready()`` once
    every worker has built its app (before, a caller would wait for a worker to load)."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    # The supervisor reads only the number of workers, the health check and the logging
    # settings from this; each worker serves the app it builds in serve_worker.
    config = uvicorn.Config(
        "fedmarket.experiments.serve.workers:serve_worker",
        workers=spec.options.workers,
        log_level="warning",
        timeout_worker_healthcheck=HEALTH_CHECK_TIMEOUT_S,
    )
    built = multiprocessing.get_context("spawn").Semaphore(0)

    def announce_when_built() -> None:
        for _ in range(spec.options.workers):
            built.acquire()
        ready()

    threading.Thread(target=announce_when_built, daemon=True).start()
    target = functools.partial(serve_worker, spec, built)
    Multiprocess(config, target=target, sockets=[sock]).run()


def serve_worker(spec: WorkerSpec, built: Any, sockets: list[socket.socket]) -> None:
    """In a worker process: the app from ``spec``, then uvicorn on the inherited socket;
    ``built`` (a semaphore) released once the app is ready."""
    import torch

    from fedmarket.experiments.serve.runner import build_service, serve_app, settle_heap

    torch.set_num_threads(1)
    app = build_service(spec.options, spec.token, lambda _line: None, spec.decision)[0]
    settle_heap()
    built.release()
    serve_app(app, sockets)
