"""A customer table through the real typer app: `data prepare` with a kind=table mapping,
`data inspect`, `baselines` with the mlp next to the classical models, and a refusal as one
error line (fedmarket/cli/data.py, fedmarket/cli/baselines.py)."""

from __future__ import annotations

import base64
import csv
import hashlib
from pathlib import Path

import pandas as pd
import pytest

from fedmarket.data import store
from fedmarket.data.protect import keys
from tests.cli.output import cli, ok, one_error_line
from tests.data.test_table import marketing_table

pytestmark = pytest.mark.usefixtures("one_torch_thread")
MAPPING = "kind=table,customer=ID,label=Response,attributes=all,csv_delimiter=tab,format=csv"


@pytest.fixture
def campaign(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    key = base64.b64encode(hashlib.sha256(b"cli table key").digest()).decode()
    monkeypatch.setenv(keys.PSEUDONYM_KEY_ENV, key)
    marketing_table(300, 4).to_csv(tmp_path / "campaign.txt", sep="\t", index=False)
    return tmp_path / "campaign.txt"


def test_prepare_inspect_and_baselines(campaign: Path, tmp_path: Path) -> None:
    data = tmp_path / "prepared"
    out = ok(
        cli(
            "data", "prepare", "--raw", campaign, "--out", data,
            "--mapping", MAPPING + ",exclude=Email;Dt_Customer",
        )
    )  # fmt: skip
    flat = " ".join(out.split())
    n = len(store.read_manifest(data)["feature_names"])
    assert f"customer table, label 'Response' (binary), one step; {n} features: Year_Birth" in flat
    assert "dropped rows by" not in out and "k-anonymity" not in out
    assert store.read_manifest(data)["kind"] == "table"
    assert "customer table" in ok(cli("data", "inspect", data))
    result = tmp_path / "baselines"
    ok(
        cli(
            "baselines", "--data", data, "--out", result,
            "--sequence-models", "mlp", "--epochs", "2",
        )
    )  # fmt: skip
    with open(result / "baselines.csv") as handle:
        rows = {f"{r['model']}/{r['family']}": r for r in csv.DictReader(handle)}
    assert {"logistic-regression/classical", "mlp/classical", "mlp/sequence"} <= set(rows)
    assert float(rows["logistic-regression/classical"]["roc_auc"]) > 0.6


def test_an_identifier_column_is_one_error_line(campaign: Path, tmp_path: Path) -> None:
    line = one_error_line(
        cli("data", "prepare", "--raw", campaign, "--out", tmp_path / "x", "--mapping", MAPPING)
    )
    assert "column 'Email' looks like a direct identifier" in line
    assert "add it to exclude" in line
    assert not (tmp_path / "x").exists()


def test_attributes_join_event_data(campaign: Path, tmp_path: Path) -> None:
    from fedmarket.data.synth.generate import generate_retailers

    generate_retailers(tmp_path / "events", n_retailers=1, n_customers=60, days=42, seed=2)
    users = pd.read_parquet(tmp_path / "events" / "retailer_00" / "events.parquet")["user_id"]
    attrs = pd.DataFrame({"uid": users.unique(), "tier": "gold"})
    attrs.to_csv(tmp_path / "retailer_00.csv", index=False)
    window = ["--window-days", "28", "--step-days", "7", "--horizon-days", "7"]
    base = ["data", "prepare", "--raw", tmp_path / "events", "--out", tmp_path / "p", *window]
    line = one_error_line(cli(*base, "--attributes", tmp_path / "retailer_00.csv"))
    assert "--attributes and --attributes-mapping go together" in line
    mapping = "kind=table,customer=uid,categorical=tier"
    ok(cli(*base, "--attributes", tmp_path / "retailer_00.csv", "--attributes-mapping", mapping))
    m = store.read_manifest(tmp_path / "p")
    assert m["feature_names"][-1] == "static:tier=gold"
