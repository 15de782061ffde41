"""`fedmarket baselines`: classical and sequence models read encrypted data; each finished
model is on disk before the next starts; unknown names are refused before any training."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

import fedmarket.centralised as centralised_module
from fedmarket.baselines import model_names
from fedmarket.data.protect.keys import ENCRYPTION_KEY_ENV
from fedmarket.errors import DataError
from fedmarket.generative.rows import GENERATIVE_MODELS
from tests.cli.output import cli, ok, one_error_line, plain
from tests.conftest import EncryptedData

pytestmark = pytest.mark.usefixtures("one_torch_thread")

OPTIONS = ["--sequence-models", "lstm", "--epochs", "1", "--seed", "2"]


def baselines(data: Path, out: Path, *options: object):
    return cli("baselines", "--data", data, "--out", out, *OPTIONS, *options)


def results(out: Path) -> dict:
    """Each model's metrics, without its timing."""
    rows = json.loads((out / "baselines.json").read_text())
    return {
        r["model"]: {k: v for k, v in r.items() if k not in ("fit_seconds", "notes")} for r in rows
    }


def test_baselines_read_encrypted_data(
    tiny_data: Path, tiny_encrypted: EncryptedData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENCRYPTION_KEY_ENV, raising=False)
    line = one_error_line(baselines(tiny_encrypted.data, tmp_path / "refused"))
    assert "holds encrypted prepared data" in line and not (tmp_path / "refused").exists()
    ok(baselines(tiny_data, tmp_path / "plain"))
    key = ["--encryption-key-file", tiny_encrypted.key_file]
    ok(baselines(tiny_encrypted.data, tmp_path / "encrypted", *key))
    plain, encrypted = results(tmp_path / "plain"), results(tmp_path / "encrypted")
    assert "lstm" in encrypted and len(encrypted) > 1  # the sequence model and the classical ones
    assert encrypted == plain


def test_each_model_is_on_disk_as_it_finishes(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A later model that fails (or a run that is stopped) keeps the rows before it."""
    real = centralised_module.run_centralised

    def fail_gru(data: Path, *, model: str, **kwargs: object):
        if model == "gru":
            on_disk = read_csv(tmp_path / "out")
            assert on_disk[-1] == "lstm", "lstm was not written before gru started"
            raise DataError("gru broke")
        return real(data, model=model, **kwargs)

    monkeypatch.setattr(centralised_module, "run_centralised", fail_gru)
    result = cli(
        "baselines",
        *("--data", tiny_data, "--out", tmp_path / "out", "--epochs", 1),
        *("--sequence-models", "lstm,gru"),
    )
    assert one_error_line(result) == "error: gru broke"
    models = read_csv(tmp_path / "out")
    assert models[-1] == "lstm" and set(model_names("purchase")) <= set(models)
    # the GAN rows, then the customer-base anchors, pooled then federated
    assert models[len(model_names("purchase")) : -1] == [
        *GENERATIVE_MODELS,
        "bg-nbd",
        "bg-nbd federated",
        "pareto-nbd",
        "pareto-nbd federated",
        "logistic-regression + bg-nbd",
    ]
    assert [r["model"] for r in json.loads((tmp_path / "out" / "baselines.json").read_text())] == (
        models
    )
    assert f"kept {len(models)} finished model(s)" in plain(result)
    assert not list((tmp_path / "out").glob("*.tmp"))


def read_csv(out: Path) -> list[str]:
    with open(out / "baselines.csv", newline="") as handle:
        return [row["model"] for row in csv.DictReader(handle)]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            ["--sequence-models", "lstm,grue"],
            "error: --sequence-models: unknown model 'grue'; did you mean 'gru'? known: ",
        ),
        (
            ["--task", "purchases"],
            "error: --task: unknown task 'purchases'; did you mean 'purchase' or 'purchase-count'?",
        ),
        (
            ["--task", "chrun"],
            "error: --task: unknown task 'chrun'; did you mean 'churn'",
        ),
        (["--gan-epochs", "0"], "error: --gan-epochs must be a positive integer, got 0"),
        (
            ["--generative-models", "ssgan,ssgan-sq"],
            "error: --generative-models: unknown generative model 'ssgan-sq'; did you mean "
            "'ssgan-seq'",
        ),
        (
            ["--generative-models", "ssgan-seq-dp"],
            "error: --generative-models: generative model 'ssgan-seq-dp' is not chosen by name",
        ),
        (["--gan-epsilon", "-1"], "error: --gan-epsilon must be a positive finite number"),
        (
            ["--task", "purchase-count", "--count-loss", "negbin"],
            "error: --count-loss: count-loss 'negbin' is unknown; known: poisson, negative-bin",
        ),
        (
            ["--count-loss", "negative-binomial"],
            "error: --count-loss: count-loss='negative-binomial' is the loss of task "
            "'purchase-count', and task is 'purchase'",
        ),
    ],
)
def test_an_unknown_name_is_refused_before_anything_is_trained(
    tiny_data: Path, tmp_path: Path, options: list[str], message: str
) -> None:
    line = one_error_line(cli("baselines", "--data", tiny_data, "--out", tmp_path / "o", *options))
    assert line.startswith(message), line
    assert not (tmp_path / "o").exists()


def test_churn_table_with_the_gan_rows(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "churn"
    printed = ok(
        cli(
            "baselines", "--data", tiny_data, "--out", out, "--task", "churn",
            "--sequence-models", "", "--no-anchors", "--gan-epochs", "2",
            "--seed", "1",
        )
    )  # fmt: skip
    assert read_csv(out) == [*model_names("churn"), *GENERATIVE_MODELS]
    rows = {r["model"]: r for r in json.loads((out / "baselines.json").read_text())}
    rate = rows["ssgan"]["metrics"]["positive_rate"]
    assert rate > 0.5  # most customers of the tiny data buy nothing in the horizon
    assert f"base rate {rate:.1%} on the test customers" in " ".join(printed.split())


def test_gan_rows_by_name_and_their_dp_twins(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "picked"
    ok(
        cli(
            "baselines", "--data", tiny_data, "--out", out, "--task", "churn",
            "--sequence-models", "", "--no-anchors", "--gan-epochs", "1",
            "--generative-models", "ssgan-seq,ssgan", "--gan-epsilon", "8",
        )
    )  # fmt: skip
    gans = read_csv(out)[len(model_names("churn")) :]
    assert gans == ["ssgan-seq", "ssgan", "ssgan-seq-dp", "ssgan-dp"]
    rows = {r["model"]: r for r in json.loads((out / "baselines.json").read_text())}
    assert 0 < rows["ssgan-seq-dp"]["metrics"]["epsilon"] <= 8
