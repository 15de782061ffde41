"""A strategy wrapper that records who replied each round and enforces a minimum.

Flower's strategies aggregate whatever valid replies arrive (even one), drop timed-out
clients without a trace and only log errors. A federated study needs those counts per
round (rounds.csv), a declined client told apart from a crashed one, and a round skipped
when too few clients trained. ``RecordingStrategy`` wraps any strategy by delegation, as
Flower's own DP wrappers do, so it composes with them and with every aggregation rule.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from logging import INFO, WARNING
from typing import Literal, Protocol

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.common.logger import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from fedmarket.checks import integer, is_number

# Error code a client returns (Message(Error(DECLINED_CODE, reason), reply_to=msg)) when
# training would exceed its privacy budget. Flower's own codes are below 100.
DECLINED_CODE = 1001
REASON_CHARS = 300

Phase = Literal["train", "evaluate"]


@dataclass(frozen=True)
class ReplySummary:
    """What came back for one phase of one round.

    ``sent`` = ``ok + failed + declined + timed_out``. ``failures`` lists every error reply,
    declined ones included, as ``(node_id, code, reason)``; ``per_client`` holds each valid
    reply's numeric metrics plus its "node-id".
    """

    server_round: int
    phase: Phase
    sent: int
    ok: int
    failed: int
    declined: int
    timed_out: int
    failures: tuple[tuple[int, int, str], ...] = ()
    per_client: tuple[dict[str, int | float], ...] = field(default=())
    # Seconds from the messages being configured to the replies reaching aggregation
    # (client work, transport and the framework), and spent in the inner aggregation.
    wait_s: float | None = None
    aggregate_s: float | None = None


class RoundRecorder(Protocol):
    """Receives every round's summary; the server app writes rounds.csv and checkpoints.

    ``on_train`` gets ``arrays=None`` when the round did not aggregate (too few replies,
    or the inner strategy skipped it), so a skipped round still gets its row.
    """

    def on_train(
        self, summary: ReplySummary, arrays: ArrayRecord | None, metrics: MetricRecord | None
    ) -> None: ...

    def on_evaluate(self, summary: ReplySummary, metrics: MetricRecord | None) -> None: ...


def summarise(
    server_round: int, phase: Phase, sent: int | None, replies: list[Message]
) -> ReplySummary:
    """Count and describe ``replies``; ``sent=None`` (not configured here) means all replied."""
    failures, per_client, declined = [], [], 0
    for msg in replies:
        if msg.has_error():
            code = int(msg.error.code)
            declined += code == DECLINED_CODE
            failures.append((int(msg.metadata.src_node_id), code, shorten(msg.error.reason)))
        else:
            per_client.append(_numbers(msg))
    sent = len(replies) if sent is None else sent
    return ReplySummary(
        server_round=server_round,
        phase=phase,
        sent=sent,
        ok=len(per_client),
        failed=len(failures) - declined,
        declined=declined,
        timed_out=max(0, sent - len(replies)),
        failures=tuple(failures),
        per_client=tuple(per_client),
    )


def shorten(reason: str | None, limit: int = REASON_CHARS) -> str:
    """At most ``limit`` characters, keeping both ends of a long reason.

    A client that raised sends Ray's whole traceback, whose head is boilerplate
    ("<class 'ray.exceptions.RayTaskError..."); the exception message is at the tail.
    """
    reason = str(reason or "")
    if len(reason) <= limit:
        return reason
    head = limit // 3
    tail = limit - head - 3
    return f"{reason[:head]} … {reason[-tail:]}"


def _numbers(msg: Message) -> dict[str, int | float]:
    values: dict[str, int | float] = {"node-id": int(msg.metadata.src_node_id)}
    for record in msg.content.metric_records.values():
        for key, value in record.items():
            if is_number(value):
                values[key] = value
    return values


class RecordingStrategy(Strategy):
    """Delegates every decision to ``inner``; counts replies and skips thin rounds.

    ``min_train_replies``: a train round with fewer valid replies is not aggregated (the
    global model stays as it was) and is logged with the reason. Replies are inspected
    before the inner strategy sees them, because FedTrimmedAvg and FedMedian pop the arrays
    out of the reply messages and the DP wrappers replace them with clipped ones.
    """

    def __init__(
        self,
        inner: Strategy,
        *,
        min_train_replies: int = 1,
        recorder: RoundRecorder | None = None,
        partial_replies: bool = False,
    ) -> None:
        integer("RecordingStrategy: min_train_replies", min_train_replies, at_least=0)
        super().__init__()
        self.inner = inner
        self.min_train_replies = min_train_replies
        self.recorder = recorder
        # FedPer: replies hold the body alone (the head stays at the retailer); the global
        # model's own values of the keys a reply leaves out complete it, so every rule
        # aggregates the body and leaves the (public, never trained) global head as it was
        self.partial_replies = partial_replies
        self._sent: dict[tuple[Phase, int], int] = {}
        self._configured: dict[tuple[Phase, int], float] = {}
        self._global: dict[int, ArrayRecord] = {}

    def __repr__(self) -> str:
        return f"RecordingStrategy({self.inner!r})"

    def summary(self) -> None:
        log(
            INFO,
            "\t├──> Recording: skip a round with fewer than %d valid train replies",
            self.min_train_replies,
        )
        self.inner.summary()

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        messages = list(self.inner.configure_train(server_round, arrays, config, grid))
        self._sent[("train", server_round)] = len(messages)
        self._configured[("train", server_round)] = time.perf_counter()
        if self.partial_replies:
            self._global[server_round] = arrays
        return messages

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        messages = list(self.inner.configure_evaluate(server_round, arrays, config, grid))
        self._sent[("evaluate", server_round)] = len(messages)
        return messages

    def aggregate_train(
        self,
        server_round: int,
        replies: Iterable[Message],
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        arrived = time.perf_counter()
        replies = sorted(replies, key=_reply_order)
        summary = summarise(
            server_round, "train", self._sent.pop(("train", server_round), None), replies
        )
        configured = self._configured.pop(("train", server_round), None)
        if configured is not None:
            summary = replace(summary, wait_s=arrived - configured)
        _log_summary(summary)
        if summary.ok < self.min_train_replies:
            log(
                WARNING,
                "round %d: only %d valid train replies, fewer than the %d required; "
                "not aggregating, the global model stays as it was",
                server_round,
                summary.ok,
                self.min_train_replies,
            )
            arrays, metrics = None, None
        else:
            sent = self._global.pop(server_round, None)
            if sent is not None:
                replies = [complete_reply(msg, sent) for msg in replies]
            arrays, metrics = self.inner.aggregate_train(server_round, replies)
            summary = replace(summary, aggregate_s=time.perf_counter() - arrived)
        if self.recorder is not None:
            self.recorder.on_train(summary, arrays, metrics)
        return arrays, metrics

    def aggregate_evaluate(
        self,
        server_round: int,
        replies: Iterable[Message],
    ) -> MetricRecord | None:
        replies = sorted(replies, key=_reply_order)
        summary = summarise(
            server_round, "evaluate", self._sent.pop(("evaluate", server_round), None), replies
        )
        _log_summary(summary)
        metrics = self.inner.aggregate_evaluate(server_round, replies)
        if self.recorder is not None:
            self.recorder.on_evaluate(summary, metrics)
        return metrics


def complete_reply(msg: Message, sent: ArrayRecord) -> Message:
    """A copy of ``msg`` with the arrays it left out taken from ``sent`` (the global model of
    the round), in ``sent``'s order; an error reply, or one without arrays, as it is."""
    if msg.has_error() or "arrays" not in msg.content:
        return msg
    own = msg.content["arrays"]
    if list(own.keys()) == list(sent.keys()):
        return msg
    content = RecordDict(dict(msg.content.items()))  # the client's reply stays as it came
    content["arrays"] = ArrayRecord({k: own[k] if k in own else sent[k] for k in sent})
    return Message(content=content, metadata=msg.metadata)


def _reply_order(msg: Message) -> tuple[int, int]:
    """Replies in partition order, whatever order they arrived in.

    A weighted mean of float32 arrays depends on the order of its terms in the last bits;
    replies arrive in whatever order the clients finish, so without a fixed order two runs
    with the same seed (or a run and its resume) differ at about 1e-7.
    """
    if not msg.has_error():
        for record in msg.content.metric_records.values():
            if "partition-id" in record:
                return 0, int(record["partition-id"])
    return 1, int(msg.metadata.src_node_id)


def _log_summary(summary: ReplySummary) -> None:
    level = WARNING if summary.failed or summary.timed_out else INFO
    log(
        level,
        "round %d %s: %d sent, %d ok, %d failed, %d declined, %d timed out",
        summary.server_round,
        summary.phase,
        summary.sent,
        summary.ok,
        summary.failed,
        summary.declined,
        summary.timed_out,
    )
    for node_id, code, reason in summary.failures:
        declined = code == DECLINED_CODE
        log(
            INFO if declined else WARNING,
            "round %d %s: node %d %s: %s",
            summary.server_round,
            summary.phase,
            node_id,
            "declined" if declined else f"failed (code {code})",
            reason,
        )
