"""End to end through Flower's Ray simulation (slow: about 10 s of Ray start-up per run).

The ServerApp runs in a thread of this process under ``run_simulation``, so patching
``RecordingStrategy`` here sees every reply the server receives; the ClientApps run in
Ray actors, where nothing from this process reaches them but their pickled closure.
"""

import functools
import json
import math

import numpy as np
import pytest
import torch
from opacus.accountants import RDPAccountant
from opacus.accountants.utils import get_noise_multiplier

import fedmarket.centralised as centralised_module
from fedmarket.config import RunConfig
from fedmarket.data import store
from fedmarket.errors import DataError
from fedmarket.experiments import simulate as simulate_module
from fedmarket.experiments.compare import compare_runs
from fedmarket.experiments.simulate import ClientResources, simulate
from fedmarket.federated.client_state import load_accountant
from fedmarket.models import build_model
from fedmarket.predictions import read_predictions
from fedmarket.rundir import RunDir
from strategies.recording import RecordingStrategy
from tests.cli.output import cli, plain
from tests.conftest import TRAIN_METRIC_KEYS, copy_prepared, pseudonyms, raw_customer_ids

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

ONE_CPU = ClientResources(num_cpus=1.0)  # two actors on this 2-core machine


def describe(reply) -> dict:
    """What the server got, read before any strategy may pop arrays out of the message."""
    if reply.has_error():
        return {"error": (int(reply.error.code), str(reply.error.reason))}
    content = reply.content
    return {
        "arrays": {
            name: {k: (tuple(a.shape), a.dtype, bytes(a.data)) for k, a in rec.items()}
            for name, rec in content.array_records.items()
        },
        "metrics": {name: dict(rec) for name, rec in content.metric_records.items()},
        "configs": {name: dict(rec) for name, rec in content.config_records.items()},
    }


def spy_on_replies(monkeypatch) -> list[tuple[str, int, dict]]:
    seen: list[tuple[str, int, dict]] = []
    real_train, real_eval = RecordingStrategy.aggregate_train, RecordingStrategy.aggregate_evaluate

    def aggregate_train(self, server_round, replies):
        replies = list(replies)
        seen.extend(("train", server_round, describe(r)) for r in replies)
        return real_train(self, server_round, replies)

    def aggregate_evaluate(self, server_round, replies):
        replies = list(replies)
        seen.extend(("evaluate", server_round, describe(r)) for r in replies)
        return real_eval(self, server_round, replies)

    monkeypatch.setattr(RecordingStrategy, "aggregate_train", aggregate_train)
    monkeypatch.setattr(RecordingStrategy, "aggregate_evaluate", aggregate_evaluate)
    return seen


def test_end_to_end_no_raw_data(tiny_data, tiny_raw, tmp_path, monkeypatch):
    seen = spy_on_replies(monkeypatch)
    out = tmp_path / "run"
    result = simulate(
        data=tiny_data,
        run_config="num-server-rounds=2",
        out=out,
        centralised=True,
        resources=ONE_CPU,
    )

    model = build_model("cnn-lstm", 11, task="purchase").state_dict()
    names, ids = pseudonyms(tiny_data), raw_customer_ids(tiny_raw)
    assert [(phase, rnd) for phase, rnd, _ in seen] == (
        [("train", 1)] * 3 + [("evaluate", 1)] * 3 + [("train", 2)] * 3 + [("evaluate", 2)] * 3
    )
    for phase, _, reply in seen:
        assert "error" not in reply
        assert reply["configs"] == {}  # no strings travel at all
        [metrics] = reply["metrics"].values()
        assert all(type(v) in (int, float) for v in metrics.values())  # scalars, no lists
        assert not set(metrics.values()) & ids
        if phase == "train":
            [arrays] = reply["arrays"].values()
            assert list(arrays) == list(model)
            assert {k: s for k, (s, _, _) in arrays.items()} == {
                k: tuple(t.shape) for k, t in model.items()
            }
            assert set(metrics) == TRAIN_METRIC_KEYS
            blob = b"".join(data for _, _, data in arrays.values())
            assert not any(name[:16].encode() in blob for name in names)
        else:
            assert reply["arrays"] == {}
            assert {"num-examples", "roc_auc", "partition-id"} <= set(metrics)

    summary = json.loads((out / "summary.json").read_text())
    assert summary == result["summary"]
    fed, cen = summary["federated"], summary["centralised"]
    assert fed["rounds"] == 2 and fed["wall_s"] > 0 and cen["wall_s"] > 0
    assert set(fed["test"]) >= {"roc_auc", "accuracy"} and set(cen["test"]) >= {"roc_auc"}
    last = [r for phase, rnd, r in seen if (phase, rnd) == ("train", 2)]
    sent = [r["metrics"]["metrics"] for r in last]
    sent_eps = {str(int(m["partition-id"])): m["epsilon"] for m in sent}
    assert fed["epsilon"]["per_client"] == sent_eps
    assert fed["epsilon"]["max"] == max(sent_eps.values()) <= 8.0
    assert cen["epsilon"] <= 8.0 and summary["delta"] == cen["delta"]
    # the reference's torch threads, so a slow one can be told apart (tests run one thread)
    assert cen["threads"] == 1
    gap = fed["test"]["roc_auc"] - cen["test"]["roc_auc"]
    assert summary["gap"]["roc_auc"] == pytest.approx(gap)
    # each model's prediction per pooled test customer, by pseudonym: the gap, paired
    [fed_scores] = read_predictions(out / "test_scores.csv").values()
    assert set(fed_scores.customer) <= names and not set(fed_scores.customer) & set(map(str, ids))
    paired = compare_runs(out, out, kind_b="centralised", metrics=["roc_auc"]).results[0]
    assert paired.difference == pytest.approx(gap, abs=1e-6)
    assert paired.low <= paired.difference <= paired.high
    assert [r["round"] for r in RunDir(out).read_rounds()] == [1.0, 2.0]
    assert "| metric | federated | centralised |" in (out / "report.md").read_text()
    # the BG/NBD anchor: across the 3 retailers under the run's client DP, the same customers
    anchor = summary["anchor"]
    assert anchor["model"] == "bg-nbd" and anchor["retailers"] == 3 and anchor["dp"]
    assert anchor["epsilon"] == 8.0 and anchor["delta"] == summary["delta"]
    assert anchor["combined_epsilon"] == pytest.approx(fed["epsilon"]["max"] + 8.0)
    assert set(anchor["params"]) == {"r", "alpha", "a", "b"} and anchor["fit_s"] < 5
    [anchor_scores] = read_predictions(RunDir(out).anchor_scores).values()
    assert sorted(anchor_scores.customer) == sorted(fed_scores.customer)
    versus = compare_runs(out, out, kind_b="bg-nbd", metrics=["roc_auc"]).results[0]
    assert anchor["paired"]["difference"] == pytest.approx(versus.difference)
    assert versus.b == pytest.approx(anchor["test"]["roc_auc"], abs=1e-9)
    assert (
        "- The classical BG/NBD anchor, fitted across the retailers without pooling under"
        in (out / "report.md").read_text()
    )
    # each retailer's local-only model, on its own test customers, paired with the federated
    local = summary["retailers"]
    manifest = store.read_manifest(tiny_data)
    assert local["local_only"] == "trained" and local["metric"] == "roc_auc"
    assert [(r["name"], r["federated"]["n"]) for r in local["rows"]] == [
        (p["retailer"], p["test"]["n"]) for p in manifest["partitions"]
    ]
    assert [r["local_model"]["n_train"] for r in local["rows"]] == [
        p["train"]["n"] for p in manifest["partitions"]
    ]
    assert all(r["local_model"]["epsilon"] <= 8.0 for r in local["rows"])
    [local_scores] = read_predictions(RunDir(out).local_only_scores).values()
    assert sorted(local_scores.customer) == sorted(fed_scores.customer)
    joining = compare_runs(out, out, kind_b="local-only", metrics=["roc_auc"]).results[0]
    assert joining.a == pytest.approx(fed["test"]["roc_auc"], abs=1e-6)
    assert "## Does joining pay for each retailer?" in (out / "report.md").read_text()
    assert fed["labels"]["count_unit"] == "transactions"  # the manifest's, named in the report
    assert "the label is 1 if any purchase in the" in (out / "report.md").read_text()
    for plot in (
        "roc_auc_per_round.png",
        "epsilon_per_round.png",
        "gains_lift.png",
        "learning_curves.png",
        "report.html",
        "test_scores.csv",
        "centralised/gains.png",
        "centralised/learning_curve.png",
        "centralised/test_scores.csv",
        "anchor/test_scores.csv",
        "local/test_scores.csv",
        "local/metrics.json",
        "retailer_gains.png",
    ):
        assert (out / plot).stat().st_size > 0


def test_failing_client_is_counted_named_and_the_run_finishes(tiny_data, tmp_path):
    data = copy_prepared(tiny_data, tmp_path / "data")
    labels = data / "partitions/2/train/y_purchase.npy"
    np.save(labels, np.full_like(np.load(labels), 2.0))  # whole files, impossible labels:
    out = tmp_path / "run"  # past the pre-flight checks, its client fails every round
    # no centralised reference: it would need partition 2's training customers too
    result = simulate(
        data=data, run_config="num-server-rounds=2", out=out, centralised=False, resources=ONE_CPU
    )
    rows = RunDir(out).read_rounds()
    assert [(r["sent"], r["ok"], r["failed"], r["declined"]) for r in rows] == [(3, 2, 1, 0)] * 2
    assert [r["eval_failed"] for r in rows] == [0, 0]  # its test customers are fine
    summary = json.loads((out / "summary.json").read_text())
    assert summary["federated"]["failures"] == {"failed": 2, "declined": 0, "timed_out": 0}
    assert sorted(summary["federated"]["epsilon"]["per_client"]) == ["0", "1"]
    assert summary["federated"]["participation"] == {
        "rounds_aggregated": {"0": 2, "1": 2},
        "never": [2],
    }
    assert summary["centralised"] is None
    assert result["problems"] == summary["problems"]
    assert any("client(s) 2 never trained" in p for p in result["problems"])
    report = (out / "report.md").read_text()
    assert "Failed replies: 2" in report and "## This run is incomplete" in report
    assert "| 2 | 0 | - |" in report  # client 2: no round aggregated, no epsilon


def uninterrupted_epsilon(data_dir, partition: int, rounds: int, batch_size: int = 64) -> float:
    """A client's epsilon after ``rounds`` uninterrupted rounds, from Opacus alone."""
    parts = json.loads((data_dir / "manifest.json").read_text())["partitions"]
    n, total = parts[partition]["train"]["n"], sum(p["train"]["n"] for p in parts)
    return _opacus_epsilon(math.ceil(n / batch_size), rounds, 1 / (10 * total))


@functools.cache  # the partitions share their step count; calibrating takes seconds here
def _opacus_epsilon(steps_per_round: int, rounds: int, delta: float) -> float:
    q, steps = 1 / steps_per_round, rounds * steps_per_round
    noise = get_noise_multiplier(
        target_epsilon=8.0, target_delta=delta, sample_rate=q, steps=steps, accountant="rdp"
    )
    accountant = RDPAccountant()
    accountant.history = [(noise, q, steps)]
    return accountant.get_epsilon(delta=delta)


def test_resume_after_a_crash_continues_the_run(tiny_data, tmp_path, monkeypatch):
    real = RecordingStrategy.configure_train
    crash = {"at": 3}

    def configure_train(self, server_round, arrays, config, grid):
        if server_round == crash["at"]:
            raise RuntimeError("server crashed before round 3 (test)")
        return real(self, server_round, arrays, config, grid)

    monkeypatch.setattr(RecordingStrategy, "configure_train", configure_train)
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="server crashed"):
        simulate(
            data=tiny_data,
            run_config="num-server-rounds=3",
            out=out,
            centralised=False,
            resources=ONE_CPU,
        )
    assert [r["round"] for r in RunDir(out).read_rounds()] == [1.0, 2.0]
    assert json.loads((out / "checkpoints/latest.json").read_text())["round"] == 2
    assert not (out / "summary.json").exists()

    crash["at"] = None
    result = simulate(data=None, resume=out, centralised=False, resources=ONE_CPU)
    assert [r["round"] for r in RunDir(out).read_rounds()] == [1.0, 2.0, 3.0]
    fed = result["summary"]["federated"]
    assert fed["rounds"] == 3
    for pid in range(3):
        expected = uninterrupted_epsilon(tiny_data, pid, rounds=3)
        assert fed["epsilon"]["per_client"][str(pid)] == pytest.approx(expected, rel=0, abs=1e-6)
        spent = load_accountant(None, str(out / "client_state"), pid)
        assert spent.steps == 3 * 3  # 3 rounds of 3 steps, no more
    assert fed["epsilon"]["max"] <= 8.0
    assert np.isfinite(fed["test"]["log_loss"])
    assert (out / "report.md").exists()


def test_central_dp_runs_are_reproducible_by_seed(tiny_data, tmp_path):
    """Flower's server-side noise comes from the global numpy generator, which the ServerApp
    seeds from the run's seed: the same seed gives the same noisy global model."""

    def final_weights(seed: int, name: str) -> dict:
        out = tmp_path / name
        simulate(
            data=tiny_data,
            run_config=f"dp='central' central-noise-multiplier=0.5 num-server-rounds=1 seed={seed}",
            out=out,
            centralised=False,
            resources=ONE_CPU,
        )
        return torch.load(out / "checkpoints" / "round-0001.pt", weights_only=True)["state_dict"]

    first, again, other = final_weights(3, "a"), final_weights(3, "b"), final_weights(4, "c")
    for key, value in first.items():
        torch.testing.assert_close(again[key], value, rtol=0, atol=1e-6)
    assert any(not torch.allclose(other[k], v) for k, v in first.items())


def test_a_failed_centralised_reference_keeps_the_federated_result(
    tiny_data, tmp_path, monkeypatch
):
    def broken(*args, **kwargs):
        raise DataError("pooled partitions unreadable (test)")

    # simulate imports it when the reference starts (torch, Opacus: after the rounds)
    monkeypatch.setattr(centralised_module, "run_matched_reference", broken)
    out = tmp_path / "run"
    result = simulate(
        data=tiny_data, run_config="num-server-rounds=1 dp='none'", out=out, resources=ONE_CPU
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["federated"]["test"]["roc_auc"] is not None  # the federated result is there
    assert summary["centralised"] == {"failed": "pooled partitions unreadable (test)"}
    assert result["problems"] == [
        "the centralised reference failed: pooled partitions unreadable (test)"
    ]
    assert "the centralised reference failed" in (out / "report.md").read_text()


def test_the_cli_exit_code_says_a_run_is_incomplete(tmp_path, monkeypatch):
    def incomplete(**kwargs):
        summary = {
            "config": RunConfig.from_mapping({"dp": "none"}).to_flower(),
            "federated": {"test": {"roc_auc": 0.7}},
            "centralised": {"failed": "boom"},
            "gap": None,
            "privacy": "No differential privacy.",
        }
        return {"run_dir": tmp_path, "summary": summary, "problems": ["the reference failed"]}

    monkeypatch.setattr(simulate_module, "simulate", incomplete)
    result = cli("simulate", "--out", tmp_path / "run")
    assert result.exit_code == 1
    assert "incomplete: the reference failed" in plain(result)


def test_a_resumed_central_dp_run_draws_the_noise_of_an_uninterrupted_one(
    tiny_data, tmp_path, monkeypatch
):
    """The ServerApp seeds Flower's generators once; a resume restores them from the commit
    marker instead of seeding again, so round 3's noise is not round 1's noise again."""
    run_config = "dp='central' central-noise-multiplier=0.5 num-server-rounds=3 seed=5"
    whole = tmp_path / "whole"
    simulate(data=tiny_data, run_config=run_config, out=whole, centralised=False, resources=ONE_CPU)

    real = RecordingStrategy.configure_train

    def crash_before_round_3(self, server_round, arrays, config, grid):
        if server_round == 3:
            raise RuntimeError("server crashed before round 3 (test)")
        return real(self, server_round, arrays, config, grid)

    monkeypatch.setattr(RecordingStrategy, "configure_train", crash_before_round_3)
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="server crashed"):
        simulate(
            data=tiny_data, run_config=run_config, out=out, centralised=False, resources=ONE_CPU
        )
    monkeypatch.setattr(RecordingStrategy, "configure_train", real)
    simulate(data=None, resume=out, centralised=False, resources=ONE_CPU)
    resumed, uninterrupted = RunDir(out).latest_checkpoint(), RunDir(whole).latest_checkpoint()
    assert resumed[0] == uninterrupted[0] == 3
    for key, value in uninterrupted[1].items():
        assert torch.equal(resumed[1][key], value), key


def test_resume_of_a_run_whose_rounds_are_all_committed(tiny_data, tmp_path):
    """The process ended after the last commit, before federated.json: the resume writes the
    result from the committed state (no round is run again)."""
    out = tmp_path / "run"
    simulate(data=tiny_data, run_config="num-server-rounds=2", out=out, centralised=False,
             resources=ONE_CPU)  # fmt: skip
    whole = json.loads((out / "federated.json").read_text())
    for name in ("federated.json", "summary.json", "report.md", "report.html", "gains_lift.png"):
        (out / name).unlink()
    result = simulate(data=None, resume=out, centralised=False, resources=ONE_CPU)
    # the federated curve is drawn from the scores committed with the last round
    assert (out / "gains_lift.png").stat().st_size > 0
    assert "Gains and lift" in (out / "report.html").read_text()
    fed = result["summary"]["federated"]
    for key in ("test", "epsilon", "delta", "rounds", "participation", "failures"):
        assert fed[key] == whole[key], key
    assert fed["wall_s"] >= whole["wall_s"] and result["problems"] == []
