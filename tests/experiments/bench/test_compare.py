"""fedmarket against other frameworks (issue #20): the arithmetic of the comparison on
hand-made runs, the alternation, and the clear stop where pfl-research is not installed."""

import sys
from datetime import datetime
from pathlib import Path

import pytest

from fedmarket.errors import ConfigError, FedmarketError
from fedmarket.experiments.bench import BenchConfig
from fedmarket.experiments.bench.compare import (
    alternated,
    fedmarket_split,
    pfl_missing,
    settings_of,
    stamped_split,
    steady_round,
    summary,
    table,
)
from fedmarket.experiments.bench.goal_stages import PFL_SKIPPED, goal_notes, goal_ratios
from fedmarket.experiments.bench.goals import judge
from fedmarket.experiments.bench.pfl_run import require_pfl


def test_runs_alternate_which_goes_first():
    assert alternated(3, ("fedmarket", "pfl")) == [
        (0, "fedmarket"),
        (0, "pfl"),
        (1, "pfl"),
        (1, "fedmarket"),
        (2, "fedmarket"),
        (2, "pfl"),
    ]
    with pytest.raises(ConfigError, match="repeats"):
        alternated(0, ("a", "b"))


def test_a_steady_round_is_the_median_of_rounds_two_on():
    # rounds 1..4 ended at 10, 12, 15, 16: rounds 2-4 took 2, 3, 1
    assert steady_round([10.0, 12.0, 15.0, 16.0]) == pytest.approx(2.0)
    assert steady_round([5.0, 5.5]) == pytest.approx(0.5)
    with pytest.raises(FedmarketError, match="two rounds"):
        steady_round([5.0])


def test_a_stamped_run_splits_into_start_rounds_and_wall():
    rounds = [  # out of order on purpose: sorted by round
        {"round": 2, "at": 1012.0, "roc_auc": 0.85},
        {"round": 0, "at": 1007.5, "roc_auc": 0.6},
        {"round": 1, "at": 1010.0, "roc_auc": 0.8},
        {"round": 3, "at": 1013.0, "roc_auc": 0.86},
    ]
    got = stamped_split(rounds, started=1000.0, wall=15.0)
    # round 1 ended at 1010; rounds 2 and 3 took 2.0 and 1.0
    assert got == {
        "wall_s": 15.0,
        "to_round_s": 7.5,
        "round1_done_s": 10.0,
        "round_s": 1.5,
        "tail_s": 2.0,  # the process ended at 1015, the last round at 1013
        "roc_auc": 0.86,
    }


def test_a_fedmarket_run_splits_from_its_log_and_rounds(tmp_path: Path):
    (tmp_path / "log.txt").write_text(
        "2026-12-02 01:00:03,000 | INFO | starting\n2026-12-02 01:00:09,500 | INFO | [ROUND 1/3]\n"
        "2026-12-02 01:00:12,250 | INFO | [ROUND 2/3]\n"
    )
    (tmp_path / "rounds.csv").write_text(
        "round,elapsed_s,test_roc_auc\n1,10.0,0.80\n2,10.75,0.85\n3,11.75,0.8565\n"
    )
    started = datetime(2026, 12, 2, 1, 0, 2).timestamp()
    got = fedmarket_split(tmp_path, started, wall=20.0)
    assert got["to_round_s"] == pytest.approx(7.5)
    assert got["round1_done_s"] == pytest.approx(10.25)
    assert got["round_s"] == pytest.approx((0.75 + 1.0) / 2)
    # round 1 ended 10.25 s in, round 3 1.75 s later: 12.0 s of the 20.0 s wall
    assert got["tail_s"] == pytest.approx(20.0 - 12.0)
    assert got["wall_s"] == 20.0 and got["roc_auc"] == pytest.approx(0.8565)


def _runs():
    return [
        {
            "name": "fedmarket",
            "wall_s": 40.0,
            "to_round_s": 20.0,
            "round1_done_s": 30.0,
            "tail_s": 10.0,
            "round_s": 0.5,
            "roc_auc": 0.8,
        },
        {
            "name": "quickstart",
            "wall_s": 50.0,
            "to_round_s": 30.0,
            "round1_done_s": 60.0,
            "tail_s": 5.0,
            "round_s": 1.0,
            "roc_auc": 0.8,
        },
        {
            "name": "quickstart",
            "wall_s": 60.0,
            "to_round_s": 28.0,
            "round1_done_s": 40.0,
            "tail_s": 7.0,
            "round_s": 2.0,
            "roc_auc": 0.9,
        },
        {
            "name": "fedmarket",
            "wall_s": 44.0,
            "to_round_s": 22.0,
            "round1_done_s": 32.0,
            "tail_s": 12.0,
            "round_s": 0.7,
            "roc_auc": 0.9,
        },
    ]


def test_the_summary_sets_fedmarkets_medians_against_the_others():
    got = summary(_runs())
    assert got["medians"]["fedmarket"] == {
        "wall_s": 42.0,
        "to_round_s": 21.0,
        "round1_done_s": 31.0,
        "round_s": 0.6,
        "tail_s": 11.0,
        "roc_auc": pytest.approx(0.85),
    }
    assert got["medians"]["quickstart"]["wall_s"] == 55.0
    ratio = got["ratios"]["quickstart"]
    assert ratio["wall_s"] == pytest.approx(42.0 / 55.0)
    assert ratio["to_round_s"] == pytest.approx(21.0 / 29.0)
    assert ratio["round1_done_s"] == pytest.approx(31.0 / 50.0)
    assert ratio["round_s"] == pytest.approx(0.6 / 1.5)
    assert ratio["tail_s"] == pytest.approx(11.0 / 6.0)
    text = table(got, "quickstart")
    assert "| end-to-end wall, s | 42.00 | 55.00 | 0.76x |" in text
    with pytest.raises(FedmarketError, match="no fedmarket run"):
        summary([r for r in _runs() if r["name"] != "fedmarket"])


def test_settings_refuse_unknown_keys_and_a_single_round():
    assert settings_of(rounds=4)["rounds"] == 4 and settings_of()["batch_size"] == 64
    with pytest.raises(ConfigError, match="unknown setting"):
        settings_of(round=3)
    with pytest.raises(ConfigError, match="must be >= 2"):
        settings_of(rounds=1)


def test_the_comparisons_feed_their_goals_and_a_missing_pfl_says_how_to_install_it():
    report = {
        "quickstart": {"ratios": {"quickstart": {"wall_s": 0.7, "round_s": 0.5}}},
        "pfl": {"skipped": PFL_SKIPPED},
    }
    ratios = goal_ratios(report)
    assert ratios == {"fedmarket_over_quickstart_wall": 0.7, "fedmarket_over_quickstart_round": 0.5}
    goals = {g["key"]: g for g in judge(ratios, goal_notes(report))}
    assert goals["fedmarket_over_quickstart_wall"]["met"] is True
    assert goals["fedmarket_over_quickstart_wall"]["target"] == "<= 0.8x"
    pfl = goals["fedmarket_over_pfl_wall"]
    assert pfl["met"] is None and pfl["shown"] == "skipped: install fedmarket[compare]"
    assert goals["fedmarket_over_pfl_round"]["shown"] == PFL_SKIPPED


def test_the_bench_can_skip_the_comparisons(tmp_path: Path):
    cfg = BenchConfig(out=tmp_path, skip=("quickstart", "pfl"))
    assert not cfg.runs("quickstart") and not cfg.runs("pfl") and cfg.runs("startup")


@pytest.mark.skipif(
    __import__("importlib").util.find_spec("pfl") is not None, reason="pfl is installed here"
)
def test_without_pfl_the_pfl_side_names_the_extra():
    with pytest.raises(ConfigError, match=r"compare.*pip install -e '\.\[compare\]'"):
        require_pfl()
    why = pfl_missing(sys.executable)
    assert why is not None and "`compare`" in why and "No module named 'pfl'" in why


def test_a_compared_run_reads_the_settings_run_module_sends() -> None:
    from fedmarket.experiments.bench.compare import DEFAULTS, settings_of
    from fedmarket.experiments.bench.quickstart import one_run_args

    settings = settings_of(rounds=4, batch_size=32, lr=0.01)
    sent = [f"--{k.replace('_', '-')}={v}" for k, v in settings.items()]
    data, out, got = one_run_args("x", ["--data", "d", "--out", "o", *sent])
    assert (data, out, got) == (Path("d"), Path("o"), settings)
    assert one_run_args("x", ["--data", "d", "--out", "o"])[2] == DEFAULTS
