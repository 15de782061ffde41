"""Training one point with fedmarket itself, and the data a sweep runs on."""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path
from typing import Any

from fedmarket.config import RunConfig, format_overrides, parse_overrides
from fedmarket.data import store
from fedmarket.data.protect.keys import prepared_data_fernet
from fedmarket.errors import FedmarketError
from fedmarket.experiments.tradeoff.points import (
    QUICK_SYNTH,
    TEST_KEYS,
    Point,
    PointRunner,
    SweepConfig,
)
from fedmarket.federated.client_state import load_accountant
from fedmarket.rundir import RunDir

log = logging.getLogger("fedmarket")


# --- data ---------------------------------------------------------------------------------
# The quick data are synthetic customers only, so a fixed, public pseudonym key is harmless;
# it keeps the prepared files (and so the train/test split) identical on every machine.
QUICK_KEY = hashlib.sha256(b"fedmarket tradeoff --quick: synthetic customers only").digest()


def resolve_sweep_data(cfg: SweepConfig) -> Path:
    if cfg.data is not None:
        # a clear error now (no manifest, no key, wrong key), not a failed record per point
        prepared_data_fernet(cfg.data, cfg.key_file, outside=[cfg.out])
        return cfg.data.resolve()
    if cfg.quick:
        return ensure_quick_data(cfg.out / "data")
    from fedmarket.defaults import ensure_default_data

    return ensure_default_data(log=log.info)


def ensure_quick_data(root: Path) -> Path:
    """3 small synthetic retailers, synthesised and prepared once under ``root``."""
    from fedmarket.data.prepare import PrepareOptions, prepare
    from fedmarket.data.synth.generate import generate_retailers

    prepared, raw = root / "prepared", root / "raw"
    if (prepared / "manifest.json").is_file():
        return prepared.resolve()
    if not (raw / "synth.json").is_file():
        if raw.exists():
            shutil.rmtree(raw)
        generate_retailers(raw, **QUICK_SYNTH)
    prepare(PrepareOptions(raw=raw, out=prepared, pseudonym_key=QUICK_KEY, overwrite=True))
    return prepared.resolve()


# --- the real point runner ----------------------------------------------------------------
def make_runner(cfg: SweepConfig, data_dir: Path) -> PointRunner:
    """Train a point with fedmarket itself: ``simulate`` or the centralised reference."""
    manifest = store.read_manifest(data_dir)
    n_clients = len(manifest["partitions"])
    overrides = parse_overrides(cfg.run_config)

    def run(point: Point, run_dir: Path) -> dict[str, Any]:
        values = {**overrides, "num-server-rounds": cfg.rounds, "seed": point.seed}
        if point.family == "federated":
            metrics = _federated(
                point, values, data_dir, run_dir, n_clients, cfg.key_file, cfg.threads
            )
        else:
            metrics = _centralised(point, values, data_dir, run_dir, cfg.key_file, cfg.threads)
        if cfg.audit:
            metrics.update(_audit(run_dir, point.family, cfg.key_file))
        return metrics

    return run


def _federated(
    point: Point,
    values: dict[str, Any],
    data_dir: Path,
    run_dir: Path,
    n_clients: int,
    key_file: Path | None,
    threads: int | None = None,
) -> dict[str, Any]:
    from fedmarket.experiments.simulate import simulate
    from fedmarket.privacy.calibration import calibrate_central_noise

    noise = None
    if point.epsilon is None:
        values["dp"] = "none"
    elif point.setting == "federated-client-dp":
        values.update({"dp": "client", "target-epsilon": point.epsilon})
    else:
        base = RunConfig.from_mapping({**values, "data-dir": str(data_dir)})
        cal = calibrate_central_noise(
            point.epsilon,
            num_clients=n_clients,
            rounds=base.num_server_rounds,
            fraction_train=base.fraction_train,
            delta=base.delta,
            accountant=base.accountant,
        )
        noise = cal.noise_multiplier
        values.update({"dp": "central", "central-noise-multiplier": noise})
    result = simulate(
        data=data_dir,
        run_config=format_overrides(values),
        out=run_dir,
        centralised=False,
        key_file=key_file,
        threads=threads,
    )
    fed = result["summary"]["federated"]
    if not fed.get("test"):
        raise FedmarketError(
            f"{run_dir}: no round was aggregated, so there is no model to "
            "score; see rounds.csv (failed or declined clients)"
        )
    eps = fed.get("epsilon") or {}
    if values["dp"] == "client":
        noise = _client_noise(run_dir)
    return {
        "epsilon": eps.get("max"),
        "delta": eps.get("delta", fed.get("delta")),
        "unit": eps.get("unit"),
        "noise_multiplier": noise,
        **{k: fed["test"].get(k) for k in TEST_KEYS},
        "wall_s": fed.get("wall_s"),
        "rounds": fed.get("rounds"),
    }


def _client_noise(run_dir: Path) -> float | None:
    """Mean over clients of the calibrated noise (each retailer's size gives its own)."""
    values = []
    state_dir = RunDir(run_dir).client_state
    for path in sorted(state_dir.glob("client-*")):
        state = load_accountant(None, str(state_dir), int(path.name.removeprefix("client-")))
        if state is not None and state.noise_multiplier is not None:
            values.append(float(state.noise_multiplier))
    return sum(values) / len(values) if values else None


def _centralised(
    point: Point,
    values: dict[str, Any],
    data_dir: Path,
    run_dir: Path,
    key_file: Path | None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Exactly the centralised reference of ``fedmarket simulate`` at this point's DP."""
    from fedmarket.centralised import run_matched_reference

    dp = (
        {"dp": "none"}
        if point.epsilon is None
        else {"dp": "client", "target-epsilon": point.epsilon}
    )
    rc = RunConfig.from_mapping(
        {**values, **dp, "data-dir": str(data_dir), "out-dir": str(run_dir)}
    )
    files = RunDir(run_dir)
    fernet = prepared_data_fernet(data_dir, key_file, outside=[run_dir])
    result = run_matched_reference(rc, data_dir, files.centralised, fernet=fernet, threads=threads)
    files.write_config(rc)
    return {
        "epsilon": result.epsilon,
        "delta": result.delta,
        "unit": "customer" if rc.dp == "client" else None,
        "noise_multiplier": result.noise_multiplier,
        **{k: result.test.get(k) for k in TEST_KEYS},
        "wall_s": result.wall_s,
        "rounds": result.epochs_run,
    }


def _audit(run_dir: Path, family: str, key_file: Path | None) -> dict[str, Any]:
    from fedmarket.experiments.audit import audit_run
    from fedmarket.privacy.membership import TARGET_FPRS, fpr_key

    entry = audit_run(run_dir, key_file=key_file)["models"][family]
    out = {
        "attack_auc": entry["roc_auc"],
        "attack_auc_ci_low": entry["roc_auc_ci_low"],
        "attack_auc_ci_high": entry["roc_auc_ci_high"],
        "attack_epsilon_lb": entry["epsilon_lower_bound"],
        "attack_epsilon_point": entry["epsilon_point"],
    }
    out.update({f"attack_{fpr_key(f)}": entry[fpr_key(f)] for f in TARGET_FPRS})
    return out
