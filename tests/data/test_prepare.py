"""End-to-end tests of `fedmarket data prepare` (fedmarket/data/prepare.py) on tiny retailers.

Everything is checked against the raw exports, recomputed independently where possible:
pseudonyms with ``hmac``, active customers and the cut-off with pandas, normalisation moments
with numpy over the training customers' raw features.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cryptography.fernet import Fernet

from fedmarket.data import features, normalise, store
from fedmarket.data.ingest import loaders
from fedmarket.data.ingest.schema import DIRECT_IDENTIFIERS
from fedmarket.data.ingest.validate import DropReport
from fedmarket.data.prepare import PrepareOptions, PrepareResult, prepare
from fedmarket.data.protect import anonymise
from fedmarket.data.protect.anonymise import RELEASED_CUSTOMER_COLUMNS, Pseudonymiser
from fedmarket.data.synth.generate import generate_retailers
from fedmarket.errors import ConfigError, DataError

KEY = hashlib.sha256(b"fedmarket test pseudonym key").digest()
WINDOW = {"window_days": 56, "step_days": 7, "horizon_days": 7}
RETAILERS = ["retailer_00", "retailer_01", "retailer_02"]
HEX64 = re.compile(r"^[0-9a-f]{64}$")
UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def run(raw: Path, out: Path, **kw) -> PrepareResult:
    return prepare(PrepareOptions(raw=raw, out=out, pseudonym_key=KEY, **{**WINDOW, **kw}))


def pseudonym(raw_id: object) -> str:
    return hmac.new(KEY, str(raw_id).encode(), hashlib.sha256).hexdigest()


def events_of(raw: Path, retailer: str) -> pd.DataFrame:
    return pd.read_parquet(raw / retailer / "events.parquet")


def split_of(out: Path, split: str, partitions: list[int] | None = None) -> store.SplitArrays:
    return store.load_pooled(out, split, partitions)


def window_of(manifest: dict) -> features.FeatureWindow:
    w = manifest["window"]
    return features.FeatureWindow(
        cutoff=pd.Timestamp(w["cutoff"]),
        window_days=w["window_days"],
        step_days=w["step_days"],
        horizon_days=w["horizon_days"],
    )


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("prepare")


@pytest.fixture(scope="module")
def raw(root: Path) -> Path:
    out = root / "raw"
    generate_retailers(out, n_retailers=3, n_customers=200, days=70, seed=1)
    return out


@pytest.fixture(scope="module")
def prepared(raw: Path, root: Path) -> PrepareResult:
    return run(raw, root / "natural")


@pytest.fixture(scope="module")
def schemes(raw: Path, root: Path, prepared: PrepareResult) -> dict[str, Path]:
    outs = {"natural": prepared.out}
    for scheme, alpha in (("iid", 0.5), ("dirichlet", 0.3), ("quantity", 0.5)):
        outs[scheme] = run(raw, root / scheme, scheme=scheme, n_partitions=4, alpha=alpha).out
    return outs


# --- manifest ------------------------------------------------------------------------------------


def test_manifest_window_names_and_counts(prepared: PrepareResult, raw: Path) -> None:
    m = prepared.manifest
    assert m == store.read_manifest(prepared.out)
    assert m["schema_version"] == store.SCHEMA_VERSION == 3
    assert m["feature_names"] == list(features.FEATURE_NAMES)
    assert m["aggregate_names"] == list(features.AGGREGATE_NAMES)
    # 70 days from 2019-10-01: the last events are on 2019-12-09, so the default cut-off is the
    # latest midnight whose 7-day horizon the data still covers: 2019-12-09 + 1 - 7 days.
    last = max(events_of(raw, r)["event_time"].max() for r in RETAILERS)
    assert last.date().isoformat() == "2019-12-09"
    assert m["window"] == {
        "cutoff": "2019-12-03T00:00:00+00:00",
        "window_days": 56,
        "step_days": 7,
        "horizon_days": 7,
        "n_steps": 8,
    }
    assert m["labels"] == {
        "count_unit": "transactions",
        "y_count": "purchase events (order lines) in the 7 days after the cut-off",
        "y_purchase": "1 if any purchase in the 7 days after the cut-off",
        "y_active": "1 if any event in the 7 days after the cut-off",
        "y_churn": "1 if active in the 56-day window before the cut-off and no purchase in the "
        "7 days after it (1 - y_purchase)",
        "y_churn_inactive": "1 if active in the 56-day window before the cut-off and no event at "
        "all in the 7 days after it (1 - y_active)",
    }
    assert m["split"] == {"test_fraction": 0.2, "unit": "customer", "seed": 0}
    assert m["partitioning"] == {"scheme": "natural", "n_partitions": 3, "alpha": None, "seed": 0}
    assert m["encrypted"] is False
    assert list(m["retailers"]) == RETAILERS
    for r in RETAILERS:
        entry = m["retailers"][r]
        assert entry["events"] == len(events_of(raw, r))
        assert entry["dropped_rows"]["rows_read"] == entry["dropped_rows"]["rows_kept"]
        assert entry["k_anonymity"]["k"] == 5
        assert entry["k_anonymity"]["records_in"] == len(pd.read_csv(raw / r / "customers.csv"))
    assert m["dropped_rows"]["rows_dropped"] == 0
    assert m["dropped_rows"]["rows_read"] == sum(m["retailers"][r]["events"] for r in RETAILERS)


def test_manifest_partition_sizes_and_rates_match_the_arrays(prepared: PrepareResult) -> None:
    m = prepared.manifest
    assert store.partition_ids(m) == [0, 1, 2]
    for entry in m["partitions"]:
        total = 0
        for split in store.SPLITS:
            a = store.load_split(prepared.out, entry["id"], split)
            n = len(a)
            total += n
            assert entry[split]["n"] == n > 0
            assert entry[split]["purchase_rate"] == pytest.approx(float(np.mean(a.y_purchase)))
            assert entry[split]["mean_purchase_count"] == pytest.approx(float(np.mean(a.y_count)))
            assert a.X.shape == (n, 8, len(features.FEATURE_NAMES)) and a.X.dtype == np.float32
            assert a.agg.shape == (n, len(features.AGGREGATE_NAMES)) and a.agg.dtype == np.float32
            np.testing.assert_array_equal(a.y_purchase, (a.y_count > 0).astype(np.float32))
            assert a.y_active.dtype == np.float32 and (a.y_active >= a.y_purchase).all()
            assert np.isfinite(a.X).all() and (a.agg >= 0).all()
        assert entry["retailers"] == {entry["retailer"]: total}
        assert m["retailers"][entry["retailer"]]["customers"] == total


def raw_features(raw: Path, window: features.FeatureWindow) -> features.CustomerFeatures:
    """Raw (unnormalised) features of every customer of every retailer, built outside prepare."""
    pseudonymiser = Pseudonymiser(KEY)
    parts = []
    for retailer, files in sorted(loaders.find_exports(raw).items()):
        builder = features.SequenceBuilder(window)
        for path in files:
            for chunk in loaders.iter_events(path, report=DropReport(), retailer_id=retailer):
                builder.add(anonymise.anonymise_events(chunk, pseudonymiser))
        parts.append(builder.finish())
    return features.CustomerFeatures(
        *(
            np.concatenate([getattr(p, k) for p in parts])
            for k in ("customer", "X", "agg", "y_purchase", "y_count", "y_active")
        )
    )


def moments(X_raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population std per feature over all (customer, step) cells after log1p."""
    Z = X_raw.astype(np.float64).reshape(-1, X_raw.shape[-1])
    logged = [features.FEATURE_NAMES.index(f) for f in normalise.LOG1P_FEATURES]
    Z[:, logged] = np.log1p(Z[:, logged])
    std = Z.std(axis=0)
    return Z.mean(axis=0), np.where(std < normalise.STD_FLOOR, 1.0, std)


def test_normalisation_statistics_come_from_train_customers_only(
    prepared: PrepareResult, raw: Path
) -> None:
    m = prepared.manifest
    feats = raw_features(raw, window_of(m))
    train, test = split_of(prepared.out, "train"), split_of(prepared.out, "test")
    is_train = np.isin(feats.customer, train.customer)
    assert is_train.sum() == len(train)
    assert np.isin(feats.customer, test.customer).sum() == len(test)

    mean, std = moments(feats.X[is_train])
    stats = m["normalisation"]
    assert stats["features"] == list(features.FEATURE_NAMES)
    np.testing.assert_allclose(stats["mean"], mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(stats["std"], std, rtol=1e-10, atol=1e-12)
    all_mean, _ = moments(feats.X)  # the check can tell: test customers would move the mean
    assert np.abs(all_mean - mean).max() > 1e-4

    # Every stored sequence, train or test, is the raw one normalised with the train moments.
    for split in (train, test):
        row = {c: i for i, c in enumerate(feats.customer)}
        raw_X = feats.X[[row[c] for c in split.customer]].astype(np.float64)
        logged = [features.FEATURE_NAMES.index(f) for f in normalise.LOG1P_FEATURES]
        raw_X[..., logged] = np.log1p(raw_X[..., logged])
        np.testing.assert_allclose(split.X, (raw_X - mean) / std, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(split.agg, feats.agg[[row[c] for c in split.customer]])
    # So the training cells are standardised, the test cells only approximately.
    cells = train.X.reshape(-1, train.X.shape[-1]).astype(np.float64)
    varying = std != 1.0
    np.testing.assert_allclose(cells.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(cells.std(axis=0)[varying], 1.0, atol=1e-5)


# --- bad rows ------------------------------------------------------------------------------------

# (reason, column, bad value); each bad row is a copy of a distinct good row with one cell changed.
BAD_CELLS = [
    ("unparseable_timestamp", "event_time", "2019-13-45 25:61:00 UTC"),
    ("negative_price", "price", "-1.5"),
    ("nan_price", "price", ""),
    ("unknown_event_type", "event_type", "wishlist"),
    ("negative_price", "price", "-0.01"),
    ("nan_price", "price", "NaN"),
    ("negative_price", "price", "-100"),
]
N_DUPLICATES = 2


@pytest.fixture(scope="module")
def csv_exports(raw: Path, root: Path) -> dict:
    """The same retailer as a clean CSV export and as one with known bad rows inserted."""
    df = events_of(raw, "retailer_00").drop(columns="retailer_id")
    df["event_time"] = df["event_time"].dt.strftime("%Y-%m-%d %H:%M:%S UTC")
    header, *rows = df.to_csv(index=False).splitlines()
    columns = header.split(",")
    assert all(len(r.split(",")) == len(columns) for r in rows)  # no quoting needed
    clean, dirty = root / "csv_clean" / "shop_a", root / "csv_dirty" / "shop_a"
    for d in (clean, dirty):
        d.mkdir(parents=True)
    (clean / "events.csv").write_text("\n".join([header, *rows]) + "\n")

    lines, bad_rows = list(rows), {}  # bad_rows: 1-based data row -> reason
    for j, (reason, column, value) in enumerate(BAD_CELLS):
        cells = rows[10 * j + 5].split(",")
        cells[columns.index(column)] = value
        pos = 100 * (j + 1)
        lines.insert(pos, ",".join(cells))
        bad_rows[pos + 1] = (reason, column, value)
    for j in range(N_DUPLICATES):
        pos = 100 * (len(BAD_CELLS) + j + 1)
        lines.insert(pos, lines[pos - 1])  # an exact copy of the row just before it
        bad_rows[pos + 1] = ("duplicate_row", None, None)
    (dirty / "events.csv").write_text("\n".join([header, *lines]) + "\n")
    return {
        "clean": clean.parent,
        "dirty": dirty.parent,
        "path": dirty / "events.csv",
        "n_rows": len(rows),
        "bad_rows": bad_rows,
    }


@pytest.fixture(scope="module")
def dirty_prepared(csv_exports: dict, root: Path) -> PrepareResult:
    return run(csv_exports["dirty"], root / "dirty_out")


def test_dropped_rows_match_the_injected_bad_rows(
    csv_exports: dict, dirty_prepared: PrepareResult, root: Path
) -> None:
    drops = dirty_prepared.manifest["dropped_rows"]
    n_bad = len(BAD_CELLS) + N_DUPLICATES
    assert drops["dropped"] == {
        "unparseable_timestamp": 1,
        "unknown_event_type": 1,
        "nan_price": 2,
        "negative_price": 3,
        "duplicate_row": 2,
    }
    assert drops["rows_read"] == csv_exports["n_rows"] + n_bad
    assert drops["rows_kept"] == csv_exports["n_rows"]
    assert drops["rows_dropped"] == n_bad
    assert dirty_prepared.manifest["retailers"]["shop_a"]["dropped_rows"] == drops
    path = csv_exports["path"]
    expected_examples: dict[str, list[str]] = {}
    for row, (reason, column, value) in sorted(csv_exports["bad_rows"].items()):
        what = (
            "repeats an earlier row"
            if reason == "duplicate_row"
            else f"{column}={value!r}"
            if value
            else f"{column}=None"
        )
        expected_examples.setdefault(reason, []).append(f"{path} row {row}: {what}")
    assert drops["examples"] == expected_examples

    # Dropping is all that happens: the result equals that of the clean export.
    clean = run(csv_exports["clean"], root / "clean_out")
    assert clean.manifest["window"] == dirty_prepared.manifest["window"]
    assert clean.manifest["normalisation"] == dirty_prepared.manifest["normalisation"]
    for split in store.SPLITS:
        a, b = split_of(clean.out, split), split_of(dirty_prepared.out, split)
        for name in ("X", "agg", "y_count", "customer"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_strict_rejects_the_file_naming_file_and_row(csv_exports: dict, root: Path) -> None:
    first = min(csv_exports["bad_rows"])
    reason, _, value = csv_exports["bad_rows"][first]
    with pytest.raises(DataError) as info:
        run(csv_exports["dirty"], root / "strict_out", strict=True)
    message = str(info.value)
    assert str(csv_exports["path"]) in message
    assert f"data row {first} " in message and reason in message and repr(value) in message
    assert not (root / "strict_out").exists() and not (root / "strict_out.partial").exists()
    assert (
        run(csv_exports["clean"], root / "strict_clean", strict=True).manifest["dropped_rows"][
            "rows_dropped"
        ]
        == 0
    )


# --- privacy of the outputs ----------------------------------------------------------------------


def identifiers(raw: Path) -> dict[str, set[str]]:
    people = pd.concat([pd.read_csv(raw / r / "customers.csv", dtype=str) for r in RETAILERS])
    events = pd.concat([events_of(raw, r) for r in RETAILERS])
    return {
        "direct": {v for c in DIRECT_IDENTIFIERS for v in people[c].dropna()},
        "user_id": set(people["user_id"]) | {str(u) for u in events["user_id"].unique()},
        "session": {s.lower() for s in events["user_session"].dropna().unique()},
    }


def cell_texts(value: object) -> list[str]:
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in (str(k), *cell_texts(v))]
    if isinstance(value, list):
        return [t for v in value for t in cell_texts(v)]
    return [str(value)]


def text_views(path: Path) -> list[str]:
    """The file's bytes read as UTF-8 text and as UTF-32 text (numpy's <U arrays), plus the
    decoded cells of JSON (escapes "\\u00fc") and Parquet (compressed pages) files."""
    data = path.read_bytes()
    views = [data.decode("utf-8", errors="replace"), data.replace(b"\0\0\0", b"").decode("latin-1")]
    if path.suffix == ".json":
        views.append("\n".join(cell_texts(json.loads(data))))
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
        views.append("\n".join([*frame.columns, *(str(v) for c in frame for v in frame[c])]))
    return views


def assert_no_identifiers(out: Path, ids: dict[str, set[str]]) -> int:
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) > 10
    key_texts = [base64.b64encode(KEY).decode(), base64.urlsafe_b64encode(KEY).decode(), KEY.hex()]
    for path in files:
        raw_bytes = path.read_bytes()
        assert KEY not in raw_bytes, path
        for text in text_views(path):
            assert not set(re.findall(r"\d+", text)) & ids["user_id"], path
            assert not {s.lower() for s in UUID.findall(text)} & ids["session"], path
            leaked = [v for v in ids["direct"] if v in text]
            assert not leaked, (path, leaked[:3])
            assert not any(k in text for k in key_texts), path
    return len(files)


def test_no_identifier_in_any_output_file(
    prepared: PrepareResult, dirty_prepared: PrepareResult, raw: Path
) -> None:
    ids = identifiers(raw)
    assert len(ids["direct"]) > 2000 and len(ids["session"]) > 1000  # the scan has work to do
    assert assert_no_identifiers(prepared.out, ids) > 30
    assert_no_identifiers(dirty_prepared.out, ids)  # its manifest quotes bad cells
    for split in store.SPLITS:
        for c in split_of(prepared.out, split).customer:
            assert HEX64.match(c) and c not in ids["user_id"]


def test_released_customer_tables_are_pseudonymised_and_generalised(
    prepared: PrepareResult, raw: Path
) -> None:
    ids = identifiers(raw)
    tables = sorted((prepared.out / "customers").iterdir())
    assert [p.name for p in tables] == [f"{r}.parquet" for r in RETAILERS]
    for retailer, path in zip(RETAILERS, tables, strict=True):
        released = pd.read_parquet(path)
        assert list(released.columns) == list(RELEASED_CUSTOMER_COLUMNS)
        cells = {str(v) for c in released.columns for v in released[c].dropna()}
        assert not cells & (ids["direct"] | ids["user_id"])
        raw_ids = pd.read_csv(raw / retailer / "customers.csv", dtype=str)["user_id"]
        assert set(released["user_id"]) <= {pseudonym(u) for u in raw_ids}
        report = prepared.manifest["retailers"][retailer]["k_anonymity"]
        assert len(released) == report["records_released"] > 0
        sample = raw_ids.iloc[:20].map(pseudonym)
        kept = sample.isin(set(released["user_id"])).sum()
        assert kept >= 20 - report["records_removed"]


def test_customers_are_hmac_pseudonyms_of_those_active_in_the_window(
    prepared: PrepareResult, raw: Path
) -> None:
    """Natural partition i is retailer i, and holds exactly its customers with an event in
    [cutoff - window, cutoff), each once, under HMAC-SHA256(key, decimal user_id)."""
    w = window_of(prepared.manifest)
    for pid, retailer in enumerate(RETAILERS):
        entry = prepared.manifest["partitions"][pid]
        assert entry["id"] == pid and entry["retailer"] == retailer
        ev = events_of(raw, retailer)
        active = ev.loc[(ev["event_time"] >= w.start) & (ev["event_time"] < w.cutoff), "user_id"]
        expected = {pseudonym(u) for u in active.unique()}
        got = np.concatenate(
            [store.load_split(prepared.out, pid, s).customer for s in store.SPLITS]
        )
        assert len(got) == len(set(got)) == len(expected)
        assert set(got) == expected
        assert len(set(ev["user_id"])) > len(expected)  # some customers were inactive: excluded


# --- splits --------------------------------------------------------------------------------------


def test_one_example_per_customer_and_disjoint_splits(prepared: PrepareResult) -> None:
    train, test = split_of(prepared.out, "train"), split_of(prepared.out, "test")
    assert len(set(train.customer)) == len(train) and len(set(test.customer)) == len(test)
    assert not set(train.customer) & set(test.customer)


@pytest.mark.parametrize("fraction", [0.2, 0.35])
def test_test_fraction_per_retailer(
    fraction: float, prepared: PrepareResult, raw: Path, root: Path
) -> None:
    result = prepared if fraction == 0.2 else run(raw, root / "frac", test_fraction=fraction)
    for entry in result.manifest["partitions"]:
        n = entry["train"]["n"] + entry["test"]["n"]
        assert abs(entry["test"]["n"] - fraction * n) <= 1


def test_reproducible_by_seed(prepared: PrepareResult, raw: Path, root: Path) -> None:
    again = run(raw, root / "again")
    other = run(raw, root / "other_seed", seed=1)
    ignore = {"created_at", "source"}
    assert {k: v for k, v in again.manifest.items() if k not in ignore} == {
        k: v for k, v in prepared.manifest.items() if k not in ignore
    }
    for pid in store.partition_ids(prepared.manifest):
        for split in store.SPLITS:
            a = store.load_split(prepared.out, pid, split)
            b = store.load_split(again.out, pid, split)
            for name in ("X", "agg", "y_purchase", "y_count", "customer"):
                np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
            c = store.load_split(other.out, pid, split)
            assert set(c.customer) != set(a.customer)  # another seed, other test customers
    # ... but the same customers in each partition, only split anew.
    assert [set(p) for p in customers_by_partition(other.out)] == [
        set(p) for p in customers_by_partition(prepared.out)
    ]
    assert other.manifest["normalisation"]["mean"] != prepared.manifest["normalisation"]["mean"]


# --- the cut-off ---------------------------------------------------------------------------------

CUTOFF = "2019-12-01"


def add_future_events(src: Path, dst: Path, buyers: list[int]) -> None:
    """Copy one retailer's export, adding events at and after the cut-off only."""
    table = pq.read_table(src)
    df = table.to_pandas()
    template = df.iloc[0]
    cutoff = pd.Timestamp(CUTOFF, tz="UTC")
    new = []
    for i, user in enumerate(buyers):  # purchases inside the horizon (one exactly at the cut-off)
        for k in range(2):
            new.append(
                {
                    **template,
                    "user_id": user,
                    "event_type": "purchase",
                    "event_time": cutoff + pd.Timedelta(hours=30 * i + 5 * k),
                    "user_session": f"00000000-0000-4000-8000-{i:012d}",
                }
            )
    for i, user in enumerate(df["user_id"].unique()[:30]):  # after the horizon: ignored
        new.append(
            {
                **template,
                "user_id": user,
                "event_type": "purchase",
                "event_time": cutoff + pd.Timedelta(days=7, minutes=i),
                "user_session": f"00000000-0000-4000-9000-{i:012d}",
            }
        )
    new.append(
        {
            **template,
            "user_id": 999_999_999,
            "event_type": "view",  # first seen later
            "event_time": cutoff + pd.Timedelta(hours=1),
            "user_session": "00000000-0000-4000-a000-000000000000",
        }
    )
    more = pa.Table.from_pandas(pd.DataFrame(new), schema=table.schema, preserve_index=False)
    dst.parent.mkdir(parents=True)
    pq.write_table(pa.concat_tables([table, more]), dst)


def test_no_leak_across_the_cutoff(raw: Path, root: Path) -> None:
    src = raw / "retailer_00" / "events.parquet"
    base_raw = root / "cut_base"
    (base_raw / "retailer_00").mkdir(parents=True)
    shutil.copy(src, base_raw / "retailer_00" / "events.parquet")
    base = run(base_raw, root / "cut_base_out", cutoff=CUTOFF)
    before = split_of(base.out, "train")
    before_test = split_of(base.out, "test")
    by_pseudonym = {pseudonym(u): int(u) for u in events_of(raw, "retailer_00")["user_id"].unique()}
    non_buyers = [c for c, y in zip(before.customer, before.y_purchase, strict=True) if y == 0][:5]
    assert len(non_buyers) == 5

    add_future_events(
        src,
        root / "cut_more" / "retailer_00" / "events.parquet",
        [by_pseudonym[c] for c in non_buyers],
    )
    after_result = run(root / "cut_more", root / "cut_more_out", cutoff=CUTOFF)
    after = split_of(after_result.out, "train")
    assert after_result.manifest["window"] == base.manifest["window"]
    assert after_result.manifest["window"]["cutoff"] == "2019-12-01T00:00:00+00:00"
    assert after_result.manifest["normalisation"] == base.manifest["normalisation"]
    for name in ("customer", "X", "agg"):
        np.testing.assert_array_equal(getattr(after, name), getattr(before, name), err_msg=name)
        np.testing.assert_array_equal(
            getattr(split_of(after_result.out, "test"), name),
            getattr(before_test, name),
            err_msg=name,
        )
    # Only the labels of the five customers who bought in the horizon changed, by two purchases.
    changed = np.isin(before.customer, non_buyers)
    np.testing.assert_array_equal(after.y_purchase[changed], 1.0)
    np.testing.assert_array_equal(after.y_count[changed], before.y_count[changed] + 2)
    np.testing.assert_array_equal(after.y_count[~changed], before.y_count[~changed])


# --- partitions ----------------------------------------------------------------------------------


def customers_by_partition(out: Path) -> list[np.ndarray]:
    m = store.read_manifest(out)
    return [
        np.concatenate([store.load_split(out, p, s).customer for s in store.SPLITS])
        for p in store.partition_ids(m)
    ]


def test_every_scheme_keeps_the_same_train_and_test_customers(schemes: dict[str, Path]) -> None:
    reference = {s: np.sort(split_of(schemes["natural"], s).customer) for s in store.SPLITS}
    for scheme, out in schemes.items():
        m = store.read_manifest(out)
        expected_n = 3 if scheme == "natural" else 4
        assert m["partitioning"]["scheme"] == scheme
        assert m["partitioning"]["n_partitions"] == expected_n == len(m["partitions"])
        for split in store.SPLITS:
            np.testing.assert_array_equal(np.sort(split_of(out, split).customer), reference[split])
        parts = customers_by_partition(out)
        assert sum(len(p) for p in parts) == len(set(np.concatenate(parts)))  # disjoint
        for entry, part in zip(m["partitions"], parts, strict=True):
            assert sum(entry["retailers"].values()) == len(part) >= 10
            assert ("retailer" in entry) == (scheme == "natural")


def buy_rates(out: Path) -> np.ndarray:
    m = store.read_manifest(out)
    return np.array(
        [
            np.mean(np.concatenate([store.load_split(out, p, s).y_purchase for s in store.SPLITS]))
            for p in store.partition_ids(m)
        ]
    )


def test_scheme_shapes(schemes: dict[str, Path]) -> None:
    sizes = {s: np.array([len(p) for p in customers_by_partition(o)]) for s, o in schemes.items()}
    assert sizes["iid"].max() - sizes["iid"].min() <= 1
    assert sizes["quantity"].max() > 2 * sizes["quantity"].min()
    spread = {s: np.ptp(buy_rates(o)) for s, o in schemes.items()}
    assert spread["dirichlet"] > 0.2 and spread["dirichlet"] > 3 * spread["iid"]
    assert store.read_manifest(schemes["dirichlet"])["partitioning"]["alpha"] == 0.3
    assert store.read_manifest(schemes["iid"])["partitioning"]["alpha"] is None


def test_scheme_is_checked_before_any_event_is_read(raw: Path, root: Path) -> None:
    with pytest.raises(ConfigError, match=r"--partition 'bogus'.*natural, iid, dirichlet"):
        PrepareOptions(raw=raw, out=root / "x", pseudonym_key=KEY, scheme="bogus")
    with pytest.raises(ConfigError, match=r"--partitions is required with --partition iid"):
        PrepareOptions(raw=raw, out=root / "x", pseudonym_key=KEY, scheme="iid")


def test_count_unit_customer_days(prepared: PrepareResult, raw: Path, root: Path) -> None:
    days = run(raw, root / "days", count_unit="customer-days")
    assert days.manifest["labels"]["count_unit"] == "customer-days"
    assert days.manifest["labels"]["y_count"].startswith("distinct UTC days with a purchase")
    window = window_of(prepared.manifest)
    for split in store.SPLITS:
        a, b = split_of(prepared.out, split), split_of(days.out, split)
        np.testing.assert_array_equal(a.customer, b.customer)  # same customers, same split
        np.testing.assert_array_equal(a.y_purchase, b.y_purchase)
        np.testing.assert_array_equal(a.agg, b.agg)
        # pandas, from the raw events: distinct horizon days with a purchase per customer
        counts = {}
        for r in RETAILERS:
            e = events_of(raw, r)
            t = e["event_time"]
            h = e[(t >= window.cutoff) & (t < window.horizon_end) & (e["event_type"] == "purchase")]
            per = h.groupby(h["user_id"].map(pseudonym))["event_time"]
            counts.update(per.agg(lambda x: x.dt.floor("D").nunique()).to_dict())
        expected = [counts.get(c, 0) for c in b.customer]
        np.testing.assert_array_equal(b.y_count, expected)
        assert (b.y_count <= a.y_count).all()


def test_count_unit_is_checked_before_any_event_is_read(raw: Path, root: Path) -> None:
    with pytest.raises(ConfigError, match=r"--count-unit 'orders' is unknown"):
        PrepareOptions(raw=raw, out=root / "x", pseudonym_key=KEY, count_unit="orders")


# --- encryption at rest --------------------------------------------------------------------------


def test_encrypted_prepare_matches_plain_and_needs_the_key(
    prepared: PrepareResult, raw: Path, root: Path
) -> None:
    fernet = Fernet(Fernet.generate_key())
    enc = run(raw, root / "encrypted", fernet=fernet)
    assert enc.manifest["encrypted"] is True
    files = [p for p in enc.out.rglob("*") if p.is_file() and p.name != store.MANIFEST_NAME]
    assert files and all(p.name.endswith(".enc") for p in files)
    for path in files:  # every file is a Fernet token over a .npy, .npz (zip) or Parquet file
        # (searching the token's base64 text for b"PAR1" would match by chance in large files)
        plain = fernet.decrypt(path.read_bytes())
        assert plain.startswith((b"\x93NUMPY", b"PAR1", b"PK\x03\x04"))
    with pytest.raises(DataError, match="prepared data is encrypted"):
        store.load_split(enc.out, 0, "train")
    for r in RETAILERS:  # the released customer tables are encrypted too, and decrypt to the same
        token = (enc.out / "customers" / f"{r}.parquet.enc").read_bytes()
        pd.testing.assert_frame_equal(
            pd.read_parquet(io.BytesIO(fernet.decrypt(token))),
            pd.read_parquet(prepared.out / "customers" / f"{r}.parquet"),
        )
    for pid in store.partition_ids(enc.manifest):
        for split in store.SPLITS:
            a = store.load_split(prepared.out, pid, split)
            b = store.load_split(enc.out, pid, split, fernet)
            for name in ("X", "agg", "y_purchase", "y_count", "customer"):
                np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
