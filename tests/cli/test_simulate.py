"""`fedmarket simulate`: on encrypted prepared data (the key by file or environment, and the
two ways it can be missing, each one error line before Ray starts and before any file is
made), and its run settings (checked, suggested and listed before anything heavy is imported).

The runs through Ray are slow (about 10 s of start-up each); the refusals are fast.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from fedmarket.config import DEFAULTS, format_overrides
from fedmarket.data.protect.keys import ENCRYPTION_KEY_ENV, create_key_file
from fedmarket.experiments import simulate as simulate_module
from tests.cli.output import cli, ok, one_error_line, usage_error
from tests.conftest import EncryptedData, files_holding

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parents[2]
RUN = ["--run-config", "num-server-rounds=2 dp='none'", "--client-cpus", "1"]
COMPARED = ("roc_auc", "pr_auc", "log_loss", "accuracy", "n")


def simulate(data: Path, out: Path, *options: object):
    return cli("simulate", "--data", data, "--out", out, *RUN, *options)


def scored(summary: dict, part: str) -> dict:
    return {k: summary[part]["test"][k] for k in COMPARED}


@pytest.fixture(scope="module")
def plain_summary(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("plain") / "run"
    ok(simulate(tiny_data, out))
    return json.loads((out / "summary.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("source", ["file", "env"])
def test_encrypted_data_trains_as_its_plain_copy_and_the_key_is_written_nowhere(
    plain_summary: dict,
    tiny_encrypted: EncryptedData,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    source: str,
) -> None:
    """The server's pooled test set, every Ray client's partition and the centralised
    reference all read the encrypted copy: the same seed gives the same summary."""
    monkeypatch.delenv(ENCRYPTION_KEY_ENV, raising=False)
    options: list[object] = []
    if source == "file":  # then nothing but the app's pickled closure brings the key to Ray
        options = ["--encryption-key-file", tiny_encrypted.key_file]
    else:
        monkeypatch.setenv(ENCRYPTION_KEY_ENV, tiny_encrypted.key_text)
    out = tmp_path / "run"
    printed = ok(simulate(tiny_encrypted.data, out, *options))
    summary = json.loads((out / "summary.json").read_text())
    for part in ("federated", "centralised"):
        assert scored(summary, part) == pytest.approx(
            scored(plain_summary, part), rel=1e-6, abs=1e-6
        )
    assert summary["federated"]["failures"] == {"failed": 0, "declined": 0, "timed_out": 0}
    secrets = tiny_encrypted.secret_forms()
    assert not files_holding(out, secrets)  # config.json, summary.json, rounds.csv, checkpoints
    assert not any(s.decode("latin-1") in printed for s in secrets)


@pytest.mark.slow
def test_the_terminal_has_a_line_per_round_and_the_log_file_everything_else(
    tiny_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    printed = " ".join(ok(simulate(tiny_data, out)).split())  # rich wraps at 80 columns
    for line in ("round 1/2: 3/3 replies ok, test roc_auc 0.", "round 2/2: 3/3 replies ok"):
        assert line in printed
    assert "2/2 rounds" in printed and "centralised epoch 1/" in printed and "epochs" in printed
    assert f"run directory: {out}" in printed and "log.txt" in printed
    logged = (out / "log.txt").read_text()
    for kept_off_the_terminal in ("DEPRECATED FEATURE", "configure_train", "Initialising"):
        assert kept_off_the_terminal in logged and kept_off_the_terminal not in printed
    assert " DEBUG " in logged and " DEBUG " not in printed
    assert "round 2/2: 3/3 replies ok" in logged


@pytest.fixture
def no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail loudly if the command gets as far as starting the Flower simulation."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the simulation started: the key was not checked before Ray")

    monkeypatch.setattr(simulate_module, "_run_flower", refuse)


@pytest.mark.parametrize("way", ["no key", "wrong key file", "wrong key in env"])
def test_a_missing_or_wrong_key_is_one_error_line_before_ray_and_before_any_file(
    tiny_encrypted: EncryptedData,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_ray: None,
    way: str,
) -> None:
    monkeypatch.delenv(ENCRYPTION_KEY_ENV, raising=False)
    options: list[object] = []
    if way == "wrong key file":
        create_key_file(tmp_path / "other.key", "fernet")
        options = ["--encryption-key-file", tmp_path / "other.key"]
    elif way == "wrong key in env":
        monkeypatch.setenv(ENCRYPTION_KEY_ENV, Fernet.generate_key().decode())
    out = tmp_path / "run"
    line = one_error_line(simulate(tiny_encrypted.data, out, *options))
    if way == "no key":
        assert "holds encrypted prepared data" in line
        assert "--encryption-key-file" in line and ENCRYPTION_KEY_ENV in line
    else:
        assert "does not decrypt" in line and "wrong key for this prepared data" in line
        assert "holds encrypted prepared data" not in line
    assert not out.exists()


def test_a_key_file_inside_the_run_directory_is_refused(
    tiny_encrypted: EncryptedData, tmp_path: Path, no_ray: None
) -> None:
    out = tmp_path / "run"
    create_key_file(out / "encryption.key", "fernet")
    line = one_error_line(
        simulate(tiny_encrypted.data, out, "--encryption-key-file", out / "encryption.key")
    )
    assert "is inside data directory" in line


# --- the run settings: read, checked and explained before anything heavy happens -------


@pytest.fixture
def no_experiment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail loudly if the command gets as far as the experiment."""

    def refuse(**kwargs: object) -> None:
        raise AssertionError("the experiment ran: the run settings were not checked first")

    monkeypatch.setattr(simulate_module, "simulate", refuse)


@pytest.mark.parametrize(
    ("run_config", "error"),
    [
        (
            "num-rounds=5",
            "error: --run-config: unknown key 'num-rounds'; did you mean 'num-server-rounds'? "
            "known keys: accountant, batch-size,",
        ),
        (
            "model=lstm",
            "error: --run-config: model=lstm: a string must be quoted, as flwr reads TOML: "
            "model='lstm'",
        ),
        (
            "model='lstn'",
            "error: --run-config: model 'lstn' is unknown; did you mean 'lstm'? known: cnn-lstm,",
        ),
        ("num-server-rounds=0", "error: --run-config: num-server-rounds must be a positive"),
        ("strategy='fedprx'", "error: --run-config: unknown strategy 'fedprx'; did you mean"),
    ],
)
def test_a_bad_run_setting_is_one_error_line_before_the_experiment(
    tiny_data: Path, tmp_path: Path, no_experiment: None, run_config: str, error: str
) -> None:
    out = tmp_path / "run"
    line = one_error_line(
        cli("simulate", "--data", tiny_data, "--out", out, "--run-config", run_config)
    )
    assert line.startswith(error), line
    assert not out.exists()


LIGHT_CHECK = """
import sys
from fedmarket.cli import app
try:
    app(sys.argv[1:], prog_name="fedmarket")
except SystemExit as exc:
    code = exc.code
heavy = sorted(m for m in ("torch", "flwr", "ray", "opacus") if m in sys.modules)
print(f"exit={code} heavy={heavy}", file=sys.stderr)
"""


@pytest.mark.parametrize(
    "args",
    [
        ["simulate", "--run-config", "num-server-rounds=0"],
        ["simulate", "--run-config", "num-rounds=5"],
        ["simulate", "--run-config", "model=lstm"],
        ["centralised", "--data", "d", "--out", "o", "--run-config", "model='lstn'"],
        ["tradeoff", "--out", "o", "--run-config", "bogus=1"],
    ],
)
def test_run_settings_are_refused_before_torch_flwr_or_ray_is_imported(
    tmp_path: Path, args: list[str]
) -> None:
    """The claim "settings validated before heavy imports" as a behaviour: the failing
    command, in a fresh interpreter, leaves none of the heavy packages imported (they take
    seconds, tens of seconds on a busy machine), and writes nothing."""
    done = subprocess.run(
        [sys.executable, "-c", LIGHT_CHECK, *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"},
        timeout=120,
    )
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines[-1] == "exit=2 heavy=[]", done.stderr
    assert [line for line in lines if line.startswith("error:")] == lines[:1], done.stderr
    assert "Traceback" not in done.stderr and not any(tmp_path.iterdir())


def test_help_lists_every_run_setting_with_its_default() -> None:
    text = ok(cli("simulate", "--help", env={"COLUMNS": "200"}))
    entries = dict([*line.split(maxsplit=1), ""][:2] for line in text.splitlines() if line.strip())
    for key, value in DEFAULTS.items():  # each on a line of its own, with what it means
        assert entries.get(format_overrides({key: value}), "").strip(), key
    assert "strings are quoted" in text


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (
            ["--rounds", "5"],
            "No such option '--rounds'. Run settings are set with --run-config, e.g. "
            '--run-config "num-server-rounds=5".',
        ),
        (
            ["--model=lstm"],
            "No such option '--model'. Run settings are set with --run-config, e.g. "
            "--run-config \"model='lstm'\".",
        ),
        (
            ["--epsilon", "4"],
            "No such option '--epsilon'. Run settings are set with --run-config, e.g. "
            '--run-config "target-epsilon=4".',
        ),
        (["--outt", "runs/x"], "No such option '--outt'. Did you mean '--out'?"),
        # data-dir is a run setting simulate sets from --data: never pointed to
        (["--data-dir", "d"], "No such option '--data-dir'. Did you mean '--data'?"),
    ],
)
def test_an_unknown_option_names_the_option_or_run_setting_meant(
    option: list[str], expected: str
) -> None:
    """`simulate --rounds 5` once suggested --out: now the run setting, with the value."""
    assert usage_error(cli("simulate", *option)) == expected


def test_the_outcome_shows_the_decision_metrics_the_three_answers_and_the_page(tmp_path: Path):
    """The console used to end on F1 at 0.5 (0.0000 for a good federated model at a 13 %
    base rate) and named report.md; it now shows the top-10% cut, the report's three
    answers and the page to open."""
    from fedmarket.cli.simulate import print_outcome
    from fedmarket.config import RunConfig
    from fedmarket.progress import console
    from fedmarket.reporting import build_summary
    from fedmarket.tasks import get_task
    from tests.reporting.fake_run import centralised, federated_result, scores

    task = get_task("purchase")
    y, fed_score = scores(0, 1.5)
    cen_score = scores(1, 2.0)[1]
    anchor_test = task.report(y, scores(2, 1.0)[1])
    anchor = {"model": "bg-nbd", "dp": True, "epsilon": 8.0, "delta": 1e-4, "test": anchor_test}
    summary = build_summary(
        RunConfig.from_mapping({"num-server-rounds": 3}),
        federated_result(task.report(y, fed_score)),
        centralised(task.report(y, cen_score), y, cen_score),
        anchor=anchor,
    )
    with console.capture() as captured:
        print_outcome(summary, tmp_path)
    printed = " ".join(captured.get().split())
    fed = summary["federated"]["test"]
    assert f"lift, top 10% │ {fed['lift_at_10']:.4f}" in printed
    assert f"F1, top 10% │ {fed['f1_at_10']:.4f}" in printed
    assert "│ f1 " not in printed and "accuracy" not in printed
    assert "- Federation costs" in printed and "- Privacy: customer-level DP" in printed
    assert "- Targeting with the federated model: contacting the top 10%" in printed
    assert f"run directory: {tmp_path}: open report.html" in printed
    roc = f"{fed['roc_auc']:.3f} ({fed['roc_auc_low']:.3f}-{fed['roc_auc_high']:.3f})"
    assert f"ROC-AUC │ {roc} │" in printed and "95% intervals in brackets" in printed
    assert f"{fed['n']:,} customers, {fed['n_positive']:,} buyers" in printed
    assert "test set has only" not in printed  # 400 test customers, 58 buyers
    # the anchor's line, after federation's, and its epsilon added to the training's 7.5
    fed_auc, anchor_auc = fed["roc_auc"], anchor_test["roc_auc"]
    assert fed_auc > anchor_auc
    line = (
        "- The classical BG/NBD anchor, fitted across the retailers without pooling under its "
        f"own client DP (epsilon 8), reaches ROC-AUC {anchor_auc:.3f} ("
    )
    assert line in printed
    assert f"the federated model {fed_auc:.3f}, {fed_auc - anchor_auc:.3f} above it." in printed
    assert printed.index("- Federation costs") < printed.index(line)
    assert summary["anchor"]["combined_epsilon"] == 15.5
    assert (
        "spent on top of the training's: a retailer that answers both spends both, at most "
        "epsilon = 15.5, delta = 0.0002 (basic composition)." in summary["privacy"]
    )


def test_the_outcome_warns_when_the_test_set_is_small(tmp_path: Path):
    from fedmarket.cli.simulate import print_outcome
    from fedmarket.config import RunConfig
    from fedmarket.progress import console
    from fedmarket.reporting import build_summary
    from fedmarket.tasks import get_task
    from tests.reporting.fake_run import centralised, federated_result, scores

    y, score = (a[:60] for a in scores(0, 1.5))
    report = get_task("purchase").report(y, score)
    summary = build_summary(
        RunConfig.from_mapping({"num-server-rounds": 3}),
        federated_result(report),
        centralised(report, y, score),
    )
    with console.capture() as captured:
        print_outcome(summary, tmp_path)
    printed = " ".join(captured.get().split())
    assert f"- Caution: the test set has only {report['n_positive']} buyers" in printed


def test_the_outcome_shows_each_retailer_and_who_joining_does_not_pay(tmp_path: Path):
    from fedmarket.cli.simulate import print_outcome
    from fedmarket.progress import console
    from tests.reporting.test_markdown import summary as run_summary
    from tests.reporting.test_retailers import block

    with console.capture() as captured:
        print_outcome({**run_summary(), "retailers": block()}, tmp_path)
    printed = " ".join(captured.get().split())
    assert "per retailer, each on its own test customers: ROC-AUC (difference:" in printed
    assert "retailer_01 4 50% 1.000 0.250 -0.750 (-1.443 to -0.057)" in printed
    assert "lift at 10%" not in printed  # the short table: report.md has the lift columns
    assert "- Joining does not pay, on ROC-AUC, for: retailer_01." in printed


def test_the_outcome_shows_the_personalised_model_against_local_only(tmp_path: Path):
    from fedmarket.cli.simulate import print_outcome
    from fedmarket.progress import console
    from fedmarket.value.per_retailer import compare_retailers, retailers_block
    from tests.reporting.test_markdown import summary as run_summary
    from tests.reporting.test_retailers import FED0, FED1, LOC0, LOC1, NAMES, predictions

    rows = compare_retailers(
        predictions(FED0, FED1),
        predictions(LOC0, LOC1),
        names=NAMES,
        personal=(rows_p := predictions(FED0, LOC1)),
    )
    block = retailers_block(rows, "purchase", local_only="trained")
    block["personal"] = "ditto"
    with console.capture() as captured:
        print_outcome({**run_summary(), "retailers": block}, tmp_path)
    printed = " ".join(captured.get().split())
    assert "retailer_01 4 50% 1.000 0.250 -0.750 (-1.443 to -0.057) - Joining" in printed
    assert (
        "- Personalised models (ditto), ROC-AUC and difference from local-only: retailer_00 "
        "1.000, 0.333 (-0.320 to 0.987); retailer_01 1.000, 0.000 (0.000-0.000)."
    ) in printed
    alone = compare_retailers(predictions(FED0, FED1), None, names=NAMES, personal=rows_p)
    no_local = retailers_block(alone, "purchase", local_only="off: x") | {"personal": "ditto"}
    with console.capture() as captured:
        print_outcome({**run_summary(), "retailers": no_local}, tmp_path)
    printed = " ".join(captured.get().split())
    assert "retailer_01 4 50% 0.250 - Personalised models (ditto), ROC-AUC and " in printed
    assert "difference from federated: retailer_00 1.000, 0.000" in printed
