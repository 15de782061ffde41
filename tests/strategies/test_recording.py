import numpy as np
import pytest
from flwr.app import ConfigRecord
from flwr.serverapp.strategy import FedAvg, FedTrimmedAvg

from fedmarket.errors import ConfigError
from strategies import DECLINED_CODE, RecordingStrategy, ReplySummary
from strategies.recording import REASON_CHARS, shorten
from tests.strategies import (
    FakeGrid,
    error_reply,
    eval_reply,
    pretend_running_task,
    train_reply,
    weights,
)


class Recorder:
    def __init__(self):
        self.train, self.evaluate = [], []

    def on_train(self, summary, arrays, metrics):
        self.train.append((summary, arrays, metrics))

    def on_evaluate(self, summary, metrics):
        self.evaluate.append((summary, metrics))


def fedavg() -> FedAvg:
    return FedAvg(min_train_nodes=1, min_evaluate_nodes=1, min_available_nodes=1)


def ok(node_id, value, n, partition, **extra):
    metrics = {"num-examples": n, "partition-id": partition, **extra}
    return train_reply(node_id, [value], metrics)


def configured(strategy, node_ids, monkeypatch):
    pretend_running_task(monkeypatch)
    grid = FakeGrid(node_ids)
    return list(strategy.configure_train(1, weights([0.0]), ConfigRecord(), grid))


def test_counts_ok_failed_declined_and_still_aggregates(monkeypatch):
    recorder = Recorder()
    strategy = RecordingStrategy(fedavg(), recorder=recorder)
    assert len(configured(strategy, [1, 2, 3, 4], monkeypatch)) == 4
    long_trace = "<class 'ray.exceptions.RayTaskError'>" + "x" * 1000 + "ValueError: bad shard"
    replies = [
        ok(1, 1.0, 1.0, 0.0, epsilon=0.5),
        error_reply(2, 2, long_trace),
        ok(3, 5.0, 3.0, 2.0, epsilon=1.5),
        error_reply(4, DECLINED_CODE, "declined: eps 7.9 + 0.6 > 8.0"),
    ]
    arrays, metrics = strategy.aggregate_train(1, iter(replies))  # a one-shot iterable
    np.testing.assert_allclose(arrays["w"].numpy(), [4.0])  # (1·1 + 3·5) / 4
    [(summary, rec_arrays, rec_metrics)] = recorder.train
    assert (rec_arrays, rec_metrics) == (arrays, metrics)
    assert (summary.server_round, summary.phase) == (1, "train")
    assert (summary.sent, summary.ok, summary.failed, summary.declined) == (4, 2, 1, 1)
    assert summary.timed_out == 0
    assert [(node, code) for node, code, _ in summary.failures] == [(2, 2), (4, DECLINED_CODE)]
    assert summary.failures[1][2] == "declined: eps 7.9 + 0.6 > 8.0"
    assert len(summary.failures[0][2]) == REASON_CHARS
    assert summary.failures[0][2].endswith("ValueError: bad shard")
    assert summary.per_client == (
        {"node-id": 1, "num-examples": 1.0, "partition-id": 0.0, "epsilon": 0.5},
        {"node-id": 3, "num-examples": 3.0, "partition-id": 2.0, "epsilon": 1.5},
    )


def test_missing_replies_are_timed_out(monkeypatch):
    recorder = Recorder()
    strategy = RecordingStrategy(fedavg(), recorder=recorder)
    configured(strategy, [1, 2, 3, 4], monkeypatch)
    replies = [ok(1, 1.0, 1.0, 0.0), ok(2, 2.0, 1.0, 1.0), error_reply(3, 2)]
    arrays, _ = strategy.aggregate_train(1, replies)
    np.testing.assert_allclose(arrays["w"].numpy(), [1.5])
    summary = recorder.train[0][0]
    assert (summary.sent, summary.ok, summary.failed, summary.declined) == (4, 2, 1, 0)
    assert summary.timed_out == 1


def test_too_few_valid_replies_skip_aggregation(monkeypatch, caplog):
    class Spy(FedAvg):
        calls = 0

        def aggregate_train(self, server_round, replies):
            Spy.calls += 1
            return super().aggregate_train(server_round, replies)

    recorder = Recorder()
    strategy = RecordingStrategy(
        Spy(min_train_nodes=1, min_available_nodes=1), min_train_replies=3, recorder=recorder
    )
    configured(strategy, [1, 2, 3], monkeypatch)
    replies = [ok(1, 1.0, 1.0, 0.0), ok(2, 2.0, 1.0, 1.0), error_reply(3, DECLINED_CODE)]
    with caplog.at_level("WARNING", logger="flwr"):
        assert strategy.aggregate_train(1, replies) == (None, None)
    assert Spy.calls == 0
    assert "only 2 valid train replies, fewer than the 3 required" in caplog.text
    summary, arrays, metrics = recorder.train[0]
    assert (summary.ok, summary.declined, arrays, metrics) == (2, 1, None, None)
    # enough replies: aggregated
    configured(strategy, [1, 2, 3], monkeypatch)
    arrays, _ = strategy.aggregate_train(1, [*replies[:2], ok(3, 6.0, 1.0, 2.0)])
    np.testing.assert_allclose(arrays["w"].numpy(), [3.0])


def test_inspects_replies_before_fedtrimmedavg_pops_their_arrays():
    recorder = Recorder()
    inner = FedTrimmedAvg(beta=0.2, min_train_nodes=1, min_available_nodes=1)
    strategy = RecordingStrategy(inner, recorder=recorder)
    values = [0.0, 1.0, 2.0, 3.0, 100.0]
    replies = [ok(i + 1, v, 1.0, float(i), loss=v) for i, v in enumerate(values)]
    arrays, metrics = strategy.aggregate_train(2, replies)
    np.testing.assert_allclose(arrays["w"].numpy(), [2.0])  # mean of 1, 2, 3
    assert all("w" not in r.content["arrays"] for r in replies)  # popped by Flower
    summary = recorder.train[0][0]
    assert (summary.sent, summary.ok, summary.timed_out) == (5, 5, 0)  # not configured here
    assert [c["loss"] for c in summary.per_client] == values
    assert metrics["loss"] == pytest.approx(21.2)


def test_evaluate_is_counted_and_recorded(monkeypatch):
    pretend_running_task(monkeypatch)
    recorder = Recorder()
    strategy = RecordingStrategy(fedavg(), recorder=recorder)
    sent = strategy.configure_evaluate(3, weights([0.0]), ConfigRecord(), FakeGrid([1, 2, 3]))
    assert len(list(sent)) == 3
    replies = [
        eval_reply(1, {"num-examples": 1.0, "auc": 0.5}),
        eval_reply(2, {"num-examples": 3.0, "auc": 0.9}),
    ]
    metrics = strategy.aggregate_evaluate(3, replies)
    assert metrics["auc"] == pytest.approx(0.8)
    summary, rec_metrics = recorder.evaluate[0]
    assert rec_metrics is metrics
    assert summary == ReplySummary(
        3,
        "evaluate",
        sent=3,
        ok=2,
        failed=0,
        declined=0,
        timed_out=1,
        failures=(),
        per_client=summary.per_client,
    )
    assert [c["auc"] for c in summary.per_client] == [0.5, 0.9]


def test_runs_flowers_round_loop(monkeypatch):
    """Strategy.start drives the wrapper: configure -> replies -> aggregate, twice."""
    pretend_running_task(monkeypatch)

    class Grid(FakeGrid):
        def send_and_receive(self, messages, timeout):
            out = []
            for msg in messages:
                node = msg.metadata.dst_node_id
                if msg.metadata.message_type == "train":
                    current = msg.content["arrays"]["w"].numpy()
                    out.append(ok(node, float(current[0]) + node, 1.0, float(node)))
                elif node != 3:  # node 3 never answers evaluation
                    out.append(eval_reply(node, {"num-examples": 1.0, "auc": node / 10}))
            return out

    recorder = Recorder()
    strategy = RecordingStrategy(
        FedAvg(min_train_nodes=3, min_evaluate_nodes=3, min_available_nodes=3), recorder=recorder
    )
    result = strategy.start(grid=Grid([1, 2, 3]), initial_arrays=weights([0.0]), num_rounds=2)
    np.testing.assert_allclose(result.arrays["w"].numpy(), [4.0])  # +2 each round
    assert [s.ok for s, _, _ in recorder.train] == [3, 3]
    assert [(s.ok, s.timed_out) for s, _ in recorder.evaluate] == [(2, 1), (2, 1)]
    assert result.evaluate_metrics_clientapp[2]["auc"] == pytest.approx(0.15)


def test_summary_delegates_and_bad_minimum(caplog):
    class Inner(FedAvg):
        summarised = False

        def summary(self):
            Inner.summarised = True

    RecordingStrategy(Inner()).summary()
    assert Inner.summarised
    for bad in (-1, 1.5, True):
        with pytest.raises(ConfigError, match="min_train_replies must be an integer"):
            RecordingStrategy(FedAvg(), min_train_replies=bad)


def test_shorten_keeps_short_reasons_and_both_ends_of_long_ones():
    assert shorten("declined: budget") == "declined: budget"
    assert shorten(None) == ""
    text = "H" * 200 + "M" * 500 + "T" * 200
    short = shorten(text)
    assert len(short) == REASON_CHARS
    assert short.startswith("H" * 100) and short.endswith("T" * 197) and " … " in short


def test_round_timings_are_recorded(monkeypatch):
    """Replies' wait and the inner aggregation are timed for the bench's round split."""
    recorder = Recorder()
    strategy = RecordingStrategy(fedavg(), recorder=recorder)
    configured(strategy, [1, 2], monkeypatch)
    strategy.aggregate_train(1, [ok(1, 1.0, 1.0, 0.0), ok(2, 3.0, 1.0, 1.0)])
    [(summary, _, _)] = recorder.train
    assert summary.wait_s is not None and summary.wait_s >= 0
    assert summary.aggregate_s is not None and summary.aggregate_s >= 0


def test_aggregates_in_partition_order_whatever_order_replies_arrive():
    """Float sums depend on their order: the same replies in another arrival order must give
    the same bits, or a run and its resume (or two runs with one seed) differ at ~1e-7."""
    rng = np.random.default_rng(7)
    values = rng.normal(size=(6, 257)).astype(np.float32)

    def replies(order):
        return [
            train_reply(100 + i, values[i], {"num-examples": 3.0 + i, "partition-id": float(i)})
            for i in order
        ]

    forward, _ = RecordingStrategy(fedavg()).aggregate_train(1, replies(range(6)))
    shuffled, _ = RecordingStrategy(fedavg()).aggregate_train(1, replies([4, 1, 5, 0, 3, 2]))
    assert forward["w"].numpy().tobytes() == shuffled["w"].numpy().tobytes()
    reversed_, _ = RecordingStrategy(fedavg()).aggregate_train(1, replies(range(5, -1, -1)))
    assert forward["w"].numpy().tobytes() == reversed_["w"].numpy().tobytes()
