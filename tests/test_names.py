"""fedmarket.names: the closest names to a misspelt one, and the light lists of names."""

from __future__ import annotations

import pytest

from fedmarket import names
from fedmarket.config import DEFAULTS
from fedmarket.privacy import config as privacy_config


@pytest.mark.parametrize(
    ("name", "choices", "expected"),
    [
        ("simulat", ["simulate", "centralised", "baselines"], ["simulate"]),  # a typo
        ("lstn", names.MODELS, ["lstm"]),
        ("LSTM", names.MODELS, ["lstm"]),  # case
        ("rounds", DEFAULTS, ["num-server-rounds"]),  # a word of the choice
        ("--rounds", DEFAULTS, ["num-server-rounds"]),  # an option's dashes
        ("epsilon", DEFAULTS, ["target-epsilon"]),
        ("lr", DEFAULTS, ["learning-rate"]),  # initials
        ("bs", DEFAULTS, ["batch-size"]),
        ("noise", DEFAULTS, ["noise-multiplier", "central-noise-multiplier"]),
        ("data", DEFAULTS, ["data-dir", "delta"]),  # words first, then typos
        ("model", DEFAULTS, ["model"]),  # an exact name is its own answer
        ("transformer", names.MODELS, []),
        ("", names.MODELS, []),
        (3, names.MODELS, []),  # not a name at all
    ],
)
def test_closest(name, choices, expected):
    assert names.closest(name, choices) == expected


def test_did_you_mean_reads_as_the_start_of_a_sentence_or_is_empty():
    assert names.did_you_mean("lstn", names.MODELS) == "did you mean 'lstm'? "
    assert names.did_you_mean("noise", DEFAULTS) == (
        "did you mean 'noise-multiplier' or 'central-noise-multiplier'? "
    )
    assert names.did_you_mean("purchse", ["purchase", "purchase-count", "purchases"]) == (
        "did you mean 'purchase', 'purchases' or 'purchase-count'? "
    )
    assert names.did_you_mean("zzz", names.MODELS) == ""


def test_the_privacy_settings_check_the_same_accountants():
    assert privacy_config.ACCOUNTANTS is names.ACCOUNTANTS


def test_either_lists_the_names_offered():
    assert names.either(["a"]) == "'a'"
    assert names.either(["a", "b"]) == "'a' or 'b'"
    assert names.either(["a", "b", "c"]) == "'a', 'b' or 'c'"
