"""`fedmarket score` on a recommendation run: the top-k list it writes, what it prints, and
the targeting list's options it refuses."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.cli.output import cli, ok, one_error_line
from tests.scoring.conftest import rec_run, scoring_run  # noqa: F401  (fixtures)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_score_writes_every_customers_top_k_and_prints_the_summary(
    rec_run: Path,  # noqa: F811
    tiny_raw: Path,
    tmp_path: Path,
) -> None:
    out = tmp_path / "recs.parquet"
    text = ok(cli("score", rec_run, "--raw", tiny_raw, "--top-k", "4", "--out", out))
    frame = pd.read_parquet(out)
    assert list(frame.columns) == [
        "retailer", "customer_id", "rank", "category", "score", "cold", "as_of"
    ]  # fmt: skip
    per = frame.groupby(["retailer", "customer_id"])
    assert (per.size() == 4).all()
    assert all(list(r) == [1, 2, 3, 4] for r in per["rank"].apply(list))
    assert (per["score"].apply(lambda s: s.is_monotonic_decreasing)).all()
    for word in ("Recommendations: top 4", "catalogue coverage", "cold", "customer_id"):
        assert word in text
    assert not any(str(i) in text for i in frame["customer_id"].head(200))
    # --exclude-bought: fewer categories that the customer bought, never more rows
    csv = tmp_path / "fresh.csv"
    ok(cli("score", rec_run, "--raw", tiny_raw, "--exclude-bought", "--out", csv))
    fresh = pd.read_csv(csv)
    assert len(fresh) <= fresh["customer_id"].nunique() * 10


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--top", "10%"), "--top: the run ranks categories"),
        (("--margin", "2", "--contact-cost", "1"), "--margin, --contact-cost"),
        (("--top-k", "0"), "--top-k must be a positive integer"),
        (("--partition", "0"), "--partition: the run ranks"),
    ],
)
def test_a_recommendation_run_refuses_the_targeting_options(
    rec_run: Path,  # noqa: F811
    tiny_raw: Path,
    tmp_path: Path,
    args: tuple[str, ...],
    message: str,
) -> None:
    result = cli("score", rec_run, "--raw", tiny_raw, "--out", tmp_path / "r.csv", *args)
    assert message in one_error_line(result)


def test_without_raw_and_on_a_propensity_run(
    rec_run: Path,  # noqa: F811
    scoring_run: Path,  # noqa: F811
    tmp_path: Path,
    tiny_raw: Path,
) -> None:
    result = cli("score", rec_run, "--out", tmp_path / "r.csv")
    assert "--raw EXPORT" in one_error_line(result)
    result = cli(
        "score", scoring_run, "--raw", tiny_raw, "--top-k", "5", "--out", tmp_path / "t.csv"
    )
    assert "apply to a recommendation run" in one_error_line(result)
    result = cli("score", rec_run, "--raw", tiny_raw, "--out", rec_run / "r.csv")
    assert "inside the run directory" in one_error_line(result)
