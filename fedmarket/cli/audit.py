"""`fedmarket audit`: the membership-inference audit of a run directory."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from fedmarket.cli.app import EncryptionKeyFile, app, friendly_errors
from fedmarket.progress import console


@app.command("audit")
@friendly_errors
def audit_cmd(
    run_dir: Annotated[
        Path, typer.Argument(help="A run directory (fedmarket simulate, or a tradeoff point).")
    ],
    seed: Annotated[int, typer.Option(help="Seed for the member subsample and the split.")] = 0,
    confidence: Annotated[
        float, typer.Option(help="Confidence of the epsilon lower bound.")
    ] = 0.95,
    encryption_key_file: EncryptionKeyFile = None,
) -> None:
    """Membership-inference audit: attack AUC, TPR at low FPR, empirical epsilon bound."""
    from fedmarket.experiments.audit import audit_run
    from fedmarket.privacy.membership import TARGET_FPRS, fpr_key

    report = audit_run(run_dir, seed=seed, confidence=confidence, key_file=encryption_key_file)
    models = report["models"]
    table = Table(title="membership inference (loss threshold): attack against claim")
    table.add_column("", no_wrap=True)
    for name in models:
        table.add_column(name, justify="right", no_wrap=True)
    rows = [
        (
            "claimed ε",
            lambda m: (
                "none (no DP)"
                if m["claimed_epsilon"] is None
                else f"{m['claimed_epsilon']:.3f} ({m['claimed_unit']})"
            ),
        ),
        ("claimed δ", lambda m: _n(m["claimed_delta"], ".3g")),
        ("test ROC-AUC (model)", lambda m: _n(m["test_roc_auc"])),
        ("attack ROC-AUC", lambda m: _n(m["roc_auc"])),
        (
            f"  {100 * confidence:g}% interval",
            lambda m: f"{_n(m.get('roc_auc_ci_low'))}-{_n(m.get('roc_auc_ci_high'))}",
        ),
        *((f"TPR at {100 * f:g}% FPR", lambda m, f=f: _n(m[fpr_key(f)])) for f in TARGET_FPRS),
        (
            f"empirical ε ≥ ({100 * confidence:g}% conf.)",
            lambda m: _n(m["epsilon_lower_bound"], ".3f"),
        ),
        ("empirical ε (point)", lambda m: _n(m["epsilon_point"], ".3f")),
    ]
    for label, cell in rows:
        table.add_row(label, *(cell(m) for m in models.values()))
    console.print(table)
    first = next(iter(report["models"].values()))
    console.print(
        f"{first['n_members']:,} members (training customers) against "
        f"{first['n_nonmembers']:,} non-members (held-out customers), equal per "
        f"retailer; ε bounds at the customer-level δ = {first['delta']:.3g}. Wrote "
        f"{Path(run_dir) / 'audit.json'}"
    )


def _n(value: float | None, spec: str = ".4f") -> str:
    if value is None:
        return "-"
    if math.isinf(value):
        return "∞"
    return format(value, spec)
