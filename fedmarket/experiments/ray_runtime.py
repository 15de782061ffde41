"""The Ray runtime a simulation runs on, and how it stops.

Ray is started by fedmarket, with the arguments Flower would give it, so that fedmarket's
Ctrl-C/SIGTERM handler goes on after Ray's (which exits at once); the client actors' resources
and restart policy; and the stop request a signal makes: the run ends at the round's commit,
and every Ray process the run started ends with it, however the run ends.
"""

from __future__ import annotations

import logging
import math
import os
import re
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from fedmarket.errors import ConfigError
from fedmarket.threads import ENV_VAR as THREADS_VAR

log = logging.getLogger("fedmarket")


# Messages are not retried by Ray: the one a dying actor was serving fails its round (counted,
# and the round aggregates the others), and the restarted actor serves the next rounds. Ray's
# task retries would also retry Flower's own `terminate` at every run's end, with a warning.
ACTOR_TASK_RETRIES = 0


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
        if self.ray_address is not None:
            check_ray_address(self.ray_address)

    @property
    def threads(self) -> int:
        """torch threads per client actor: its whole CPUs, at least one (as Ray's
        OMP_NUM_THREADS, but explicit: a user's OMP_NUM_THREADS would reach the actors)."""
        return max(1, math.floor(self.num_cpus))

    def backend_config(self) -> dict[str, Any]:
        init_args: dict[str, Any] = {
            "include_dashboard": False,
            "logging_level": "ERROR",
            "log_to_driver": False,
        }
        if self.ray_address:
            init_args["address"] = self.ray_address
        return {
            "client_resources": {
                "num_cpus": self.num_cpus,
                "num_gpus": self.num_gpus,
                # Flower passes these to Ray's actor options: a client actor that dies
                # (killed, out of memory) is restarted, so the federation keeps every
                # retailer in the rounds after it.
                "max_restarts": -1,
                "max_task_retries": ACTOR_TASK_RETRIES,
            },
            "init_args": init_args,
        }


_HOST_PORT = re.compile(r"^(ray://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$")


def check_ray_address(address: str) -> None:
    """``--ray-address``: 'auto' (the cluster started on this machine with `ray start`),
    'local' (a new one, as without the option) or the head's ``HOST:PORT`` (Ray's GCS port,
    6379 by default; ``ray://HOST:PORT`` for Ray Client). Checked before Ray starts, so a
    typo is one line, not Ray's connection traceback after the data checks."""
    if address in ("auto", "local"):
        return
    match = _HOST_PORT.match(address)
    if match is None or not 0 < int(match.group(3)) < 65536:
        raise ConfigError(
            f"--ray-address {address!r} is not a Ray address: give 'auto' (the cluster "
            "`ray start --head` started on this machine), 'local', or the head node's "
            "HOST:PORT, e.g. 10.0.0.5:6379"
        )


class StopRequest:
    """The first Ctrl-C or SIGTERM: the run stops at the end of the round in flight.

    Remembers which signal asked, so the command exits with 130 (Ctrl-C) or 143 (SIGTERM).
    """

    def __init__(self) -> None:
        self._asked = threading.Event()
        self.signum = int(signal.SIGINT)

    def ask(self, signum: int) -> None:
        self.signum = int(signum)
        self._asked.set()

    def is_set(self) -> bool:
        return self._asked.is_set()


@contextmanager
def stop_at_round_end(stop: StopRequest) -> Iterator[None]:
    """Ctrl-C (SIGINT) or SIGTERM asks the run to stop at the end of the round in flight.

    The round is committed and the run directory stays resumable; the simulation then ends
    with ``RunStopped`` and its Ray actors go with it. The same signal again stops at once
    (the directory is still at the last commit). SIGTERM is what a supervisor, `kill` or a
    batch system's time limit sends: it is handled as Ctrl-C is. Installed after Ray has
    started (``start_ray``), whose own SIGTERM handler would exit the process at once.
    Outside the main thread (a notebook's worker, say) signals cannot be caught, and
    nothing is installed.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def ask(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt  # the second time: now
        stop.ask(signum)
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        log.warning(
            "%s: stopping after the round in flight (it is committed, so the run can be "
            "resumed); %s again stops now",
            name,
            name,
        )

    for sig in previous:
        signal.signal(sig, ask)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def start_ray(resources: ClientResources) -> None:
    """Start Ray before Flower does, with the arguments Flower would give it.

    ``ray.init`` replaces the process's SIGTERM handler with one that exits at once (round
    in flight lost, the ServerApp thread left waiting); started here, fedmarket's handler
    goes on after it. Flower's backend then finds Ray running and uses it, and shuts it
    down at the end. Actors import the apps from the driver's path, as Flower arranges,
    and train on ``resources.threads`` torch threads ($FEDMARKET_THREADS, read by the
    ClientApp): inherited from the environment Ray starts in when it starts here, the job's
    ``runtime_env`` when it joins a running cluster.
    """
    import ray

    if ray.is_initialized():
        return
    pythonpath = os.pathsep.join([*sys.path, *filter(None, [os.environ.get("PYTHONPATH")])])
    os.environ["PYTHONPATH"] = pythonpath
    env_vars = {"PYTHONPATH": pythonpath, THREADS_VAR: str(resources.threads)}
    init_args = resources.backend_config()["init_args"]
    if starts_local_ray(resources):
        # Ray's processes inherit the environment they start in, and so do its workers: the
        # actors then run in the workers Ray starts with the node instead of new ones set up
        # for a runtime_env (each a Python process importing Ray: seconds on a small machine)
        with environment(env_vars):
            ray.init(**init_args)
    else:  # a running cluster: its workers get the variables from the job
        ray.init(runtime_env={"env_vars": env_vars}, **init_args)


def starts_local_ray(resources: ClientResources) -> bool:
    """Whether ``ray.init`` starts a new Ray on this machine (no address, or 'local')
    rather than joining a running one (an address, or Ray's $RAY_ADDRESS)."""
    if resources.ray_address is not None:
        return resources.ray_address == "local"
    return not os.environ.get("RAY_ADDRESS")


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """``values`` in this process's environment for the block, the previous ones after."""
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def stop_ray() -> None:
    """Every Ray process this run started, actors included, ends with the run, however
    it ends (Flower shuts Ray down only when the simulation ends normally)."""
    import ray

    if ray.is_initialized():
        ray.shutdown()


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
