"""Registry: names, defaults, rejection of bad names and values, seeding without global state."""

from __future__ import annotations

import math

import pytest
import torch

from fedmarket import names
from fedmarket.errors import ConfigError
from fedmarket.models import MODEL_REGISTRY, available_models, build_model, model_hparams

F = 11


def test_available_models_lists_all_sorted() -> None:
    assert available_models() == ["cnn-lstm", "gru", "gru-ncf", "lstm", "mlp", "rnn"]
    assert all(MODEL_REGISTRY[name].description for name in available_models())


def test_unknown_model_names_the_known_ones() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown model 'x'; known: cnn-lstm, gru, gru-ncf, lstm, mlp, rnn"
    ):
        build_model("x", F)
    with pytest.raises(ConfigError, match=r"unknown model 'LSTM'; did you mean 'lstm'\?"):
        model_hparams("LSTM")


def test_the_registry_names_the_models_a_run_config_may_use() -> None:
    """fedmarket.names.MODELS is what the CLI checks --run-config against before it imports
    torch; it must name exactly the models this registry builds."""
    assert list(MODEL_REGISTRY) == list(names.MODELS)


def test_model_hparams_defaults_and_copy() -> None:
    lstm = model_hparams("lstm")
    assert lstm == {
        "hidden_size": 50,
        "num_layers": 2,
        "dropout": 0.2,
        "base_rate": None,
        "count_loss": "poisson",
    }
    assert model_hparams("cnn-lstm") == {
        "conv_layers": 2,
        "conv_channels": 32,
        "kernel_size": 3,
        "hidden_size": 50,
        "num_layers": 1,
        "dropout": 0.2,
        "base_rate": None,
        "count_loss": "poisson",
    }
    lstm["hidden_size"] = 1
    assert model_hparams("lstm")["hidden_size"] == 50


def test_unknown_hparam_is_named() -> None:
    with pytest.raises(ConfigError, match=r"'hiden_size'.*model 'lstm'.*allowed: base_rate"):
        build_model("lstm", F, hiden_size=8)
    with pytest.raises(ConfigError, match="'conv_channels'"):
        build_model("gru", F, conv_channels=8)


@pytest.mark.parametrize(
    ("hparams", "named"),
    [
        ({"hidden_size": 0}, "hidden_size"),
        ({"hidden_size": -3}, "hidden_size"),
        ({"hidden_size": 2.5}, "hidden_size"),
        ({"hidden_size": True}, "hidden_size"),
        ({"num_layers": 0}, "num_layers"),
        ({"dropout": 1.0}, "dropout"),
        ({"dropout": -0.1}, "dropout"),
        ({"dropout": "0.2"}, "dropout"),
        ({"base_rate": 0.0}, "base_rate"),
        ({"base_rate": 1.0}, "base_rate"),
    ],
)
def test_bad_values_are_named(hparams: dict, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        build_model("lstm", F, **hparams)


@pytest.mark.parametrize(
    ("hparams", "named"),
    [
        ({"kernel_size": 4}, "kernel_size"),
        ({"conv_channels": 0}, "conv_channels"),
        ({"conv_layers": -1}, "conv_layers"),
    ],
)
def test_bad_conv_values_are_named(hparams: dict, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        build_model("cnn-lstm", F, **hparams)


def test_bad_task_features_and_seed() -> None:
    known = "known tasks: purchase, purchase-count, churn, churn-inactive"
    with pytest.raises(ConfigError, match=f"unknown task 'retention'; {known}"):
        build_model("lstm", F, task="retention")
    with pytest.raises(ConfigError, match="n_features"):
        build_model("lstm", 0)
    with pytest.raises(ConfigError, match="seed"):
        build_model("lstm", F, seed=True)
    with pytest.raises(ConfigError, match="seed"):
        build_model("lstm", F, seed=-1)
    with pytest.raises(ConfigError, match=r"base_rate.*purchase-count"):
        build_model("lstm", F, task="purchase-count", base_rate=-2.0)


def test_overrides_reach_the_model() -> None:
    model = build_model("cnn-lstm", F, hidden_size=8, conv_channels=4, kernel_size=5)
    sd = model.state_dict()
    assert sd["conv.0.weight"].shape == (4, F, 5)
    assert sd["recurrent.layers.0.weight_ih_l0"].shape == (32, 4)
    assert sd["head.weight"].shape == (1, 8)
    assert model.hparams["kernel_size"] == 5


def test_head_bias_starts_at_the_base_rate() -> None:
    buy = build_model("rnn", F, base_rate=0.2, hidden_size=4)
    assert buy.head.bias.item() == pytest.approx(math.log(0.25))
    count = build_model("rnn", F, task="purchase-count", base_rate=3.0, hidden_size=4)
    assert count.head.bias.item() == pytest.approx(math.log(3.0))
    assert build_model("rnn", F, hidden_size=4).head.bias.item() == 0.0


@pytest.mark.parametrize("name", ["cnn-lstm", "gru", "lstm", "rnn"])
def test_seed_is_deterministic_and_leaves_global_rng_alone(name: str) -> None:
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = build_model(name, F, seed=7, hidden_size=8)
    assert torch.equal(torch.get_rng_state(), before)
    again = build_model(name, F, seed=7, hidden_size=8)
    dp = build_model(name, F, seed=7, hidden_size=8, dp=True)
    other = build_model(name, F, seed=8, hidden_size=8)
    for key, value in first.state_dict().items():
        assert torch.equal(value, again.state_dict()[key])
        assert torch.equal(value, dp.state_dict()[key])
    assert not torch.equal(first.head.weight, other.head.weight)


# Hand-computed with defaults, F = 11. A recurrent layer of hidden H on input I has
# g * H * (I + H) weights and 2 * g * H biases, g = 4 (LSTM), 3 (GRU), 1 (RNN); head H + 1.
PARAM_COUNTS = {
    "lstm": (4 * 50 * 61 + 400) + (4 * 50 * 100 + 400) + 51,  # 33051
    "gru": (3 * 50 * 61 + 300) + (3 * 50 * 100 + 300) + 51,  # 24801
    "rnn": (50 * 61 + 100) + (50 * 100 + 100) + 51,  # 8301
    # conv 11->32 and 32->32 (kernel 3), then LSTM(32 -> 50), head
    "cnn-lstm": (11 * 32 * 3 + 32) + (32 * 32 * 3 + 32) + (4 * 50 * 82 + 400) + 51,  # 21043
}


@pytest.mark.parametrize("dp", [False, True])
@pytest.mark.parametrize("name", ["cnn-lstm", "gru", "lstm", "rnn"])
def test_parameter_counts(name: str, dp: bool) -> None:
    model = build_model(name, F, dp=dp)
    assert sum(p.numel() for p in model.parameters()) == PARAM_COUNTS[name]


@pytest.mark.parametrize("name", ["cnn-lstm", "lstm", "gru", "rnn", "mlp"])
def test_the_head_is_the_final_layer_of_every_per_customer_model(name) -> None:
    from fedmarket.models import head_keys, split_head

    state = build_model(name, F, seed=0).state_dict()
    assert head_keys(name, state) == ["head.weight", "head.bias"]
    body, head = split_head(name, state)
    assert list(head) == ["head.weight", "head.bias"]
    assert list(body) == [k for k in state if not k.startswith("head.")]
    assert body and all(torch.equal(body[k], state[k]) for k in body)
    # the negative binomial's dispersion is an output layer too: it stays with the head
    counts = build_model(name, F, task="purchase-count", seed=0, count_loss="negative-binomial")
    assert set(head_keys(name, counts.state_dict())) == {
        "head.weight",
        "head.bias",
        "dispersion.log_alpha.weight",
    }


def test_a_head_split_refuses_a_model_without_head_or_another_models_weights() -> None:
    from fedmarket.models import head_keys

    with pytest.raises(ConfigError, match="model 'gru-ncf' has no head"):
        head_keys("gru-ncf", ["a.weight"])
    with pytest.raises(ConfigError, match="do not split into a body and a head"):
        head_keys("gru", ["encoder.weight", "decoder.weight"])
