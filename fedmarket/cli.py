"""The `fedmarket` command: thin typer wiring over library functions.

Errors fedmarket raises on purpose are printed as one red line without a traceback and
exit with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from fedmarket.errors import FedmarketError
from fedmarket.progress import console

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    help="Federated, differentially private consumer-behaviour prediction.",
)
data_app = typer.Typer(no_args_is_help=True, help="Synthesise, prepare and inspect retailer data.")
app.add_typer(data_app, name="data")


def friendly_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except FedmarketError as exc:
            # escape: messages quote paths and values, and "[...]" in them is not rich markup;
            # soft_wrap: one line however narrow the terminal, so logs and grep keep it whole.
            console.print(
                f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(code=2) from None

    return wrapper


@data_app.command("synth")
@friendly_errors
def data_synth(
    out: Annotated[Path, typer.Option(help="Directory for the raw per-retailer exports.")],
    retailers: Annotated[int, typer.Option(help="Number of retailers.")] = 10,
    customers: Annotated[
        int, typer.Option(help="Customers per retailer (varies by retailer around this).")
    ] = 5000,
    days: Annotated[int, typer.Option(help="Days of activity.")] = 120,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same files.")] = 0,
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv.")] = "parquet",
    start: Annotated[str, typer.Option(help="First day (YYYY-MM-DD).")] = "2019-10-01",
) -> None:
    """Write synthetic retailers' raw exports in the public REES46 event schema."""
    from fedmarket.commands.data import synth

    synth(out, retailers, customers, days, seed, fmt, start)


@data_app.command("prepare")
@friendly_errors
def data_prepare(
    raw: Annotated[Path, typer.Option(help="A directory of retailer exports, or one export file.")],
    out: Annotated[
        Path, typer.Option(help="Directory for the prepared partitions and manifest.json.")
    ],
    partition: Annotated[
        str, typer.Option(help="natural | iid | dirichlet | quantity.")
    ] = "natural",
    partitions: Annotated[
        int | None, typer.Option(help="Number of partitions (not for natural).")
    ] = None,
    alpha: Annotated[
        float, typer.Option(help="Dirichlet concentration for dirichlet/quantity skew.")
    ] = 0.5,
    window_days: Annotated[int, typer.Option(help="Days of history per example.")] = 56,
    step_days: Annotated[int, typer.Option(help="Days per time step.")] = 2,
    horizon_days: Annotated[int, typer.Option(help="Label horizon after the cut-off.")] = 7,
    cutoff: Annotated[
        str | None, typer.Option(help="Cut-off date (default: end of data minus horizon).")
    ] = None,
    test_fraction: Annotated[
        float, typer.Option(help="Share of each retailer's customers held out.")
    ] = 0.2,
    k: Annotated[
        int, typer.Option(help="k of k-anonymity over the customer quasi-identifiers.")
    ] = 5,
    seed: Annotated[int, typer.Option(help="Seed for splits and partitions.")] = 0,
    strict: Annotated[
        bool, typer.Option(help="Reject a file with any bad row instead of dropping rows.")
    ] = False,
    mapping: Annotated[
        str | None, typer.Option(help="Column mapping: a TOML file or 'kind=...,customer=...'.")
    ] = None,
    key_file: Annotated[
        Path | None,
        typer.Option(
            help="HMAC key for pseudonyms (else $FEDMARKET_PSEUDONYM_KEY, "
            "else a per-user key that is created once)."
        ),
    ] = None,
    encrypt: Annotated[
        bool, typer.Option(help="Encrypt the prepared files at rest (Fernet).")
    ] = False,
    encryption_key_file: Annotated[
        Path | None, typer.Option(help="Fernet key (else $FEDMARKET_ENCRYPTION_KEY).")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Replace an existing prepared directory.")
    ] = False,
) -> None:
    """Validate, anonymise and featurise raw exports into per-partition train/test tensors."""
    args = dict(locals())
    from fedmarket.commands.data import prepare

    prepare(**args)


@data_app.command("inspect")
@friendly_errors
def data_inspect(data: Annotated[Path, typer.Argument(help="A prepared data directory.")]) -> None:
    """Print a prepared directory's manifest as tables."""
    from fedmarket.commands.data import inspect

    inspect(data)


def main() -> None:  # pragma: no cover - console entry point
    app()


@app.command("centralised")
@friendly_errors
def centralised_cmd(
    data: Annotated[Path, typer.Option(help="A prepared data directory.")],
    out: Annotated[Path, typer.Option(help="Directory for metrics.json and the plots.")],
    model: Annotated[str, typer.Option(help="cnn-lstm | lstm | gru | rnn.")] = "cnn-lstm",
    task: Annotated[str, typer.Option(help="purchase | purchase-count.")] = "purchase",
    epochs: Annotated[int, typer.Option(help="Maximum epochs.")] = 20,
    batch_size: Annotated[
        int, typer.Option(help="Batch size (expected batch size under DP).")
    ] = 256,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 3e-3,
    lr_schedule: Annotated[str, typer.Option(help="cosine | step | none.")] = "cosine",
    patience: Annotated[
        int | None, typer.Option(help="Early-stopping patience in epochs (none: off).")
    ] = 3,
    epsilon: Annotated[float | None, typer.Option(help="Target epsilon (DP-SGD).")] = None,
    noise_multiplier: Annotated[
        float | None, typer.Option(help="Fixed noise multiplier (DP-SGD).")
    ] = None,
    max_grad_norm: Annotated[
        float, typer.Option(help="Per-customer clipping norm under DP.")
    ] = 1.0,
    delta: Annotated[float | None, typer.Option(help="Delta (default 1/(10 n)).")] = None,
    accountant: Annotated[str, typer.Option(help="rdp | prv.")] = "rdp",
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
) -> None:
    """Train one sequence model on the pooled training data of all partitions (the reference)."""
    args = dict(locals())
    from fedmarket.commands.train import centralised

    centralised(**args)


@app.command("baselines")
@friendly_errors
def baselines_cmd(
    data: Annotated[Path, typer.Option(help="A prepared data directory.")],
    out: Annotated[Path, typer.Option(help="Directory for baselines.csv / .json.")],
    task: Annotated[str, typer.Option(help="purchase | purchase-count.")] = "purchase",
    sequence_models: Annotated[
        str, typer.Option(help="Comma-separated sequence models to train alongside ('' for none).")
    ] = "cnn-lstm,lstm,gru",
    epochs: Annotated[int, typer.Option(help="Maximum epochs for the sequence models.")] = 20,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
) -> None:
    """Classical models on aggregate features next to the sequence models, same test customers."""
    args = dict(locals())
    from fedmarket.commands.train import baselines

    baselines(**args)


@app.command("simulate")
@friendly_errors
def simulate_cmd(
    data: Annotated[
        Path | None,
        typer.Option(
            help="Prepared data (default: synthesise and prepare the default retailers once)."
        ),
    ] = None,
    run_config: Annotated[
        str, typer.Option(help="Overrides, as for flwr: \"num-server-rounds=5 dp='none'\".")
    ] = "",
    out: Annotated[
        Path | None, typer.Option(help="Run directory (default runs/simulate-<time>).")
    ] = None,
    centralised: Annotated[
        bool, typer.Option(help="Also train the matched centralised reference.")
    ] = True,
    resume: Annotated[
        Path | None, typer.Option(help="Continue a run directory from its last checkpoint.")
    ] = None,
    client_cpus: Annotated[float, typer.Option(help="CPUs per client actor.")] = 1.0,
    client_gpus: Annotated[
        float, typer.Option(help="GPU share per client actor (0.25: four per GPU).")
    ] = 0.0,
    ray_address: Annotated[
        str | None, typer.Option(help="Join a running Ray cluster (e.g. 'auto').")
    ] = None,
) -> None:
    """Run the Flower simulation (Ray) and compare it with centralised training."""
    args = dict(locals())
    from fedmarket.commands.simulate import simulate

    simulate(**args)


@app.command("certs")
@friendly_errors
def certs_cmd(
    out: Annotated[
        Path,
        typer.Option(
            help="Directory for ca.crt, server.crt/.key and supernodes/*.key|.pub (created 0700)."
        ),
    ],
    hosts: Annotated[
        str,
        typer.Option(
            help="Comma-separated names/IPs SuperNodes dial for the "
            "SuperLink; localhost, 127.0.0.1 and ::1 are "
            "always included."
        ),
    ] = "",
    nodes: Annotated[
        int, typer.Option(help="SuperNode key pairs to create (supernode-0 ... supernode-N-1).")
    ] = 3,
    days: Annotated[
        int, typer.Option(help="Validity of the server certificate in days (the CA: twice that).")
    ] = 365,
) -> None:
    """TLS certificates for the SuperLink and authentication keys for the SuperNodes."""
    args = dict(locals())
    from fedmarket.commands.certs import certs

    certs(**args)


@app.command("tradeoff")
@friendly_errors
def tradeoff_cmd(
    out: Annotated[
        Path,
        typer.Option(
            help="Sweep directory (records, points, csv, md, png); re-running it resumes."
        ),
    ],
    quick: Annotated[
        bool,
        typer.Option(
            help="Smoke run: epsilon 1 and 8 + no DP, one seed, two "
            "rounds, 3 small synthetic retailers."
        ),
    ] = False,
    data: Annotated[
        Path | None,
        typer.Option(
            help="Prepared data (default: the default retailers; with --quick, a small set)."
        ),
    ] = None,
    epsilons: Annotated[
        str | None,
        typer.Option(
            help="Target epsilons, comma-separated (default 0.5,1,2,4,8,16; no DP is always added)."
        ),
    ] = None,
    seeds: Annotated[
        str | None, typer.Option(help="Seeds, comma-separated (default 0,1,2).")
    ] = None,
    settings: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated subset of "
            "federated-client-dp, federated-central-dp, "
            "centralised-dp."
        ),
    ] = None,
    rounds: Annotated[
        int | None,
        typer.Option(
            help="Federated rounds (centralised: as many epochs x local-epochs); default 3."
        ),
    ] = None,
    run_config: Annotated[
        str, typer.Option(help="Overrides for every point, e.g. \"model='lstm' local-epochs=2\".")
    ] = "",
    audit: Annotated[
        bool, typer.Option(help="Run the membership-inference audit on every point.")
    ] = True,
) -> None:
    """Sweep epsilon for federated (client or central DP) and centralised DP training."""
    args = dict(locals())
    from fedmarket.commands.tradeoff import tradeoff

    if tradeoff(**args):
        raise typer.Exit(code=1)


@app.command("audit")
@friendly_errors
def audit_cmd(
    run_dir: Annotated[
        Path, typer.Argument(help="A run directory (fedmarket simulate, or a tradeoff point).")
    ],
    seed: Annotated[int, typer.Option(help="Seed for the member subsample and the split.")] = 0,
    confidence: Annotated[
        float, typer.Option(help="Confidence of the epsilon lower bound.")
    ] = 0.95,
) -> None:
    """Membership-inference audit: attack AUC, TPR at low FPR, empirical epsilon bound."""
    args = dict(locals())
    from fedmarket.commands.audit import audit

    audit(**args)


@app.command("bench")
@friendly_errors
def bench_cmd(
    out: Annotated[Path, typer.Option(help="Directory for bench.json, the data and the runs.")],
    quick: Annotated[
        bool, typer.Option(help="Smoke run: 4 clients x 1,024 customers, short throughput.")
    ] = False,
    scale: Annotated[
        bool,
        typer.Option(help="The scale point: 1,000 retailers x 1,000 customers, 10 per round."),
    ] = False,
    model: Annotated[str, typer.Option(help="Model to train.")] = "cnn-lstm",
    clients: Annotated[int | None, typer.Option(help="Simulated retailers (default 8).")] = None,
    customers: Annotated[
        int | None, typer.Option(help="Training customers per retailer (default 8,192).")
    ] = None,
    rounds: Annotated[int | None, typer.Option(help="Federated rounds (default 3).")] = None,
    clients_per_round: Annotated[
        int | None, typer.Option(help="Clients sampled per round (default: all).")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Batch size everywhere.")] = 256,
    client_cpus: Annotated[float, typer.Option(help="CPUs per client actor.")] = 1.0,
    client_gpus: Annotated[
        float | None,
        typer.Option(help="GPU share per client actor (default 0.25 with a GPU, else 0)."),
    ] = None,
    dp: Annotated[
        bool, typer.Option(help="Also measure the DP-SGD floor and federated run.")
    ] = True,
) -> None:
    """Performance: centralised floor, federated run with the same work, DP-SGD throughput."""
    args = dict(locals())
    from fedmarket.commands.bench import bench

    bench(**args)
