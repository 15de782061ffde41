"""`fedmarket data synth|prepare|inspect` through the real typer app (fedmarket/cli/data.py):
success paths on tiny data, and bad input as one error line.

The module runs in its own working directory with relative paths (short enough that rich
never wraps them) and its own XDG_CONFIG_HOME, so the per-user pseudonym key the CLI
creates lands in a temporary directory, never in the real home.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import Result
from cryptography.fernet import Fernet

from fedmarket.data import store
from fedmarket.data.protect import keys
from fedmarket.errors import DataError
from tests.cli.output import cli, ok, one_error_line

SMALL = ["--window-days", "28", "--step-days", "7", "--horizon-days", "7"]
ENV_KEY = base64.b64encode(hashlib.sha256(b"cli test key").digest()).decode()


def prep(raw: object, out: object, *options: object) -> Result:
    return cli("data", "prepare", "--raw", raw, "--out", out, *options)


def all_arrays(out: Path, fernet: Fernet | None = None) -> dict[tuple[int, str, str], np.ndarray]:
    found = {}
    for pid in store.partition_ids(store.read_manifest(out)):
        for split in store.SPLITS:
            a = store.load_split(out, pid, split, fernet, mmap=False)
            for name in ("X", "agg", "y_purchase", "y_count", "customer"):
                found[(pid, split, name)] = getattr(a, name)
    return found


def assert_same_arrays(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=str(k))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("cli")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("XDG_CONFIG_HOME", str(root / "config"))
        mp.delenv(keys.PSEUDONYM_KEY_ENV, raising=False)
        mp.delenv(keys.ENCRYPTION_KEY_ENV, raising=False)
        yield root


@pytest.fixture(scope="module")
def synthed(workdir: Path) -> Result:
    sizes = ["--retailers", 2, "--customers", 150, "--days", 70, "--seed", 3]
    return cli("data", "synth", "--out", "raw", *sizes)


@pytest.fixture(scope="module")
def prepared(synthed: Result) -> Result:
    """Prepared with no key given: the CLI creates the per-user key under XDG_CONFIG_HOME."""
    ok(synthed)
    with pytest.MonkeyPatch.context() as mp:  # whichever test asks first, no key in the env
        mp.delenv(keys.PSEUDONYM_KEY_ENV, raising=False)
        return prep("raw", "prep", *SMALL)


@pytest.fixture
def env_key(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(keys.PSEUDONYM_KEY_ENV, ENV_KEY)


# --- success paths ------------------------------------------------------------------------------


def test_synth_new_products_launch_and_bad_share_is_one_error(workdir: Path) -> None:
    sizes = ["--retailers", 1, "--customers", 100, "--days", 10]
    ok(cli("data", "synth", "--out", "launch", *sizes, "--new-products", 0.2))
    launches = json.loads((workdir / "launch" / "synth.json").read_text())["retailers"][0]
    assert len(launches["launches"]) == 16  # round(0.2 x 80 products), the catalogue's floor
    line = one_error_line(cli("data", "synth", "--out", "launch2", "--new-products", 2))
    assert line == (
        "error: --new-products must be a share of products between 0 and 0.9 (e.g. 0.1), got 2.0"
    )
    assert not (workdir / "launch2").exists()


def test_synth_writes_the_retailers(synthed: Result, workdir: Path) -> None:
    out = ok(synthed)
    events = sum(
        len(pd.read_parquet(workdir / "raw" / r / "events.parquet"))
        for r in ("retailer_00", "retailer_01")
    )
    assert f"wrote {events:,} events for 2 retailers to raw" in out
    assert json.loads((workdir / "raw" / "synth.json").read_text())["status"] == "complete"


def test_prepare_prints_the_partition_table(prepared: Result, workdir: Path) -> None:
    out = ok(prepared)
    m = store.read_manifest(workdir / "prep")
    assert "partitions (natural)" in out and "dropped rows by" in out and "(none)" in out
    assert f"cut-off {m['window']['cutoff']}, 4 steps x 7 days of history" in out
    for entry in m["partitions"]:
        row = (
            rf"│ +{entry['id']} │ {entry['retailer']} +│ +{entry['train']['n']:,} │ "
            rf"+{entry['test']['n']:,} │ +{100 * entry['train']['purchase_rate']:.1f}% │"
        )
        assert re.search(row, out), (row, out)
    assert out.rstrip().endswith("prepared data in prep")


def test_prepare_creates_the_key_outside_the_data(prepared: Result, workdir: Path) -> None:
    out = ok(prepared)
    key_path = workdir / "config" / "fedmarket" / "pseudonym.key"
    assert f"created a pseudonym key at {key_path} (keep it;" in " ".join(out.split())
    assert key_path.stat().st_mode & 0o777 == 0o600
    for data_dir in ("prep", "raw"):
        assert not key_path.resolve().is_relative_to((workdir / data_dir).resolve())
    key_text = key_path.read_text().strip()
    key = keys.load_key(key_path, keys.PSEUDONYM_KEY_ENV, purpose="test")
    for path in (p for p in (workdir / "prep").rglob("*") if p.is_file()):
        data = path.read_bytes()
        assert key not in data and key_text.encode() not in data, path
    # The stored pseudonyms are HMAC-SHA256 under that key of the raw decimal user ids.
    raw_ids = pd.read_parquet(workdir / "raw" / "retailer_00" / "events.parquet")["user_id"]
    expected = {hmac.new(key, str(u).encode(), "sha256").hexdigest() for u in raw_ids.unique()}
    stored = np.concatenate(
        [store.load_split(workdir / "prep", 0, s).customer for s in store.SPLITS]
    )
    assert set(stored) <= expected and len(stored) > 50


def test_inspect_prints_what_prepare_printed(prepared: Result) -> None:
    out = ok(cli("data", "inspect", "prep"))
    assert "partitions (natural)" in out and "k-anonymity of the released customer tables" in out
    assert out in ok(prepared)  # the same manifest tables, byte for byte


def test_rerun_reuses_the_key_and_overwrite_replaces(prepared: Result, workdir: Path) -> None:
    ok(prepared)
    before = all_arrays(workdir / "prep")
    again = ok(prep("raw", "prep", *SMALL, "--overwrite"))
    assert "created a pseudonym key" not in again
    assert_same_arrays(all_arrays(workdir / "prep"), before)
    assert not (workdir / "prep.partial").exists()


def test_iid_partitions_on_the_command_line(prepared: Result, workdir: Path) -> None:
    ok(prepared)
    out = ok(prep("raw", "iid", *SMALL, "--partition", "iid", "--partitions", 3))
    assert "partitions (iid)" in out
    m = store.read_manifest(workdir / "iid")
    assert m["partitioning"]["n_partitions"] == 3
    natural = store.load_pooled(workdir / "prep", "test").customer
    np.testing.assert_array_equal(
        np.sort(store.load_pooled(workdir / "iid", "test").customer), np.sort(natural)
    )


def test_brackets_in_paths_are_printed_verbatim(
    synthed: Result, workdir: Path, env_key: None
) -> None:
    ok(synthed)
    (workdir / "raw [old]").symlink_to(workdir / "raw", target_is_directory=True)
    out = ok(prep("raw [old]", "p [red]x", *SMALL))
    assert "source raw [old]" in out and "prepared data in p [red]x" in out


# --- encryption at rest ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plain_with_env_key(synthed: Result, workdir: Path) -> dict:
    ok(synthed)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(keys.PSEUDONYM_KEY_ENV, ENV_KEY)
        ok(prep("raw", "plain", *SMALL))
    return all_arrays(workdir / "plain")


def check_encrypted(out: Path, fernet: Fernet, plain: dict) -> None:
    files = [p for p in out.rglob("*") if p.is_file() and p.name != store.MANIFEST_NAME]
    assert files and all(p.name.endswith(".enc") for p in files)
    assert store.read_manifest(out)["encrypted"] is True
    with pytest.raises(DataError, match="prepared data is encrypted"):
        store.load_split(out, 0, "train")
    assert_same_arrays(all_arrays(out, fernet), plain)
    assert "files are encrypted at rest (Fernet)" in ok(cli("data", "inspect", out))


def test_encrypt_with_key_from_environment(
    plain_with_env_key: dict, workdir: Path, env_key: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    fernet_key = Fernet.generate_key()
    monkeypatch.setenv(keys.ENCRYPTION_KEY_ENV, fernet_key.decode())
    ok(prep("raw", "enc_env", *SMALL, "--encrypt"))
    check_encrypted(workdir / "enc_env", Fernet(fernet_key), plain_with_env_key)


def test_encrypt_with_key_file(plain_with_env_key: dict, workdir: Path, env_key: None) -> None:
    key_file = workdir / "secrets" / "enc.key"
    raw_key = keys.create_key_file(key_file, "fernet")
    ok(prep("raw", "enc_file", *SMALL, "--encryption-key-file", key_file))
    check_encrypted(workdir / "enc_file", keys.fernet_from_key(raw_key), plain_with_env_key)


def test_keys_made_by_keys_new_are_the_ones_prepare_uses(
    plain_with_env_key: dict, workdir: Path
) -> None:
    ok(cli("keys", "new", "secrets/shop.key"))
    ok(cli("keys", "new", "--kind", "encryption", "secrets/data.key"))
    ok(
        prep(
            "raw", "made_keys", *SMALL, "--key-file", "secrets/shop.key",
            "--encrypt", "--encryption-key-file", "secrets/data.key",
        )
    )  # fmt: skip
    key = keys.load_key(workdir / "secrets/shop.key", keys.PSEUDONYM_KEY_ENV, purpose="test")
    raw_ids = pd.read_parquet(workdir / "raw" / "retailer_00" / "events.parquet")["user_id"]
    expected = {hmac.new(key, str(u).encode(), "sha256").hexdigest() for u in raw_ids.unique()}
    fernet = keys.fernet_from_key(
        keys.load_key(workdir / "secrets/data.key", keys.ENCRYPTION_KEY_ENV, purpose="test")
    )
    stored = store.load_split(workdir / "made_keys", 0, "train", fernet).customer
    assert len(stored) > 50 and set(stored) <= expected


# --- bad input: exit 2, one line, no traceback --------------------------------------------------


def test_missing_raw_path(workdir: Path, env_key: None) -> None:
    line = one_error_line(prep("nowhere", "o1"))
    assert line == "error: --raw nowhere: no such file or directory"
    assert not Path("o1").exists()


def test_unknown_partition_scheme(synthed: Result, env_key: None) -> None:
    ok(synthed)
    line = one_error_line(prep("raw", "o2", "--partition", "bogus"))
    assert line == (
        "error: --partition 'bogus' is not a partition scheme; use one of natural, "
        "iid, dirichlet, quantity"
    )


@pytest.mark.parametrize("fraction", ["1.5", "0", "-0.2"])
def test_test_fraction_out_of_range(synthed: Result, env_key: None, fraction: str) -> None:
    ok(synthed)
    line = one_error_line(prep("raw", "o3", "--test-fraction", fraction))
    assert line == f"error: --test-fraction must be in (0, 1), got {float(fraction)}"


def test_empty_csv_export(workdir: Path, env_key: None) -> None:
    shop = workdir / "empty_raw" / "shop"
    shop.mkdir(parents=True)
    (shop / "events.csv").write_bytes(b"")
    for raw in ("empty_raw", "empty_raw/shop/events.csv"):
        line = one_error_line(prep(raw, "o4"))
        assert line == "error: empty_raw/shop/events.csv: the file is empty (0 bytes); re-export it"
    (shop / "events.csv").write_text("event_time,event_type,price,user_id\n")
    line = one_error_line(prep("empty_raw", "o4"))
    assert line.startswith("error: empty_raw/shop/events.csv: no data rows")
    assert not Path("o4").exists() and not Path("o4.partial").exists()


def test_out_is_a_non_empty_directory_of_something_else(
    synthed: Result, workdir: Path, env_key: None
) -> None:
    ok(synthed)
    (workdir / "mine").mkdir()
    (workdir / "mine" / "notes.txt").write_text("keep me")
    for extra in ([], ["--overwrite"]):  # --overwrite must not delete someone else's files
        line = one_error_line(prep("raw", "mine", *extra))
        assert line == (
            "error: --out mine exists, is not empty and is not a prepared data "
            "directory; choose another directory (--overwrite only replaces prepared "
            "data)"
        )
        assert [p.name for p in (workdir / "mine").iterdir()] == ["notes.txt"]
        assert (workdir / "mine" / "notes.txt").read_text() == "keep me"
    (workdir / "afile").write_text("x")
    line = one_error_line(prep("raw", "afile"))
    assert line == "error: --out afile is a file; give a directory"


def test_existing_prepared_dir_needs_overwrite(
    prepared: Result, workdir: Path, env_key: None
) -> None:
    ok(prepared)
    manifest = (workdir / "prep" / store.MANIFEST_NAME).read_bytes()
    line = one_error_line(prep("raw", "prep", *SMALL))
    assert line == "error: --out prep already holds prepared data; pass --overwrite to replace it"
    assert (workdir / "prep" / store.MANIFEST_NAME).read_bytes() == manifest


def test_encrypt_without_a_key(synthed: Result, env_key: None) -> None:
    ok(synthed)
    line = one_error_line(prep("raw", "o5", "--encrypt"))
    assert "no encryption at rest given" in line and keys.ENCRYPTION_KEY_ENV in line


def test_key_file_inside_the_output_is_refused(synthed: Result, workdir: Path) -> None:
    ok(synthed)
    (workdir / "o6").mkdir()
    keys.create_key_file(workdir / "o6" / "k.key", "hmac")
    line = one_error_line(prep("raw", "o6", "--key-file", "o6/k.key"))
    assert "is inside data directory o6" in line


def test_a_missing_key_file_names_the_command_that_makes_one(synthed: Result) -> None:
    ok(synthed)
    line = one_error_line(prep("raw", "o8", "--key-file", "nokey/shop.key"))
    assert line == (
        "error: pseudonym key file nokey/shop.key does not exist; make one with "
        "`fedmarket keys new nokey/shop.key` (0600, keep it outside every data directory)"
    )
    assert not Path("o8").exists()


def naive_export(root: Path) -> None:
    (root / "shop").mkdir(parents=True)
    rows = [f"2019-10-{1 + i % 28:02d} 10:00:00,view,1,2,,,9.5,{i % 9},s{i}" for i in range(90)]
    header = "event_time,event_type,product_id,category_id,category_code,brand,price,user_id"
    (root / "shop" / "events.csv").write_text("\n".join([header + ",user_session", *rows]) + "\n")


def test_naive_times_print_the_drops_and_the_fix_on_one_line(workdir: Path, env_key: None) -> None:
    naive_export(workdir / "naive")
    line = one_error_line(prep("naive", "o9"))
    assert line == (
        "error: naive: no valid events: all 90 of 90 rows were dropped: missing_timezone 90 "
        "(e.g. naive/shop/events.csv row 1: event_time='2019-10-01 10:00:00'). Fix: "
        'missing_timezone: describe the export with --mapping "kind=rees46,assume_tz=UTC" '
        "(or the export's own IANA zone, e.g. Europe/Berlin)."
    )
    out = ok(prep("naive", "o9", *SMALL, "--mapping", "kind=rees46,assume_tz=UTC"))
    assert "prepared data in o9" in out


def test_a_horizon_past_the_data_is_a_printed_warning(workdir: Path, env_key: None) -> None:
    naive_export(workdir / "late")
    options = [*SMALL, "--mapping", "kind=rees46,assume_tz=UTC", "--cutoff", "2019-10-27"]
    out = " ".join(ok(prep("late", "o10", *options)).split())
    assert "labels cover only 2 of the 7 horizon days: cut-off 2019-10-27 plus 7 days" in out


def test_inspect_a_directory_that_is_not_prepared(workdir: Path) -> None:
    (workdir / "nothing").mkdir(exist_ok=True)
    line = one_error_line(cli("data", "inspect", "nothing"))
    assert line.startswith("error: nothing/manifest.json: not found; nothing is not a prepared")


def test_long_messages_and_markup_stay_one_literal_line(env_key: None) -> None:
    deep = "d" * 90 + "/no[/such]/[bold]dir"
    line = one_error_line(prep(deep, "o7"))
    assert line == f"error: --raw {deep}: no such file or directory"
    assert len(line) > 100


CDNOW_TOML = Path(__file__).resolve().parents[2] / "docs" / "mappings" / "cdnow.toml"
CDNOW_LINES = [  # customer, YYYYMMDD, CDs, dollars: no header, no order id
    " 00001 19970105  1   11.77",
    " 00001 19970203  2   20.00",  # two equal orders of one day: two identical lines
    " 00001 19970203  2   20.00",
    " 00001 19970210  1   10.00",
    " 00002 19970110  1   12.00",
    " 00002 19970204  1   12.00",
    " 00003 19970120  3   30.00",
    " 00004 19970125  1    9.99",
    " 00004 19970125  1    9.99",
    " 00005 19970205  1    5.00",  # first seen after the cut-off: no row
]
CDNOW_WINDOW = ["--cutoff", "1997-02-01", *SMALL[:4], "--horizon-days", "14"]


@pytest.mark.parametrize(
    ("unit", "counts", "meaning"),
    [
        ("transactions", [0, 0, 1, 3], "purchase events (order lines)"),
        ("customer-days", [0, 0, 1, 2], "distinct UTC days with a purchase"),
        ("periods", [0, 0, 1, 2], "distinct 7-day periods with a purchase"),
    ],
)
def test_a_cdnow_log_with_the_ready_mapping_and_each_count_unit(
    workdir: Path, env_key: None, unit: str, counts: list[int], meaning: str
) -> None:
    (workdir / "cdnow.txt").write_text("\r\n".join(CDNOW_LINES) + "\r\n")
    options = [*CDNOW_WINDOW, "--mapping", CDNOW_TOML, "--count-unit", unit]
    out = " ".join(ok(prep("cdnow.txt", f"cd-{unit}", *options)).split())
    assert f"purchase-count label (y_count): {meaning} in the 14 days after the cut-off" in out
    assert "(identical rows kept as repeat purchases: keep_duplicates) │ 2" in out
    m = store.read_manifest(workdir / f"cd-{unit}")
    assert m["labels"]["count_unit"] == unit
    assert m["dropped_rows"]["duplicate_rows"] == "kept"
    assert m["dropped_rows"]["duplicates_kept"] == 2 and m["dropped_rows"]["rows_dropped"] == 0
    pooled = [store.load_pooled(workdir / f"cd-{unit}", s) for s in store.SPLITS]
    assert sorted(np.concatenate([p.y_count for p in pooled]).tolist()) == counts


def test_an_unknown_count_unit_is_one_error_line(workdir: Path, env_key: None) -> None:
    (workdir / "cdnow.txt").write_text("\n".join(CDNOW_LINES) + "\n")
    line = one_error_line(prep("cdnow.txt", "cd-x", "--mapping", CDNOW_TOML, "--count-unit", "x"))
    assert line.startswith("error: --count-unit 'x' is unknown; use one of transactions, ")


def test_an_unlisted_own_event_name_is_a_printed_warning(workdir: Path, env_key: None) -> None:
    rows = [
        f"u{i % 5},2019-10-{1 + i % 28:02d}T10:00:00Z,{('pv', 'cart')[i % 2]}" for i in range(40)
    ]
    (workdir / "clicks.csv").write_text("\n".join(["uid,t,action", *rows]) + "\n")
    mapping = "kind=clickstream,customer=uid,timestamp=t,event=action,event.pv=view"
    out = " ".join(ok(prep("clicks.csv", "o-clicks", *SMALL, "--mapping", mapping)).split())
    assert "the export's event name 'cart' (20 rows) is not listed in the mapping's" in out
    assert 'cart = "ignore" in [event_names] (inline: event.cart=ignore)' in out
