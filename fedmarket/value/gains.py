"""Where personalisation pays: each retailer's gain against its size and its base rate.

A consortium under label or quantity skew (``fedmarket data prepare --partition dirichlet |
quantity``) holds small retailers and retailers whose buyers are rarer or commoner than the
rest; the per-retailer table of one run (``per_retailer``) says who gains, this module says
*which kind* of retailer gains. Per retailer of a run: its training customers and their base
rate (read from the prepared data, the customers the models were trained on), and the ROC-AUC
of the federated, local-only and personalised models on its own test customers with the two
differences against local-only: what joining gives, and what personalising gives.

Every metric comes from ``per_retailer.compare_retailers`` on the scores the run wrote, so the
numbers are the run report's own; nothing is scored again. ``gains_plot`` draws a table of
several runs (one per partition setting and method) as two panels: gain against retailer size
(log axis) and against base rate, points coloured by partition setting.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd

from fedmarket.data import store
from fedmarket.errors import ConfigError, DataError
from fedmarket.predictions import Predictions, read_predictions
from fedmarket.rundir import RunDir
from fedmarket.tasks import get_task
from fedmarket.value.per_retailer import RetailerValue, compare_retailers, partition_names

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

# The gains table's columns, in order (CSV header of scripts/personalisation_skew.py)
COLUMNS: Final[tuple[str, ...]] = (
    "setting",
    "method",
    "partition",
    "name",
    "n_train",
    "base_rate",
    "n_test",
    "test_base_rate",
    "roc_auc_federated",
    "roc_auc_local",
    "roc_auc_personal",
    "gain_federated",
    "gain_federated_low",
    "gain_federated_high",
    "gain_personal",
    "gain_personal_low",
    "gain_personal_high",
)
TEST_SET: Final[str] = "each retailer's own test customers (ROC-AUC; gain: minus local-only)"


def partition_setting(manifest: store.Manifest) -> str:
    """``natural``, ``dirichlet:0.1``, ``quantity:0.5``: how the data was partitioned, in the
    words of scripts/personalisation_skew.py's ``--partitions``."""
    part = manifest.get("partitioning") or {}
    scheme = str(part.get("scheme") or "natural")
    alpha = part.get("alpha")
    return scheme if scheme in ("natural", "iid") or alpha is None else f"{scheme}:{alpha:g}"


def retailer_gains(
    run_dir: str | Path,
    *,
    data_dir: str | Path | None = None,
    setting: str | None = None,
    fernet: Fernet | None = None,
) -> pd.DataFrame:
    """One row per retailer (partition) of a finished run, columns `COLUMNS`.

    ``data_dir``: the prepared data the run read (default: the run's ``data-dir``);
    ``setting``: the label of its partitioning (default: from its manifest). The run must
    hold the federated, local-only and personalised test scores: a run without them is
    refused with the file that is missing and the run setting that writes it.
    """
    files = RunDir(Path(run_dir))
    cfg = files.read_config()
    data = Path(data_dir) if data_dir else Path(cfg.data_dir)
    if not str(data) or not (data / store.MANIFEST_NAME).is_file():
        raise DataError(
            f"{files.path}: its prepared data {str(data) or '(no data-dir)'} holds no "
            f"{store.MANIFEST_NAME}; give the prepared directory the run read (data_dir=...)"
        )
    manifest = store.read_manifest(data)
    federated = _scores(files.test_scores, "a finished run (`fedmarket simulate`)")
    local = _scores(
        files.local_only_scores,
        "the run setting local-only-models = true, with the centralised reference on "
        "(`fedmarket simulate` without --no-centralised)",
    )
    personal = _scores(
        files.personal_scores,
        "the run setting personalisation = 'finetune' | 'fedper' | 'ditto' "
        f"(this run has personalisation = {cfg.personalisation!r}), in simulation",
    )
    rows = compare_retailers(federated, local, names=partition_names(manifest), personal=personal)
    train = _train_customers(data, [r.partition for r in rows], cfg.task, fernet)
    label = setting or partition_setting(manifest)
    out = [_row(r, label, cfg.personalisation, *train[r.partition]) for r in rows]
    return pd.DataFrame(out, columns=list(COLUMNS))


def _scores(path: Path, setting: str) -> Predictions:
    if not path.is_file():
        raise DataError(f"{path}: not found; per-retailer gains need it, written by {setting}")
    [scored] = read_predictions(path).values()
    return scored


def _train_customers(
    data: Path, partitions: Iterable[int], task: str, fernet: Fernet | None
) -> dict[int, tuple[int, float]]:
    """(training customers, share of them positive: label > 0) per partition."""
    out = {}
    for pid in partitions:
        y = get_task(task).targets(store.load_split(data, pid, "train", fernet))
        positive = np.asarray(y).reshape(len(y), -1).max(axis=1) > 0
        out[pid] = (len(y), float(positive.mean()) if len(y) else float("nan"))
    return out


def _row(r: RetailerValue, setting: str, method: str, n_train: int, base: float) -> dict:
    if r.local_only is None or r.personal is None:  # compare_retailers got both: a bug
        raise DataError(f"partition {r.partition}: no local-only or personalised metrics")
    fed_gain = _paired((r.difference or {}).get("roc_auc_paired"))
    mine_gain = _paired((r.personal_difference or {}).get("roc_auc_paired"))
    return {
        "setting": setting,
        "method": method,
        "partition": r.partition,
        "name": r.name,
        "n_train": n_train,
        "base_rate": base,
        "n_test": r.federated["n"],
        "test_base_rate": r.federated["base_rate"],
        "roc_auc_federated": r.federated["roc_auc"],
        "roc_auc_local": r.local_only["roc_auc"],
        "roc_auc_personal": r.personal["roc_auc"],
        "gain_federated": _number((r.difference or {}).get("roc_auc")),
        "gain_federated_low": fed_gain[0],
        "gain_federated_high": fed_gain[1],
        "gain_personal": _number((r.personal_difference or {}).get("roc_auc")),
        "gain_personal_low": mine_gain[0],
        "gain_personal_high": mine_gain[1],
    }


def _number(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _paired(paired: dict[str, Any] | None) -> tuple[float, float]:
    """DeLong's paired 95 % interval of a ROC-AUC difference; NaN where undefined."""
    if not paired:
        return float("nan"), float("nan")
    return _number(paired.get("low")), _number(paired.get("high"))


MARKERS: Final[dict[str, str]] = {"finetune": "o", "fedper": "s", "ditto": "^"}


def gains_plot(
    table: pd.DataFrame, path: str | Path, *, title: str = "Where personalisation pays"
) -> Path:
    """Two panels, gain in ROC-AUC against local-only (y) per retailer against its training
    customers (log x) and its base rate: filled markers the personalised model (shape: the
    method), crosses the federated model; colour: the partition setting."""
    missing = [c for c in ("setting", "method", "n_train", "base_rate") if c not in table]
    missing += [c for c in ("gain_federated", "gain_personal") if c not in table]
    if missing:
        raise ConfigError(
            f"gains_plot: the table lacks columns {missing}; give it `retailer_gains`' rows"
        )
    if table.empty:
        raise ConfigError("gains_plot: the gains table is empty; nothing to plot")
    from matplotlib.ticker import FuncFormatter, PercentFormatter

    from fedmarket import plots  # matplotlib only where a figure is drawn

    settings = list(dict.fromkeys(table["setting"]))
    with plots.style():
        figure, (size, rate) = plots.new_panels(2, (9.0, 4.2))
        colours = {s: f"C{i % 10}" for i, s in enumerate(settings)}
        for ax, x in ((size, "n_train"), (rate, "base_rate")):
            ax.axhline(0.0, color="grey", linestyle="--", linewidth=1)
            _points(ax, table, x, colours)
        size.set(xscale="log", xlabel="retailer's training customers (log)")
        whole = FuncFormatter(lambda v, _: f"{v:,.0f}")  # 500, not 5 x 10^2
        size.xaxis.set_major_formatter(whole)
        # minor ticks labelled at 2 and 5 x 10^k only, where they do not run together
        size.xaxis.set_minor_formatter(
            FuncFormatter(lambda v, _: f"{v:,.0f}" if f"{v:.0e}"[0] in "25" else "")
        )
        size.tick_params(axis="x", which="minor", labelsize=7)
        rate.xaxis.set_major_formatter(PercentFormatter(1.0))
        rate.set(xlabel="retailer's base rate (share of training customers who buy)")
        for ax in (size, rate):
            ax.set_ylabel("ROC-AUC gain over its local-only model")
        figure.legend(
            handles=_legend(colours, list(dict.fromkeys(table["method"]))),
            loc="outside lower center",
            ncols=max(len(colours), len(set(table["method"])) + 1),
            fontsize=7,
        )
        figure.suptitle(title)
        return plots.save_figure(figure, path)


def _points(ax: Any, table: pd.DataFrame, x: str, colours: dict[str, str]) -> None:
    """Each setting's retailers: the federated gain once per retailer (a cross: the
    setting's first run's; every method's run trains its own federated model), each
    method's personalised gain (its marker)."""
    for setting, colour in colours.items():
        rows = table[table["setting"] == setting]
        fed = rows.drop_duplicates(["partition"])
        ax.scatter(
            fed[x],
            fed["gain_federated"],
            marker="x",
            color=colour,
            alpha=0.6,
            label="_",
        )
        for method, part in rows.groupby("method", sort=False):
            ax.scatter(
                part[x],
                part["gain_personal"],
                marker=MARKERS.get(str(method), "D"),
                color=colour,
                edgecolor="black",
                linewidth=0.4,
                label="_",
            )


def _legend(colours: dict[str, str], methods: list[str]) -> list[Any]:
    """One entry per partition setting (its colour) and per model (its marker), not one per
    pair."""
    from matplotlib.lines import Line2D

    entries = [
        Line2D([], [], marker="o", linestyle="", color=c, label=s) for s, c in colours.items()
    ]
    entries.append(Line2D([], [], marker="x", linestyle="", color="grey", label="federated"))
    entries += [
        Line2D(
            [],
            [],
            marker=MARKERS.get(m, "D"),
            linestyle="",
            color="grey",
            markeredgecolor="black",
            label=f"{m} (personalised)",
        )
        for m in methods
    ]
    return entries
