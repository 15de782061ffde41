import math
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from fedmarket.config import DEFAULTS, SETTINGS_HELP, RunConfig, format_overrides, parse_overrides
from fedmarket.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"


def test_pyproject_app_config_equals_defaults_exactly():
    table = tomllib.loads(PYPROJECT.read_text())["tool"]["flwr"]["app"]["config"]
    assert table == DEFAULTS
    assert list(table) == list(DEFAULTS)  # same order, so a reader can diff them by eye
    # == treats 3 and 3.0 alike; flwr hands the apps the TOML types, so they must match too
    assert {k: type(v) for k, v in table.items()} == {k: type(v) for k, v in DEFAULTS.items()}


def test_empty_mapping_gives_the_defaults():
    cfg = RunConfig.from_mapping({})
    assert cfg.to_flower() == DEFAULTS
    assert (cfg.num_server_rounds, cfg.model, cfg.dp, cfg.target_epsilon) == (
        3,
        "cnn-lstm",
        "client",
        8.0,
    )


def test_overrides_are_applied_and_ints_widen_to_float():
    cfg = RunConfig.from_mapping({"num-server-rounds": 5, "fraction-train": 1, "model": "gru"})
    assert (cfg.num_server_rounds, cfg.model) == (5, "gru")
    assert cfg.fraction_train == 1.0 and type(cfg.fraction_train) is float


def test_replace_revalidates_and_takes_either_spelling():
    cfg = RunConfig.from_mapping({})
    assert cfg.replace(num_server_rounds=7).num_server_rounds == 7
    assert cfg.replace(**{"local-epochs": 2}).local_epochs == 2
    with pytest.raises(ConfigError, match="num-server-rounds"):
        cfg.replace(num_server_rounds=0)


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"num-rounds": 3}, "num-rounds"),  # unknown key
        ({"num-server-rounds": "3"}, "num-server-rounds"),  # a string where an int belongs
        ({"num-server-rounds": True}, "num-server-rounds"),  # bool is not an int here
        ({"num-server-rounds": 2.0}, "num-server-rounds"),  # nor is a float
        ({"learning-rate": "0.1"}, "learning-rate"),
        ({"learning-rate": math.nan}, "learning-rate"),
        ({"num-server-rounds": 0}, "num-server-rounds"),
        ({"fraction-train": 0.0}, "fraction-train"),
        ({"personal-epochs": 0}, "personal-epochs"),
        ({"ditto-lambda": -0.1}, "ditto-lambda"),
        ({"fraction-train": 1.5}, "fraction-train"),
        ({"fraction-evaluate": -0.1}, "fraction-evaluate"),
        ({"evaluate-every": 0}, "evaluate-every"),
        ({"fraction-evaluate": 1.5}, "fraction-evaluate"),
        ({"model": "transformer"}, "model"),
        ({"task": "retention"}, "task"),
        ({"strategy": "fedsgd"}, "strategy"),
        ({"dp": "local"}, "dp"),
        ({"accountant": "gdp"}, "accountant"),
        ({"trim-beta": 0.5}, "trim-beta"),
        ({"delta": -1e-5}, "delta"),
        ({"delta": 1.0}, "delta"),
        ({"batch-size": 0}, "batch-size"),
        ({"learning-rate": 0.0}, "learning-rate"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_values_raise_config_error_naming_the_key(values, key):
    with pytest.raises(ConfigError) as info:
        RunConfig.from_mapping(values)
    assert key in str(info.value)


def test_client_dp_without_budget_or_noise_is_refused():
    with pytest.raises(ConfigError) as info:
        RunConfig.from_mapping({"dp": "client", "target-epsilon": 0.0, "noise-multiplier": 0.0})
    message = str(info.value)
    assert "target-epsilon" in message and "noise-multiplier" in message
    # either one alone is a valid setting, and without DP neither is needed
    assert RunConfig.from_mapping({"target-epsilon": 0.0, "noise-multiplier": 1.1}).dp == "client"
    assert RunConfig.from_mapping({"dp": "none", "target-epsilon": 0.0}).dp == "none"


def test_unknown_key_message_lists_the_known_keys():
    with pytest.raises(ConfigError, match=r"known keys:.*num-server-rounds"):
        RunConfig.from_mapping({"rounds": 3})


@pytest.mark.parametrize(
    ("key", "meant"),
    [
        ("num-rounds", "num-server-rounds"),  # a typo
        ("rounds", "num-server-rounds"),  # a word of the key
        ("epsilon", "target-epsilon"),
        ("lr", "learning-rate"),  # its initials
        ("local_epochs", "local-epochs"),  # snake_case
    ],
)
def test_an_unknown_key_names_the_key_it_most_likely_meant(key, meant):
    with pytest.raises(ConfigError) as info:
        RunConfig.from_mapping({key: 3})
    assert str(info.value).startswith(
        f"run config: unknown key {key!r}; did you mean {meant!r}? known keys: "
    )


def test_several_unknown_keys_each_get_their_suggestion():
    with pytest.raises(ConfigError) as info:
        RunConfig.from_mapping({"num-rounds": 3, "zzz": 1}, where="--run-config")
    assert str(info.value).startswith(
        "--run-config: unknown keys 'num-rounds' (did you mean 'num-server-rounds'?), 'zzz'; "
        "known keys: "
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"model": "lstn"}, "model 'lstn' is unknown; did you mean 'lstm'? known: cnn-lstm,"),
        ({"task": "purchse"}, "task 'purchse' is unknown; did you mean 'purchase'"),
        ({"dp": "clients"}, "dp 'clients' is unknown; did you mean 'client'? known: none,"),
        ({"strategy": "fedprx"}, "unknown strategy 'fedprx'; did you mean 'fedprox'?"),
        ({"accountant": "rpd"}, "accountant 'rpd' is unknown; did you mean 'rdp'?"),
        (
            {"personalisation": "fedprer"},
            "personalisation 'fedprer' is unknown; did you mean 'fedper'? known: none, "
            "finetune, fedper, ditto",
        ),
    ],
)
def test_an_unknown_name_is_answered_with_the_closest_names(values, message):
    with pytest.raises(ConfigError) as info:
        RunConfig.from_mapping(values, where="--run-config")
    assert str(info.value).startswith(f"--run-config: {message}")


def test_a_name_close_to_nothing_gets_no_guess():
    with pytest.raises(ConfigError) as info:
        RunConfig.from_mapping({"model": "transformer"})
    assert "did you mean" not in str(info.value)
    assert str(info.value) == (
        "run config: model 'transformer' is unknown; known: cnn-lstm, lstm, gru, rnn, mlp, gru-ncf"
    )


def test_reading_and_checking_a_run_config_imports_no_torch():
    """The CLI checks --run-config before it imports the experiments; that is only fast if
    this module, its checks and the names they use stay free of torch and flwr."""
    code = (
        "import sys\n"
        "from fedmarket.config import RunConfig, parse_overrides\n"
        "RunConfig.from_mapping(parse_overrides(\"model='gru' task='purchase-count'\"))\n"
        "try:\n"
        "    RunConfig.from_mapping({'model': 'lstn'})\n"
        "except ValueError:\n"
        "    pass\n"
        "print(sorted(m for m in ('torch', 'flwr', 'ray', 'opacus') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_every_setting_has_a_line_of_help():
    assert list(SETTINGS_HELP) == list(DEFAULTS)
    assert all(text.strip() for text in SETTINGS_HELP.values())


def test_where_is_named_in_the_message():
    with pytest.raises(ConfigError, match=r"^/runs/x/config\.json: unknown"):
        RunConfig.from_mapping({"bogus": 1}, where="/runs/x/config.json")


def test_parse_overrides_reads_toml_values():
    parsed = parse_overrides(
        "num-server-rounds=5 model='gru' fraction-train=0.5 dp=\"none\" use-x=true "
        'out-dir="/tmp/ab"'
    )
    assert parsed == {
        "num-server-rounds": 5,
        "model": "gru",
        "fraction-train": 0.5,
        "dp": "none",
        "use-x": True,
        "out-dir": "/tmp/ab",
    }
    assert type(parsed["num-server-rounds"]) is int and type(parsed["fraction-train"]) is float
    assert parse_overrides("") == {}
    cfg = RunConfig.from_mapping(
        parse_overrides("num-server-rounds=4 dp='none' strategy='fedprox'")
    )
    assert (cfg.num_server_rounds, cfg.dp, cfg.strategy) == (4, "none", "fedprox")


@pytest.mark.parametrize(
    ("text", "fix"),
    [
        ("model=lstm", "model='lstm'"),
        ("num-server-rounds=2 dp=none", "dp='none'"),
        ("out-dir=/tmp/run", "out-dir='/tmp/run'"),
    ],
)
def test_a_bare_word_is_refused_with_the_quoted_form(text, fix):
    """flwr reads the values as TOML, where a bare word is no value: fedmarket refuses it the
    same way rather than guess, and shows the spelling both accept."""
    bare = fix.replace("'", "")
    with pytest.raises(ConfigError) as info:
        parse_overrides(text)
    assert str(info.value) == (
        f"--run-config: {bare}: a string must be quoted, as flwr reads TOML: {fix}"
    )
    assert parse_overrides(fix) == tomllib.loads(fix.replace("=", " = ", 1))


@pytest.mark.parametrize("text", ["model='lstm", "seed=", "model=\"lstm'"])
def test_a_value_that_is_not_toml_says_how_to_write_one(text):
    with pytest.raises(ConfigError, match=r"is not a TOML value: use a number, true or false"):
        parse_overrides(text)


def test_format_overrides_writes_what_parse_overrides_reads():
    values = {"model": "lstm", "num-server-rounds": 5, "learning-rate": 0.01, "use-x": False}
    assert parse_overrides(format_overrides(values)) == values


@pytest.mark.parametrize("text", ["novalue", "=3", "rounds=3 novalue"])
def test_parse_overrides_rejects_items_without_key_and_value(text):
    with pytest.raises(ConfigError, match="is not key=value"):
        parse_overrides(text)


def test_a_quoted_value_may_hold_spaces_as_under_flwr_run():
    """flwr's parser takes a quoted value whole; splitting on every space broke a run
    directory named with a space into two items, neither key=value."""
    text = "out-dir='runs/my run' model=\"gru\" num-server-rounds=3"
    assert parse_overrides(text) == {
        "out-dir": "runs/my run",
        "model": "gru",
        "num-server-rounds": 3,
    }
    values = {"out-dir": "runs/a b", "dp": "none", "seed": 7}
    assert parse_overrides(format_overrides(values)) == values


def test_a_noise_multiplier_beside_a_target_epsilon_is_refused():
    """target-epsilon defaults to 8, so noise-multiplier=1.1 alone used to be ignored in
    silence: the target calibrated its own noise."""
    with pytest.raises(ConfigError, match=r"add target-epsilon=0"):
        RunConfig.from_mapping({"noise-multiplier": 1.1})
    fixed = RunConfig.from_mapping({"noise-multiplier": 1.1, "target-epsilon": 0.0})
    assert fixed.privacy(1000).noise_multiplier == 1.1


def test_count_loss_is_checked_and_reaches_the_model_options():
    cfg = RunConfig.from_mapping({"task": "purchase-count", "count-loss": "negative-binomial"})
    assert cfg.model_options() == {"count_loss": "negative-binomial"}
    assert RunConfig.from_mapping({}).model_options() == {"count_loss": "poisson"}
    with pytest.raises(ConfigError, match=r"count-loss 'negbin' is unknown.*poisson"):
        RunConfig.from_mapping({"task": "purchase-count", "count-loss": "negbin"})
    with pytest.raises(ConfigError, match=r"count-loss='negative-binomial'.*task is 'purchase'"):
        RunConfig.from_mapping({"count-loss": "negative-binomial"})


def test_the_recommender_task_and_model_go_together():
    with pytest.raises(ConfigError, match="set both or neither"):
        RunConfig.from_mapping({"task": "next-categories"})
    with pytest.raises(ConfigError, match="set both or neither"):
        RunConfig.from_mapping({"model": "gru-ncf"})
    cfg = RunConfig.from_mapping({"task": "next-categories", "model": "gru-ncf"})
    assert (cfg.task, cfg.model) == ("next-categories", "gru-ncf")


def test_personalisation_is_refused_for_the_recommender():
    with pytest.raises(ConfigError, match="personalisation='ditto' scores each retailer's"):
        RunConfig.from_mapping(
            {"task": "next-categories", "model": "gru-ncf", "personalisation": "ditto"}
        )
