"""`fedmarket score` on a tiny run: the list it writes, what it prints, and bad input."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.cli.output import cli, ok, one_error_line, plain
from tests.experiments.test_score import run_with_scores  # noqa: F401  (fixture)
from tests.scoring.conftest import scoring_run  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_score_writes_the_list_and_prints_the_summary(
    run_with_scores: Path,  # noqa: F811
    tiny_raw: Path,
    tmp_path: Path,
) -> None:
    out = tmp_path / "targets.parquet"
    result = cli(
        "score",
        run_with_scores,
        "--raw",
        tiny_raw,
        "--top",
        "10%",
        "--holdout-fraction",
        "0.2",
        "--margin",
        "20",
        "--contact-cost",
        "1",
        "--out",
        out,
    )
    text = ok(result)
    frame = pd.read_parquet(out)
    for word in ("Targeting list", "contacted", "lift", "profit", "ECE"):
        assert word in text
    assert "the retailer's own customer ids" in text
    assert (tmp_path / "targets.reliability.png").is_file()
    assert frame["holdout"].sum() > 0 and (frame["selected"] | ~frame["holdout"]).all()
    # raw ids are in the file only, never in what the command printed
    assert not any(str(i) in text for i in frame["customer_id"].head(200))


def test_prepared_partition_without_a_key_says_it_carries_pseudonyms(
    run_with_scores: Path,  # noqa: F811
    tiny_data: Path,
    tmp_path: Path,
) -> None:
    out = tmp_path / "t.csv"
    text = ok(
        cli(
            "score",
            run_with_scores,
            "--data",
            tiny_data,
            "--partition",
            "0",
            "--top-n",
            "5",
            "--out",
            out,
        )
    )
    assert "pseudonyms (customer_pseudonym)" in text
    assert "customer_pseudonym" in pd.read_csv(out).columns


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model-source", "pooled", "--top", "10%"], "--model-source 'pooled'"),
        (["--top", "10%", "--top-n", "5"], "both given"),
        (["--top", "150%"], r"--top 150%"),
        (["--top", "lots"], "not a share"),
        (["--top", "10%", "--as-of", "soon"], "not a date"),
        (["--margin", "-2"], "--margin -2"),
        ([], "no selection rule"),
        (["--top", "10%", "--calibrate", "magic"], "--calibrate 'magic'"),
        (["--top", "10%", "--holdout-fraction", "1"], "--holdout-fraction 1.0"),
    ],
)
def test_bad_options(
    run_with_scores: Path,  # noqa: F811
    tiny_raw: Path,
    tmp_path: Path,
    args: list[str],
    message: str,
) -> None:
    result = cli("score", run_with_scores, "--raw", tiny_raw, "--out", tmp_path / "t.csv", *args)
    assert result.exit_code == 2
    assert message in one_error_line(result)
    assert not (tmp_path / "t.csv").exists()


def test_bad_places(
    run_with_scores: Path,  # noqa: F811
    tiny_raw: Path,
    tmp_path: Path,
) -> None:
    base = ["score", "--raw", tiny_raw, "--top", "10%"]
    empty = tmp_path / "empty"
    empty.mkdir()
    result = cli(*base[:1], empty, *base[1:], "--out", tmp_path / "t.csv")
    assert result.exit_code == 2 and "error:" in plain(result)
    no_model = tmp_path / "no-model"
    no_model.mkdir()
    (no_model / "config.json").write_text((run_with_scores / "config.json").read_text())
    result = cli(*base[:1], no_model, *base[1:], "--out", tmp_path / "t.csv")
    assert "no committed round with a global model" in one_error_line(result)
    result = cli(*base[:1], run_with_scores, *base[1:], "--out", tmp_path / "t.xlsx")
    assert "unknown format 'xlsx'" in one_error_line(result)
    result = cli(*base[:1], run_with_scores, *base[1:], "--out", run_with_scores / "t.csv")
    assert "inside the run directory" in one_error_line(result)


def test_prepared_partition_with_the_key_file_carries_raw_ids(
    run_with_scores: Path,  # noqa: F811
    tiny_data: Path,
    tiny_raw: Path,
    tmp_path: Path,
) -> None:
    import base64

    from tests.conftest import TINY_PREPARE

    key = tmp_path / "pseudonym.key"
    key.write_text(base64.b64encode(TINY_PREPARE["pseudonym_key"]).decode())
    key.chmod(0o600)
    out = tmp_path / "t.csv"
    args = ["--data", tiny_data, "--partition", "2", "--top-n", "5", "--out", out]
    text = ok(cli("score", run_with_scores, *args, "--raw", tiny_raw, "--key-file", key))
    assert "the retailer's own customer ids" in text
    frame = pd.read_csv(out, dtype={"customer_id": str})
    users = set(pd.read_parquet(tiny_raw / "retailer_02" / "events.parquet")["user_id"].astype(str))
    assert set(frame["customer_id"]) <= users
    result = cli("score", run_with_scores, *args, "--key-file", key)
    assert "give --data and --raw" in one_error_line(result)


def test_a_churn_run_speaks_of_churners(tiny_data: Path, tiny_raw: Path, tmp_path: Path) -> None:
    from tests.scoring.conftest import make_run

    run = make_run(tiny_data, tmp_path / "run", task="churn")
    text = ok(cli("score", run, "--raw", tiny_raw, "--top", "10%", "--out", tmp_path / "t.csv"))
    assert "exp. churners" in text and "buyers" not in text


def test_a_bare_top_above_one_says_to_write_a_percentage() -> None:
    """`score --top 10` read as a fraction of 10 was refused as "not in (0, 100%]"."""
    from fedmarket.cli.score import parse_share
    from fedmarket.errors import ConfigError

    assert parse_share("10%") == pytest.approx(0.1) and parse_share("0.1") == 0.1
    with pytest.raises(ConfigError, match="for 10% write --top 10%"):
        parse_share("10")
    with pytest.raises(ConfigError, match=r"\(0, 100%\]") as info:
        parse_share("250")
    assert "write --top" not in str(info.value)
