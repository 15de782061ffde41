"""The local SuperLink that `flwr run` starts, found by its port and stopped by its PID.

flwr 1.41 starts ``flower-superlink --simulation`` detached (in its own session, output to
``~/.flwr/local-superlink/superlink.log``) the first time `flwr run` or `flwr federation`
needs the local federation, and leaves it running: later runs reuse it, and it holds the
federation's size. The SuperLink starts ``flower-superexec``, which starts each run's
simulation process (the ServerApp, Ray and its actors). Flower records no PID and has no
stop command (``flwr stop`` stops a run, not the SuperLink). The process listening on the
local SuperLink's HTTP port is that SuperLink, exactly: stopping it and what it started,
by PID, leaves any other Flower process on the machine alone, as ``pkill -f`` would not.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import psutil

from fedmarket.errors import ConfigError

# Flower's own (flwr/cli/constant.py): the port `flwr run` probes and starts the SuperLink on.
PORT_VARIABLE = "FLWR_LOCAL_SUPERLINK_HTTP_API_PORT"
DEFAULT_PORT = 39091
PROGRAM = "flower-superlink"


@dataclass(frozen=True)
class LocalSuperLink:
    """The SuperLink process and what it started (SuperExec, a run's processes in flight)."""

    port: int
    process: psutil.Process
    descendants: tuple[psutil.Process, ...]


def local_port() -> int:
    """The port Flower's CLI uses for the local SuperLink (as `flwr run` reads it)."""
    text = os.environ.get(PORT_VARIABLE, str(DEFAULT_PORT))
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"${PORT_VARIABLE}={text!r} is not a port number; unset it") from None


def find(port: int | None = None) -> LocalSuperLink | None:
    """The local SuperLink listening on ``port``, or None when nothing listens there.

    A process on that port that is not a ``flower-superlink`` is refused, never stopped.
    """
    port = local_port() if port is None else port
    pids = {
        c.pid
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid
    }
    if not pids:
        return None
    process = psutil.Process(min(pids))
    if not _is_superlink(process):
        raise ConfigError(
            f"port {port} is held by process {process.pid} ({' '.join(process.cmdline()[:3])}), "
            f"not by a {PROGRAM}; stop that process yourself, or set ${PORT_VARIABLE} to the "
            "port of your local SuperLink"
        )
    return LocalSuperLink(port, process, tuple(process.children(recursive=True)))


def stop(link: LocalSuperLink, timeout: float = 10.0) -> list[psutil.Process]:
    """Ask the SuperLink and every process it started to end (SIGTERM), kill what is left
    after ``timeout`` seconds; the processes that were running. psutil checks each PID
    still names the process found (not a new one that reused the number)."""
    processes = [p for p in (link.process, *link.descendants) if p.is_running()]
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.terminate()
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(alive, timeout=timeout)
    return processes


def describe(process: psutil.Process) -> str:
    """Its program's name: ``flower-superexec`` rather than ``python3.11``."""
    try:
        cmdline = process.cmdline()
        scripts = [Path(part).name for part in cmdline[:2] if Path(part).name.startswith("flower-")]
        return scripts[0] if scripts else process.name()
    except (psutil.AccessDenied, psutil.NoSuchProcess):
        return "ended"


def _is_superlink(process: psutil.Process) -> bool:
    """Its program is ``flower-superlink`` (run directly, or as a script by Python)."""
    try:
        return any(Path(part).name == PROGRAM for part in process.cmdline()[:2])
    except (psutil.AccessDenied, psutil.NoSuchProcess):
        return False
