"""What a command does not use, it does not import: `fedmarket --help`, the data commands
and `keys` never load torch, Flower, Ray, Opacus, scikit-learn, MLflow or matplotlib
(seconds of start-up on a small machine; issue 20). Structural, not timed: the commands
run in one fresh interpreter and the modules it loaded are listed after each."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "flwr", "ray", "opacus", "sklearn", "mlflow", "matplotlib")

SCRIPT = """
import json, sys
from fedmarket.cli import app
heavy = {heavy!r}
loaded = {{}}
for args in {commands!r}:
    try:
        app(args, standalone_mode=False)
    except SystemExit:
        pass
    loaded[" ".join(args[:2])] = sorted(m for m in heavy if m in sys.modules)
print(json.dumps(loaded))
"""


def test_help_data_and_keys_commands_load_no_training_stack(tmp_path):
    raw, prepared, key = tmp_path / "raw", tmp_path / "prepared", str(tmp_path / "key")
    commands = [
        ["--help"],
        ["--version"],
        ["simulate", "--help"],
        ["tradeoff", "--help"],
        ["synth-private", "--help"],
        ["keys", "new", key],
        ["data", "synth", "--out", str(raw), "--retailers", "2", "--customers", "60"],
        ["data", "prepare", "--raw", str(raw), "--out", str(prepared), "--key-file", key],
        ["data", "inspect", str(prepared)],
    ]
    code = SCRIPT.format(heavy=HEAVY, commands=commands)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert (prepared / "manifest.json").is_file()  # the commands did their work
    assert loaded == {" ".join(c[:2]): [] for c in commands}


def _loaded_by(
    module: str, heavy: tuple[str, ...] = ("opacus", "sklearn", "matplotlib", "mlflow")
) -> list[str]:
    code = (
        f"import sys, json; import {module}; "
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r})))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_flower_apps_start_without_opacus_sklearn_or_matplotlib():
    # Every client actor imports the ClientApp before its first training, and the driver the
    # ServerApp: Opacus (DP training only), scikit-learn (evaluation) and matplotlib (the
    # report at the end) load where they are used, not in every process's start-up.
    assert _loaded_by("clients.app") == []
    assert _loaded_by("server.app") == []


def test_client_actors_start_without_pandas_or_scipy():
    # A simulation's client reads its partition's arrays (numpy): pandas and pyarrow (the
    # deployment's raw export, a predictions file) and scipy (calibration, evaluation
    # metrics) would be seconds of every actor's start on a 2-core machine (issue 20).
    assert _loaded_by("clients.app", ("pandas", "pyarrow", "scipy")) == []
