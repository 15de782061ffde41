"""`fedmarket centralised`: on encrypted prepared data (the same model as on the plain copy,
and a missing or wrong key as one error line before training or writing anything), and its
run settings (simulate's keys in --run-config, the old flags, and which wins)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

import fedmarket.centralised as centralised_module
from fedmarket.cli.centralised import (
    CENTRALISED_DEFAULTS,
    KEYS,
    centralised_settings,
    metric_rows,
)
from fedmarket.config import DEFAULTS, format_overrides
from fedmarket.data.protect.keys import ENCRYPTION_KEY_ENV
from fedmarket.errors import ConfigError
from tests.cli.output import cli, ok, one_error_line
from tests.conftest import EncryptedData, files_holding

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TRAIN = ["--model", "lstm", "--epochs", "1", "--batch-size", "128", "--seed", "3"]


def centralised(data: Path, out: Path, *options: object):
    return cli("centralised", "--data", data, "--out", out, *TRAIN, *options)


def scores(out: Path) -> dict:
    test = json.loads((out / "metrics.json").read_text())["test"]
    return {k: v for k, v in test.items() if isinstance(v, int | float)}


@pytest.mark.parametrize("source", ["file", "env"])
def test_encrypted_data_trains_the_same_model_as_its_plain_copy(
    tiny_data: Path,
    tiny_encrypted: EncryptedData,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    source: str,
) -> None:
    monkeypatch.delenv(ENCRYPTION_KEY_ENV, raising=False)
    ok(centralised(tiny_data, tmp_path / "plain"))
    options: list[object] = ["--encryption-key-file", tiny_encrypted.key_file]
    if source == "env":
        monkeypatch.setenv(ENCRYPTION_KEY_ENV, tiny_encrypted.key_text)
        options = []
    printed = ok(centralised(tiny_encrypted.data, tmp_path / "encrypted", *options))
    assert scores(tmp_path / "encrypted") == pytest.approx(scores(tmp_path / "plain"))
    secrets = tiny_encrypted.secret_forms()
    assert not files_holding(tmp_path / "encrypted", secrets)
    assert not any(s.decode("latin-1") in printed for s in secrets)


@pytest.mark.parametrize("key", [None, "wrong"])
def test_a_missing_or_wrong_key_is_one_error_line_and_nothing_is_written(
    tiny_encrypted: EncryptedData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str | None
) -> None:
    monkeypatch.delenv(ENCRYPTION_KEY_ENV, raising=False)
    if key == "wrong":
        monkeypatch.setenv(ENCRYPTION_KEY_ENV, Fernet.generate_key().decode())
    line = one_error_line(centralised(tiny_encrypted.data, tmp_path / "out"))
    expected = "holds encrypted prepared data; pass" if key is None else "does not decrypt"
    assert expected in line
    assert not (tmp_path / "out").exists()


# --- --run-config: simulate's keys, and which wins over the old flags ---------------------

SAME_SETTINGS = (
    "model='lstm' task='purchase' batch-size=128 learning-rate=0.01 dp='client' "
    "target-epsilon=4.0 max-grad-norm=0.5 delta=1e-6 accountant='prv' seed=3"
)
SAME_FLAGS = {
    "model": "lstm",
    "task": "purchase",
    "batch_size": 128,
    "lr": 0.01,
    "epsilon": 4.0,
    "max_grad_norm": 0.5,
    "delta": 1e-6,
    "accountant": "prv",
    "seed": 3,
}


def test_run_config_and_flags_give_the_same_settings() -> None:
    by_config = centralised_settings(SAME_SETTINGS, {})
    assert by_config == centralised_settings("", SAME_FLAGS)
    assert by_config.privacy(1000) == centralised_settings("", SAME_FLAGS).privacy(1000)
    assert (by_config.model, by_config.batch_size, by_config.dp) == ("lstm", 128, "client")


def test_the_defaults_are_this_commands_own() -> None:
    """No DP and the pooled batch of 256, as before --run-config existed."""
    cfg = centralised_settings("", {})
    assert (cfg.dp, cfg.batch_size, cfg.model, cfg.learning_rate) == (
        "none",
        256,
        "cnn-lstm",
        0.003,
    )
    assert cfg.privacy(1000) is None


@pytest.mark.parametrize(
    ("run_config", "flags", "expected"),
    [
        # a flag given on the command line wins over --run-config
        ("model='gru' seed=1", {"model": "lstm"}, {"model": "lstm", "seed": 1}),
        ("target-epsilon=4.0", {"epsilon": 2.0}, {"target_epsilon": 2.0, "dp": "client"}),
        # --noise-multiplier alone is fixed noise, even over a run config's budget
        (
            "target-epsilon=4.0",
            {"noise_multiplier": 1.1},
            {"target_epsilon": 0.0, "noise_multiplier": 1.1, "dp": "client"},
        ),
        # a DP setting turns DP-SGD on, as the flags always did ...
        ("target-epsilon=2.0", {}, {"dp": "client", "target_epsilon": 2.0}),
        ("dp='client'", {}, {"dp": "client", "target_epsilon": 8.0}),
        # ... unless DP is turned off explicitly
        ("dp='none' target-epsilon=2.0", {}, {"dp": "none"}),
        ("target-epsilon=0.0 noise-multiplier=1.3", {}, {"dp": "client", "noise_multiplier": 1.3}),
        (
            "task='purchase-count' count-loss='poisson'",
            {"count_loss": "negative-binomial"},
            {"count_loss": "negative-binomial"},
        ),
    ],
)
def test_which_setting_wins(run_config: str, flags: dict, expected: dict) -> None:
    cfg = centralised_settings(run_config, flags)
    assert {k: getattr(cfg, k) for k in expected} == expected


@pytest.mark.parametrize(
    ("run_config", "flags", "message"),
    [
        ("model=lstm", {}, "model=lstm: a string must be quoted, as flwr reads TOML: model='lstm'"),
        ("epsilon=4", {}, "unknown key 'epsilon'; did you mean 'target-epsilon'? centralised"),
        ("num-server-rounds=5", {}, "num-server-rounds is a setting of a federated run"),
        ("dp='central'", {}, "dp='central' is Flower's server-side DP"),
        ("model='lstn'", {}, "model 'lstn' is unknown; did you mean 'lstm'?"),
        ("", {"epsilon": 4.0, "noise_multiplier": 1.0}, "--epsilon and --noise-multiplier"),
        ("", {"model": "lstn"}, "model 'lstn' is unknown; did you mean 'lstm'?"),
    ],
)
def test_bad_settings_say_what_and_how_to_fix(run_config: str, flags: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        centralised_settings(run_config, flags)
    assert message in str(info.value)


def test_flag_defaults_lose_to_run_config_and_given_flags_win(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the command line: only a flag the user typed counts as given."""
    seen: dict = {}

    def capture(data: Path, **kwargs: object) -> None:
        seen.update(kwargs)
        raise ConfigError("stop here")

    monkeypatch.setattr(centralised_module, "run_centralised", capture)
    args = ["centralised", "--data", tiny_data, "--out", tmp_path / "o"]
    one_error_line(cli(*args, "--run-config", "batch-size=100 model='gru' seed=4", "--seed", "0"))
    train_cfg = seen["train_cfg"]
    assert (train_cfg.batch_size, train_cfg.seed, seen["model"]) == (100, 0, "gru")
    assert seen["privacy"] is None


def test_help_lists_the_settings_it_reads_and_which_wins() -> None:
    text = ok(cli("centralised", "--help", env={"COLUMNS": "200"}))
    entries = dict([*line.split(maxsplit=1), ""][:2] for line in text.splitlines() if line.strip())
    defaults = {**DEFAULTS, **CENTRALISED_DEFAULTS}
    for key in KEYS:
        assert entries.get(format_overrides({key: defaults[key]}), "").strip(), key
    assert "num-server-rounds=3" not in entries
    assert "wins over the same setting in --run-config" in " ".join(text.split())


def test_run_config_trains_the_same_model_as_the_flags(tiny_data: Path, tmp_path: Path) -> None:
    def run(out: Path, *options: object) -> None:
        ok(cli("centralised", "--data", tiny_data, "--out", out, "--epochs", "1", *options))

    run(tmp_path / "flags", "--model", "lstm", "--batch-size", 128, "--epsilon", 8, "--seed", 3)
    same = "model='lstm' batch-size=128 target-epsilon=8.0 seed=3"
    run(tmp_path / "config", "--run-config", same)
    by_flags = json.loads((tmp_path / "flags" / "metrics.json").read_text())
    by_config = json.loads((tmp_path / "config" / "metrics.json").read_text())
    assert scores(tmp_path / "config") == scores(tmp_path / "flags")
    assert by_config["epsilon"] == by_flags["epsilon"] and by_config["epsilon"] is not None


def test_negative_binomial_count_loss_trains_and_saves_its_dispersion(
    tiny_data: Path, tmp_path: Path
) -> None:
    import torch

    out = tmp_path / "nb"
    options = ("--task", "purchase-count", "--count-loss", "negative-binomial", "--epsilon", 8)
    ok(cli("centralised", "--data", tiny_data, "--out", out, "--epochs", "1", *options))
    saved = torch.load(out / "model.pt", weights_only=False)
    assert saved["hparams"] == {"count_loss": "negative-binomial"}
    assert "dispersion.log_alpha.weight" in saved["state_dict"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["rmse"] >= 0 and metrics["epsilon"] > 0


def test_threads_option_sets_torch_threads_while_training(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--threads wins over $FEDMARKET_THREADS and holds during training; metrics.json and
    the console say how many (torch's threads are restored by one_torch_thread)."""
    import torch

    seen: list[int] = []
    real_fit = centralised_module.fit

    def fit(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(centralised_module, "fit", fit)
    monkeypatch.setenv("FEDMARKET_THREADS", "2")
    torch.set_num_threads(2)
    printed = ok(centralised(tiny_data, tmp_path / "out", "--threads", "1"))
    assert seen == [1]
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["threads"] == 1
    assert "torch: 1 thread (" in printed and "--threads)" in printed


@pytest.mark.parametrize(("option", "env"), [("0", None), (None, "many")])
def test_a_bad_thread_count_is_one_error_line_and_nothing_is_written(
    tiny_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    option: str | None,
    env: str | None,
) -> None:
    if env is not None:
        monkeypatch.setenv("FEDMARKET_THREADS", env)
    options = ["--threads", option] if option is not None else []
    line = one_error_line(centralised(tiny_data, tmp_path / "out", *options))
    assert ("--threads" if option else "$FEDMARKET_THREADS") in line
    assert "whole number >= 1" in line
    assert not (tmp_path / "out").exists()


def test_metric_rows_put_each_interval_next_to_its_metric() -> None:
    test = {
        "roc_auc": 0.8123,
        "roc_auc_low": 0.7912,
        "roc_auc_high": 0.8334,
        "pr_auc": float("nan"),
        "pr_auc_low": float("nan"),
        "pr_auc_high": float("nan"),
        "log_loss": 0.31234,
        "n": 1200,
        "n_positive": 150,
        "lift_table": [],
    }
    assert metric_rows(test) == [
        ("roc_auc", "0.812 (0.791-0.833)"),
        ("pr_auc", "n/a"),
        ("log_loss", "0.3123"),
        ("n", "1,200"),
        ("n_positive", "150"),
    ]


def test_the_console_shows_intervals_and_warns_on_a_small_test_set(
    tiny_data: Path, tmp_path: Path
) -> None:
    printed = " ".join(ok(centralised(tiny_data, tmp_path / "out")).split())
    test = json.loads((tmp_path / "out" / "metrics.json").read_text())["test"]
    shown = f"{test['roc_auc']:.3f} ({test['roc_auc_low']:.3f}-{test['roc_auc_high']:.3f})"
    assert f"roc_auc │ {shown} │" in printed and "roc_auc_low" not in printed
    small = min(test["n_positive"], test["n_negative"]) < 30
    assert ("Caution: the test set has only" in printed) == small
