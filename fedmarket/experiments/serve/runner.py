"""Start the scoring service: load the run, fix the decision, bind, serve with uvicorn.

One process by default, torch on one thread. A request's work is a few milliseconds of
Python, pandas and torch that hold the GIL for most of it, so threads would only queue on it;
concurrent requests are merged into one model call instead (``coalesce``), and throughput
grows with the batch endpoint. A machine with a spare core can run ``--workers N`` processes
on the same socket (``workers``), each loading the model.

Before serving, the heap left by the imports and the model (about half a million objects) is
frozen out of the garbage collector's reach: a full collection over it costs about 0.3 s of
CPU, which a request that triggers one would wait for (the tail of the latency).

Binding anything but a loopback address makes the service reachable from the network: it then
warns, and advises ``--token-file``. The access log is off: a line per request is useless for
a service that answers in milliseconds and must not record who was scored.
"""

from __future__ import annotations

import gc
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fedmarket.data.protect.keys import read_secret_text
from fedmarket.errors import ConfigError
from fedmarket.experiments.serve.app import DEFAULT_MAX_BODY_BYTES, create_app
from fedmarket.experiments.serve.decision import (
    DEFAULT_TOP_PERCENT,
    Decision,
    fixed_decision,
    top_decision,
)
from fedmarket.experiments.serve.recommend_service import recommend_service
from fedmarket.experiments.serve.scorer import Limits
from fedmarket.scoring.rec_model import is_ranking_run
from fedmarket.scoring.run_model import RunModel, load_run_model


@dataclass(frozen=True)
class ServeOptions:
    run_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000  # 0: a free port, announced
    model_source: str = "federated"
    token_file: Path | None = None
    threshold: float | None = None
    top_percent: float | None = None  # default DEFAULT_TOP_PERCENT when no threshold
    limits: Limits = field(default_factory=Limits)
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    encryption_key_file: Path | None = None  # to score the test customers for --top
    retailer: str | None = None  # a recommendation run: whose popularity ranks cold customers
    onnx: bool = False  # model calls in ONNX Runtime (scoring.onnx_model)
    workers: int = 1  # processes serving the socket, each with the model


def settle_heap() -> None:
    """Collect once, then freeze what is left (imports, the model) out of later collections:
    a full collection over it is the largest pause a request could otherwise meet."""
    gc.collect()
    gc.freeze()


def network_warning(host: str, has_token: bool) -> str | None:
    """A warning when ``host`` is not a loopback address (None when it is)."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if loopback:
        return None
    advice = (
        "callers must send its bearer token; put TLS in front (a reverse proxy)"
        if has_token
        else "it answers anyone who can reach it: give it a --token-file"
    )
    return f"--host {host}: the service is reachable from the network; {advice}"


def decision_for(run: RunModel, options: ServeOptions) -> Decision:
    if options.threshold is not None and options.top_percent is not None:
        raise ConfigError("give --threshold or --top, not both")
    if options.threshold is not None:
        return fixed_decision(run, options.threshold)
    top = options.top_percent if options.top_percent is not None else DEFAULT_TOP_PERCENT
    return top_decision(run, top, options.encryption_key_file)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket; port 0 picks a free one (read it from ``getsockname``)."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port {port}: give 0 (a free port) to 65535")
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(info[0], socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(info[4])
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def run_service(options: ServeOptions, announce: Callable[[str], None]) -> None:
    """Serve until interrupted; ``announce`` gets the warnings and the address."""
    import torch

    torch.set_num_threads(1)
    if options.workers < 1:
        raise ConfigError(f"--workers {options.workers}: give 1 or more processes")
    token = None
    if options.token_file is not None:
        token = read_secret_text(options.token_file, "service token")
    app, serving, note, decision = build_service(options, token, announce)
    warning = network_warning(options.host, token is not None)
    sock = bind(options.host, options.port)
    host, port = sock.getsockname()[:2]
    if warning:
        announce(f"warning: {warning}")
    announce(note)
    serving_line = f"serving {serving} on http://{_url_host(host)}:{port}"
    if options.workers == 1:
        announce(serving_line)
        settle_heap()
        serve_app(app, [sock])
    else:
        from fedmarket.experiments.serve.workers import WorkerSpec, serve_in_workers

        announce(f"starting {options.workers} worker processes, each loading the model")
        del app  # each worker builds its own, with the decision fixed here
        spec = WorkerSpec(options, token, decision)
        serve_in_workers(spec, sock, lambda: announce(serving_line))


def serve_app(app: object, sockets: list[socket.socket]) -> None:
    """uvicorn on ``sockets`` until a signal; no access log (no customer in any log)."""
    import uvicorn

    config = uvicorn.Config(
        app, access_log=False, log_level="warning", lifespan="off", server_header=False
    )
    uvicorn.Server(config).run(sockets=sockets)


def build_service(
    options: ServeOptions,
    token: str | None,
    announce: Callable[[str], None],
    decision: Decision | None = None,
) -> tuple[object, str, str, Decision | None]:
    """(the app, what it serves, a line about it, the propensity decision) for the run;
    ``decision`` given: used as it is (a worker gets the one its parent fixed)."""
    if is_ranking_run(options.run_dir):
        if options.onnx:
            raise ConfigError(
                "serve: --onnx scores propensity runs; a recommendation run ranks categories "
                "with its PyTorch model. Leave out --onnx."
            )
        app, serving, note = recommend_service(options, token)
        return app, serving, note, None
    if options.retailer is not None:
        raise ConfigError(
            f"serve: --retailer {options.retailer!r} names whose popularity ranks a customer "
            "without history in a recommendation run (task next-categories); this run "
            "scores each customer's propensity. Leave out --retailer."
        )
    return _propensity_service(options, token, announce, decision)


def _propensity_service(
    options: ServeOptions,
    token: str | None,
    announce: Callable[[str], None],
    decision: Decision | None,
) -> tuple[object, str, str, Decision]:
    """The app for a propensity run, with its label, its decision rule and the decision."""
    run = load_run_model(options.run_dir, options.model_source)
    decision = decision or decision_for(run, options)
    predict = None
    if options.onnx:
        from fedmarket.scoring.onnx_model import OnnxModel

        model = OnnxModel(run)
        predict = model.predict
        announce(
            f"model calls: ONNX Runtime (max difference from PyTorch {model.max_abs_diff:.1g})"
        )
    app = create_app(
        run,
        decision=decision,
        token=token,
        limits=options.limits,
        max_body_bytes=options.max_body_bytes,
        predict=predict,
    )
    return app, f"{run.model_name} ({run.source})", f"decision: {decision.rule}", decision


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
