"""The one pass of `data prepare` (fedmarket/data/event_pass.py): same output as two passes.

The reference is the old order of work: the exact latest valid event from a full validating
pass (``event_pass.last_event_time``), its default cut-off, then preparation with that cut-off
given explicitly (which reads the events once, in that window).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fedmarket.data import event_pass, features, store
from fedmarket.data.ingest import loaders, peek
from fedmarket.data.prepare import PrepareOptions, PrepareResult, prepare
from fedmarket.data.synth.generate import generate_retailers

KEY = hashlib.sha256(b"fedmarket test pseudonym key").digest()
WINDOW = {"window_days": 28, "step_days": 7, "horizon_days": 7}


def options(raw: Path, out: Path, **kw) -> PrepareOptions:
    return PrepareOptions(raw=raw, out=out, pseudonym_key=KEY, **{**WINDOW, **kw})


def two_pass_reference(raw: Path, out: Path) -> PrepareResult:
    opts = options(raw, out)
    last = event_pass.last_event_time(loaders.find_exports(raw), opts)
    cutoff = features.default_cutoff(last, opts.horizon_days)
    return prepare(options(raw, out, cutoff=cutoff.isoformat()))


def assert_same_prepared(a: PrepareResult, b: PrepareResult) -> None:
    ignore = {"created_at", "source"}
    assert {k: v for k, v in a.manifest.items() if k not in ignore} == {
        k: v for k, v in b.manifest.items() if k not in ignore
    }
    for pid in store.partition_ids(a.manifest):
        for split in store.SPLITS:
            x, y = store.load_split(a.out, pid, split), store.load_split(b.out, pid, split)
            for name in ("X", "agg", "y_purchase", "y_count", "customer"):
                np.testing.assert_array_equal(getattr(x, name), getattr(y, name), err_msg=name)
    for table in sorted((a.out / "customers").iterdir()):
        pd.testing.assert_frame_equal(
            pd.read_parquet(table), pd.read_parquet(b.out / "customers" / table.name)
        )


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("event_pass") / "raw"
    generate_retailers(out, n_retailers=2, n_customers=120, days=42, seed=3)
    return out


def test_one_pass_equals_the_two_pass_reference(raw: Path, tmp_path: Path) -> None:
    calls = []
    real = event_pass.scan_retailer

    def counted(*args, **kw):
        calls.append(args[0])
        return real(*args, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(event_pass, "scan_retailer", counted)
        mp.setattr(event_pass, "last_event_time", pytest.fail)  # no validating first pass
        one = prepare(options(raw, tmp_path / "one"))
    assert calls == ["retailer_00", "retailer_01"]  # each retailer's events read once
    assert_same_prepared(one, two_pass_reference(raw, tmp_path / "two"))


def add_invalid_late_rows(src: Path, dst: Path) -> pd.Timestamp:
    """Rows three days after the end that validation drops; returns their time."""
    table = pq.read_table(src)
    late = table.slice(0, 5).to_pandas()
    when = table.column("event_time").to_pandas().max() + pd.Timedelta(days=3)
    late["event_time"] = when
    late["event_type"] = "bogus"  # unknown_event_type: parseable time, invalid row
    more = pa.Table.from_pandas(late, schema=table.schema, preserve_index=False)
    pq.write_table(pa.concat_tables([table, more]), dst)
    return when


def test_invalid_latest_rows_make_a_second_pass_with_the_exact_cutoff(
    raw: Path, tmp_path: Path
) -> None:
    dirty = tmp_path / "raw"
    shutil.copytree(raw, dirty)
    path = dirty / "retailer_01" / "events.parquet"
    late = add_invalid_late_rows(raw / "retailer_01" / "events.parquet", path)
    assert peek.latest_event_ns(path) == late.value  # the bound sees the invalid rows ...
    calls = []
    real = event_pass.scan_retailer

    def counted(*args, **kw):
        calls.append(args[0])
        return real(*args, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(event_pass, "scan_retailer", counted)
        one = prepare(options(dirty, tmp_path / "one"))
    assert len(calls) == 4  # ... so the pass ran again, with the exact cut-off
    reference = two_pass_reference(dirty, tmp_path / "two")
    assert_same_prepared(one, reference)
    assert pd.Timestamp(one.manifest["window"]["cutoff"]) < late.normalize() - pd.Timedelta(days=2)
    assert one.manifest["dropped_rows"]["dropped"]["unknown_event_type"] == 5


def test_explicit_cutoff_reads_no_bound(raw: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(peek, "latest_event_ns", pytest.fail)
    result = prepare(options(raw, tmp_path / "out", cutoff="2019-11-01"))
    assert result.manifest["window"]["cutoff"] == "2019-11-01T00:00:00+00:00"
