"""`fedmarket simulate`: the Flower simulation, then the matched centralised reference.

Runs the same ServerApp and ClientApp as `flwr run .`, through Flower's ``run_simulation``
(Ray actors, one per client share of CPU/GPU). ``run_simulation`` hands the apps an empty
run config, so the validated ``RunConfig`` is closed over by the app factories instead; so
is the key of encrypted data, which must never be in a run config or the run directory.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedmarket.centralised import run_matched_reference
from fedmarket.config import RunConfig, parse_overrides
from fedmarket.data import store
from fedmarket.data.protect.keys import prepared_data_fernet
from fedmarket.defaults import default_run_dir, ensure_default_data
from fedmarket.errors import ConfigError
from fedmarket.progress import progress_bar
from fedmarket.results import write_run_outputs
from fedmarket.rundir import RunDir

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

log = logging.getLogger("fedmarket")


@dataclass(frozen=True)
class ClientResources:
    """Ray resources per client actor; ``num_gpus`` 0.25 packs four clients on one GPU."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    ray_address: str | None = None

    def __post_init__(self) -> None:
        if self.num_cpus <= 0:
            raise ConfigError(f"--client-cpus must be > 0, got {self.num_cpus}")
        if not 0 <= self.num_gpus <= 1 and self.num_gpus != int(self.num_gpus):
            raise ConfigError(
                f"--client-gpus must be a fraction in [0, 1] or a whole number, got {self.num_gpus}"
            )
        if self.num_gpus < 0:
            raise ConfigError(f"--client-gpus must be >= 0, got {self.num_gpus}")

    def backend_config(self) -> dict[str, Any]:
        init_args: dict[str, Any] = {
            "include_dashboard": False,
            "logging_level": "ERROR",
            "log_to_driver": False,
        }
        if self.ray_address:
            init_args["address"] = self.ray_address
        return {
            "client_resources": {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus},
            "init_args": init_args,
        }


@dataclass(frozen=True)
class RunStart:
    """Where a run starts: its settings and directory, rounds already done, the data's key."""

    cfg: RunConfig
    run_dir: Path
    offset: int = 0
    weights: Any = None
    fernet: Fernet | None = field(default=None, repr=False)


def simulate(
    *,
    data: Path | None,
    run_config: str = "",
    out: Path | None = None,
    centralised: bool = True,
    resume: Path | None = None,
    resources: ClientResources | None = None,
    key_file: Path | None = None,
) -> dict[str, Any]:
    """``key_file`` (else $FEDMARKET_ENCRYPTION_KEY) opens encrypted prepared data."""
    resources = resources or ClientResources()
    start = _resolve(data, run_config, out, resume, key_file)
    cfg, run_dir = start.cfg, start.run_dir
    data_dir = Path(cfg.data_dir)
    n_clients = len(store.read_manifest(data_dir)["partitions"])
    remaining = cfg.num_server_rounds - start.offset
    federated: dict[str, Any] = {}
    if remaining > 0:
        _run_flower(start, n_clients, federated, resources)
    elif RunDir(run_dir).federated.exists():
        federated.update(json.loads(RunDir(run_dir).federated.read_text()))
    cen = (
        run_matched_reference(cfg, data_dir, RunDir(run_dir).centralised, fernet=start.fernet)
        if centralised
        else None
    )
    paths = write_run_outputs(run_dir, cfg, federated, cen)
    return {"run_dir": run_dir, "summary": json.loads(paths["summary"].read_text())}


def _resolve(
    data: Path | None, run_config: str, out: Path | None, resume: Path | None, key_file: Path | None
) -> RunStart:
    """Every check a run needs, the data's key included, before anything is written."""
    if resume is not None:
        if run_config:
            raise ConfigError("--resume continues with the run's own config; drop --run-config")
        try:
            cfg = RunDir(resume).read_config()
        except ConfigError as exc:
            raise ConfigError(f"--resume {resume}: {exc}") from None
        fernet = prepared_data_fernet(Path(cfg.data_dir), key_file, outside=[resume])
        checkpoint = RunDir(resume).latest_checkpoint()
        offset, weights = checkpoint if checkpoint is not None else (0, None)
        log.info("resuming %s after round %d of %d", resume, offset, cfg.num_server_rounds)
        return RunStart(cfg, resume, offset, weights, fernet)
    overrides = parse_overrides(run_config)
    for key in ("data-dir", "out-dir", "state-dir"):
        if key in overrides:
            raise ConfigError(
                f"--run-config: {key} is set by fedmarket simulate; use --data / --out"
            )
    run_dir = (out or default_run_dir("simulate")).resolve()
    if RunDir(run_dir).holds_run():
        raise ConfigError(
            f"--out {run_dir} already holds a run; resume it with --resume or pick another"
        )
    if data is not None:
        data_dir = data.resolve()
    else:
        with progress_bar("default retailers (first run only)", None) as advance:
            data_dir = ensure_default_data(advance, log=log.info)
    # a clear error now rather than in every client
    fernet = prepared_data_fernet(data_dir, key_file, outside=[run_dir])
    cfg = RunConfig.from_mapping(
        {
            **overrides,
            "data-dir": str(data_dir),
            "out-dir": str(run_dir),
            "state-dir": str(RunDir(run_dir).client_state),
        }
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    return RunStart(cfg, run_dir, fernet=fernet)


def ray_environment() -> None:
    """Settings the driver passes on to Ray before it starts (a user's own values win).

    A client trains on cuda when it can see a GPU, so an actor without a GPU share must not
    see one: Ray hides it today (RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO=1, its current default)
    but has announced the opposite default; asking for it explicitly keeps `--client-gpus 0`
    on the CPU. Its FutureWarning about that is silenced.
    """
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "1")
    warnings.filterwarnings(
        "ignore", message="Tip: In future versions of Ray", category=FutureWarning
    )


def _run_flower(
    start: RunStart, n_clients: int, federated: dict[str, Any], resources: ClientResources
) -> None:
    ray_environment()
    from flwr.simulation import run_simulation

    from clients.app import make_client_app
    from server.app import make_server_app

    logging.getLogger("flwr").setLevel(logging.WARNING)
    server = make_server_app(
        start.cfg,
        round_offset=start.offset,
        initial_weights=start.weights,
        on_done=federated.update,
        fernet=start.fernet,
    )
    run_simulation(
        server_app=server,
        # the key travels in the pickled closure, to local actors and a joined cluster alike
        client_app=make_client_app(start.cfg, fernet=start.fernet),
        num_supernodes=n_clients,
        backend_config=resources.backend_config(),
    )
    if not federated:
        raise ConfigError("the Flower simulation ended without a result; see the log above")
