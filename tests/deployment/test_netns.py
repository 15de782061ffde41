"""fedmarket on Flower's deployment engine: SuperLink and three SuperNodes, TLS and node auth.

Run alone with ``pytest -m deployment tests/deployment -s`` (about 3-5 minutes on 2 cores).
The SuperLink and each SuperNode live in their own network namespace (veth pairs to a
bridge, private /24) when this runs as root with ``ip netns``; otherwise everything runs
on loopback. The mode is printed and checked by ``test_topology_mode``.

One module fixture plays the whole scenario once and records what happened; each test
checks one claim:

- a SuperNode whose key was not registered is refused;
- a plaintext client cannot talk to the TLS port;
- a SuperNode killed (SIGKILL, whole process tree) during round 1 does not end the run:
  round 1 aggregates the other two, round 2 runs with them, summary.json is written;
- each SuperNode got only its own retailer's export, and prepared it locally;
- nothing in the SuperLink's log, state database, FLWR_HOME or the run directory holds a
  customer id, session id, name, e-mail address or pseudonym.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fedmarket.data.protect.keys import create_key_file
from fedmarket.deploy.certs import generate
from tests.deployment.topology import Topology, alive, descendants, kill_tree

pytestmark = pytest.mark.deployment

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
N = 3
PORT = 39601
FED = "fmtest"
RUN_TIMEOUT = 420


def env_for(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "FLWR_HOME": str(home),
        "FLWR_TELEMETRY_ENABLED": "0",
        "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def wait_for(predicate, timeout: float, what: str, step: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def supernode_argv(
    topo: Topology,
    certs: Path,
    key: Path,
    i: int,
    node_config: str,
    *,
    insecure: bool = False,
    retries: bool = False,
) -> list[str]:
    argv = [
        str(BIN / "flower-supernode"),
        "--superlink",
        f"{topo.superlink_host}:{PORT}",
        "--port",
        str(PORT + 10 + i),
    ]
    argv += (
        ["--insecure"]
        if insecure
        else [
            "--root-certificates",
            str(certs / "ca.crt"),
            "--auth-supernode-private-key",
            str(key),
        ]
    )
    if retries:
        argv += ["--max-retries", "1", "--max-wait-time", "15"]
    return [*argv, "--node-config", node_config]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    from fedmarket.data.synth.generate import generate_retailers

    root = tmp_path_factory.mktemp("deploy")
    started = time.monotonic()
    out: dict = {"root": root}
    topo = Topology.create(N, tag=str(os.getpid() % 10000))
    out["mode"] = topo.mode
    print(f"\n[deployment test] topology: {topo.mode}; SuperLink at {topo.superlink_host}:{PORT}")
    try:
        certs = generate(
            root / "certs",
            hosts=[topo.superlink_host],
            nodes=[*(f"supernode-{i}" for i in range(N)), "intruder"],
        ).out
        raw = root / "raw"
        generate_retailers(raw, n_retailers=N, n_customers=200, days=70, seed=1)
        (root / "keys").mkdir(mode=0o700)
        for i in range(N):
            create_key_file(root / "keys" / f"retailer-{i}.key", "hmac")
        phases = out["phases"] = {"t0": started, "setup": time.monotonic() - started}
        _start_superlink(topo, root, certs)
        _register(topo, root, certs, out)
        phases["superlink up"] = time.monotonic() - started
        refusals = _start_refusals(topo, root, certs, out)
        nodes = _start_supernodes(topo, root, certs, raw, out)
        _run_with_a_crash(topo, root, nodes, refusals, out)
        phases["run over"] = time.monotonic() - started
    finally:
        topo.destroy()
    out["leftover"] = [p.pid for p in topo.procs if alive(p.pid)]
    out["wall_s"] = time.monotonic() - started
    print(
        f"[deployment test] scenario took {out['wall_s']:.0f} s ({topo.mode}); phases (s): "
        f"{ {k: round(v) for k, v in out.get('phases', {}).items() if k != 't0'} }"
    )
    return out


def _start_superlink(topo: Topology, root: Path, certs: Path) -> None:
    (root / "superlink").mkdir()
    bind = "0.0.0.0" if topo.mode == "netns" else "127.0.0.1"
    topo.start(
        "link",
        [
            str(BIN / "flower-superlink"),
            "--ssl-ca-certfile",
            str(certs / "ca.crt"),
            "--ssl-certfile",
            str(certs / "server.crt"),
            "--ssl-keyfile",
            str(certs / "server.key"),
            "--enable-supernode-auth",
            "--host",
            bind,
            "--port",
            str(PORT),
            "--database",
            str(root / "superlink" / "state.db"),
            "--disable-runtime-dependency-installation",
        ],
        root / "superlink" / "superlink.log",
        env_for(root / "superlink" / "home"),
    )
    (root / "cli").mkdir()
    (root / "cli" / "config.toml").write_text(
        f'[superlink]\ndefault = "{FED}"\n\n[superlink.{FED}]\naddress = "127.0.0.1:{PORT}"\n'
        f'root-certificates = "{certs / "ca.crt"}"\n'
    )


def _flwr(topo: Topology, root: Path, *args: str, timeout: float = 60):
    return topo.run("link", [str(BIN / "flwr"), *args], env_for(root / "cli"), timeout, cwd=REPO)


def _register(topo: Topology, root: Path, certs: Path, out: dict) -> None:
    def first() -> bool:
        return (
            _flwr(
                topo,
                root,
                "supernode",
                "register",
                str(certs / "supernodes" / "supernode-0.pub"),
                FED,
                "--name",
                "retailer-0",
            ).returncode
            == 0
        )

    wait_for(first, 90, "the SuperLink to accept registrations", step=1.0)
    for i in range(1, N):
        done = _flwr(
            topo,
            root,
            "supernode",
            "register",
            str(certs / "supernodes" / f"supernode-{i}.pub"),
            FED,
        )
        assert done.returncode == 0, done.stdout + done.stderr


def _start_refusals(topo: Topology, root: Path, certs: Path, out: dict) -> list:
    """An unregistered key and a plaintext client, from SuperNode namespaces, during the run."""
    (root / "intruder").mkdir()
    intruder = topo.start(
        "node0",
        supernode_argv(
            topo, certs, certs / "supernodes" / "intruder.key", 7, "partition-id=0", retries=True
        ),
        root / "intruder" / "intruder.log",
        env_for(root / "intruder" / "h"),
    )
    plain = topo.start(
        "node1",
        supernode_argv(
            topo, certs, certs / "nokey", 8, "partition-id=0", insecure=True, retries=True
        ),
        root / "intruder" / "plaintext.log",
        env_for(root / "intruder" / "p"),
    )
    probe = (
        f"import socket; s = socket.create_connection(({topo.superlink_host!r}, {PORT}), "
        "timeout=10); s.sendall(b'POST /v1/fleet/activate-node HTTP/1.1\\r\\nHost: x"
        "\\r\\nContent-Length: 0\\r\\n\\r\\n'); print(repr(s.recv(100)))"
    )
    raw_http = topo.run("node2", [sys.executable, "-c", probe], env_for(root / "cli"), 30)
    out["raw_http"] = (raw_http.returncode, raw_http.stdout.strip(), raw_http.stderr[-300:])
    return [("intruder", intruder), ("plaintext", plain)]


def _collect_refusals(topo: Topology, root: Path, refusals: list, out: dict) -> None:
    for name, proc in refusals:
        proc.wait(timeout=120)
        log = root / "intruder" / f"{name}.log"
        out[name] = (proc.returncode, log.read_text(errors="replace"))
    listed = _flwr(topo, root, "supernode", "list", FED, "--format", "json")
    out["nodes_listed"] = listed.stdout


def _start_supernodes(topo: Topology, root: Path, certs: Path, raw: Path, out: dict) -> list:
    exports = sorted(p for p in raw.iterdir() if p.is_dir())
    nodes = []
    for i in range(N):
        (root / f"supernode-{i}").mkdir()
        config = (
            f'partition-id={i} num-partitions={N} data-path="{exports[i]}" '
            f'key-file="{root / "keys" / f"retailer-{i}.key"}"'
        )
        proc = topo.start(
            f"node{i}",
            supernode_argv(topo, certs, certs / "supernodes" / f"supernode-{i}.key", i, config),
            root / f"supernode-{i}" / "supernode.log",
            env_for(root / f"supernode-{i}" / "h"),
        )
        nodes.append(proc)
    out["exports"] = [str(p) for p in exports]

    def started() -> list | None:  # right after fork, /proc shows the parent's command line
        lines = [_cmd(p.pid) for p in nodes]
        return lines if all("flower-supernode" in line for line in lines) else None

    out["cmdlines"] = wait_for(started, 60, "the SuperNodes to start")
    return nodes


def _run_with_a_crash(topo: Topology, root: Path, nodes: list, refusals: list, out: dict) -> None:
    run_dir = root / "run"
    overrides = f"num-server-rounds=2 model='lstm' round-timeout=150.0 out-dir='{run_dir}'"
    log_path = root / "flwr-run.log"
    run = topo.start(
        "link",
        [str(BIN / "flwr"), "run", ".", FED, "--stream", "--run-config", overrides],
        log_path,
        env_for(root / "cli"),
        cwd=REPO,
    )
    victim = nodes[N - 1]

    def training_in_round_1() -> bool:
        text = log_path.read_text(errors="replace")
        busy = any("flwr-clientapp" in _cmd(p) for p in descendants(victim.pid))
        return "[ROUND 1/2]" in text and busy

    wait_for(training_in_round_1, 300, "round 1 to start on the last SuperNode")
    kill_tree(victim.pid)  # the retailer's machine "crashes": SuperNode, SuperExec, ClientApp
    out["phases"]["supernode killed"] = time.monotonic() - out["phases"]["t0"]
    _collect_refusals(topo, root, refusals, out)
    timer = threading.Timer(RUN_TIMEOUT, lambda: kill_tree(run.pid))
    timer.start()
    try:
        out["run_rc"] = run.wait()
    finally:
        timer.cancel()
    out["run_log"] = log_path.read_text(errors="replace")
    out["survivors_alive"] = [alive(p.pid) for p in nodes[: N - 1]]
    listed = _flwr(topo, root, "ls", FED, "--format", "json")
    out["runs"] = listed.stdout


def _cmd(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


# --- the claims ---------------------------------------------------------------------------
def test_topology_mode(scenario):
    expected = "netns" if os.geteuid() == 0 else "loopback"
    assert scenario["mode"] == expected
    assert scenario["leftover"] == []


def test_unregistered_supernode_is_refused(scenario):
    rc, log = scenario["intruder"]
    assert rc != 0
    assert "Failed to activate SuperNode" in log, log[-2000:]
    superlink_log = (scenario["root"] / "superlink" / "superlink.log").read_text()
    assert "No SuperNode found with the given public key" in superlink_log
    listed = json.loads(scenario["nodes_listed"])
    assert len(listed["nodes"]) == N, listed  # the three registered keys; never the intruder's


def test_plaintext_client_cannot_talk_to_the_tls_port(scenario):
    rc, log = scenario["plaintext"]
    assert rc != 0 and "could not establish a connection" in log, log[-2000:]
    code, stdout, stderr = scenario["raw_http"]
    assert "HTTP/" not in stdout, stdout  # no HTTP answer to a plaintext request
    assert code != 0 or stdout == "b''", (stdout, stderr)


def test_run_finishes_when_a_supernode_dies_mid_round(scenario):
    assert scenario["run_rc"] == 0, scenario["run_log"][-4000:]
    assert all(scenario["survivors_alive"])
    run_dir = scenario["root"] / "run"
    rounds = pd.read_csv(run_dir / "rounds.csv")
    assert rounds["round"].tolist() == [1, 2]
    first, second = rounds.iloc[0], rounds.iloc[1]
    assert (first["sent"], first["ok"], first["failed"] + first["timed_out"]) == (3, 2, 1)
    assert (second["sent"], second["ok"], second["failed"]) == (2, 2, 0)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["federated"]["rounds"] == 2 and summary["centralised"] is None
    # the killed retailer never finished a round, so only the survivors report epsilon
    assert set(summary["federated"]["epsilon"]["per_client"]) == {"0", "1"}
    assert (run_dir / "report.md").is_file() and (run_dir / "checkpoints" / "latest.json").is_file()
    runs = json.loads(scenario["runs"])["runs"]
    assert runs[-1]["status"] == "finished:completed"


def test_each_supernode_got_only_its_own_export(scenario):
    exports = scenario["exports"]
    for i, cmdline in enumerate(scenario["cmdlines"]):
        node_config = cmdline.split("--node-config", 1)[1]
        paths = [e for e in exports if e in node_config]
        assert paths == [exports[i]], node_config
        assert f"retailer-{i}.key" in node_config
        cache = Path(exports[i] + ".fedmarket")
        assert cache.stat().st_mode & 0o077 == 0  # pseudonymised features stay private
        featurised = [json.loads(p.read_text()) for p in cache.glob("*/features.json")]
        assert [f["retailer"] for f in featurised] == [Path(exports[i]).name]
        manifests = list(cache.glob("*/prepared-*/manifest.json"))
        if i < N - 1:  # the killed SuperNode may have died before normalising its copy
            assert manifests, f"retailer {i} prepared nothing locally"
        for manifest in manifests:
            assert list(json.loads(manifest.read_text())["retailers"]) == [Path(exports[i]).name]


def test_superlink_holds_no_customer_data(scenario):
    root = scenario["root"]
    forbidden = _customer_tokens(root, scenario["exports"])
    places = [root / "superlink", root / "run", root / "flwr-run.log"]
    files = [
        p
        for place in places
        for p in ([place] if place.is_file() else place.rglob("*"))
        if p.is_file()
    ]
    assert any(p.name == "state.db" for p in files) and any(p.suffix == ".pt" for p in files)
    hits = {}
    for path in files:
        blob = path.read_bytes()
        found = [t for t in forbidden["text"] if t in blob]
        found += [u for u in forbidden["int64"] if u in blob]
        if found:
            hits[str(path)] = found[:5]
    assert hits == {}
    assert len(forbidden["text"]) > 1000  # ids, sessions, names, e-mails, pseudonyms


def _customer_tokens(root: Path, exports: list[str]) -> dict[str, set[bytes]]:
    text: set[bytes] = set()
    int64: set[bytes] = set()
    for export in exports:
        events = pd.read_parquet(
            Path(export) / "events.parquet", columns=["user_id", "user_session"]
        )
        for uid in events["user_id"].unique():
            text.add(str(int(uid)).encode())
            int64.add(np.int64(uid).tobytes())
        text.update(str(s).encode() for s in events["user_session"].unique())
        customers = pd.read_csv(Path(export) / "customers.csv", dtype=str)
        text.update(v.encode() for v in customers["email"].dropna())
        text.update(v.encode() for v in customers["name"].dropna())
        for blob in Path(export + ".fedmarket").glob("*/features.npz"):
            with np.load(blob, allow_pickle=False) as arrays:
                text.update(str(c).encode() for c in arrays["customer"])
    # Short strings would match by chance in binary files; every token kept is >= 9 bytes
    # (9-digit ids, 36-char sessions, 64-hex pseudonyms, e-mail addresses, full names).
    return {"text": {t for t in text if len(t) >= 9}, "int64": int64}
