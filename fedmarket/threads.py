"""How many threads torch trains on: one decision for every training path.

torch's default is one thread per core of the machine, and its threads spin-wait for each
other: on a shared 2-core machine with two more busy processes centralised training took 5-11x
as long on torch's default as on one thread (issue #20, BENCHMARKS.md "Threads"), silently.
So fedmarket chooses, and says what it chose, in this order:

1. ``--threads N`` on the command that trains;
2. ``$FEDMARKET_THREADS`` (simulate sets it for its client actors from ``--client-cpus``);
3. ``$OMP_NUM_THREADS`` (a user's own, or Ray's share for an actor it starts);
4. the usable cores (CPU affinity and a cgroup CPU quota) less those the machine's other
   work keeps busy (the 1-minute load average, as a share of this process's cores), at least 1.

The choice is made once when training starts: load that arrives later is not followed.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fedmarket.errors import ConfigError

log = logging.getLogger("fedmarket")

ENV_VAR = "FEDMARKET_THREADS"
OMP_VAR = "OMP_NUM_THREADS"
CGROUP_ROOT = Path("/sys/fs/cgroup")

_logged: tuple[int, str] | None = None  # the last line logged: said once, not per round


@dataclass(frozen=True)
class ThreadChoice:
    threads: int
    usable: int  # cores this process may use
    source: str  # where the number came from, in words

    def describe(self) -> str:
        """``torch: 1 thread (2 usable cores, 1 busy elsewhere)``: the line a user sees."""
        plural = "thread" if self.threads == 1 else "threads"
        return f"torch: {self.threads} {plural} ({self.usable} usable cores, {self.source})"


def parse_threads(value: object, where: str) -> int:
    """A positive whole number of threads, or a ConfigError naming ``where`` it came from."""
    text = str(value).strip()
    number = int(text) if text.isdecimal() else 0
    if number < 1:
        raise ConfigError(
            f"{where}: {value!r} is not a number of threads; give a whole number >= 1 "
            f"(or leave it unset: fedmarket then uses the usable cores less the busy ones)"
        )
    return number


def cgroup_cpus(root: Path = CGROUP_ROOT) -> float | None:
    """The cgroup's CPU quota in cores (v2 ``cpu.max``, else v1 ``cfs_quota_us``); None
    without a quota or where the files cannot be read (not Linux, no cgroup mounted)."""
    try:
        v2 = root / "cpu.max"
        if v2.exists():
            quota, _, period = v2.read_text().strip().partition(" ")
            return None if quota == "max" else int(quota) / int(period or 100000)
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def usable_cores(affinity: int | None = None, quota: float | None = None) -> int:
    """The cores this process may run on: its CPU affinity, capped by a cgroup quota."""
    if affinity is None:
        try:
            affinity = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):  # not Linux
            affinity = os.cpu_count() or 1
    if quota is None:
        quota = cgroup_cpus()
    cores = affinity if quota is None else min(affinity, math.ceil(quota))
    return max(1, cores)


def busy_cores(usable: int, load: float | None = None, cpus: int | None = None) -> int:
    """Cores of ours the machine's other work keeps busy, from the 1-minute load average.

    The load average counts the whole machine (a container sees its host's), so it is taken
    as a share of this process's cores: load 4 on a 16-core host is 0.5 of 2 usable cores.
    Rounded down: a core half busy is still worth a thread. At most ``usable``.
    """
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):  # not Unix
            return 0
    cpus = cpus or os.cpu_count() or usable
    return min(usable, max(0, int(load * usable / max(cpus, usable))))


def choose_threads(
    option: int | None = None,
    *,
    option_name: str = "--threads",
    env: Mapping[str, str] | None = None,
    usable: int | None = None,
    busy: int | None = None,
) -> ThreadChoice:
    """The thread count and where it came from (the order is in the module's docstring)."""
    env = os.environ if env is None else env
    usable = usable_cores() if usable is None else usable
    if option is not None:
        return ThreadChoice(parse_threads(option, option_name), usable, option_name)
    for var in (ENV_VAR, OMP_VAR):
        if env.get(var, "").strip():
            return ThreadChoice(parse_threads(env[var], f"${var}"), usable, f"${var}")
    busy = busy_cores(usable) if busy is None else busy
    threads = max(1, usable - busy)
    return ThreadChoice(threads, usable, f"{busy} busy elsewhere" if busy else "idle")


def apply_threads(
    option: int | ThreadChoice | None = None, *, option_name: str = "--threads"
) -> ThreadChoice:
    """Choose, set torch's intra-op threads, and log the choice once (and when it changes).

    A ``ThreadChoice`` already made (a command checks and shows it before the data load)
    is applied as it is, so the line shown and the threads used agree.

    Inter-op threads (torch's pool for parallel ops of one graph, unused by these models'
    training) are set to the same number where torch still allows it: only before its
    first parallel work, after which it raises RuntimeError and keeps its own.
    """
    global _logged
    import torch

    choice = (
        option
        if isinstance(option, ThreadChoice)
        else choose_threads(option, option_name=option_name)
    )
    torch.set_num_threads(choice.threads)
    # already set, or parallel work already ran: intra-op is what training uses
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(choice.threads)
    line = choice.describe()
    if _logged != (choice.threads, line):
        log.info("%s", line)
        _logged = (choice.threads, line)
    return choice
