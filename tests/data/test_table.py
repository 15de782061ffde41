"""`fedmarket data prepare` of a customer table (fedmarket/data/table.py), end to end on
tables written into tmp_path: the arrays against the raw rows (pseudonyms recomputed with
``hmac``, encodings with the manifest's statistics), the manifest, splits, retailers, refusals,
and the classical baselines on the result."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fedmarket.baselines import run_classical_baselines
from fedmarket.data import store
from fedmarket.data.ingest.mapping import parse_mapping_option
from fedmarket.data.prepare import PrepareOptions, PrepareResult, prepare
from fedmarket.errors import ConfigError, DataError
from fedmarket.tasks import get_task

KEY = hashlib.sha256(b"fedmarket table test key").digest()

SMALL_CSV = """ID,Income,Education,Kidhome,Response
c1,10,PhD,0,1
c2,,Basic,1,0
c3,30,,0,0
c4,20,PhD,1,1
c5,50,Master,0,0
c6,40,Basic,1,0
c7,60,PhD,0,1
c8,20,Master,1,0
c9,35,Basic,0,0
c10,45,PhD,1,0
"""
LISTED = "kind=table,customer=ID,label=Response,numeric=Income,categorical=Education;Kidhome"


def run(raw: Path, out: Path, mapping: str, **kw) -> PrepareResult:
    return prepare(
        PrepareOptions(
            raw=raw, out=out, pseudonym_key=KEY, mapping=parse_mapping_option(mapping), **kw
        )
    )


def pseudonym(raw_id: str) -> str:
    return hmac.new(KEY, raw_id.encode(), hashlib.sha256).hexdigest()


def both_splits(out: Path) -> tuple[store.SplitArrays, store.SplitArrays]:
    return store.load_pooled(out, "train"), store.load_pooled(out, "test")


def marketing_table(n: int, seed: int) -> pd.DataFrame:
    """A table shaped like the public "marketing campaign" data: birth year, education,
    marital status, income with gaps, children, recency, spend, a sign-up date, an e-mail,
    and a campaign response that depends on recency, income and spend."""
    rng = np.random.default_rng(seed)
    income = rng.normal(52_000, 20_000, n).clip(2_000)
    recency = rng.integers(0, 100, n)
    wines = rng.gamma(1.0, 300, n).round()
    logit = -1.2 - 0.035 * (recency - 50) + 0.00003 * (income - 52_000) + 0.002 * (wines - 300)
    frame = pd.DataFrame(
        {
            "ID": rng.permutation(10_000)[:n],
            "Year_Birth": rng.integers(1940, 2000, n),
            "Education": rng.choice(["Graduation", "PhD", "Master", "Basic", "2n Cycle"], n),
            "Marital_Status": rng.choice(["Married", "Together", "Single", "Divorced"], n),
            "Income": income.round(),
            "Kidhome": rng.integers(0, 3, n),
            "Recency": recency,
            "MntWines": wines,
            "Dt_Customer": [f"2013-{1 + i % 12:02d}-{1 + i % 28:02d}" for i in range(n)],
            "Email": [f"person{i}@example.com" for i in range(n)],
            "Response": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int),
        }
    )
    frame.loc[rng.random(n) < 0.05, "Income"] = np.nan  # an empty cell in CSV
    return frame


def test_small_table_arrays_labels_and_manifest(tmp_path: Path) -> None:
    (tmp_path / "shop.csv").write_text(SMALL_CSV)
    result = run(tmp_path / "shop.csv", tmp_path / "out", LISTED, test_fraction=0.3)
    m = result.manifest
    assert m["kind"] == "table" and "window" not in m
    table = m["table"]
    assert (table["customer"], table["label"], table["label_kind"]) == ("ID", "Response", "binary")
    enc = table["encoding"]
    assert enc["categorical"]["Kidhome"] == ["0", "1"]
    assert enc["missing_indicators"] == ["Income", "Education"]  # c2 and c3, train or test
    train, test = both_splits(tmp_path / "out")
    assert (len(train), len(test)) == (7, 3)  # 0.3 of 7 non-buyers -> 2, of 3 buyers -> 1
    assert train.X.shape == (7, 1, len(m["feature_names"]))
    assert m["aggregate_names"] == m["feature_names"]
    assert test.y_purchase.sum() == 1  # stratified: one of the three buyers is a test customer
    # every customer's row, recomputed from the raw CSV with the manifest's statistics
    raw = pd.read_csv(tmp_path / "shop.csv", dtype=str, keep_default_na=False)
    by_pseudonym = {pseudonym(r.ID): r for r in raw.itertuples()}
    mean, std = enc["numeric"]["Income"]["mean"], enc["numeric"]["Income"]["std"]
    train_income = [float(by_pseudonym[c].Income) for c in train.customer if by_pseudonym[c].Income]
    assert mean == pytest.approx(np.mean(train_income))
    assert std == pytest.approx(np.std(train_income))
    names = m["feature_names"]
    for split in (train, test):
        for i, customer in enumerate(split.customer):
            r = by_pseudonym[str(customer)]
            assert split.y_purchase[i] == split.y_count[i] == float(r.Response)
            income = float(r.Income) if r.Income else mean
            row = dict(zip(names, split.agg[i], strict=True))
            assert row["Income"] == pytest.approx(income)
            assert row["Income:missing"] == (0.0 if r.Income else 1.0)
            assert split.X[i, 0, names.index("Income")] == pytest.approx((income - mean) / std)
            for level in enc["categorical"]["Education"]:
                assert row[f"Education={level}"] == float(r.Education == level)
            assert row[f"Kidhome={r.Kidhome}"] == 1.0
            assert np.array_equal(
                split.X[i, 0, names.index("Kidhome=0") :], split.agg[i, names.index("Kidhome=0") :]
            )


def test_raw_ids_are_never_written(tmp_path: Path) -> None:
    (tmp_path / "shop.csv").write_text(SMALL_CSV.replace("c1,", "SECRET-ID-1,"))
    run(tmp_path / "shop.csv", tmp_path / "out", LISTED)
    files = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert files and not any(b"SECRET-ID-1" in p.read_bytes() for p in files)
    train, test = both_splits(tmp_path / "out")
    assert pseudonym("SECRET-ID-1") in set(train.customer) | set(test.customer)


def test_count_labels(tmp_path: Path) -> None:
    text = SMALL_CSV.replace("c1,10,PhD,0,1", "c1,10,PhD,0,3").replace(
        "c4,20,PhD,1,1", "c4,20,PhD,1,2"
    )
    (tmp_path / "shop.csv").write_text(text)
    m = run(tmp_path / "shop.csv", tmp_path / "out", LISTED).manifest
    assert m["table"]["label_kind"] == "count"
    train, test = both_splits(tmp_path / "out")
    counts = np.concatenate([train.y_count, test.y_count])
    assert sorted(counts.tolist()) == [0.0] * 7 + [1.0, 2.0, 3.0]
    for split in (train, test):
        assert np.array_equal(split.y_purchase, (split.y_count > 0).astype(np.float32))


def test_bad_label_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    (tmp_path / "shop.csv").write_text(SMALL_CSV.replace("c5,50,Master,0,0", "c5,50,Master,0,yes"))
    with pytest.raises(
        DataError, match=r"shop.csv data row 5: label column 'Response' value 'yes' is not a number"
    ):
        run(tmp_path / "shop.csv", tmp_path / "out", LISTED)
    assert not (tmp_path / "out").exists()


def test_one_class_label_is_refused(tmp_path: Path) -> None:
    (tmp_path / "shop.csv").write_text(SMALL_CSV.replace(",1\n", ",0\n"))
    with pytest.raises(DataError, match="every customer did not buy; there is nothing to learn"):
        run(tmp_path / "shop.csv", tmp_path / "out", LISTED)


def test_marketing_table_attributes_all(tmp_path: Path) -> None:
    marketing_table(400, 0).to_csv(tmp_path / "campaign.csv", sep="\t", index=False)
    base = "kind=table,customer=ID,label=Response,attributes=all,csv_delimiter=tab"
    with pytest.raises(DataError, match="'Email' looks like a direct identifier"):
        run(tmp_path / "campaign.csv", tmp_path / "out", base)
    with pytest.raises(DataError, match=r"'Dt_Customer' has .* distinct values.*exclude it"):
        run(tmp_path / "campaign.csv", tmp_path / "out", base + ",exclude=Email")
    m = run(
        tmp_path / "campaign.csv", tmp_path / "out", base + ",exclude=Email;Dt_Customer"
    ).manifest
    table = m["table"]
    assert table["inferred"] == {
        "Year_Birth": "numeric",
        "Education": "categorical",
        "Marital_Status": "categorical",
        "Income": "numeric",
        "Kidhome": "numeric",
        "Recency": "numeric",
        "MntWines": "numeric",
    }
    assert "every non-missing value is a number" in table["inference_rule"]
    assert table["excluded"] == ["Email", "Dt_Customer"]
    assert "Income:missing" in m["feature_names"]
    train, test = both_splits(tmp_path / "out")
    # stratified: train and test buyer shares within one customer of each other
    buyers = train.y_purchase.sum() + test.y_purchase.sum()
    assert abs(test.y_purchase.sum() - 0.2 * buyers) <= 1
    rows = run_classical_baselines(
        train, test, task="purchase", seed=0, models=["logistic-regression", "random-forest"]
    )
    assert {r.model for r in rows} == {"logistic-regression", "random-forest"}
    assert rows[0].metrics["roc_auc"] > 0.65  # recency, income and spend decide the response


def test_retailers_by_file_and_by_column(tmp_path: Path) -> None:
    table = marketing_table(300, 1).drop(columns=["Email", "Dt_Customer"])
    for name, part in (("shop_a", table[:120]), ("shop_b", table[120:])):
        (tmp_path / "raw" / name).mkdir(parents=True)
        part.to_csv(tmp_path / "raw" / name / "customers_export.csv", index=False)
    mapping = "kind=table,customer=ID,label=Response,attributes=all"
    m = run(tmp_path / "raw", tmp_path / "by_file", mapping).manifest
    assert [p["retailer"] for p in m["partitions"]] == ["shop_a", "shop_b"]
    assert [m["retailers"][r]["customers"] for r in ("shop_a", "shop_b")] == [120, 180]
    table["store"] = np.where(np.arange(300) < 120, "shop_a", "shop_b")
    table.to_parquet(tmp_path / "all.parquet", index=False)
    m2 = run(tmp_path / "all.parquet", tmp_path / "by_column", mapping + ",retailer=store").manifest
    assert [p["retailer"] for p in m2["partitions"]] == ["shop_a", "shop_b"]
    assert "store" not in m2["table"]["inferred"]
    a, b = both_splits(tmp_path / "by_file"), both_splits(tmp_path / "by_column")
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x.customer, y.customer)
        np.testing.assert_allclose(x.agg, y.agg, rtol=1e-6)


def test_iid_partitions_and_same_seed_same_split(tmp_path: Path) -> None:
    marketing_table(200, 2).drop(columns=["Email", "Dt_Customer"]).to_csv(
        tmp_path / "t.csv", index=False
    )
    mapping = "kind=table,customer=ID,label=Response,attributes=all"
    m = run(tmp_path / "t.csv", tmp_path / "a", mapping, scheme="iid", n_partitions=3).manifest
    assert len(m["partitions"]) == 3
    run(tmp_path / "t.csv", tmp_path / "b", mapping, scheme="iid", n_partitions=3)
    for x, y in zip(both_splits(tmp_path / "a"), both_splits(tmp_path / "b"), strict=True):
        assert np.array_equal(x.customer, y.customer)


def test_a_table_without_label_is_refused_on_its_own(tmp_path: Path) -> None:
    (tmp_path / "shop.csv").write_text(SMALL_CSV)
    with pytest.raises(ConfigError, match=r"needs key 'label'.*--attributes"):
        run(tmp_path / "shop.csv", tmp_path / "out", "kind=table,customer=ID,numeric=Income")


def test_encrypted_at_rest_like_event_data(tmp_path: Path) -> None:
    from cryptography.fernet import Fernet

    fernet = Fernet(Fernet.generate_key())
    (tmp_path / "shop.csv").write_text(SMALL_CSV)
    run(tmp_path / "shop.csv", tmp_path / "plain", LISTED)
    m = run(tmp_path / "shop.csv", tmp_path / "sealed", LISTED, fernet=fernet).manifest
    assert m["encrypted"] is True
    assert not list((tmp_path / "sealed").rglob("*.npy"))
    for split in store.SPLITS:
        a = store.load_pooled(tmp_path / "plain", split)
        b = store.load_pooled(tmp_path / "sealed", split, fernet=fernet)
        np.testing.assert_array_equal(a.X, b.X)
        np.testing.assert_array_equal(a.customer, b.customer)


def test_a_churn_table_maps_its_churn_column(tmp_path: Path) -> None:
    """``churn`` in place of ``label``: the churn tasks read the column itself."""
    (tmp_path / "shop.csv").write_text(SMALL_CSV.replace("Response", "Churn"))
    mapping = LISTED.replace("label=Response", "churn=Churn")
    m = run(tmp_path / "shop.csv", tmp_path / "out", mapping, test_fraction=0.3).manifest
    assert (m["table"]["label"], m["table"]["label_kind"]) == ("Churn", "churn")
    raw = pd.read_csv(tmp_path / "shop.csv", dtype=str)
    churned = {pseudonym(r.ID): float(r.Churn) for r in raw.itertuples()}
    for split in both_splits(tmp_path / "out"):
        expected = [churned[str(c)] for c in split.customer]
        np.testing.assert_array_equal(get_task("churn").targets(split), expected)
        np.testing.assert_array_equal(get_task("churn-inactive").targets(split), expected)


@pytest.mark.parametrize(
    ("mapping", "error", "message"),
    [
        (LISTED + ",churn=Kidhome", ConfigError, "label .* or churn .*, not both"),
        (
            "kind=table,customer=ID,churn=Income,categorical=Education;Kidhome",
            DataError,
            "churn column 'Income' holds 10 .*churn must be 0/1",
        ),
        (LISTED.replace("label=Response", "churn=Income"), ConfigError, "cannot also be in"),
    ],
)
def test_bad_churn_mappings_are_refused(tmp_path: Path, mapping, error, message) -> None:
    (tmp_path / "shop.csv").write_text(SMALL_CSV.replace("c2,,", "c2,5,"))
    with pytest.raises(error, match=message):
        run(tmp_path / "shop.csv", tmp_path / "out", mapping)
    assert not (tmp_path / "out").exists()
