"""The privacy/accuracy trade-off: sweep epsilon for every way fedmarket can train under DP.

Three settings, each at every target epsilon and without DP, over several seeds:

- ``federated-client-dp``: Flower simulation, Opacus DP-SGD at every retailer (customer-level
  epsilon, cumulative over all rounds);
- ``federated-central-dp``: Flower simulation, server-side clipping and noise calibrated
  to the target (``fedmarket.privacy.calibration``; retailer-level epsilon);
- ``centralised-dp``: DP-SGD on the pooled data, the same model, epochs and batch size as
  the centralised reference of ``fedmarket simulate``.

Without DP both federated settings are the same run, so it is trained once per seed and
reported under both. Each run is a point with its own run directory
(``OUT/points/<key>/``) and a small JSON record (``OUT/records/<key>.json``). Records make
the sweep resumable: a point with an "ok" record is skipped, a point that raised gets an
"error" record (the sweep goes on) and is retried on the next run, and a point that was
interrupted has no record and is redone from scratch. ``tradeoff.csv``, ``tradeoff.md``,
``tradeoff.png`` and ``attack_auc.png`` are rebuilt from the records every time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fedmarket.config import RunConfig, parse_overrides
from fedmarket.data import store
from fedmarket.errors import ConfigError, FedmarketError

log = logging.getLogger("fedmarket")

SETTINGS: tuple[str, ...] = ("federated-client-dp", "federated-central-dp", "centralised-dp")
DEFAULT_EPSILONS: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
DEFAULT_SEEDS: tuple[int, ...] = (0, 1, 2)
QUICK_EPSILONS: tuple[float, ...] = (1.0, 8.0)
QUICK_SYNTH = {"n_retailers": 3, "n_customers": 800, "days": 90, "seed": 0}
# Set by the sweep for each point; anything else may be passed with --run-config.
RESERVED_KEYS = (
    "dp",
    "target-epsilon",
    "noise-multiplier",
    "central-noise-multiplier",
    "seed",
    "num-server-rounds",
    "data-dir",
    "out-dir",
    "state-dir",
)
TEST_KEYS = ("roc_auc", "pr_auc", "f1", "lift_at_10")

PointRunner = Callable[["Point", Path], dict[str, Any]]


@dataclass(frozen=True)
class SweepConfig:
    """One sweep. ``data`` None: the default retailers (or, with ``quick``, a small
    synthetic set made once under ``out/data``). ``run_config`` overrides apply to every
    point (e.g. ``"model='lstm' local-epochs=2"``)."""

    out: Path
    data: Path | None = None
    epsilons: tuple[float, ...] = DEFAULT_EPSILONS
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    settings: tuple[str, ...] = SETTINGS
    rounds: int = 3
    run_config: str = ""
    audit: bool = True
    quick: bool = False

    def __post_init__(self) -> None:
        for eps in self.epsilons:
            if (
                isinstance(eps, bool)
                or not isinstance(eps, int | float)
                or not (math.isfinite(eps) and eps > 0)
            ):
                raise ConfigError(
                    f"tradeoff: every epsilon must be a positive finite number, "
                    f"got {eps!r} (no DP is always included)"
                )
        if len(set(self.epsilons)) != len(self.epsilons):
            raise ConfigError(f"tradeoff: epsilons repeat: {self.epsilons}")
        unknown = [s for s in self.settings if s not in SETTINGS]
        if unknown or not self.settings:
            raise ConfigError(
                f"tradeoff: unknown or no settings {unknown}; use some of {', '.join(SETTINGS)}"
            )
        if (
            not self.seeds
            or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in self.seeds)
            or len(set(self.seeds)) != len(self.seeds)
        ):
            raise ConfigError(f"tradeoff: seeds must be distinct integers >= 0, got {self.seeds}")
        if isinstance(self.rounds, bool) or not isinstance(self.rounds, int) or self.rounds < 1:
            raise ConfigError(f"tradeoff: rounds must be an integer >= 1, got {self.rounds!r}")
        reserved = sorted(set(parse_overrides(self.run_config)) & set(RESERVED_KEYS))
        if reserved:
            raise ConfigError(
                f"tradeoff --run-config: {', '.join(reserved)} are set by the sweep "
                "for each point; use --epsilons, --seeds, --rounds, --data"
            )

    @classmethod
    def quick_mode(cls, out: Path, **changes: Any) -> SweepConfig:
        """A smoke run: epsilon 1 and 8 plus no DP, one seed, two rounds, small data."""
        values = {"epsilons": QUICK_EPSILONS, "seeds": (0,), "rounds": 2, "quick": True}
        return cls(out=out, **{**values, **changes})

    def fixed(self) -> dict[str, Any]:
        """What every point shares; a resumed sweep must agree on it."""
        data = (
            str(self.data.resolve())
            if self.data is not None
            else ("quick synthetic" if self.quick else "default retailers")
        )
        return {"data": data, "rounds": self.rounds, "run_config": self.run_config}


@dataclass(frozen=True)
class Point:
    """One (setting, target epsilon, seed); ``epsilon`` None is no DP."""

    setting: str
    epsilon: float | None
    seed: int

    @property
    def family(self) -> str:
        return "federated" if self.setting.startswith("federated") else "centralised"

    @property
    def key(self) -> str:
        """The run's name; without DP both federated settings share one run."""
        if self.epsilon is None:
            return f"{self.family}-nodp-seed{self.seed}"
        return f"{self.setting}-eps{self.epsilon:g}-seed{self.seed}"


@dataclass(frozen=True)
class SweepResult:
    rows: list[dict[str, Any]]
    failed: list[dict[str, Any]]
    skipped: int
    paths: dict[str, Path] = field(default_factory=dict)


def sweep_points(cfg: SweepConfig) -> list[Point]:
    """Every row of the result, seed by seed (so an early stop still covers each setting)."""
    levels: list[float | None] = [*cfg.epsilons, None]
    return [Point(s, e, seed) for seed in cfg.seeds for s in cfg.settings for e in levels]


def sweep_runs(cfg: SweepConfig) -> list[Point]:
    """The points that are trained: one per key (no DP is shared by the federated settings)."""
    runs: dict[str, Point] = {}
    for point in sweep_points(cfg):
        runs.setdefault(point.key, point)
    return list(runs.values())


def run_sweep(
    cfg: SweepConfig,
    *,
    runner: PointRunner | None = None,
    advance: Callable[..., None] | None = None,
) -> SweepResult:
    """Run every point without a finished record, then rebuild the outputs from the records.

    ``runner(point, run_dir) -> metrics`` trains one point (default: ``make_runner``);
    ``advance(n, description=)`` is told about each point, done or skipped.
    """
    advance = advance or (lambda n=1, description=None: None)
    cfg.out.mkdir(parents=True, exist_ok=True)
    _check_sweep_file(cfg)
    points, runs = sweep_points(cfg), sweep_runs(cfg)
    if runner is None:
        runner = make_runner(cfg, resolve_sweep_data(cfg))
    skipped = 0
    for point in runs:
        record = read_record(cfg.out, point.key)
        if record is not None and record["status"] == "ok":
            skipped += 1
            advance(1, description=f"{point.key} (done before)")
            continue
        advance(0, description=point.key)
        record = run_point(point, runner, cfg.out)
        if record["status"] != "ok":
            log.warning("point %s failed: %s", point.key, record["error"])
        advance(1, description=point.key)
    records = {p.key: read_record(cfg.out, p.key) for p in runs}
    rows = [_row(p, records[p.key]) for p in points]
    failed = [r for r in records.values() if r is not None and r["status"] != "ok"]
    return SweepResult(rows, failed, skipped, write_outputs(cfg.out, rows))


def run_point(point: Point, runner: PointRunner, out: Path) -> dict[str, Any]:
    """Run one point in a clean directory and record the outcome, failure included."""
    run_dir = out / "points" / point.key
    if run_dir.exists():  # what a failed or interrupted try left behind
        shutil.rmtree(run_dir)
    started = time.perf_counter()
    record: dict[str, Any] = {
        "key": point.key,
        "setting": point.setting if point.epsilon is not None else f"{point.family}-nodp",
        "family": point.family,
        "target_epsilon": point.epsilon,
        "seed": point.seed,
        "run_dir": str(run_dir),
    }
    try:
        record.update(status="ok", metrics=runner(point, run_dir))
    except Exception as exc:  # one failed point must not cost the others; its record says why
        record.update(
            status="error", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()
        )
    record.update(
        point_wall_s=time.perf_counter() - started,
        finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    write_record(out, record)
    return record


def record_path(out: Path, key: str) -> Path:
    return out / "records" / f"{key}.json"


def read_record(out: Path, key: str) -> dict[str, Any] | None:
    """The point's record, or None when it never finished (a torn file counts as none)."""
    path = record_path(out, key)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) and "status" in record else None


def write_record(out: Path, record: dict[str, Any]) -> Path:
    """Atomically: a crash while writing leaves the old record or none, never half of one."""
    path = record_path(out, record["key"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(_finite(record), indent=2) + "\n")
    os.replace(tmp, path)
    return path


def _row(point: Point, record: dict[str, Any] | None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "setting": point.setting,
        "target_epsilon": math.inf if point.epsilon is None else point.epsilon,
        "seed": point.seed,
        "run": point.key,
        "status": "missing" if record is None else record["status"],
    }
    if record is not None:
        row.update(record.get("metrics") or {})
        row["point_wall_s"] = record.get("point_wall_s")
        row["error"] = record.get("error")
    return row


def _check_sweep_file(cfg: SweepConfig) -> None:
    path = cfg.out / "sweep.json"
    fixed = cfg.fixed()
    if path.is_file():
        before = json.loads(path.read_text())
        differ = sorted(k for k in fixed if before.get(k) != fixed[k])
        if differ:
            shown = ", ".join(f"{k}: {before.get(k)!r} then, {fixed[k]!r} now" for k in differ)
            raise ConfigError(
                f"{cfg.out} holds a sweep with other settings ({shown}); its points "
                "would not be comparable. Use another --out or the same settings"
            )
    path.write_text(json.dumps(fixed, indent=2) + "\n")


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


# --- data ---------------------------------------------------------------------------------
# The quick data are synthetic customers only, so a fixed, public pseudonym key is harmless;
# it keeps the prepared files (and so the train/test split) identical on every machine.
QUICK_KEY = hashlib.sha256(b"fedmarket tradeoff --quick: synthetic customers only").digest()


def resolve_sweep_data(cfg: SweepConfig) -> Path:
    if cfg.data is not None:
        store.read_manifest(cfg.data)  # a clear error now, not in every point
        return cfg.data.resolve()
    if cfg.quick:
        return ensure_quick_data(cfg.out / "data")
    from fedmarket.defaults import ensure_default_data

    return ensure_default_data(log=log.info)


def ensure_quick_data(root: Path) -> Path:
    """3 small synthetic retailers, synthesised and prepared once under ``root``."""
    from fedmarket.data.prepare import PrepareOptions, prepare
    from fedmarket.data.synth import generate_retailers

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
    n_train = sum(p["train"]["n"] for p in manifest["partitions"])
    overrides = parse_overrides(cfg.run_config)

    def run(point: Point, run_dir: Path) -> dict[str, Any]:
        values = {**overrides, "num-server-rounds": cfg.rounds, "seed": point.seed}
        if point.family == "federated":
            metrics = _federated(point, values, data_dir, run_dir, n_clients)
        else:
            metrics = _centralised(point, values, data_dir, run_dir, n_train)
        if cfg.audit:
            metrics.update(_audit(run_dir, point.family))
        return metrics

    return run


def _federated(
    point: Point, values: dict[str, Any], data_dir: Path, run_dir: Path, n_clients: int
) -> dict[str, Any]:
    from fedmarket.privacy.calibration import calibrate_central_noise
    from fedmarket.simulate import simulate

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
        data=data_dir, run_config=format_overrides(values), out=run_dir, centralised=False
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
    for path in sorted((run_dir / "client_state").glob("client-*/accountant.json")):
        noise = json.loads(path.read_text()).get("noise_multiplier")
        if noise is not None:
            values.append(float(noise))
    return sum(values) / len(values) if values else None


def _centralised(
    point: Point, values: dict[str, Any], data_dir: Path, run_dir: Path, n_train: int
) -> dict[str, Any]:
    """Exactly the centralised reference of ``fedmarket simulate`` at this point's DP."""
    from fedmarket.centralised import run_centralised, write_centralised
    from fedmarket.federated.client import privacy_settings
    from fedmarket.training import TrainConfig

    dp = (
        {"dp": "none"}
        if point.epsilon is None
        else {"dp": "client", "target-epsilon": point.epsilon}
    )
    rc = RunConfig.from_mapping(
        {**values, **dp, "data-dir": str(data_dir), "out-dir": str(run_dir)}
    )
    train_cfg = TrainConfig(
        epochs=rc.num_server_rounds * rc.local_epochs,
        batch_size=rc.batch_size,
        lr=rc.learning_rate,
        val_fraction=0.0,
        seed=rc.seed,
    )
    privacy = privacy_settings(rc, n_train)
    result = run_centralised(
        data_dir, model=rc.model, task=rc.task, train_cfg=train_cfg, privacy=privacy
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(rc.to_flower(), indent=2) + "\n")
    write_centralised(result, run_dir / "centralised")
    return {
        "epsilon": result.epsilon,
        "delta": result.delta,
        "unit": "customer" if privacy is not None else None,
        "noise_multiplier": result.noise_multiplier,
        **{k: result.test.get(k) for k in TEST_KEYS},
        "wall_s": result.wall_s,
        "rounds": result.epochs_run,
    }


def _audit(run_dir: Path, family: str) -> dict[str, Any]:
    from fedmarket.privacy.audit import TARGET_FPRS, audit_run, fpr_key

    entry = audit_run(run_dir)["models"][family]
    out = {
        "attack_auc": entry["roc_auc"],
        "attack_epsilon_lb": entry["epsilon_lower_bound"],
        "attack_epsilon_point": entry["epsilon_point"],
    }
    out.update({f"attack_{fpr_key(f)}": entry[fpr_key(f)] for f in TARGET_FPRS})
    return out


def format_overrides(values: dict[str, Any]) -> str:
    """``{"dp": "none", "seed": 1}`` -> ``"dp='none' seed=1"`` (TOML values, as flwr reads)."""
    parts = []
    for key, value in values.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, str):
            if "'" in value or " " in value:
                raise ConfigError(
                    f"tradeoff: run-config value {key}={value!r} cannot hold quotes or spaces"
                )
            text = f"'{value}'"
        else:
            text = repr(value)
        parts.append(f"{key}={text}")
    return " ".join(parts)


# --- outputs: csv, markdown, plots ----------------------------------------------------------
ATTACK_TPR_KEYS = ("attack_tpr_at_fpr_0.1%", "attack_tpr_at_fpr_1%")
CSV_COLUMNS = (
    "setting",
    "target_epsilon",
    "seed",
    "status",
    "epsilon",
    "delta",
    "unit",
    "noise_multiplier",
    *TEST_KEYS,
    "wall_s",
    "attack_auc",
    *ATTACK_TPR_KEYS,
    "attack_epsilon_lb",
    "attack_epsilon_point",
    "point_wall_s",
    "run",
    "error",
)
NUMERIC = (
    "epsilon",
    "delta",
    "noise_multiplier",
    *TEST_KEYS,
    "wall_s",
    "attack_auc",
    *ATTACK_TPR_KEYS,
    "attack_epsilon_lb",
    "attack_epsilon_point",
)
LABELS = {
    "federated-client-dp": "federated, DP-SGD per retailer (customer-level)",
    "federated-central-dp": "federated, central DP (retailer-level)",
    "centralised-dp": "centralised DP-SGD (customer-level)",
}


def load_table(csv_path: Path) -> Any:
    """tradeoff.csv as a DataFrame with numeric columns (``inf`` stays infinite)."""
    import pandas as pd

    frame = pd.read_csv(csv_path)
    for column in NUMERIC:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


def summarise(frame: Any) -> Any:
    """Mean, standard deviation over seeds and count per (setting, target epsilon)."""
    import pandas as pd

    ok = frame[frame["status"] == "ok"]
    if ok.empty:
        return pd.DataFrame(columns=["setting", "target_epsilon", "n"])
    grouped = ok.groupby(["setting", "target_epsilon"], sort=True)
    stats = grouped[list(NUMERIC)].agg(["mean", "std"])
    stats.columns = [f"{metric}_{stat}" for metric, stat in stats.columns]
    stats["n"] = grouped.size()
    return stats.reset_index()


def write_outputs(out: Path, rows: list[dict[str, Any]]) -> dict[str, Path]:
    """tradeoff.csv (every row), tradeoff.md (the summary), tradeoff.png, attack_auc.png."""
    import pandas as pd

    frame = pd.DataFrame(rows).reindex(columns=list(CSV_COLUMNS))
    paths = {"csv": out / "tradeoff.csv"}
    frame.to_csv(paths["csv"], index=False)
    frame = load_table(paths["csv"])
    summary = summarise(frame)
    sweep = json.loads((out / "sweep.json").read_text()) if (out / "sweep.json").is_file() else {}
    paths["md"] = out / "tradeoff.md"
    paths["md"].write_text(render_markdown(summary, frame, sweep))
    if "roc_auc_mean" in summary and summary["roc_auc_mean"].notna().any():
        paths["png"] = tradeoff_plot(
            summary,
            out / "tradeoff.png",
            "roc_auc",
            "test ROC-AUC",
            "Privacy/accuracy trade-off",
            reference=_reference(summary),
        )
    if "attack_auc_mean" in summary and summary["attack_auc_mean"].notna().any():
        paths["attack_png"] = tradeoff_plot(
            summary,
            out / "attack_auc.png",
            "attack_auc",
            "membership attack ROC-AUC",
            "Loss-threshold membership inference",
            reference=("random guessing", 0.5),
        )
    return paths


def _reference(summary: Any) -> tuple[str, float] | None:
    match = summary[
        (summary["setting"] == "centralised-dp") & ~summary["target_epsilon"].map(math.isfinite)
    ]
    if match.empty or math.isnan(match["roc_auc_mean"].iloc[0]):
        return None
    return "centralised, no DP", float(match["roc_auc_mean"].iloc[0])


def tradeoff_plot(
    summary: Any,
    path: Path,
    metric: str,
    ylabel: str,
    title: str,
    *,
    reference: tuple[str, float] | None = None,
) -> Path:
    """``metric`` against epsilon spent (log axis), one line per setting, error bars over
    seeds (one standard deviation), no DP at the right end."""
    from matplotlib.ticker import NullLocator

    from fedmarket import plots

    targets = sorted(t for t in summary["target_epsilon"].unique() if math.isfinite(t))
    x_nodp = (targets[-1] if targets else 1.0) * 3
    with plots.style():
        figure, ax = plots.new_figure((6.4, 4.2))
        for setting in SETTINGS:
            part = summary[summary["setting"] == setting].sort_values("target_epsilon")
            if part.empty or part[f"{metric}_mean"].isna().all():
                continue
            x = [
                x_nodp if not math.isfinite(t) else (e if e == e else t)  # e == e: not NaN
                for t, e in zip(part["target_epsilon"], part["epsilon_mean"], strict=True)
            ]
            y, err = list(part[f"{metric}_mean"]), list(part[f"{metric}_std"].fillna(0.0))
            dp = [i for i, t in enumerate(part["target_epsilon"]) if math.isfinite(t)]
            line = ax.errorbar(
                [x[i] for i in dp],
                [y[i] for i in dp],
                yerr=[err[i] for i in dp],
                marker="o",
                markersize=4,
                capsize=3,
                label=LABELS[setting],
            )
            color = line.lines[0].get_color()
            for i in (i for i in range(len(x)) if i not in dp):  # no DP: dotted, it is no epsilon
                ax.errorbar(
                    [x[i]], [y[i]], yerr=[err[i]], marker="o", markersize=4, capsize=3, color=color
                )
                if dp:
                    ax.plot([x[dp[-1]], x[i]], [y[dp[-1]], y[i]], linestyle=":", color=color)
        if reference is not None:
            ax.axhline(reference[1], color="black", linestyle="--", linewidth=1, label=reference[0])
        ax.set_xscale("log")
        ax.set_xticks([*targets, x_nodp], [*(f"{t:g}" for t in targets), "no DP"])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set(title=title, xlabel="epsilon spent (log scale)", ylabel=ylabel)
        ax.legend(loc="best", fontsize=7)
        return plots.save_figure(figure, path)


def render_markdown(summary: Any, frame: Any, sweep: dict[str, Any]) -> str:
    """The summary table (means over seeds, ± one standard deviation for ROC-AUC)."""
    lines = [
        "# Privacy/accuracy trade-off",
        "",
        f"Data: {sweep.get('data', '?')}; {sweep.get('rounds', '?')} rounds (the centralised "
        f"runs train as many epochs); extra run config: `{sweep.get('run_config') or '-'}`. "
        "Epsilon is customer-level for DP-SGD and retailer-level for central DP; delta as "
        "listed. The attack is the loss-threshold membership inference on equal numbers of "
        "training and held-out customers; its epsilon is a 95% lower bound.",
        "",
        "| setting | target ε | ε spent | δ | noise σ | ROC-AUC | PR-AUC | F1 | lift@10 "
        "| attack AUC | attack TPR@1% FPR | attack ε ≥ | train s | seeds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in summary.iterrows():
        target = "no DP" if not math.isfinite(r["target_epsilon"]) else f"{r['target_epsilon']:g}"
        auc = _fmt(r["roc_auc_mean"])
        if r["n"] > 1 and r["roc_auc_std"] == r["roc_auc_std"]:
            auc += f" ± {r['roc_auc_std']:.4f}"
        cells = [
            r["setting"],
            target,
            _fmt(r["epsilon_mean"], 3),
            _fmt(r["delta_mean"], 3, "g"),
            _fmt(r["noise_multiplier_mean"], 3),
            auc,
            _fmt(r["pr_auc_mean"]),
            _fmt(r["f1_mean"]),
            _fmt(r["lift_at_10_mean"], 3),
            _fmt(r["attack_auc_mean"]),
            _fmt(r["attack_tpr_at_fpr_1%_mean"]),
            _fmt(r["attack_epsilon_lb_mean"], 3),
            _fmt(r["wall_s_mean"], 0, "f"),
            str(int(r["n"])),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    bad = frame[frame["status"] != "ok"].drop_duplicates("run")
    if not bad.empty:
        lines += ["", "Points without a result (re-run the sweep to retry them):", ""]
        lines += [
            f"- {r['run']}: {r['status']}"
            + (f" ({r['error']})" if r["error"] == r["error"] and r["error"] else "")
            for _, r in bad.iterrows()
        ]
    return "\n".join(lines) + "\n"


def _fmt(value: Any, digits: int = 4, kind: str = "f") -> str:
    if value is None or value != value:
        return "-"
    if math.isinf(value):
        return "∞"
    return f"{value:.{digits}{kind}}"
