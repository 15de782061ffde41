"""The terminal and the log file: units on every bar, Flower's noise in the file only."""

from __future__ import annotations

import io
import logging
import warnings

import pytest
from flwr.common.logger import console_handler as flower_console

from fedmarket.progress import log_file, log_to_console, progress_bar


def test_a_bar_with_a_total_counts_in_its_unit(capsys):
    with progress_bar("centralised reference", 3, unit="epochs") as advance:
        for _ in range(3):
            advance(1)
    err = capsys.readouterr().err
    assert "centralised reference" in err and "3/3 epochs" in err


def test_a_count_without_a_total_has_its_unit_and_no_question_mark(capsys):
    with progress_bar("preparing events", None, unit="events") as advance:
        advance(8_695_117)
    err = capsys.readouterr().err
    assert "8,695,117 events" in err and "/?" not in err


def test_progress_needs_a_unit():
    with pytest.raises(TypeError), progress_bar("rows", None):
        pass


@pytest.fixture
def flower_terminal():
    """What Flower's own console handler writes, for the test."""
    stream = io.StringIO()
    previous = flower_console.setStream(stream)
    yield stream
    flower_console.setStream(previous)


def test_flower_debug_info_and_notices_go_to_the_file_only(tmp_path, flower_terminal, capsys):
    log_to_console(logging.INFO)
    flower, ours = logging.getLogger("flwr"), logging.getLogger("fedmarket")
    with log_file(tmp_path / "log.txt") as path:
        flower.debug("Registered 3 nodes")
        flower.info("configure_train: Sampled 3 nodes (out of 3)")
        flower.warning("DEPRECATED FEATURE: The `run_simulation` function is deprecated")
        flower.warning("a client did not answer")
        ours.debug("round 1: epsilon per client {0: 5.9}")
        ours.info("round 1/2: 3/3 replies ok, test roc_auc 0.8123, epsilon max 5.951")
    text = path.read_text()
    for line in ("Registered 3 nodes", "Sampled 3 nodes", "DEPRECATED", "did not answer"):
        assert line in text
    assert "epsilon per client" in text and "roc_auc 0.8123" in text
    terminal = flower_terminal.getvalue()
    assert terminal.count("a client did not answer") == 1  # warnings show, once
    for line in ("Registered 3 nodes", "Sampled 3 nodes", "DEPRECATED"):
        assert line not in terminal
    err = " ".join(capsys.readouterr().err.split())
    assert "roc_auc 0.8123" in err and "epsilon per client" not in err


def test_third_party_warnings_go_to_the_file_ours_also_to_the_terminal(tmp_path, capsys):
    log_to_console(logging.INFO)
    with log_file(tmp_path / "log.txt") as path, warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn_explicit(
            "Tip: In future versions of Ray, ...",
            FutureWarning,
            "/venv/lib/python3.11/site-packages/ray/_private/worker.py",
            2051,
        )
        warnings.warn_explicit("this setting is slow", UserWarning, "/repo/fedmarket/config.py", 10)
        warnings.warn_explicit(  # fedmarket installed without -e: still its own
            "that key is short",
            UserWarning,
            "/venv/lib/python3.11/site-packages/fedmarket/data/protect/keys.py",
            20,
        )
    text = path.read_text()
    assert "In future versions of Ray" in text and "this setting is slow" in text
    err = " ".join(capsys.readouterr().err.split())  # rich wraps at the terminal's width
    assert "In future versions of Ray" not in err and "this setting is slow" in err
    assert "that key is short" in err


def test_the_log_file_is_appended_and_undone(tmp_path):
    ours = logging.getLogger("fedmarket")
    handlers = list(ours.handlers)
    for attempt in ("first", "resumed"):
        with log_file(tmp_path / "log.txt"):
            ours.warning("%s process", attempt)
    assert ours.handlers == handlers and warnings.showwarning is not None
    text = (tmp_path / "log.txt").read_text()
    assert "first process" in text and "resumed process" in text


def test_a_bar_inside_another_goes_when_it_is_done(capsys):
    with progress_bar("trade-off sweep", 2, unit="runs") as sweep:
        for _ in range(2):
            with progress_bar("federated rounds", 3, unit="rounds") as rounds:
                rounds(3)
            sweep(1)
    err = capsys.readouterr().err
    assert "2/2 runs" in err and "rounds" not in err


@pytest.fixture
def console_settings(monkeypatch):
    """log_to_console's Flower settings, put back after the test."""
    from fedmarket import progress

    monkeypatch.setattr(progress, "_flower_console", list(progress._flower_console))


def test_a_command_s_flower_filter_holds_for_every_run_it_starts(flower_terminal, console_settings):
    """`fedmarket bench`: its filter is set before Flower is imported (no Flower console
    handler yet), and each simulate it starts calls quiet_flower() once Flower is there;
    every one of them keeps the bench's drops."""
    from fedmarket.progress import quiet_flower

    flower = logging.getLogger("flwr")
    flower.removeHandler(flower_console)  # as before `import flwr`
    try:
        log_to_console(logging.WARNING, drop_flower=("fraction_evaluate is set to 0.0",))
    finally:
        flower.addHandler(flower_console)  # Flower imported by the first simulate
    for run in ("first", "second", "third"):
        quiet_flower()  # each simulate's
        flower.warning("fraction_evaluate is set to 0.0: federated evaluation skipped")
        flower.info("configure_train: Sampled 3 nodes (out of 3)")
        flower.warning("%s run: a client did not answer", run)
    terminal = flower_terminal.getvalue()
    assert "fraction_evaluate" not in terminal and "Sampled 3 nodes" not in terminal
    for run in ("first", "second", "third"):
        assert terminal.count(f"{run} run: a client did not answer") == 1
    assert sum(isinstance(f, logging.Filter) for f in flower_console.filters) == 1


def test_the_next_command_replaces_the_drops(flower_terminal, console_settings):
    from fedmarket.progress import quiet_flower

    log_to_console(logging.WARNING, drop_flower=("fraction_evaluate is set to 0.0",))
    log_to_console(logging.INFO)  # e.g. `fedmarket simulate` next, in the same process
    quiet_flower()
    flower = logging.getLogger("flwr")
    flower.warning("fraction_evaluate is set to 0.0: federated evaluation skipped")
    flower.warning("DEPRECATED FEATURE: run_simulation")
    terminal = flower_terminal.getvalue()
    assert "fraction_evaluate" in terminal and "DEPRECATED" not in terminal
