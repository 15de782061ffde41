"""Issue #20's goals judged from the bench's figures."""

from fedmarket.experiments.bench.goals import GOALS, judge


def test_each_goal_is_met_not_met_or_not_measured():
    got = {g["key"]: g for g in judge({"startup_s": 4.0, "dp_over_fast_throughput": 0.38})}
    assert set(got) == {goal.key for goal in GOALS}
    assert got["startup_s"]["met"] is True and got["startup_s"]["shown"] == "4.00 s"
    assert got["startup_s"]["target"] == "<= 5 s"
    dp = got["dp_over_fast_throughput"]
    assert dp["met"] is False and dp["shown"] == "38%" and dp["target"] == ">= 50%"
    sweep = got["sweep_wall_over_training"]
    assert sweep["met"] is None and sweep["shown"] == "not measured"
    assert sweep["target"] == "<= 1.3x"


def test_a_goal_on_its_target_is_met():
    by_key = {g.key: g for g in GOALS}
    assert by_key["contended_over_idle"].met(1.5) and not by_key["contended_over_idle"].met(1.51)
    assert by_key["dp_over_fast_throughput"].met(0.5)
    assert by_key["overhead_per_client_round_ms"].value_text(2.345) == "2.35 ms"
