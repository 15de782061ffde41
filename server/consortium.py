"""The ServerApp's deployment side: agree on preprocessing before the first round.

In deployment the server has no prepared data. Before training it sends two query
messages (``fedmarket.deploy.agreement``): *describe* (each retailer's latest event time
and the consortium size its SuperNode was told, ``num-partitions``) and *moments* (summed
feature moments of each retailer's training customers). It learns how many retailers to
wait for, the cut-off, the pooled normalisation statistics and the number of training
customers, and nothing per customer. SuperNodes started with prepared ``data-dir``
partitions instead of raw exports answer *describe* with ``prepared = 1``; then there is
nothing to agree and the run goes on as before.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from flwr.app import ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from fedmarket.config import RunConfig
from fedmarket.deploy import agreement as ag
from fedmarket.errors import ConfigError, DataError
from fedmarket.federated.run_log import RunLog
from strategies import build_strategy
from strategies.recording import shorten

log = logging.getLogger("fedmarket")


@dataclass(frozen=True)
class Consortium:
    """Who answered and what was agreed (``agreement`` is None when all data is prepared)."""

    node_ids: tuple[int, ...]
    agreement: ag.Agreement | None


def agree(grid: Grid, *, timeout: float, plan: ag.WindowPlan | None = None) -> Consortium:
    """Run the describe and moments queries; raises DataError if no retailer can take part."""
    plan = plan or ag.WindowPlan()
    described = _describe(grid, timeout)
    raw = {n: m for n, m in described.items() if "last-event-s" in m}
    if not raw:
        log.info(
            "agreement: %d SuperNode(s) hold prepared partitions; nothing to agree", len(described)
        )
        return Consortium(tuple(sorted(described)), None)
    if len(raw) != len(described):
        raise DataError(
            f"{len(raw)} SuperNode(s) hold raw exports (data-path) and "
            f"{len(described) - len(raw)} prepared partitions (data-dir); give "
            "them all the same kind"
        )
    plan = plan.with_cutoff(ag.last_event_from_metrics(m) for m in raw.values())
    log.info("agreement: cut-off %s from %d retailers' latest events", plan.cutoff, len(raw))
    replies = _ask(
        grid, raw, {ag.STAGE_KEY: ag.MOMENTS, ag.PLAN_KEY: json.dumps(plan.to_dict())}, timeout
    )
    summaries = [ag.RetailerSummary.from_metrics(m) for m in replies.values()]
    agreement = ag.combine(plan, summaries)
    log.info(
        "agreement: normalisation from %d retailers, %d training customers in all",
        len(summaries),
        agreement.n_train_total,
    )
    return Consortium(tuple(sorted(replies)), agreement)


def _describe(grid: Grid, timeout: float) -> dict[int, dict]:
    """Describe replies from every SuperNode, waiting for as many as they say there are."""
    deadline = time.monotonic() + timeout
    node_ids = _wait_for_nodes(grid, 1, deadline)
    described = _ask(grid, node_ids, {ag.STAGE_KEY: ag.DESCRIBE}, timeout, strict=False)
    expected = max([int(m.get("num-partitions", 0)) for m in described.values()] or [0])
    asked = set(node_ids)
    while expected > len(asked) and time.monotonic() < deadline:
        more = set(_wait_for_nodes(grid, expected, deadline)) - asked
        if more:
            described.update(_ask(grid, more, {ag.STAGE_KEY: ag.DESCRIBE}, timeout, strict=False))
            asked |= more
    if expected > len(asked):
        log.warning(
            "agreement: SuperNodes say the consortium has %d retailers, but only %d "
            "connected within %.0f s; going on without the others",
            expected,
            len(asked),
            timeout,
        )
    if not described:
        raise DataError("no SuperNode could describe its data; see the warnings above")
    return described


def _wait_for_nodes(grid: Grid, count: int, deadline: float) -> list[int]:
    while True:
        ids = sorted(grid.get_node_ids())
        if len(ids) >= count or (ids and time.monotonic() >= deadline):
            return ids
        if time.monotonic() >= deadline:
            raise DataError(
                "no SuperNode connected before the round timeout; check that the "
                "SuperNodes run and reach the SuperLink"
            )
        time.sleep(1.0)


def _ask(
    grid: Grid, node_ids: Iterable[int], config: dict, timeout: float, *, strict: bool = True
) -> dict[int, dict]:
    """Send one query to each node; the valid replies' metrics by node id.

    A node that errors or stays silent is logged and left out; with ``strict`` a
    left-out node is an error (the moments of every described retailer are needed, or
    the statistics would silently describe a different consortium).
    """
    node_ids = sorted(node_ids)
    messages = [
        Message(
            RecordDict({"config": ConfigRecord(dict(config))}),
            dst_node_id=n,
            message_type=MessageType.QUERY,
        )
        for n in node_ids
    ]
    out: dict[int, dict] = {}
    problems = []
    for reply in grid.send_and_receive(messages, timeout=timeout):
        node = int(reply.metadata.src_node_id)
        if reply.has_error():
            problems.append(f"node {node}: {shorten(reply.error.reason)}")
            continue
        out[node] = dict(next(iter(reply.content.metric_records.values())))
    silent = [n for n in node_ids if n not in out and not any(f"node {n}:" in p for p in problems)]
    problems += [f"node {n}: no reply within {timeout:.0f} s" for n in silent]
    for problem in problems:
        log.warning("agreement (%s): %s", config[ag.STAGE_KEY], problem)
    if strict and problems:
        raise DataError(
            f"agreement ({config[ag.STAGE_KEY]}) failed for {len(problems)} "
            f"retailer(s): {'; '.join(problems)}"
        )
    return out


def deployment_strategy(cfg: RunConfig, num_nodes: int, recorder: RunLog) -> Strategy:
    """The run's strategy, sized so that a lost SuperNode does not stall the run.

    ``build_strategy`` makes Flower wait for ``num_nodes`` connected nodes before every
    round, with no time limit; a retailer whose machine dies would block the consortium
    forever. Here the strategy is built for the smallest quorum the settings allow (at
    least ``min-train-replies`` replies per round, Krum's and Bulyan's minimums), and
    Flower samples ``fraction-train`` of the nodes connected at each round. Central DP is
    the exception: its noise is calibrated for exactly the agreed number of clients, so it
    keeps waiting for all of them.
    """
    if cfg.dp == "central":
        return build_strategy(cfg, num_nodes=num_nodes, recorder=recorder)
    for quorum in range(1, num_nodes):
        try:
            return build_strategy(cfg, num_nodes=quorum, recorder=recorder)
        except ConfigError:  # too few for the settings; try the next size
            continue
    return build_strategy(cfg, num_nodes=num_nodes, recorder=recorder)
