"""Where the deployment test's processes run: separate network namespaces, or loopback.

``Topology.create`` tries Linux network namespaces first: one for the SuperLink, one per
SuperNode, joined by veth pairs to a bridge inside the SuperLink's namespace, with
addresses in a private /24 that exists only between these namespaces (nothing is routed
to or from the host's own network). Without root or ``ip netns`` it falls back to
loopback on this host, and says so in ``mode``.

Processes are started with ``Topology.start`` and ended by process id, children included
(the SuperLink and each SuperNode spawn SuperExec helpers and ClientApp processes).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SUBNET = "10.251.7"  # private; lives only on the veths and bridge made here


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (from /proc; no psutil here)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def kill_tree(pid: int, sig: int = signal.SIGKILL) -> None:
    for p in [pid, *descendants(pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, sig)


@dataclass
class Topology:
    mode: str  # "netns" or "loopback"
    superlink_host: str  # the address SuperNodes dial
    tag: str
    namespaces: list[str] = field(default_factory=list)
    procs: list[subprocess.Popen] = field(default_factory=list)

    @staticmethod
    def create(n_nodes: int, tag: str) -> Topology:
        if os.geteuid() == 0 and shutil.which("ip"):
            topo = Topology("netns", f"{SUBNET}.1", tag)
            try:
                topo._build(n_nodes)
                return topo
            except (subprocess.CalledProcessError, OSError):
                topo.destroy()
        return Topology("loopback", "127.0.0.1", tag)

    def ns(self, who: str) -> str | None:
        """The namespace of ``who`` ("link", "node0", ...); None on loopback."""
        return f"fm{self.tag}{who}" if self.mode == "netns" else None

    def node_address(self, i: int) -> str:
        return f"{SUBNET}.{10 + i}" if self.mode == "netns" else "127.0.0.1"

    def prefix(self, who: str) -> list[str]:
        name = self.ns(who)
        return ["ip", "netns", "exec", name] if name else []

    def start(
        self, who: str, argv: list[str], log: Path, env: dict[str, str], cwd: Path | None = None
    ) -> subprocess.Popen:
        handle = open(log, "wb")  # noqa: SIM115 - the child writes to it until it ends
        proc = subprocess.Popen(
            [*self.prefix(who), *argv], stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=cwd
        )
        handle.close()
        self.procs.append(proc)
        return proc

    def run(
        self,
        who: str,
        argv: list[str],
        env: dict[str, str],
        timeout: float,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*self.prefix(who), *argv],
            env=env,
            cwd=cwd,
            timeout=timeout,
            capture_output=True,
            text=True,
        )

    def stop_all(self) -> None:
        """TERM every started process tree, then KILL what is left; reap them."""
        trees = {p.pid: [p.pid, *descendants(p.pid)] for p in self.procs}
        for pids in trees.values():
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(alive(p) for t in trees.values() for p in t):
            time.sleep(0.2)
        for pids in trees.values():
            for pid in pids:
                if alive(pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)

    def destroy(self) -> None:
        self.stop_all()
        for name in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        self.namespaces.clear()

    # --- namespaces -------------------------------------------------------------------
    def _ip(self, *args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)

    def _add_ns(self, name: str) -> None:
        self._ip("netns", "add", name)
        self.namespaces.append(name)
        self._ip("-n", name, "link", "set", "lo", "up")

    def _build(self, n_nodes: int) -> None:
        link = self.ns("link")
        self._add_ns(link)
        bridge = "fmbr"
        self._ip("-n", link, "link", "add", bridge, "type", "bridge")
        self._ip("-n", link, "addr", "add", f"{SUBNET}.1/24", "dev", bridge)
        self._ip("-n", link, "link", "set", bridge, "up")
        for i in range(n_nodes):
            node = self.ns(f"node{i}")
            self._add_ns(node)
            port, peer = f"fmv{i}{self.tag}"[:15], f"fme{i}{self.tag}"[:15]
            self._ip(
                "link",
                "add",
                port,
                "netns",
                link,
                "type",
                "veth",
                "peer",
                "name",
                peer,
                "netns",
                node,
            )
            self._ip("-n", link, "link", "set", port, "master", bridge)
            self._ip("-n", link, "link", "set", port, "up")
            self._ip("-n", node, "addr", "add", f"{self.node_address(i)}/24", "dev", peer)
            self._ip("-n", node, "link", "set", peer, "up")
