import json

import pytest
from flwr.app import ConfigRecord

from fedmarket.errors import PrivacyError
from fedmarket.federated.client_state import load_accountant, save_accountant, state_file
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
    assert json.loads(path.read_text()) == json.loads(text) == state.to_dict()
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
    assert AccountantState.from_dict(json.loads(text)) == ROUND_1
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
