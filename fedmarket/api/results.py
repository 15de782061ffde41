"""What the training calls return: typed results that print short in a notebook.

A result keeps what its command wrote (the run directory, summary.json as read back, the
table) and offers the few numbers one looks at first as typed attributes, so a notebook
neither parses JSON nor scrolls past a page of repr. Results that name a directory are
path-like (``os.fspath``), and ``RunResult.load`` reads a run made earlier, by either door.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedmarket.api.args import PathLike
from fedmarket.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from fedmarket.baselines import ResultRow
    from fedmarket.centralised import CentralisedResult

# The metrics a notebook sees first, in this order, where the task reports them.
HEADLINE: tuple[str, ...] = ("roc_auc", "pr_auc", "f1", "lift_at_10", "rmse", "mae")


def number(x: Any, digits: int = 4) -> str:
    """A metric for people: fixed digits, "-" where there is none (None or NaN)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


@dataclass(frozen=True, repr=False)
class RunResult:
    """A simulation's run directory and its summary.json, with the numbers read first."""

    run_dir: Path
    summary: dict[str, Any]

    @classmethod
    def load(cls, run_dir: PathLike) -> RunResult:
        """A run made earlier, here or by `fedmarket simulate`."""
        from fedmarket.rundir import RunDir

        files = RunDir(Path(run_dir).resolve())  # as simulate names it
        if not files.summary.is_file():
            raise ConfigError(
                f"{run_dir}: no summary.json there; a run directory gets one when "
                "`fedmarket simulate` finishes (continue an interrupted run with "
                "fedmarket.simulate(resume=...))"
            )
        return cls(files.path, json.loads(files.summary.read_text()))

    def __fspath__(self) -> str:
        return str(self.run_dir)

    @property
    def federated_test(self) -> dict[str, float]:
        """The global model on every retailer's held-out customers."""
        return dict(self.summary["federated"].get("test") or {})

    @property
    def centralised_test(self) -> dict[str, float] | None:
        """The pooled reference on the same customers; None without (or after a failed) one."""
        return (self.summary.get("centralised") or {}).get("test")

    @property
    def anchor_test(self) -> dict[str, Any] | None:
        """The BG/NBD anchor, fitted across the retailers without pooling, on the same
        customers; None where it was skipped (no purchase history) or failed, or an older run."""
        return (self.summary.get("anchor") or {}).get("test")

    @property
    def retailers(self) -> list[dict[str, Any]]:
        """Per retailer, on its own test customers: the federated and the local-only model's
        metrics, their difference and whether joining ``pays`` (summary.json's
        ``retailers``); [] for a run without them (an older run, or a failed comparison)."""
        return list((self.summary.get("retailers") or {}).get("rows") or [])

    @property
    def not_paying(self) -> list[str]:
        """The retailers whose federated model is worse than their local-only model on the
        task's primary metric."""
        return list((self.summary.get("retailers") or {}).get("not_paying") or [])

    @property
    def gap(self) -> dict[str, float | None] | None:
        """Federated minus centralised, per metric: the price of not pooling the data."""
        return self.summary.get("gap")

    @property
    def epsilon(self) -> float | None:
        """The largest epsilon any client spent (customer-level), or central DP's; None
        without DP."""
        return (self.summary["federated"].get("epsilon") or {}).get("max")

    @property
    def delta(self) -> float | None:
        return self.summary.get("delta")

    @property
    def privacy(self) -> str:
        """The guarantee in words, as report.md states it."""
        return str(self.summary.get("privacy") or "")

    @property
    def problems(self) -> list[str]:
        """What makes the run incomplete; empty for a complete run."""
        return list(self.summary.get("problems") or [])

    @property
    def report_html(self) -> Path:
        """The whole report as one self-contained page, to open in a browser (or show in a
        notebook: ``IPython.display.HTML(run.report_html.read_text())``)."""
        from fedmarket.rundir import RunDir

        return RunDir(self.run_dir).report_html

    def _rows(self) -> list[tuple[str, Any, Any, Any]]:
        fed, cen, gap = self.federated_test, self.centralised_test or {}, self.gap or {}
        return [(k, fed.get(k), cen.get(k), gap.get(k)) for k in HEADLINE if k in fed or k in cen]

    def __repr__(self) -> str:
        head = [
            f"{k} {number(fed)} (centralised {number(cen)}, gap {number(gap)})"
            for k, fed, cen, gap in self._rows()[:1]
        ]
        eps = f"epsilon {number(self.epsilon, 3)}"
        if self.summary.get("config", {}).get("dp") == "none":
            eps = "no DP"
        flag = f", INCOMPLETE: {len(self.problems)} problem(s)" if self.problems else ""
        text = ", ".join([*head, eps]) if head else f"no test metrics, {eps}"
        return f"RunResult({str(self.run_dir)!r}: {text}{flag})"

    def _repr_markdown_(self) -> str:
        lines = [
            f"**fedmarket run** `{self.run_dir}` (same test customers in both columns)",
            "",
            "| metric | federated | centralised | gap |",
            "|---|---:|---:|---:|",
        ]
        from fedmarket.intervals import metric_cell

        fed_test, cen_test = self.federated_test, self.centralised_test or {}
        lines += [
            f"| {k} | {metric_cell(fed_test, k, number)} | {metric_cell(cen_test, k, number)} "
            f"| {number(gap)} |"
            for k, _, _, gap in self._rows()
        ]
        lines += ["", self.privacy, *(f"- **incomplete:** {p}" for p in self.problems)]
        return "\n".join(lines)


@dataclass(frozen=True, repr=False, eq=False)
class CentralisedRun:
    """The pooled reference: its result (weights included) and, with ``out``, its files."""

    result: CentralisedResult
    out: Path | None = None
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def test(self) -> dict[str, float]:
        return {k: v for k, v in self.result.test.items() if isinstance(v, int | float)}

    @property
    def epsilon(self) -> float | None:
        return self.result.epsilon

    @property
    def history(self) -> pd.DataFrame:
        """One row per epoch (losses, learning rate): the learning curve to plot."""
        import pandas as pd

        return pd.DataFrame(self.result.history)

    def __repr__(self) -> str:
        r = self.result
        head = [f"{k} {number(self.test[k])}" for k in HEADLINE if k in self.test][:1]
        eps = "no DP" if r.epsilon is None else f"epsilon {number(r.epsilon, 3)}"
        where = f", out={str(self.out)!r}" if self.out is not None else ""
        return (
            f"CentralisedRun({r.model}/{r.task}: {', '.join(head) or 'no metrics'} on "
            f"{r.n_test:,} test customers, {r.epochs_run} epochs, {eps}{where})"
        )

    def _repr_markdown_(self) -> str:
        lines = [f"**{self.result.model} / {self.result.task}**, pooled", "", "| metric | test |"]
        lines += ["|---|---:|", *(f"| {k} | {number(v)} |" for k, v in self.test.items())]
        return "\n".join(lines)


@dataclass(frozen=True, repr=False, eq=False)
class BaselinesResult:
    """One row per model (classical and sequence), same test customers; ``paths`` holds
    baselines.csv, .json and baselines_test_scores.csv (``test_scores``) when ``out`` was given."""

    table: pd.DataFrame
    task: str
    paths: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def from_rows(
        cls, rows: Sequence[ResultRow], task: str, paths: dict[str, Path]
    ) -> BaselinesResult:
        import pandas as pd

        from fedmarket.baselines import result_records

        columns, records = result_records(rows)
        return cls(pd.DataFrame.from_records(records, columns=columns), task, paths)

    @property
    def best(self) -> str | None:
        """The model with the best primary metric of the task (ROC-AUC, or RMSE for counts)."""
        from fedmarket.tasks import get_task

        key, higher = get_task(self.task).primary_metric
        if key not in self.table or self.table[key].isna().all():
            return None
        best = self.table[key].idxmax() if higher else self.table[key].idxmin()
        return str(self.table.loc[best, "model"])

    def __repr__(self) -> str:
        return f"BaselinesResult({self.task}: {len(self.table)} models, best {self.best})"

    def _repr_html_(self) -> str:
        return str(self.table._repr_html_())


@dataclass(frozen=True, repr=False, eq=False)
class TradeoffResult:
    """A sweep's directory: ``summary`` has the means and deviations over seeds per
    (setting, target epsilon); ``table`` every run (tradeoff.csv)."""

    out: Path
    csv: Path
    summary: pd.DataFrame
    failed: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0
    paths: dict[str, Path] = field(default_factory=dict)

    def __fspath__(self) -> str:
        return str(self.out)

    @property
    def table(self) -> pd.DataFrame:
        from fedmarket.experiments.tradeoff import load_table

        return load_table(self.csv)

    def __repr__(self) -> str:
        failed = f", {len(self.failed)} failed" if self.failed else ""
        return (
            f"TradeoffResult({str(self.out)!r}: {len(self.summary)} (setting, epsilon) rows, "
            f"{self.skipped} run(s) reused{failed})"
        )

    def _repr_html_(self) -> str:
        return str(self.summary._repr_html_())
