"""Where personalisation pays under label and quantity skew (issue #16).

For each partitioning of the raw exports (natural; Dirichlet label skew; quantity skew) and
each personalisation method, runs `fedmarket simulate` once (the federated model, each
retailer's local-only model and its personalised model), then gathers per retailer its
training customers, base rate and ROC-AUC gains over its local-only model
(``fedmarket.value.gains``) into DIR/gains.csv, and draws DIR/gains.png (gain against size
and base rate). Resumable: a prepared partitioning or a finished run under DIR is reused,
an interrupted run is resumed from its last round.

    python scripts/personalisation_skew.py --raw RAW --out DIR [--methods finetune,fedper,ditto]
        [--partitions natural,dirichlet:0.1,dirichlet:1.0,quantity:0.5] [--clients 8]
        [--rounds 2] [--model cnn-lstm] [--run-config "target-epsilon=8.0"]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from fedmarket.config import PERSONALISATIONS
from fedmarket.data.prepare import PrepareOptions, prepare
from fedmarket.data.protect.keys import resolve_pseudonym_key
from fedmarket.errors import FedmarketError
from fedmarket.rundir import RunDir
from fedmarket.value.gains import gains_plot, retailer_gains

SCHEMES = ("natural", "iid", "dirichlet", "quantity")


def parse_setting(text: str) -> tuple[str, float | None]:
    """``dirichlet:0.1`` -> ("dirichlet", 0.1); ``natural`` -> ("natural", None)."""
    scheme, _, alpha = text.strip().partition(":")
    if scheme not in SCHEMES:
        raise SystemExit(f"--partitions: {text!r}: the scheme must be one of {SCHEMES}")
    if scheme in ("dirichlet", "quantity"):
        try:
            return scheme, float(alpha or 0.5)
        except ValueError:
            raise SystemExit(f"--partitions: {text!r}: alpha must be a number") from None
    return scheme, None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, required=True, help="raw exports (data synth)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--methods", default="finetune,fedper,ditto")
    parser.add_argument("--partitions", default="natural,dirichlet:0.1,dirichlet:1.0,quantity:0.5")
    parser.add_argument("--clients", type=int, default=8, help="partitions of a skewed split")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--model", default="cnn-lstm")
    parser.add_argument("--run-config", default="", help="more run settings for every run")
    args = parser.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in PERSONALISATIONS or m == "none"]
    if bad or not methods:
        raise SystemExit(f"--methods: {bad or 'none given'}; choose from {PERSONALISATIONS[1:]}")
    settings = [s.strip() for s in args.partitions.split(",") if s.strip()]
    parsed = {s: parse_setting(s) for s in settings}
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("FLWR_LOG_LEVEL", "WARNING")
    from fedmarket.experiments.simulate import simulate  # Flower and Ray: after the checks

    key = resolve_pseudonym_key(None, [args.raw, args.out])
    data = {s: prepared(args, s, scheme, alpha, key) for s, (scheme, alpha) in parsed.items()}
    tables, failed = [], []
    total, done = len(settings) * len(methods), 0
    # method by method: a cut-short sweep still has natural and skewed runs of one method
    for method in methods:
        for setting in settings:
            done += 1
            where = f"[{done}/{total}] {setting} {method}"
            run = RunDir(args.out / f"{setting.replace(':', '-')}-{method}")
            try:
                run_once(simulate, run, data[setting], args, method, where)
                tables.append(retailer_gains(run.path, data_dir=data[setting], setting=setting))
            except FedmarketError as exc:
                print(f"{where}: FAILED: {exc}", file=sys.stderr, flush=True)
                failed.append(where)
                continue
            write_outputs(tables, settings, methods, args.out)  # after every run: partial results
    if not tables:
        raise SystemExit("no run gave gains; see the messages above")
    table = write_outputs(tables, settings, methods, args.out)
    print(f"gains table: {args.out / 'gains.csv'}; figure: {args.out / 'gains.png'}")
    print(markdown(table))
    if failed:
        print(f"incomplete: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


def prepared(
    args: argparse.Namespace, setting: str, scheme: str, alpha: float | None, key: bytes
) -> Path:
    """The prepared directory of one partitioning (made once, reused after)."""
    data = args.out / f"data-{setting.replace(':', '-')}"
    if not (data / "manifest.json").is_file():
        print(f"[prepare] {setting} -> {data}", flush=True)
        prepare(
            PrepareOptions(
                raw=args.raw,
                out=data,
                scheme=scheme,
                alpha=alpha if alpha is not None else 0.5,
                n_partitions=None if scheme == "natural" else args.clients,
                pseudonym_key=key,
                overwrite=True,
            )
        )
    return data


def run_once(
    simulate: Any, run: RunDir, data: Path, args: argparse.Namespace, method: str, where: str
) -> None:
    """One `fedmarket simulate` run; a finished one is reused, an interrupted one resumed."""
    if run.summary.is_file():
        print(f"{where}: finished before, reused", flush=True)
        return
    settings_text = (
        f"num-server-rounds={args.rounds} model='{args.model}' "
        f"personalisation='{method}' {args.run_config}"
    ).strip()
    start = time.monotonic()
    print(f"{where}: simulate {settings_text} -> {run.path}", flush=True)
    if run.holds_run() and run.read_marker() is None:
        shutil.rmtree(run.path)  # stopped before its first round: start again
    if run.holds_run():
        simulate(data=None, resume=run.path)
    else:
        simulate(data=data, run_config=settings_text, out=run.path)
    print(f"{where}: done in {time.monotonic() - start:.0f} s", flush=True)


def write_outputs(
    tables: list[pd.DataFrame], settings: list[str], methods: list[str], out: Path
) -> pd.DataFrame:
    """DIR/gains.csv and DIR/gains.png of the runs so far, in the order asked for: by
    setting, retailer, then method."""
    table = pd.concat(tables, ignore_index=True)
    order = {"setting": settings, "method": methods}
    table = table.sort_values(
        ["setting", "partition", "method"],
        key=lambda c: c.map({v: i for i, v in enumerate(order[c.name])}) if c.name in order else c,
    ).reset_index(drop=True)
    table.to_csv(out / "gains.csv", index=False, float_format="%.4f")
    gains_plot(table, out / "gains.png")
    return table


def markdown(table: pd.DataFrame) -> str:
    """The table BENCHMARKS.md shows: one row per setting and retailer, each method's
    personalised gain in a column (ROC-AUC minus local-only; * where DeLong's paired 95 %
    interval excludes 0). The federated gain is the first method's run's (each run trains its
    own federated model). Retailers whose test customers hold one class are left out (their
    ROC-AUC is undefined) and counted below the table."""
    methods = list(dict.fromkeys(table["method"]))
    header = (
        "| partitions | retailer | train customers | base rate | test customers "
        "| local-only ROC-AUC | federated - local | "
        + " | ".join(f"{m} - local" for m in methods)
        + " |"
    )
    lines = [header, "|" + "---|" * (7 + len(methods))]
    undefined: dict[str, int] = {}
    for (setting, _), rows in table.groupby(["setting", "partition"], sort=False):
        first = rows.iloc[0]
        if pd.isna(first.roc_auc_local):
            undefined[setting] = undefined.get(setting, 0) + 1
            continue
        fed = _gap(first.gain_federated, first.gain_federated_low, first.gain_federated_high)
        mine = {
            r.method: _gap(r.gain_personal, r.gain_personal_low, r.gain_personal_high)
            for r in rows.itertuples()
        }
        lines.append(
            f"| {setting} | {first['name']} | {first.n_train:,} | {first.base_rate:.1%} | "
            f"{first.n_test:,} | {first.roc_auc_local:.3f} | {fed} | "
            + " | ".join(mine.get(m, "-") for m in methods)
            + " |"
        )
    if undefined:
        lines.append("")
        lines.append(
            "Left out (test customers of one class, ROC-AUC undefined): "
            + ", ".join(f"{n} retailer(s) of {s}" for s, n in undefined.items())
            + "."
        )
    return "\n".join(lines)


def _gap(value: float, low: float, high: float) -> str:
    """``+0.021*``: the difference, starred where its paired interval excludes 0."""
    if pd.isna(value):
        return "n/a"
    clear = not pd.isna(low) and (low > 0 or high < 0)
    return f"{value:+.3f}" + ("*" if clear else "")


if __name__ == "__main__":
    main()
