"""Per retailer, what joining is worth: summary.json's ``retailers`` block, its sentences and
the report's leading section.

The block is built from the per-customer predictions the run wrote (the federated model's,
RUN/test_scores.csv, and the local-only models', RUN/local/test_scores.csv), split by
partition (``fedmarket.value.per_retailer``). Retailers for whom joining does not pay are
named in words, not averaged into a pooled number.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fedmarket.config import RunConfig
from fedmarket.data import store
from fedmarket.errors import FedmarketError
from fedmarket.intervals import with_interval
from fedmarket.predictions import read_predictions
from fedmarket.reporting.document import Block, Heading, Paragraph, bullets, table
from fedmarket.reporting.words import LABELS, finite, pct
from fedmarket.rundir import RunDir
from fedmarket.value.per_retailer import (
    LIFT_KEY,
    compare_retailers,
    partition_names,
    retailers_block,
)

LIFT_LABEL = "lift at 10%"
# How the local-only models were trained, by the run's dp setting (fedmarket.value.local_only)
LOCAL_PRIVACY = {
    "client": "the same client-DP budget the retailer spends as a client of the run",
    "central": (
        "no DP: a retailer's own model never leaves it, and the run's central DP protects "
        "what the server receives"
    ),
    "none": "no DP, as the run",
}


def retailer_summary(
    files: RunDir, cfg: RunConfig, local_only: str | None
) -> dict[str, Any] | None:
    """summary.json's ``retailers``: None where the run wrote no federated test scores;
    ``{"failed": why}`` where they cannot be read or joined. ``local_only``: "trained", or
    why there are no local-only models ("off: ...", "failed: ..."; None: not asked)."""
    if not files.test_scores.is_file():
        return None
    status = local_only or "off: not asked for"
    try:
        [federated] = read_predictions(files.test_scores).values()
        local = None
        if status == "trained" and files.local_only_scores.is_file():
            [local] = read_predictions(files.local_only_scores).values()
        mine = None
        if cfg.personalisation != "none" and files.personal_scores.is_file():
            [mine] = read_predictions(files.personal_scores).values()
        rows = compare_retailers(federated, local, names=_names(Path(cfg.data_dir)), personal=mine)
    except (FedmarketError, ValueError) as exc:
        return {"failed": str(exc)}
    block = retailers_block(rows, cfg.task, local_only=status)
    block["local_privacy"] = LOCAL_PRIVACY[cfg.dp]
    if mine is not None:
        block["personal"] = cfg.personalisation
    trained = _local_models(files) if local is not None else {}
    for row in block["rows"]:
        row["local_model"] = trained.get(row["partition"])
    return block


def _names(data_dir: Path) -> dict[int, str]:
    try:
        return partition_names(store.read_manifest(data_dir))
    except FedmarketError:  # the data moved since the run: partitions keep their numbers
        return {}


def _local_models(files: RunDir) -> dict[int, dict[str, Any]]:
    """Each local-only model's training (customers, epochs, epsilon) by partition."""
    if not files.local_only_metrics.is_file():
        return {}
    models = json.loads(files.local_only_metrics.read_text()).get("models") or []
    return {int(m["partition"]): m for m in models}


def _label(key: str) -> str:
    return LIFT_LABEL if key == LIFT_KEY else LABELS.get(key, key)


def _value(key: str, value: Any) -> str:
    if not finite(value):
        return "n/a"
    return f"{value:.1f}" if key == LIFT_KEY else f"{value:.3f}"


def _change(key: str, before: Any, after: Any, higher_is_better: bool = True) -> str:
    """``raises lift at 10% from 2.9 to 4.1`` (``lowers``, ``leaves ... at``)."""
    label = _label(key)
    if not (finite(before) and finite(after)):
        return f"{label} {_value(key, before)} local-only, {_value(key, after)} federated"
    old, new = _value(key, before), _value(key, after)
    if old == new:
        return f"leaves {label} at {new}"
    verb = "raises" if after > before else "lowers"
    return f"{verb} {label} from {old} to {new}"


def _paired(row: dict[str, Any]) -> str:
    paired = (row.get("difference") or {}).get("roc_auc_paired")
    if not paired or not all(finite(paired.get(k)) for k in ("difference", "low", "high")):
        return ""
    return f" ({with_interval(paired['difference'], paired['low'], paired['high'])} paired)"


def personal_sentence(row: dict[str, Any], metric: str, method: str) -> str:
    """`` Its personalised model (finetune) gives ROC-AUC 0.734 and lift at 10% 2.1: +0.022
    (-0.010-0.054) against local-only.``; "" without a personalised model."""
    mine, diff = row.get("personal"), row.get("personal_difference") or {}
    if not mine:
        return ""
    paired = diff.get("roc_auc_paired") if metric == "roc_auc" else None
    if paired and all(finite(paired.get(k)) for k in ("difference", "low", "high")):
        gap = with_interval(paired["difference"], paired["low"], paired["high"])
    else:
        gap = _value(metric, diff.get(metric))
    return (
        f" Its personalised model ({method}) gives {_label(metric)} "
        f"{_value(metric, mine.get(metric))} and {LIFT_LABEL} "
        f"{_value(LIFT_KEY, mine.get(LIFT_KEY))}: {gap} against {diff.get('against')}."
    )


def retailer_sentence(row: dict[str, Any], metric: str, higher_is_better: bool) -> str:
    """``retailer_03 (570 test customers, 12.3% buyers): joining raises ROC-AUC from 0.712 to
    0.801 (0.089 (0.050-0.128) paired); it raises lift at 10% from 2.9 to 4.1.``"""
    fed, loc = row["federated"], row["local_only"]
    who = f"{row['name']} ({fed['n']:,} test customers, {pct(fed['base_rate'])} buyers)"
    if loc is None:
        return (
            f"{who}: federated {_label(metric)} {_value(metric, fed.get(metric))}, "
            f"{LIFT_LABEL} {_value(LIFT_KEY, fed.get(LIFT_KEY))} (no local-only model)."
        )
    main = _change(metric, loc.get(metric), fed.get(metric), higher_is_better)
    if metric == "roc_auc":
        main += _paired(row)
    elif not higher_is_better:
        main += " (lower is better)"
    lift = _change(LIFT_KEY, loc.get(LIFT_KEY), fed.get(LIFT_KEY))
    noise = {True: "", False: ", within noise (the paired interval includes 0)"}
    main += noise.get(row.get("clear"), "") if row["pays"] is not None else ""
    if row["pays"] is False:
        return f"{who}: joining does not pay: it {main}; it {lift}."
    if row["pays"] is None:
        return f"{who}: not decided ({_label(metric)} undefined): joining {lift}."
    return f"{who}: joining {main}; it {lift}."


def retailer_blocks(summary: dict[str, Any]) -> list[Block]:
    """The report's first section: the per-retailer table, a sentence each, and who joining
    does not pay ([] for a run without the block, e.g. one written by an older fedmarket)."""
    block = summary.get("retailers")
    if not block:
        return []
    heading = Heading("Does joining pay for each retailer?")
    if "failed" in block:
        return [heading, Paragraph(f"Not measured: {block['failed']}.")]
    metric, higher = block["metric"], block["higher_is_better"]
    rows = block["rows"]
    local = any(r["local_only"] is not None for r in rows)
    label = _label(metric)
    if local:
        intro = (
            f"Each retailer's own test customers, scored by the federated model and by a "
            f"local-only model: the same model trained on that retailer's data alone, with the "
            f"same training and {block.get('local_privacy') or LOCAL_PRIVACY['client']}. "
            f"Joining pays when the federated model has the better {label} "
            f"({'higher' if higher else 'lower'} is better). The difference is federated minus "
            "local-only; for ROC-AUC its interval is DeLong's paired test on the same customers."
        )
    else:
        intro = (
            f"Each retailer's own test customers, scored by the federated model. No local-only "
            f"models in this run ({block['local_only']}): with local-only-models = true each "
            "retailer is compared with a model trained on its data alone."
        )
    out: list[Block] = [heading, Paragraph(intro), table(*retailer_table(block))]
    method = block.get("personal")
    if method:
        out.insert(
            2,
            Paragraph(
                f"The personalised models ({method}, {PERSONAL_WORDS.get(method, method)}) are "
                "scored on the same customers; their difference is against local-only (against "
                "federated without local-only models)."
                + (FEDPER_NOTE if method == "fedper" else "")
                + (
                    " Every personal step is charged to the retailer's own privacy budget, "
                    "within its target (each client's epsilon: RUN/personal/metrics.json)."
                    if block.get("local_privacy") == LOCAL_PRIVACY["client"]
                    else ""
                )
            ),
        )
    out.append(
        bullets(
            [
                retailer_sentence(r, metric, higher) + personal_sentence(r, metric, method or "")
                for r in rows
            ]
        )
    )
    if verdict := not_paying_sentence(block):
        out.append(Paragraph(verdict))
    return out


def retailers_in_short(summary: dict[str, Any]) -> str | None:
    """``Per retailer: joining pays 8 of 10 retailers on ROC-AUC (each on its own test
    customers, against its local-only model); not retailer_03, retailer_07.``; None without
    local-only models to compare with."""
    block = summary.get("retailers") or {}
    rows = [r for r in block.get("rows") or [] if r.get("pays") is not None]
    if not rows:
        return None
    paying, losing = sum(r["pays"] for r in rows), block.get("not_paying") or []
    text = (
        f"Per retailer: joining pays {paying} of {len(rows)} retailers on "
        f"{_label(block['metric'])} (each on its own test customers, against a model trained "
        "on its data alone)"
    )
    return f"{text}; it does not pay {', '.join(losing)}." if losing else f"{text}."


FEDPER_NOTE = (
    " Under fedper there is no whole global model: the federated column is the shared body "
    "with the initial head, which no retailer sent and no round trained; the personalised "
    "column is the model each retailer uses."
)
PERSONAL_WORDS = {
    "finetune": "the final global model fine-tuned on the retailer's own training customers",
    "fedper": "the shared body with the retailer's private head, which never left it",
    "ditto": "a personal model trained beside the federated one, pulled toward it",
}


def retailer_table(
    block: dict[str, Any], *, short: bool = False
) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the per-retailer table: report.md and report.html; ``short`` (the
    screen) leaves out the lift columns."""
    metric, rows = block["metric"], block["rows"]
    local = any(r["local_only"] is not None for r in rows)
    label = _label(metric)
    header = ["retailer", "test customers", "base rate"]
    if local:
        header += [f"{label} local-only", f"{label} federated", "difference (95% CI)"]
        header += [f"{LIFT_LABEL} local-only", f"{LIFT_LABEL} federated"]
    else:
        header += [f"{label} federated", f"{LIFT_LABEL} federated"]
    cells = [_cells(r, metric, local) for r in rows]
    if block.get("personal"):
        header += [f"{label} personalised", "personalised difference (95% CI)"]
        for row, cell in zip(rows, cells, strict=True):
            cell += _personal_cells(row, metric)
    if short:
        keep = [i for i, h in enumerate(header) if not h.startswith(LIFT_LABEL)]
        return [header[i] for i in keep], [[row[i] for i in keep] for row in cells]
    return header, cells


def not_paying_sentence(block: dict[str, Any]) -> str | None:
    """Who joining does not pay, by name; None without local-only models to compare."""
    if not any(r["local_only"] is not None for r in block.get("rows") or []):
        return None
    label, losing = _label(block["metric"]), block["not_paying"]
    text = (
        f"Joining does not pay, on {label}, for: {', '.join(losing)}."
        if losing
        else f"Joining pays every retailer on {label}."
    )
    if "clearly_paying" not in block or block["metric"] != "roc_auc":
        return text
    clear = [
        f"{kind} for {', '.join(names)}"
        for kind, names in (
            ("a loss", block["clearly_not_paying"]),
            ("a gain", block["clearly_paying"]),
        )
        if names
    ]
    return f"{text} Beyond noise (the paired interval excludes 0): " + (
        f"{'; '.join(clear)}." if clear else "no retailer, either way."
    )


def _gap(diff: dict[str, Any], metric: str) -> str:
    """A difference of ``metric``, with its paired interval where it is ROC-AUC's."""
    paired = diff.get("roc_auc_paired") if metric == "roc_auc" else None
    if paired and all(finite(paired.get(k)) for k in ("difference", "low", "high")):
        return with_interval(paired["difference"], paired["low"], paired["high"])
    return _value(metric, diff.get(metric))


def _personal_cells(row: dict[str, Any], metric: str) -> list[str]:
    mine, diff = row.get("personal") or {}, row.get("personal_difference") or {}
    gap = _gap(diff, metric)
    return [_value(metric, mine.get(metric)), gap]


def _cells(row: dict[str, Any], metric: str, local: bool) -> list[str]:
    fed, loc = row["federated"], row["local_only"] or {}
    cells = [row["name"], f"{fed['n']:,}", pct(fed["base_rate"])]
    if not local:
        return [*cells, _value(metric, fed.get(metric)), _value(LIFT_KEY, fed.get(LIFT_KEY))]
    diff = row.get("difference") or {}
    gap = _gap(diff, metric)
    return [
        *cells,
        _value(metric, loc.get(metric)),
        _value(metric, fed.get(metric)),
        gap,
        _value(LIFT_KEY, loc.get(LIFT_KEY)),
        _value(LIFT_KEY, fed.get(LIFT_KEY)),
    ]
