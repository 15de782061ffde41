"""`fedmarket score`: a retailer's customers scored with a run's model into a targeting list.

It runs at the retailer, next to its export: the events are featurised with `data prepare`'s
code in the run's window moved to ``as_of``, scored with the run's model, ranked and selected
per retailer, and written with the retailer's own customer ids to ``--out``, the one file that
carries raw ids. Nothing is written into the run directory, nothing is logged per customer, and
``--out`` inside the run directory is refused: a run directory is what a consortium shares
(reports, tracking, copies for the paper), and a raw id must never travel with it.

Two sources of customers: ``--raw EXPORT`` (the retailer's events, its own ids) or
``--data PREPARED --partition I`` (the prepared customers at the run's cut-off, which carry
pseudonyms; with the pseudonym key and ``--raw`` the raw ids are resolved here, by
pseudonymising the export's ids with the key and matching, and never sent anywhere).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from fedmarket.calibration import CALIBRATION_METHODS, Calibrator
from fedmarket.data import store
from fedmarket.data.ingest import loaders
from fedmarket.data.ingest.mapping import ExportMapping
from fedmarket.data.ingest.validate import DropReport
from fedmarket.data.protect.pseudonyms import Pseudonymiser
from fedmarket.errors import ConfigError, DataError
from fedmarket.plots import reliability_plot
from fedmarket.scoring import batch
from fedmarket.scoring.featurise import ScoringInputs, featurise_export
from fedmarket.scoring.run_model import RunModel, load_run_model
from fedmarket.scoring.targeting import SelectionRule, TargetSummary

FORMATS = ("csv", "parquet")
RAW_ID = "customer_id"
PSEUDONYM_ID = "customer_pseudonym"


@dataclass(frozen=True)
class ScoreOptions:
    run_dir: Path
    out: Path
    rule: SelectionRule
    raw: Path | None = None
    mapping: ExportMapping | None = None
    as_of: str | None = None
    source: str = "federated"
    holdout_fraction: float = 0.0
    seed: int = 0
    fmt: str | None = None  # default: from --out's suffix
    calibrate: str | None = None
    data: Path | None = None
    partition: int | None = None
    pseudonym_key: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ScoreResult:
    out: Path
    fmt: str
    id_column: str  # customer_id (raw ids) or customer_pseudonym
    task: str
    rows: int
    summaries: dict[str, TargetSummary]
    as_of: dict[str, str]
    calibration: batch.CalibrationCheck | None
    calibrator: Calibrator | None
    reliability_plot: Path | None


def output_format(out: Path, fmt: str | None) -> str:
    """``--format``, else the suffix of ``--out``; refuses anything but CSV and Parquet."""
    chosen = (fmt or out.suffix.lstrip(".")).lower()
    chosen = {"pq": "parquet"}.get(chosen, chosen)
    if chosen not in FORMATS:
        raise ConfigError(
            f"--out {out}: unknown format {chosen or '(no suffix)'!r}; name the file .csv or "
            ".parquet, or pass --format csv|parquet"
        )
    return chosen


def check_out(out: Path, run_dir: Path) -> None:
    """Refuse an ``--out`` inside the run directory (raw ids never travel with a run)."""
    if out.resolve().is_relative_to(Path(run_dir).resolve()):
        raise ConfigError(
            f"--out {out}: inside the run directory {run_dir}; a targeting list carries raw "
            "customer ids and stays at the retailer, while a run directory is shared; write "
            "it elsewhere, e.g. --out targets.csv"
        )
    if out.is_dir():
        raise ConfigError(f"--out {out}: a directory; give a file name, e.g. {out}/targets.csv")


def write_targets(frame: pd.DataFrame, out: Path, fmt: str) -> Path:
    """Written whole under a temporary name and renamed into place (no half list)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    if fmt == "csv":
        frame.to_csv(tmp, index=False, float_format="%.9g")
    else:
        frame.to_parquet(tmp, index=False)
    os.replace(tmp, out)
    return out


def _from_export(
    run: RunModel, opts: ScoreOptions, raw: Path, advance: Callable[[int], None] | None
) -> tuple[list[ScoringInputs], Calibrator | None]:
    inputs = featurise_export(run, raw, mapping=opts.mapping, as_of=opts.as_of, advance=advance)
    if not opts.calibrate:
        return inputs, None
    _one_retailer([i.retailer for i in inputs])
    # the export's customers one horizon before the scoring date: their outcome is known
    (known,) = featurise_export(
        run, raw, mapping=opts.mapping, as_of=inputs[0].window.cutoff - _horizon(run)
    )
    if not known.horizon_covered:
        raise DataError(
            f"--calibrate: {raw} does not cover a labelled horizon before the scoring date; "
            "calibrate on prepared customers with --data PREPARED --partition I"
        )
    return inputs, batch.fit_local_calibrator(run, known.X, known.y_purchase, opts.calibrate)


def _one_retailer(retailers: list[str]) -> None:
    if len(retailers) > 1:
        raise ConfigError(
            f"--calibrate: the export holds {len(retailers)} retailers; a calibration is "
            "fitted on one retailer's own customers, so score one retailer's export at a time"
        )


def _horizon(run: RunModel) -> pd.Timedelta:
    return pd.Timedelta(days=run.window.horizon_days)


def _from_partition(
    run: RunModel, opts: ScoreOptions, data: Path
) -> tuple[ScoringInputs, Calibrator | None]:
    manifest = store.read_manifest(data)
    ids = store.partition_ids(manifest)
    if opts.partition not in ids:
        raise ConfigError(f"--partition {opts.partition}: {data} has partitions {ids}")
    parts = [store.load_split(data, opts.partition, s) for s in store.SPLITS]
    entry = manifest["partitions"][ids.index(opts.partition)]
    calibrator = None
    if opts.calibrate:  # the partition's training customers, labelled at the run's cut-off
        train = parts[0]
        calibrator = batch.fit_local_calibrator(
            run, np.asarray(train.X), np.asarray(train.y_purchase), opts.calibrate
        )
    joined = store.SplitArrays.concat(parts)
    inputs = ScoringInputs(
        retailer=str(entry.get("retailer", f"partition-{opts.partition}")),
        customer=np.asarray(joined.customer).astype(str),
        X=np.asarray(joined.X),
        y_purchase=np.asarray(joined.y_purchase),
        y_count=np.asarray(joined.y_count),
        window=run.window,
        n_events=0,
        last_event=None,
        drops=DropReport(),
    )
    return inputs, calibrator


def resolve_raw_ids(
    pseudonyms: np.ndarray,
    raw: Path,
    retailer: str,
    key: bytes,
    mapping: ExportMapping | None = None,
) -> np.ndarray:
    """The retailer's own id of each pseudonym: the export's ids pseudonymised with ``key``
    and matched, here. Refuses when some are not found (another key, another export)."""
    exports = loaders.find_exports(raw, mapping)
    if retailer not in exports:
        raise DataError(
            f"--raw {raw}: no export of retailer {retailer!r} (found {sorted(exports)}); give "
            "the export the partition was prepared from"
        )
    drops, seen = DropReport(), set()
    for path in exports[retailer]:
        for chunk in loaders.iter_events(path, mapping=mapping, report=drops, retailer_id=retailer):
            seen.update(chunk["user_id"].astype(str).unique())
    raw_ids = pd.Series(sorted(seen), dtype="string")
    lookup = dict(
        zip(Pseudonymiser(key).map(raw_ids).astype(str), raw_ids.astype(str), strict=True)
    )
    missing = sum(1 for p in pseudonyms if p not in lookup)
    if missing:
        raise DataError(
            f"{missing} of {len(pseudonyms)} pseudonyms match no customer of {raw} under this "
            "key; give the pseudonym key and the export the data was prepared with"
        )
    return np.array([lookup[p] for p in pseudonyms], dtype=object)


def check_options(opts: ScoreOptions) -> str:
    """Every option that can be checked before reading data; the output format."""
    if (opts.raw is None) and (opts.data is None):
        raise ConfigError("give the customers to score: --raw EXPORT or --data PREPARED")
    if (opts.data is None) != (opts.partition is None):
        raise ConfigError("--data and --partition go together: --data PREPARED --partition I")
    if opts.data is not None and opts.as_of is not None:
        raise ConfigError(
            "--as-of with --data: prepared customers are featurised at the run's cut-off; "
            "score --raw EXPORT --as-of DATE to score them on another day"
        )
    if opts.calibrate is not None and opts.calibrate not in CALIBRATION_METHODS:
        raise ConfigError(
            f"--calibrate {opts.calibrate!r}: choose one of {', '.join(CALIBRATION_METHODS)}"
        )
    if not 0.0 <= opts.holdout_fraction < 1.0:
        raise ConfigError(
            f"--holdout-fraction {opts.holdout_fraction}: the share of selected customers held "
            "out lies in [0, 1), e.g. 0.1"
        )
    fmt = output_format(opts.out, opts.fmt)
    check_out(opts.out, opts.run_dir)
    return fmt


def _customers(
    run: RunModel, opts: ScoreOptions, advance: Callable[[int], None] | None
) -> tuple[list[ScoringInputs], Calibrator | None, str]:
    """The customers to score, the retailer's own calibration map, and the id they carry."""
    if opts.data is None:
        inputs, calibrator = _from_export(run, opts, Path(opts.raw or ""), advance)
        return inputs, calibrator, RAW_ID
    found, calibrator = _from_partition(run, opts, opts.data)
    if opts.raw is None or opts.pseudonym_key is None:
        return [found], calibrator, PSEUDONYM_ID
    ids = resolve_raw_ids(
        found.customer, opts.raw, found.retailer, opts.pseudonym_key, opts.mapping
    )
    return [replace(found, customer=ids)], calibrator, RAW_ID


def reliability_path(out: Path) -> Path:
    """The reliability plot beside the targeting list (no customer in it)."""
    return out.with_name(f"{out.stem}.reliability.png")


def run_score(
    opts: ScoreOptions,
    advance: Callable[[int], None] | None = None,
    *,
    run: RunModel | None = None,
) -> ScoreResult:
    """Score, select and write the targeting list; see the module docstring. ``run``: the
    run's model when the caller loaded it already."""
    fmt = check_options(opts)
    run = run if run is not None else load_run_model(opts.run_dir, opts.source)
    inputs, calibrator, id_column = _customers(run, opts, advance)
    scored = pd.concat(
        [batch.score_inputs(run, i, calibrator, id_column=id_column) for i in inputs],
        ignore_index=True,
    )
    targets, summaries = batch.target_lists(
        scored,
        opts.rule,
        id_column=id_column,
        holdout_fraction=opts.holdout_fraction,
        seed=opts.seed,
    )
    as_of = {i.retailer: f"{i.window.cutoff:%Y-%m-%d}" for i in inputs}
    targets["as_of"] = targets["retailer"].map(as_of)  # campaign-report's default --from
    check = batch.calibration_on_test(run, calibrator)
    plot = None
    if check is not None:
        plot = reliability_plot(
            check.curves(),
            reliability_path(opts.out),
            title=f"Reliability on the run's {check.n_test:,} test customers",
        )
    write_targets(targets, opts.out, fmt)
    return ScoreResult(
        out=opts.out,
        fmt=fmt,
        id_column=id_column,
        task=run.task.name,
        rows=len(targets),
        summaries=summaries,
        as_of=as_of,
        calibration=check,
        calibrator=calibrator,
        reliability_plot=plot,
    )
