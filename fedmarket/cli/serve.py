"""`fedmarket serve`: the real-time scoring service of a finished run, at the retailer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fedmarket.cli.app import EncryptionKeyFile, app, friendly_errors
from fedmarket.errors import ConfigError
from fedmarket.progress import console

_NEEDS = frozenset({"fastapi", "uvicorn", "starlette", "pydantic", "httpx"})


@app.command("serve")
@friendly_errors
def serve_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory (fedmarket simulate).")],
    host: Annotated[
        str, typer.Option(help="Address to listen on; anything but loopback is reachable.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port; 0 picks a free one (printed).")] = 8000,
    model_source: Annotated[
        str, typer.Option(help="federated (the global model) or centralised (simulation).")
    ] = "federated",
    token_file: Annotated[
        Path | None,
        typer.Option(
            help="File holding the bearer token callers must send (one line, mode 0600, e.g. "
            "`(umask 077; openssl rand -base64 32 > PATH)`). /healthz stays open."
        ),
    ] = None,
    threshold: Annotated[
        float | None, typer.Option(help="Select customers whose score is at least this.")
    ] = None,
    top: Annotated[
        float | None,
        typer.Option(
            help="Select the score that puts this % of the run's test customers above it "
            "(default 10, when no --threshold)."
        ),
    ] = None,
    max_events: Annotated[int, typer.Option(help="Most events per customer.")] = 10_000,
    max_customers: Annotated[int, typer.Option(help="Most customers per batch.")] = 1_000,
    onnx: Annotated[
        bool,
        typer.Option(
            "--onnx",
            help="Score with ONNX Runtime: an in-memory export of the model, checked against "
            "PyTorch at start-up (about 30 s more); needs pip install 'fedmarket\\[export]'.",
        ),
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            help="Processes answering on the port, each loading the model: one per core "
            "the service may use (each scores on one)."
        ),
    ] = 1,
    encryption_key_file: EncryptionKeyFile = None,
    retailer: Annotated[
        str | None,
        typer.Option(
            help="A recommendation run: the retailer served, whose popularity ranks a "
            "customer without history (default: every retailer's)."
        ),
    ] = None,
) -> None:
    """Serve a run's model over HTTP: POST /v1/score, /v1/score/batch; GET /v1/model, /healthz.

    A recommendation run answers each customer's top categories (?k=10, at most 100).

    Torch on one thread per process: a request is a few milliseconds that hold the GIL, so
    one process scores on one core; --workers N runs N of them on the same port."""
    try:
        from fedmarket.experiments.serve.runner import ServeOptions, run_service
        from fedmarket.experiments.serve.scorer import Limits
    except ModuleNotFoundError as exc:
        if exc.name not in _NEEDS:
            raise
        raise ConfigError(
            f"fedmarket serve needs {exc.name}, which is not installed: "
            "pip install 'fedmarket[serve]'"
        ) from None
    if max_events < 1 or max_customers < 1:
        raise ConfigError("--max-events and --max-customers must be at least 1")
    options = ServeOptions(
        run_dir=run_dir,
        host=host,
        port=port,
        model_source=model_source,
        token_file=token_file,
        threshold=threshold,
        top_percent=top,
        limits=Limits(max_events=max_events, max_customers=max_customers),
        encryption_key_file=encryption_key_file,
        retailer=retailer,
        onnx=onnx,
        workers=workers,
    )
    run_service(
        options, lambda line: console.print(line, markup=False, highlight=False, soft_wrap=True)
    )
