"""What a run's report says, in order: three answers first (what federation, privacy and
the model are worth), then the tables they come from, then the figures. A run that is
incomplete says so before anything. report.md and report.html lay out the same blocks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fedmarket.marketing import DEFAULT_KS, TARGETING_K, THRESHOLD_RULE, at_key
from fedmarket.reporting import words
from fedmarket.reporting.document import (
    Block,
    Code,
    Heading,
    Image,
    Paragraph,
    bullets,
    table,
)
from fedmarket.reporting.retailers import retailer_blocks, retailers_in_short
from fedmarket.reporting.summary import privacy_cost_command
from fedmarket.reporting.words import num
from fedmarket.tasks import get_task

# The metric tables, in the order a reader should trust them: ranking metrics need no
# threshold; the top-k cut is the decision a campaign takes (marketing.THRESHOLD_RULE);
# 0.5 on a rare purchase predicts almost no buyers, so those come last, with a warning.
THRESHOLD_FREE_KEYS = (
    "roc_auc",
    "pr_auc",
    "log_loss",
    "mae",
    "rmse",
    "r2",
    "mape",
    "pearson",
    "spearman",
    "tracking_error",
)
AT_THE_CUT_KEYS = (
    *(at_key(m, TARGETING_K) for m in ("precision", "recall", "f1")),
    *(at_key(m, k) for m in ("lift", "capture") for k in DEFAULT_KS),
)
AT_HALF_KEYS = ("accuracy", "precision", "recall", "f1")
REPORT_KEYS = (*THRESHOLD_FREE_KEYS, *AT_THE_CUT_KEYS, *AT_HALF_KEYS)


INTERVALS_IN_WORDS = (
    "95% intervals on these test customers (ROC-AUC: DeLong; PR-AUC: the logit interval of "
    "Boyd et al. 2013; correlations: Fisher's z); overlapping intervals do not tell the two "
    "models apart."
)


def title(summary: dict[str, Any]) -> str:
    cfg = summary["config"]
    return f"fedmarket run: {cfg['model']} / {cfg['task']}"


def report_blocks(
    summary: dict[str, Any], rounds: list[dict[str, Any]], figures: Sequence[Image] = ()
) -> list[Block]:
    """The run's report; ``rounds`` (rounds.csv) is accepted for the figures' sake only."""
    cfg, fed, cen = summary["config"], summary["federated"], summary["centralised"]
    blocks: list[Block] = [
        Heading(title(summary), 1),
        Paragraph(
            f"{cfg['num-server-rounds']} rounds of {cfg['strategy']} with {cfg['local-epochs']} "
            f"local epoch(s); dp = {cfg['dp']}. "
            f"{'Every model is' if words.anchor_test(summary) else 'Both columns are'} "
            "measured on the same test "
            f"customers (every retailer's held-out customers{_counted(summary)})."
        ),
    ]
    if label := words.label_sentence(summary):
        blocks.append(Paragraph(label))
    problems = summary.get("problems") or []
    if problems:
        blocks += [Heading("This run is incomplete"), bullets(problems)]
    blocks += retailer_blocks(summary)
    blocks += [
        Heading("In short"),
        bullets(
            [
                *filter(None, [words.chance_warning(summary), words.small_test_caution(summary)]),
                *filter(None, [retailers_in_short(summary)]),
                words.federation_sentence(summary),
                *filter(None, [words.anchor_sentence(summary)]),
                words.privacy_sentence(summary),
                words.targeting_in_short(summary),
            ]
        ),
    ]
    blocks += _targeting(summary)
    blocks += [
        Heading("Privacy"),
        Paragraph(summary["privacy"]),
        Paragraph(words.what_leaves_a_retailer(summary)),
    ]
    blocks += _privacy_cost(summary)
    blocks += [Heading("Federated versus centralised"), *_metric_tables(summary)]
    blocks.append(
        table(
            ("", "federated", "centralised"),
            [
                ("wall time (s)", num(fed.get("wall_s")), num((cen or {}).get("wall_s"))),
                (
                    "epsilon",
                    num((fed.get("epsilon") or {}).get("max")),
                    num((cen or {}).get("epsilon")),
                ),
                ("delta", num(fed.get("delta")), num((cen or {}).get("delta"))),
            ],
        )
    )
    blocks.append(
        Paragraph(
            "Wall times are this simulation's, every retailer on one machine: they compare "
            "the two arms' training, not a deployment's time, which adds the network and each "
            "retailer's own hardware."
        )
    )
    if cen is None:
        blocks.append(Paragraph("No centralised reference in this run (it needs the pooled data)."))
    blocks += _per_client(fed)
    failures = fed.get("failures") or {}
    blocks += [
        Heading("Rounds"),
        Paragraph(
            f"Failed replies: {failures.get('failed', 0)}, declined (budget): "
            f"{failures.get('declined', 0)}, timed out: {failures.get('timed_out', 0)}. "
            "Per-round numbers are in rounds.csv."
        ),
    ]
    if figures:
        blocks += [Heading("Figures"), *figures]
    return blocks


def _has_intervals(summary: dict[str, Any]) -> bool:
    return any(
        words.cell(test, key) != num(test.get(key))
        for test in words.tests(summary)
        for key in THRESHOLD_FREE_KEYS
    )


def _counted(summary: dict[str, Any]) -> str:
    counts = words.test_customers(summary)
    return f": {counts}" if counts else ""


def _targeting(summary: dict[str, Any]) -> list[Block]:
    blocks: list[Block] = [Heading("What the model is worth for targeting")]
    task = summary["config"]["task"]
    for name, test in zip(("federated", "centralised"), words.tests(summary), strict=True):
        rows = words.lift_rows(test)
        if rows:
            blocks.append(Paragraph(f"The {name} model:"))
            blocks.append(
                bullets([f"{words.targeting_sentence(rows[k], task)}." for k in sorted(rows)])
            )
    if len(blocks) == 1:
        positives = get_task(task).positives
        blocks.append(
            Paragraph(
                f"Not measured: the test customers hold no {positives}, or no model finished."
            )
        )
    return blocks


def _privacy_cost(summary: dict[str, Any]) -> list[Block]:
    command = privacy_cost_command(summary["config"])
    if command is None:
        return [
            Paragraph("This run has no privacy guarantee, so privacy costs it nothing to measure.")
        ]
    return [
        Paragraph(
            "What privacy costs: this run has no non-private reference. Train one on the same "
            "data with the same settings and compare the tables:"
        ),
        Code(command),
        Paragraph(
            "or sweep epsilon with `fedmarket tradeoff --data DATA --out SWEEP --epsilons 1,4,16`."
        ),
    ]


def _metric_tables(summary: dict[str, Any]) -> list[Block]:
    fed_test, cen_test = words.tests(summary)
    gap = summary.get("gap") or {}

    anchor_test = words.anchor_test(summary)

    def rows(keys: tuple[str, ...], anchor: bool = False) -> list[Block]:
        cells = [
            (key, words.cell(fed_test, key), words.cell(cen_test, key), num(gap.get(key)))
            + ((words.cell(anchor_test, key),) if anchor else ())
            for key in keys
            if key in fed_test or key in cen_test
        ]
        header = ("metric", "federated", "centralised", "gap (fed - cen)")
        header += ("BG/NBD anchor",) if anchor else ()
        return [table(header, cells)] if cells else []

    blocks: list[Block] = []
    if free := rows(THRESHOLD_FREE_KEYS, anchor=bool(anchor_test)):
        blocks += [
            Paragraph(
                "Threshold-free (ranking and calibration). Higher is better except for "
                "log_loss, rmse, mae and mape, where a negative gap favours the federated model, "
                "and tracking_error (the relative error of the predicted total), best at 0."
                + (f" In brackets: {INTERVALS_IN_WORDS}" if _has_intervals(summary) else "")
                + (f" {_anchor_column(summary)}" if anchor_test else "")
            ),
            *free,
        ]
    if cut := rows(AT_THE_CUT_KEYS):
        rule = summary.get("threshold_rule") or THRESHOLD_RULE
        blocks += [Paragraph(f"{rule} Lift and capture at each k:"), *cut]
    if half := rows(AT_HALF_KEYS):
        task = summary["config"]["task"]
        blocks += [Paragraph(words.half_note(fed_test, cen_test, task)), *half]
        if accuracy := words.accuracy_sentence(fed_test, cen_test, task):
            blocks.append(Paragraph(accuracy))
    return blocks


def _anchor_column(summary: dict[str, Any]) -> str:
    """What the BG/NBD column is: how it was fitted, its parameters and fit time."""
    anchor = summary["anchor"]
    params = ", ".join(f"{k} {v:.3g}" for k, v in (anchor.get("params") or {}).items())
    note = f" Note: it {anchor['note']}." if anchor.get("note") else ""
    return (
        f"The BG/NBD anchor column: the classical customer-base model (Fader, Hardie and Lee "
        f"2005) on each customer's purchase history alone, by a {anchor['fitted']}; "
        f"parameters {params} (weeks), fitted in {anchor['fit_s']:.2g} s.{note}"
    )


def _per_client(fed: dict[str, Any]) -> list[Block]:
    """Per client: the rounds its update was aggregated in, and the epsilon it spent."""
    per_client = (fed.get("epsilon") or {}).get("per_client") or {}
    participation = fed.get("participation") or {}
    rounds = participation.get("rounds_aggregated") or {}
    clients = sorted({*per_client, *rounds, *map(str, participation.get("never") or [])}, key=int)
    if not clients:
        return []
    return [
        Heading("Per client"),
        table(
            ("client", "rounds aggregated", "epsilon"),
            [(c, str(rounds.get(c, 0)), num(per_client.get(c))) for c in clients],
        ),
    ]
