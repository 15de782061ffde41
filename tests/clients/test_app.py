import json

import cloudpickle
import numpy as np
import pytest
import torch
from cryptography.fernet import Fernet
from flwr.app import MetricRecord

from clients.app import app as client_app
from clients.app import make_client_app
from fedmarket.config import RunConfig
from fedmarket.data.protect.keys import ENCRYPTION_KEY_ENV, prepared_data_fernet
from fedmarket.errors import ConfigError, DataError
from fedmarket.federated.client import RetailerClient
from fedmarket.federated.client_state import PrivacyJournal, state_file
from fedmarket.models import build_model
from strategies import DECLINED_CODE
from tests.conftest import TRAIN_METRIC_KEYS, copy_prepared, pseudonyms, raw_customer_ids
from tests.flower_helpers import evaluate_instruction, node_context, train_instruction

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run_config(data_dir, **overrides) -> dict:
    # batch-size above every partition's size: one Poisson step per epoch at q = 1, whose
    # RDP is closed-form; at q < 1 calibrating the noise alone takes seconds here
    values = {"data-dir": str(data_dir), "num-server-rounds": 2, "batch-size": 256, **overrides}
    return RunConfig.from_mapping(values).to_flower()


def start_weights() -> dict[str, torch.Tensor]:
    return build_model("cnn-lstm", 11, task="purchase", seed=0).state_dict()


def split_sizes(data_dir) -> set[int]:
    manifest = json.loads((data_dir / "manifest.json").read_text())
    sizes = {p[s]["n"] for p in manifest["partitions"] for s in ("train", "test")}
    return sizes | {sum(p["train"]["n"] for p in manifest["partitions"])}


def assert_nothing_per_customer(reply, data_dir, raw_dir, weights) -> None:
    """Only the model's own arrays and scalar aggregates: no row, id or pseudonym."""
    content = reply.content
    assert len(content.config_records) == 0  # the only place strings could travel
    n_customers = split_sizes(data_dir)
    for record in content.array_records.values():
        for key, array in record.items():
            assert array.shape[0] not in n_customers
            assert int(np.prod(array.shape)) <= weights[key].numel()
    names = pseudonyms(data_dir)
    ids = raw_customer_ids(raw_dir)
    for record in content.metric_records.values():
        for key, value in record.items():
            assert type(value) in (int, float), f"{key}: {value!r} is not a scalar"
            assert value not in ids
    blob = b"".join(a.data for r in content.array_records.values() for a in r.values())
    assert not any(name[:16].encode() in blob for name in names)
    assert not any(key in names for r in content.metric_records.values() for key in r)


def test_train_reply_holds_only_weights_and_known_metrics(tiny_data, tiny_raw):
    weights = start_weights()
    context = node_context(0, run_config(tiny_data))
    reply = client_app(train_instruction(weights, 1), context)
    assert not reply.has_error()
    assert reply.metadata.reply_to_message_id == "m1" and reply.metadata.message_type == "train"
    [arrays] = reply.content.array_records.values()
    [metrics] = reply.content.metric_records.values()
    assert list(reply.content.array_records) == ["arrays"]
    assert list(reply.content.metric_records) == ["metrics"]
    state = arrays.to_torch_state_dict()
    assert list(state) == list(weights)
    assert all(state[k].shape == weights[k].shape for k in weights)
    assert all(a.dtype == "float32" for a in arrays.values())
    assert set(metrics) == TRAIN_METRIC_KEYS
    manifest = json.loads((tiny_data / "manifest.json").read_text())
    assert metrics["num-examples"] == manifest["partitions"][0]["train"]["n"]
    assert_nothing_per_customer(reply, tiny_data, tiny_raw, weights)
    # the accountant is kept in the node's state for the next round
    saved = PrivacyJournal.from_dict(json.loads(context.state["fedmarket"]["accountant"]))
    assert saved.latest().steps == metrics["steps"]
    assert list(saved.rounds) == [1]  # the round is in the client's journal


def test_evaluate_reply_holds_only_aggregate_metrics(tiny_data, tiny_raw):
    weights = start_weights()
    cfg = run_config(tiny_data)
    reply = client_app(evaluate_instruction(weights, 1), node_context(2, cfg))
    assert not reply.has_error() and reply.metadata.message_type == "evaluate"
    assert len(reply.content.array_records) == 0
    [metrics] = reply.content.metric_records.values()
    expected = RetailerClient(RunConfig.from_mapping(cfg), tiny_data, 2).evaluate(weights)
    assert set(metrics) == set(expected)
    assert metrics["roc_auc"] == pytest.approx(expected["roc_auc"])
    assert_nothing_per_customer(reply, tiny_data, tiny_raw, weights)


def test_round_offset_reaches_the_training_seed(tiny_data):
    # a resumed run sends server-round 1 with round-offset 2: the client must train as in round 3
    weights = start_weights()
    cfg = run_config(tiny_data, dp="none")
    reply = client_app(train_instruction(weights, 1, **{"round-offset": 2}), node_context(1, cfg))
    got = reply.content["arrays"].to_torch_state_dict()
    client = RetailerClient(RunConfig.from_mapping(cfg), tiny_data, 1)
    want = client.train(weights, 3, None).state_dict
    other = client.train(weights, 1, None).state_dict
    assert all(torch.equal(got[k], want[k]) for k in want)
    assert not all(torch.equal(got[k], other[k]) for k in want)


def test_budget_exhausted_client_declines_and_keeps_its_accountant(tiny_data, tmp_path):
    weights = start_weights()
    cfg = run_config(tiny_data, **{"num-server-rounds": 1, "state-dir": str(tmp_path)})
    context = node_context(0, cfg)
    first = client_app(train_instruction(weights, 1), context)
    assert not first.has_error()
    kept = context.state["fedmarket"]["accountant"]
    on_disk = state_file(str(tmp_path), 0).read_text()
    assert json.loads(on_disk) == json.loads(kept)

    second = client_app(
        train_instruction(first.content["arrays"].to_torch_state_dict(), 2), context
    )
    assert second.has_error() and not second.has_content()
    assert second.error.code == DECLINED_CODE
    assert second.error.reason.startswith("declined: privacy budget exhausted")
    assert second.metadata.reply_to_message_id == "m1"
    assert context.state["fedmarket"]["accountant"] == kept  # still there, unchanged
    assert state_file(str(tmp_path), 0).read_text() == on_disk
    assert not any(name in second.error.reason for name in pseudonyms(tiny_data))
    # a restarted node (empty context.state) still knows from its file what it spent
    again = client_app(train_instruction(weights, 2), node_context(0, cfg))
    assert again.has_error() and again.error.code == DECLINED_CODE


def test_fixed_config_is_used_when_context_has_none(tiny_data):
    # under run_simulation the context's run_config is empty; the factory closes over it
    app = make_client_app(RunConfig.from_mapping(run_config(tiny_data, dp="none")))
    reply = app(evaluate_instruction(start_weights(), 1), node_context(1, {}))
    assert reply.content["metrics"]["partition-id"] == 1.0
    assert isinstance(reply.content["metrics"], MetricRecord)


def test_missing_partition_data_raises_data_error(tiny_data, tmp_path):
    data = copy_prepared(tiny_data, tmp_path / "broken")
    for path in (data / "partitions/1/train").iterdir():
        path.unlink()
    with pytest.raises(DataError, match="partitions/1/train"):
        client_app(train_instruction(start_weights(), 1), node_context(1, run_config(data)))


# --- encrypted prepared data -------------------------------------------------------------------


def replies_of(app, context):
    """The train and evaluate replies of ``app`` to the same start weights."""
    weights = start_weights()
    return (
        app(train_instruction(weights, 1), context),
        app(evaluate_instruction(weights, 1), context),
    )


def plain_replies(tiny_data, partition=1):
    return replies_of(client_app, node_context(partition, run_config(tiny_data, dp="none")))


def assert_same_replies(plain, encrypted) -> None:
    (train_a, eval_a), (train_b, eval_b) = plain, encrypted
    assert not any(r.has_error() for r in (train_a, eval_a, train_b, eval_b))
    got, want = (r.content["arrays"].to_torch_state_dict() for r in (train_b, train_a))
    assert all(torch.equal(got[k], want[k]) for k in want)
    train_metrics = {k: v for k, v in train_b.content["metrics"].items() if k != "train-wall-s"}
    assert train_metrics == {
        k: v for k, v in train_a.content["metrics"].items() if k != "train-wall-s"
    }
    assert dict(eval_b.content["metrics"]) == dict(eval_a.content["metrics"])


def test_under_flwr_run_the_supernode_environment_holds_the_key(
    tiny_data, tiny_encrypted, monkeypatch
):
    monkeypatch.setenv(ENCRYPTION_KEY_ENV, tiny_encrypted.key_text)
    context = node_context(1, run_config(tiny_encrypted.data, dp="none"))
    assert_same_replies(plain_replies(tiny_data), replies_of(client_app, context))


def test_under_flwr_run_no_key_or_a_wrong_key_is_refused_clearly(tiny_encrypted, monkeypatch):
    context = node_context(0, run_config(tiny_encrypted.data, dp="none"))
    monkeypatch.delenv(ENCRYPTION_KEY_ENV, raising=False)
    with pytest.raises(ConfigError, match="holds encrypted prepared data; pass"):
        client_app(train_instruction(start_weights(), 1), context)
    monkeypatch.setenv(ENCRYPTION_KEY_ENV, Fernet.generate_key().decode())
    with pytest.raises(ConfigError, match=r"does not decrypt .*: wrong key for this prepared data"):
        client_app(evaluate_instruction(start_weights(), 1), context)


def test_the_key_travels_in_the_pickled_app_closure(tiny_data, tiny_encrypted, monkeypatch):
    """`fedmarket simulate` hands the key to its ClientApp, which Ray pickles (cloudpickle) to
    every actor with each message: the unpickled app opens the data with no key around."""
    monkeypatch.delenv(ENCRYPTION_KEY_ENV, raising=False)
    cfg = RunConfig.from_mapping(run_config(tiny_encrypted.data, dp="none"))
    fernet = prepared_data_fernet(tiny_encrypted.data, tiny_encrypted.key_file)
    shipped = cloudpickle.loads(cloudpickle.dumps(make_client_app(cfg, fernet=fernet)))
    assert_same_replies(plain_replies(tiny_data), replies_of(shipped, node_context(1, {})))


def test_the_client_trains_on_the_threads_its_actor_is_given(tiny_data, monkeypatch):
    """simulate gives each actor $FEDMARKET_THREADS from --client-cpus; the ClientApp sets
    torch to it before it trains or evaluates (torch's threads are restored by the fixture)."""
    seen: list[int] = []
    real = RetailerClient.evaluate

    def evaluate(self, weights):
        seen.append(torch.get_num_threads())
        return real(self, weights)

    monkeypatch.setattr(RetailerClient, "evaluate", evaluate)
    torch.set_num_threads(2)
    monkeypatch.setenv("FEDMARKET_THREADS", "1")
    client_app(evaluate_instruction(start_weights(), 1), node_context(0, run_config(tiny_data)))
    assert seen == [1]


def test_next_products_sends_no_private_table_and_keeps_it_for_the_next_round(tiny_data, tiny_raw):
    from fedmarket.recommend.data import model_inputs
    from server.app import initial_weights

    cfg = run_config(tiny_data, task="next-products", model="gru-ncf", dp="none")
    settings = RunConfig.from_mapping(cfg)
    manifest = json.loads((tiny_data / "manifest.json").read_text())
    weights = initial_weights(settings, *model_inputs(manifest, "next-products"))
    assert not any(k.startswith("products.") for k in weights)  # the server holds none
    context = node_context(1, cfg)
    reply = client_app(train_instruction(weights, 1), context)
    assert not reply.has_error()
    [arrays] = reply.content.array_records.values()
    sent = arrays.to_torch_state_dict()
    assert list(sent) == list(weights)  # exactly the shared part: no private-table key
    assert_nothing_per_customer(reply, tiny_data, tiny_raw, weights)
    kept = context.state["fedmarket-private"].to_torch_state_dict()
    assert list(kept) == ["products.weight"] and kept["products.weight"].abs().sum() > 0
    # round 2 starts from the kept table (it trains on), the reply is still shared-only
    reply = client_app(train_instruction(sent, 2), context)
    assert list(reply.content.array_records["arrays"].to_torch_state_dict()) == list(weights)
    again = context.state["fedmarket-private"].to_torch_state_dict()["products.weight"]
    assert not torch.equal(again, kept["products.weight"])
    metrics = client_app(evaluate_instruction(sent, 2), context).content["metrics"]
    assert 0.0 <= metrics["hr@10"] <= 1.0
