"""fedmarket/baseline_suite.py: the rows `fedmarket baselines` and ``compare_baselines`` both
make, in order, with the front door's progress, lines and per-row callbacks."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

import fedmarket
from fedmarket.baseline_suite import (
    SuiteData,
    SuiteSettings,
    baseline_rows,
    check_names,
)
from fedmarket.baselines import ResultRow, model_names
from fedmarket.errors import ConfigError
from fedmarket.generative.ssgan import GANConfig
from fedmarket.threads import ThreadChoice
from tests.cli.output import cli, ok

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ANCHORS = [
    "bg-nbd",
    "bg-nbd federated",
    "pareto-nbd",
    "pareto-nbd federated",
    "logistic-regression + bg-nbd",
]


class Recorder:
    """A ``bars`` that notes each stage and its steps, and a ``say`` that notes the lines."""

    def __init__(self) -> None:
        self.stages: list[tuple[str, float | None, str]] = []
        self.steps: list[str | None] = []
        self.lines: list[str] = []

    @contextmanager
    def bars(self, description: str, total: float | None, *, unit: str):
        self.stages.append((description, total, unit))

        def advance(n: float = 1, description: str | None = None) -> None:
            self.steps.append(description)

        yield advance

    def say(self, line: str) -> None:
        self.lines.append(line)


def fake_runner(family: str, names: list[str], calls: list[tuple[str, dict]]):
    """A row runner that notes its arguments and makes a row per name, as the real ones do
    (each named to ``progress`` and handed to ``on_row`` as it finishes)."""

    def run(*args, progress=None, on_row=None, **kwargs):
        calls.append((family, kwargs))
        rows = []
        for name in names:
            progress(name)
            rows.append(ResultRow(name, family, {"roc_auc": 0.5}, 0.0))
            on_row(rows[-1])
        return rows

    return run


def test_each_runner_gets_the_settings_and_its_rows_come_in_order(
    tiny_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fedmarket.anchors
    import fedmarket.baselines
    import fedmarket.centralised
    import fedmarket.generative.rows

    calls: list[tuple[str, dict]] = []
    for module, name, family, rows in (
        (fedmarket.baselines, "run_classical_baselines", "classical", ["lr", "nb"]),
        (fedmarket.generative.rows, "run_generative_baselines", "generative", ["ssgan"]),
        (fedmarket.anchors, "run_manifest_anchors", "customer-base", ["bg-nbd"]),
    ):
        monkeypatch.setattr(module, name, fake_runner(family, rows, calls))

    def centralised(data, *, model, progress, **kwargs):
        calls.append((model, kwargs))
        progress(1)
        test = {"rmse": 1.0, "model": model}
        return SimpleNamespace(test=test, epochs_run=1, wall_s=0.0, test_scores=(None, [0.0]))

    monkeypatch.setattr(fedmarket.centralised, "run_centralised", centralised)
    seen, kept = Recorder(), []
    choice, gan = ThreadChoice(1, 2, "--threads"), GANConfig(epochs=1)
    settings = SuiteSettings(
        task="purchase-count", seed=4, classical=("lr", "nb"), gan=gan, gan_epsilon=2.0,
        anchor_epsilon=3.0, sequence_models=("lstm", "gru"), count_loss="negative-binomial",
        epochs=2, generative_models=("ssgan",),
    )  # fmt: skip
    rows = baseline_rows(
        SuiteData.load(tiny_data),
        settings,
        threads=choice,
        bars=seen.bars,
        say=seen.say,
        on_row=kept.append,
    )
    assert [r.model for r in rows] == ["lr", "nb", "ssgan", "bg-nbd", "lstm-nb", "gru-nb"]
    assert kept == rows  # each row handed on as it finished, none held back
    assert rows[-1].metrics == {"rmse": 1.0} and rows[-1].notes == "1 epochs"
    common = {"task": "purchase-count", "seed": 4}
    assert calls[:3] == [
        ("classical", {**common, "models": ("lr", "nb")}),
        ("generative", {**common, "models": ("ssgan",), "cfg": gan, "epsilon": 2.0}),
        ("customer-base", {**common, "epsilon": 3.0}),
    ]
    for _, kwargs in calls[3:]:
        assert kwargs["hparams"] == {"count_loss": "negative-binomial"}
        assert kwargs["threads"] is choice and kwargs["task"] == "purchase-count"
        assert (kwargs["train_cfg"].epochs, kwargs["train_cfg"].seed) == (2, 4)
    assert seen.stages == [
        ("classical baselines", None, "models"),
        ("generative baselines", None, "models"),
        ("customer-base anchors", None, "fits"),
        ("training lstm", 2, "epochs"),
        ("training gru", 2, "epochs"),
    ]
    assert seen.steps == ["lr", "nb", "ssgan", "bg-nbd", None, None]
    assert seen.lines == [choice.describe()]  # the threads shown are the threads used


def test_what_is_switched_off_is_neither_trained_nor_shown(tiny_data: Path) -> None:
    seen = Recorder()
    settings = SuiteSettings(classical=("naive-bayes",), generative=False, anchors=False)
    rows = baseline_rows(SuiteData.load(tiny_data), settings, bars=seen.bars, say=seen.say)
    assert [r.model for r in rows] == ["naive-bayes"]
    assert seen.stages == [("classical baselines", None, "models")] and seen.lines == []


def test_anchors_the_data_cannot_have_are_a_line_not_a_failure(tiny_data: Path) -> None:
    inputs = SuiteData.load(tiny_data)
    table = {k: v for k, v in inputs.manifest.items() if k != "window"}  # a customer table
    no_history = SuiteData(inputs.data, table, inputs.train_parts, inputs.test)
    from fedmarket.anchors import AnchorData

    reason = AnchorData.missing(no_history.manifest)
    assert reason and "no purchase history" in reason
    seen = Recorder()
    settings = SuiteSettings(classical=("naive-bayes",), generative=False)
    rows = baseline_rows(no_history, settings, bars=seen.bars, say=seen.say)
    assert [r.model for r in rows] == ["naive-bayes"]
    assert seen.lines == [f"customer-base anchors skipped: {reason}"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("purchases", ""), "--task: unknown task 'purchases'"),
        (("purchase", ["lstm", "grue"]), "--sequence-models: unknown model 'grue'"),
        (("purchase", "lstm", "negative-binomial"), "--count-loss: count-loss="),
    ],
)
def test_check_names_refuses_what_cannot_run(args: tuple, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_names(*args)


def test_check_names_reads_text_and_lists_alike() -> None:
    assert check_names("purchase", " lstm, gru ,") == check_names("purchase", ["lstm", "gru"])


def test_the_api_and_the_command_give_the_same_count_rows_under_the_count_loss(
    tiny_data: Path, tmp_path: Path
) -> None:
    """`fedmarket baselines` and ``compare_baselines`` with the same settings, a count task
    under --count-loss negative-binomial: the same rows and test scores, the sequence model
    trained under that loss in both (named lstm-nb)."""
    settings = {"task": "purchase-count", "count-loss": "negative-binomial", "epochs": 1}
    options = [f"--{k}={v}" for k, v in settings.items()]
    ok(cli("baselines", "--data", tiny_data, "--out", tmp_path / "cli", "--sequence-models",
           "lstm", "--gan-epochs", 1, "--no-anchors", *options))  # fmt: skip
    result = fedmarket.compare_baselines(
        data=tiny_data,
        out=tmp_path / "api",
        task="purchase-count",
        count_loss="negative-binomial",
        sequence_models="lstm",
        epochs=1,
        gan_epochs=1,
        anchors=False,  # the anchors' equality: tests/api/test_runs.py
        progress=False,
    )
    by_cli = pd.read_csv(tmp_path / "cli" / "baselines.csv").set_index("model")
    table = result.table.set_index("model")
    assert list(table.index) == list(by_cli.index)
    assert list(table.index) == [*model_names("purchase-count"), *_gans(), "lstm-nb"]
    assert not table.loc["lstm-nb"].isna()["rmse"]
    metrics = [c for c in table.columns if c not in ("fit_seconds", "notes")]
    pd.testing.assert_frame_equal(table[metrics], by_cli[metrics], check_dtype=False)
    scores = "baselines_test_scores.csv"
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "api" / scores), pd.read_csv(tmp_path / "cli" / scores)
    )


def _gans() -> list[str]:
    from fedmarket.generative.rows import GENERATIVE_MODELS

    return list(GENERATIVE_MODELS)


def test_params_name_the_settings_as_the_command_does() -> None:
    settings = SuiteSettings(
        task="churn", seed=3, gan=GANConfig(epochs=5), sequence_models=("lstm", "gru")
    )
    assert settings.params() == {
        "task": "churn",
        "count-loss": "poisson",
        "sequence-models": "lstm,gru",
        "anchors": True,
        "anchor-epsilon": None,
        "generative": True,
        "gan-epochs": 5,
        "gan-epsilon": None,
        "epochs": 20,
        "seed": 3,
    }
    picked = SuiteSettings(
        classical=("naive-bayes", "knn"), generative_models=("ssgan-seq", "ssgan")
    ).params()
    assert picked["classical"] == "naive-bayes,knn" and picked["gan-epochs"] is None
    assert picked["generative-models"] == "ssgan-seq,ssgan"


def test_the_gan_rows_chosen_by_name_are_the_ones_fitted(tiny_data: Path) -> None:
    settings = SuiteSettings(
        task="churn",
        classical=("naive-bayes",),
        generative_models=("ssgan-seq",),
        gan=GANConfig(epochs=1),
        anchors=False,
    )
    rows = baseline_rows(SuiteData.load(tiny_data), settings)
    assert [(r.model, r.family) for r in rows] == [
        ("naive-bayes", "classical"),
        ("ssgan-seq", "generative"),
    ]
    assert "the flattened event-feature sequence" in rows[1].notes
