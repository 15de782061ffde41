import json

import pytest
import torch
from flwr.app import ConfigRecord

from fedmarket.errors import PrivacyError
from fedmarket.federated.client_state import (
    PrivacyJournal,
    load_accountant,
    save_accountant,
    state_file,
    update_digest,
)
from fedmarket.privacy.accounting import AccountantState

ROUND_2 = AccountantState("rdp", ((0.802001953125, 0.2, 10),), 0.802001953125)
ROUND_1 = AccountantState("rdp", ((0.802001953125, 0.2, 5),), 0.802001953125)


def record(state: AccountantState) -> ConfigRecord:
    return ConfigRecord({"accountant": json.dumps(state.to_dict())})


def test_save_then_load_round_trips_exactly(tmp_path):
    state = AccountantState("rdp", ((1.1, 0.1, 20), (0.9, 0.125, 7)), None)
    text = save_accountant(state, str(tmp_path), 3)
    path = tmp_path / "client-3" / "accountant.json"
    assert state_file(str(tmp_path), 3) == path
    assert json.loads(path.read_text()) == json.loads(text)
    assert json.loads(text)["spent"] == state.to_dict()  # a journal that starts from it
    assert load_accountant(None, str(tmp_path), 3) == state
    assert not list(path.parent.glob("*.tmp"))  # written via a temporary file, then renamed


def test_each_client_has_its_own_file(tmp_path):
    save_accountant(ROUND_1, str(tmp_path), 0)
    save_accountant(ROUND_2, str(tmp_path), 1)
    assert load_accountant(None, str(tmp_path), 0) == ROUND_1
    assert load_accountant(None, str(tmp_path), 1) == ROUND_2
    assert load_accountant(None, str(tmp_path), 2) is None


def test_file_wins_over_the_context_record(tmp_path):
    # a resumed run: Flower's context.state is empty or stale, the retailer's file is current
    save_accountant(ROUND_2, str(tmp_path), 0)
    assert load_accountant(record(ROUND_1), str(tmp_path), 0) == ROUND_2


def test_context_record_is_used_without_a_file_or_state_dir(tmp_path):
    assert load_accountant(record(ROUND_1), str(tmp_path), 0) == ROUND_1  # no file yet
    assert load_accountant(record(ROUND_1), "", 0) == ROUND_1
    assert load_accountant(None, "", 0) is None
    assert load_accountant(ConfigRecord({"other": "x"}), "", 0) is None


def test_without_state_dir_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = save_accountant(ROUND_1, "", 0)
    assert PrivacyJournal.from_dict(json.loads(text)).latest() == ROUND_1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        json.dumps({"accountant": "rdp"}),  # no history
        json.dumps({"accountant": "rdp", "history": [[1.0, 0.1, -3]]}),
        json.dumps({"accountant": "zcdp", "history": []}),
    ],
)
def test_corrupted_file_raises_privacy_error_naming_it(tmp_path, content):
    path = state_file(str(tmp_path), 1)
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.raises(PrivacyError) as info:
        # even with a good record in context.state: guessing the spent epsilon is not safe
        load_accountant(record(ROUND_1), str(tmp_path), 1)
    assert str(path) in str(info.value)


# --- the journal: a replayed round is charged once, a different release on top -------------
STEP = (1.1, 0.1, 3)  # one round: 3 steps at noise 1.1, sample rate 0.1


def after(state, rounds=1):
    return (state or AccountantState("rdp", (), 1.1)).extended(STEP[0], STEP[1], STEP[2] * rounds)


def test_a_replay_that_releases_the_same_update_is_charged_once():
    journal = PrivacyJournal()
    one = journal.charge(1, None, after(None), "u1")
    two = journal.charge(2, one, after(one), "u2")
    assert two.steps == 6
    # the server resumes from round 1's commit and asks for round 2 again
    base = journal.base_for(2)
    assert base == one
    again = journal.charge(2, base, after(base), "u2")  # bit-identical update
    assert again == two and journal.latest().steps == 6


def test_a_replay_with_a_different_update_is_charged_on_top():
    journal = PrivacyJournal()
    one = journal.charge(1, None, after(None), "u1")
    journal.charge(2, one, after(one), "u2")
    base = journal.base_for(2)
    spent = journal.charge(2, base, after(base), "u2-other")  # e.g. nondeterministic kernels
    assert spent.steps == 9  # both releases of round 2 count
    assert journal.base_for(3) == spent and journal.latest() == spent
    # the first update again, then the second again: both were released already
    assert journal.charge(2, base, after(base), "u2").steps == 9
    assert journal.charge(2, base, after(base), "u2-other").steps == 9


def test_a_second_run_in_the_same_state_dir_adds_to_the_first():
    """Run A spends 3 rounds; run B (other updates) reuses round numbers 1-3: 6 rounds in all."""
    journal = PrivacyJournal()
    spent = None
    for rnd in (1, 2, 3):
        spent = journal.charge(rnd, journal.base_for(rnd), after(journal.base_for(rnd)), f"a{rnd}")
    assert spent.steps == 9
    for rnd in (1, 2, 3):
        base = journal.base_for(rnd)
        spent = journal.charge(rnd, base, after(base), f"b{rnd}")
    assert spent.steps == 18 and journal.latest() == spent


def test_the_journal_round_trips_and_reads_a_bare_state():
    journal = PrivacyJournal()
    one = journal.charge(1, None, after(None), "u1")
    journal.charge(2, one, after(one), "u2")
    back = PrivacyJournal.from_dict(json.loads(json.dumps(journal.to_dict())))
    assert back == journal
    bare = PrivacyJournal.from_dict(ROUND_1.to_dict())  # an accountant.json from before journals
    assert bare.latest() == ROUND_1 and bare.base_for(5) == ROUND_1


def test_update_digest_sees_every_bit():
    weights = {"a": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.zeros(0)}
    same = {k: v.clone() for k, v in weights.items()}
    assert update_digest(weights) == update_digest(same)
    same["a"][1, 2] = torch.nextafter(same["a"][1, 2], torch.tensor(100.0))
    assert update_digest(weights) != update_digest(same)
    assert update_digest(weights) != update_digest({"c": weights["a"], "b": weights["b"]})
