"""`fedmarket local-superlink stop` against a stand-in SuperLink: a script named
``flower-superlink`` listening on a free port, with a ``flower-superexec`` child of its own
(starting Flower's real one takes a minute and the machine-wide default port)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.cli.output import cli, ok, one_error_line

FAKE_SUPERLINK = """\
import socket, subprocess, sys, time
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", int(sys.argv[1])))
server.listen()
child = subprocess.Popen([sys.argv[2]])  # as the SuperLink starts flower-superexec
with open(sys.argv[3], "w") as handle:
    handle.write(str(child.pid))
time.sleep(300)
"""
FAKE_SUPEREXEC = "import time\ntime.sleep(300)\n"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _script(path: Path, body: str) -> Path:
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(0o755)
    return path


def _listening(pid: int, port: int) -> bool:
    return any(c.laddr.port == port for c in psutil.Process(pid).net_connections(kind="tcp"))


def _start(tmp_path: Path, program: str, port: int) -> tuple[subprocess.Popen, int]:
    """The stand-in, detached as Flower starts its own; (its process, its child's pid)."""
    link = _script(tmp_path / program, FAKE_SUPERLINK)
    superexec = _script(tmp_path / "flower-superexec", FAKE_SUPEREXEC)
    pid_file = tmp_path / "child.pid"
    proc = subprocess.Popen(
        [str(link), str(port), str(superexec), str(pid_file)], start_new_session=True
    )
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text() and _listening(proc.pid, port)):
        assert time.monotonic() < deadline and proc.poll() is None, "the stand-in did not start"
        time.sleep(0.05)
    return proc, int(pid_file.read_text())


@pytest.fixture
def port(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    free = _free_port()
    monkeypatch.setenv("FLWR_LOCAL_SUPERLINK_HTTP_API_PORT", str(free))
    yield free


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_stop_ends_the_superlink_and_what_it_started(tmp_path, port):
    proc, child = _start(tmp_path, "flower-superlink", port)
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        out = ok(cli("local-superlink", "stop"))
        proc.wait(timeout=30)
        assert f"port {port}" in out and str(proc.pid) in out and str(child) in out
        assert "flower-superexec" in " ".join(out.split())
        assert _gone(child)
        assert bystander.poll() is None  # another process: untouched
    finally:
        bystander.kill()
        for pid in (proc.pid, child):
            if not _gone(pid):
                os.kill(pid, 9)


def test_stop_with_nothing_running_says_so(port):
    out = ok(cli("local-superlink", "stop"))
    assert f"no local SuperLink is running (nothing listens on port {port})" in " ".join(
        out.split()
    )


def test_a_process_on_the_port_that_is_not_a_superlink_is_left_alone(tmp_path, port):
    proc, child = _start(tmp_path, "web-server", port)
    try:
        line = one_error_line(cli("local-superlink", "stop"))
        assert f"port {port} is held by process {proc.pid}" in line
        assert "FLWR_LOCAL_SUPERLINK_HTTP_API_PORT" in line
        assert proc.poll() is None and not _gone(child)
    finally:
        proc.kill()
        os.kill(child, 9)
