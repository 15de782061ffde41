"""fedmarket.threads: the usable cores, the load, the option and the environment, in order."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fedmarket import threads
from fedmarket.errors import ConfigError
from fedmarket.threads import (
    ThreadChoice,
    apply_threads,
    busy_cores,
    cgroup_cpus,
    choose_threads,
    parse_threads,
    usable_cores,
)


@pytest.fixture
def keep_torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def cgroup(tmp_path: Path, *, v2: str | None = None, v1: tuple[str, str] | None = None) -> Path:
    if v2 is not None:
        (tmp_path / "cpu.max").write_text(v2 + "\n")
    if v1 is not None:
        (tmp_path / "cpu").mkdir()
        (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text(v1[0] + "\n")
        (tmp_path / "cpu" / "cpu.cfs_period_us").write_text(v1[1] + "\n")
    return tmp_path


@pytest.mark.parametrize(
    ("v2", "v1", "cores"),
    [
        ("max 100000", None, None),  # v2 without a quota
        ("150000 100000", None, 1.5),  # v2: one and a half cores
        (None, ("-1", "100000"), None),  # v1 without a quota
        (None, ("200000", "100000"), 2.0),  # v1: two cores
        (None, None, None),  # no cgroup files at all
        ("garbage", None, None),  # unreadable: no quota rather than an error
    ],
)
def test_cgroup_quota_v1_and_v2(tmp_path, v2, v1, cores):
    assert cgroup_cpus(cgroup(tmp_path, v2=v2, v1=v1)) == cores


def test_usable_cores_is_the_affinity_capped_by_the_quota():
    assert usable_cores(affinity=8, quota=None) == 8
    assert usable_cores(affinity=8, quota=1.5) == 2  # a part core still runs a thread
    assert usable_cores(affinity=2, quota=16.0) == 2
    assert usable_cores(affinity=4, quota=0.5) == 1
    assert usable_cores() >= 1  # this machine, whatever it is


def test_busy_cores_are_the_load_as_a_share_of_ours():
    assert busy_cores(2, load=0.3, cpus=2) == 0  # a core a third busy still gets a thread
    assert busy_cores(2, load=2.2, cpus=2) == 2
    assert busy_cores(2, load=9.0, cpus=2) == 2  # more than we have: all of ours
    assert busy_cores(2, load=4.0, cpus=16) == 0  # a container's host: load spread over 16
    assert busy_cores(4, load=16.0, cpus=16) == 4


def test_the_default_is_the_usable_cores_less_the_busy_ones():
    env: dict[str, str] = {}
    assert choose_threads(env=env, usable=4, busy=0) == ThreadChoice(4, 4, "idle")
    assert choose_threads(env=env, usable=4, busy=1).threads == 3
    assert choose_threads(env=env, usable=2, busy=2) == ThreadChoice(1, 2, "2 busy elsewhere")


def test_option_then_fedmarket_threads_then_omp_num_threads():
    both = {"FEDMARKET_THREADS": "3", "OMP_NUM_THREADS": "5"}
    assert choose_threads(2, env=both, usable=8, busy=0) == ThreadChoice(2, 8, "--threads")
    assert choose_threads(env=both, usable=8, busy=0).threads == 3
    assert choose_threads(env=both, usable=8, busy=0).source == "$FEDMARKET_THREADS"
    omp = choose_threads(env={"OMP_NUM_THREADS": "5", "FEDMARKET_THREADS": " "}, usable=8)
    assert (omp.threads, omp.source) == (5, "$OMP_NUM_THREADS")
    assert "1 thread (8 usable cores, --threads)" in choose_threads(1, env={}, usable=8).describe()


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5", "", "2 3"])
def test_a_bad_count_names_where_it_came_from(value):
    with pytest.raises(ConfigError, match=r"\$FEDMARKET_THREADS: .* whole number >= 1"):
        choose_threads(env={"FEDMARKET_THREADS": value or "0"}, usable=2)
    with pytest.raises(ConfigError, match=r"--threads: .* whole number >= 1"):
        parse_threads(value, "--threads")


def test_a_bad_option_wins_over_a_good_environment():
    with pytest.raises(ConfigError, match="--threads"):
        choose_threads(0, env={"FEDMARKET_THREADS": "2"}, usable=2)


def test_apply_sets_torch_and_logs_the_choice_once(keep_torch_threads, monkeypatch, caplog):
    monkeypatch.setattr(threads, "_logged", None)
    monkeypatch.setenv("FEDMARKET_THREADS", "2")
    with caplog.at_level("INFO", logger="fedmarket"):
        assert apply_threads().threads == 2
        assert torch.get_num_threads() == 2
        apply_threads()  # every client round calls it: the line is said once
        made = ThreadChoice(1, 2, "--threads")
        assert apply_threads(made) is made  # a choice already shown is applied as it is
        assert torch.get_num_threads() == 1
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("torch:")]
    assert lines == [
        "torch: 2 threads (2 usable cores, $FEDMARKET_THREADS)".replace(
            "2 usable", f"{usable_cores()} usable"
        ),
        "torch: 1 thread (2 usable cores, --threads)",
    ]
