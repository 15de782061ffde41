"""Personalised models at one retailer: the budget they are charged to, and what they keep."""

import pytest
import torch

from clients.app import make_client_app
from fedmarket.config import RunConfig
from fedmarket.errors import BudgetExhaustedError, PrivacyError
from fedmarket.federated import personal
from fedmarket.federated.client import RetailerClient
from fedmarket.federated.client_state import PrivacyJournal, load_journal
from fedmarket.models import build_model
from fedmarket.privacy import accounting
from fedmarket.privacy.accounting import AccountantState
from tests.flower_helpers import node_context, train_instruction

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def settings(data_dir, **overrides) -> RunConfig:
    # batch-size above every partition: one Poisson step per epoch at q = 1 (closed-form RDP)
    values = {"data-dir": str(data_dir), "num-server-rounds": 2, "batch-size": 256, **overrides}
    return RunConfig.from_mapping(values)


def start(cfg: RunConfig, client: RetailerClient) -> dict[str, torch.Tensor]:
    return build_model(cfg.model, client.n_features, task=cfg.task, seed=cfg.seed).state_dict()


def rounds(client: RetailerClient, journal: PrivacyJournal, n: int) -> dict[str, torch.Tensor]:
    weights = start(client.cfg, client)
    for rnd in range(1, n + 1):
        weights = client.train_round(weights, rnd, journal).state_dict
    return weights


def test_client_epochs_add_the_personal_steps_to_the_budgets_plan():
    cfg = RunConfig.from_mapping({"num-server-rounds": 4, "local-epochs": 2, "personal-epochs": 3})
    assert cfg.client_epochs == cfg.total_epochs == 8
    assert cfg.replace(personalisation="fedper").client_epochs == 8  # its head trains in rounds
    assert cfg.replace(personalisation="finetune").client_epochs == 8 + 3
    assert cfg.replace(personalisation="ditto").client_epochs == 8 + 4 * 3


def test_the_fine_tune_is_charged_on_top_of_the_rounds_within_the_target(tiny_data):
    cfg = settings(tiny_data, personalisation="finetune")
    client = RetailerClient(cfg, tiny_data, 1)
    journal = PrivacyJournal()
    weights = rounds(client, journal, 2)
    after_rounds = accounting.epsilon(journal.latest(), client.privacy.delta)
    tuned = personal.train_personal(client, weights, journal, personal.PERSONAL_KEY)
    spent = journal.latest()
    # one step a round and one for the fine-tune, all at q = 1 with the calibrated noise
    assert spent.steps == 3 and {(q, s) for _, q, s in spent.history} == {(1.0, 3)}
    whole = AccountantState("rdp", ((spent.noise_multiplier, 1.0, 3),), spent.noise_multiplier)
    cumulative = accounting.epsilon(whole, client.privacy.delta)
    assert tuned.metrics["epsilon"] == pytest.approx(cumulative, rel=1e-9)
    assert after_rounds < cumulative <= cfg.target_epsilon
    # pinned: the noise is calibrated for 3 steps at epsilon 8; two of them spend 6.23
    assert after_rounds == pytest.approx(6.2278, abs=1e-3)
    assert cumulative == pytest.approx(7.998, abs=1e-3)
    assert not any(torch.equal(tuned.state_dict[k], weights[k]) for k in ("head.weight",))


def test_a_spent_budget_refuses_the_fine_tune_and_spends_nothing(tiny_data):
    """A run planned without personalisation spends its whole target in its rounds."""
    plain = settings(tiny_data)
    journal = PrivacyJournal()
    weights = rounds(RetailerClient(plain, tiny_data, 1), journal, 2)
    before = journal.to_dict()
    client = RetailerClient(plain.replace(personalisation="finetune"), tiny_data, 1)
    with pytest.raises(BudgetExhaustedError, match="budget exhausted") as info:
        personal.train_personal(client, weights, journal, personal.PERSONAL_KEY)
    assert isinstance(info.value, PrivacyError)
    assert journal.to_dict() == before


def test_ditto_keeps_a_personal_model_and_charges_both_trainings(tiny_data, tmp_path):
    cfg = settings(tiny_data, personalisation="ditto", **{"state-dir": str(tmp_path)})
    app = make_client_app(cfg)
    context = node_context(0)
    client = RetailerClient(cfg, tiny_data, 0)
    weights = start(cfg, client)
    reply = app(train_instruction(weights, 1), context)
    assert not reply.has_error()
    kept = personal.load_weights(str(tmp_path), 0, personal.DITTO)
    assert set(kept) == set(weights)
    sent = reply.content["arrays"].to_torch_state_dict()
    assert not torch.equal(kept["head.weight"], sent["head.weight"])  # two models
    journal = load_journal(None, str(tmp_path), 0)
    assert journal.latest().steps == 2  # the federated update and the personal step
    assert reply.content["metrics"]["epsilon"] == pytest.approx(
        accounting.epsilon(journal.latest(), client.privacy.delta)
    )


def test_fedper_sends_the_body_only_and_keeps_its_head(tiny_data, tmp_path):
    cfg = settings(tiny_data, personalisation="fedper", dp="none", **{"state-dir": str(tmp_path)})
    app = make_client_app(cfg)
    context = node_context(2)
    weights = start(cfg, RetailerClient(cfg, tiny_data, 2))
    reply = app(train_instruction(weights, 1), context)
    sent = reply.content["arrays"].to_torch_state_dict()
    assert set(sent) == {k for k in weights if not k.startswith("head.")}
    assert not any(k.startswith("head") for k in sent)
    head = personal.load_weights(str(tmp_path), 2, personal.HEAD)
    assert list(head) == ["head.weight", "head.bias"]
    assert not torch.equal(head["head.weight"], weights["head.weight"])  # trained, kept here
    stored = context.state["fedmarket-head"].to_torch_state_dict()
    assert all(torch.equal(stored[k], head[k]) for k in head)
    # the next round trains the global body with this head, not the global one
    reply = app(train_instruction(weights, 2), context)
    again = personal.load_weights(str(tmp_path), 2, personal.HEAD)
    assert not torch.equal(again["head.weight"], head["head.weight"])
    assert "head.weight" not in reply.content["arrays"]
