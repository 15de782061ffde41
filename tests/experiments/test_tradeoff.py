import json
import math
from pathlib import Path

import pytest

from fedmarket.data.protect.keys import ENCRYPTION_KEY_ENV
from fedmarket.errors import ConfigError
from fedmarket.experiments.tradeoff import (
    CSV_COLUMNS,
    SETTINGS,
    Point,
    SweepConfig,
    format_overrides,
    load_table,
    read_record,
    run_sweep,
    summarise,
    sweep_points,
    sweep_runs,
)
from tests.conftest import EncryptedData, files_holding


class FakeRunner:
    """A cheap point runner: metrics are a function of the point; chosen keys raise."""

    def __init__(self, fail: set[str] = frozenset()) -> None:
        self.fail, self.calls = set(fail), []

    def __call__(self, point: Point, run_dir: Path) -> dict:
        assert not run_dir.exists(), "a point must start in a clean directory"
        self.calls.append(point.key)
        run_dir.mkdir(parents=True)
        (run_dir / "partial.txt").write_text("half-written output")
        if point.key in self.fail:
            raise RuntimeError(f"boom in {point.key}")
        eps = point.epsilon
        return {
            "epsilon": eps,
            "delta": None if eps is None else 1e-5,
            "roc_auc": 0.9 if eps is None else 0.5 + eps / 100 + point.seed / 1000,
            "attack_auc": 0.5 + (0.02 if eps is None else 0.0),
            "wall_s": 1.0,
        }


def config(tmp_path: Path, **changes) -> SweepConfig:
    values = {"out": tmp_path / "sweep", "epsilons": (1.0, 8.0), "seeds": (0,), "rounds": 1}
    return SweepConfig(**{**values, **changes})


def test_points_and_shared_no_dp_runs(tmp_path: Path):
    cfg = config(tmp_path, seeds=(0, 1))
    points = sweep_points(cfg)
    assert len(points) == 2 * 3 * 3  # seeds x settings x (2 epsilons + no DP)
    keys = [p.key for p in sweep_runs(cfg)]
    assert len(keys) == 2 * (3 * 2 + 2)  # no DP: one federated and one centralised run per seed
    assert "federated-nodp-seed1" in keys and "centralised-nodp-seed0" in keys
    assert Point("federated-central-dp", 0.5, 2).key == "federated-central-dp-eps0.5-seed2"
    assert Point("federated-client-dp", None, 0).key == Point("federated-central-dp", None, 0).key


def test_a_failed_point_is_recorded_and_retried_and_finished_points_are_skipped(tmp_path: Path):
    cfg = config(tmp_path)
    bad = "federated-central-dp-eps8-seed0"
    first = FakeRunner(fail={bad})
    seen = []
    result = run_sweep(cfg, runner=first, advance=lambda n=1, description=None: seen.append(n))
    assert len(first.calls) == 8 and sum(seen) == 8
    assert [r["key"] for r in result.failed] == [bad]
    record = read_record(cfg.out, bad)
    assert record["status"] == "error" and "RuntimeError: boom in" in record["error"]
    assert "Traceback" in record["traceback"]
    assert read_record(cfg.out, "federated-client-dp-eps8-seed0")["status"] == "ok"
    frame = load_table(result.paths["csv"])
    assert len(frame) == 9 and list(frame.columns) == list(CSV_COLUMNS)
    assert frame.loc[frame["run"] == bad, "status"].item() == "error"
    assert bad in result.paths["md"].read_text()

    second = FakeRunner()
    result = run_sweep(cfg, runner=second)
    assert second.calls == [bad]  # only the failed point; its leftovers were removed first
    assert result.skipped == 7 and result.failed == []
    frame = load_table(result.paths["csv"])
    assert (frame["status"] == "ok").all()
    assert frame.loc[frame["run"] == bad, "roc_auc"].item() == pytest.approx(0.58)

    third = FakeRunner()
    assert run_sweep(cfg, runner=third).skipped == 8 and third.calls == []


def test_an_interrupted_point_is_redone_and_the_others_kept(tmp_path: Path):
    cfg = config(tmp_path, settings=("centralised-dp",))

    class Interrupt(FakeRunner):
        def __call__(self, point, run_dir):
            if point.epsilon == 8.0:
                run_dir.mkdir(parents=True)
                raise KeyboardInterrupt  # Ctrl-C: stops the sweep, is not "a failed point"
            return super().__call__(point, run_dir)

    with pytest.raises(KeyboardInterrupt):
        run_sweep(cfg, runner=Interrupt())
    assert read_record(cfg.out, "centralised-dp-eps1-seed0")["status"] == "ok"
    assert read_record(cfg.out, "centralised-dp-eps8-seed0") is None
    again = FakeRunner()
    run_sweep(cfg, runner=again)
    assert again.calls == ["centralised-dp-eps8-seed0", "centralised-nodp-seed0"]


def test_a_torn_record_counts_as_unfinished(tmp_path: Path):
    cfg = config(tmp_path, settings=("centralised-dp",), epsilons=(1.0,))
    run_sweep(cfg, runner=FakeRunner())
    (cfg.out / "records" / "centralised-nodp-seed0.json").write_text('{"key": "centr')
    again = FakeRunner()
    run_sweep(cfg, runner=again)
    assert again.calls == ["centralised-nodp-seed0"]


def test_resuming_with_other_fixed_settings_is_refused(tmp_path: Path):
    run_sweep(config(tmp_path, settings=("centralised-dp",)), runner=FakeRunner())
    with pytest.raises(ConfigError, match="rounds: 1 then, 2 now"):
        run_sweep(config(tmp_path, rounds=2), runner=FakeRunner())
    # more seeds or epsilons extend the same sweep
    more = FakeRunner()
    run_sweep(config(tmp_path, settings=("centralised-dp",), epsilons=(1.0, 8.0, 2.0)), runner=more)
    assert more.calls == ["centralised-dp-eps2-seed0"]


def test_summary_means_and_standard_deviations(tmp_path: Path):
    cfg = config(tmp_path, seeds=(0, 1), settings=("federated-client-dp",))
    result = run_sweep(cfg, runner=FakeRunner())
    summary = summarise(load_table(result.paths["csv"]))
    row = summary[summary["target_epsilon"] == 8.0].iloc[0]
    # roc_auc 0.58 and 0.581 over the two seeds
    assert row["roc_auc_mean"] == pytest.approx(0.5805)
    assert row["roc_auc_std"] == pytest.approx(0.001 / math.sqrt(2))
    assert row["n"] == 2
    nodp = summary[summary["target_epsilon"] == math.inf].iloc[0]
    assert nodp["roc_auc_mean"] == 0.9 and nodp["attack_auc_mean"] == pytest.approx(0.52)
    md = result.paths["md"].read_text()
    assert "| federated-client-dp | 8 | 8.000 |" in md and "0.5805 ± 0.0007" in md
    assert "| federated-client-dp | no DP |" in md
    for key in ("png", "attack_png"):
        assert result.paths[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({result.paths[key].name})" in md
    page = result.paths["html"].read_text()
    assert result.paths["html"].name == "report.html"
    assert "<td>federated-client-dp</td><td>8</td><td>8.000</td>" in page
    assert page.count('src="data:image/png;base64,') == 2 and "http" not in page
    assert "Caution" not in md  # every row ranks better than random


def test_rows_no_better_than_chance_are_named_first(tmp_path: Path):
    """A quick sweep on tiny data scored DP rows below 0.5 and read as if epsilon 1 beat 8."""

    class Weak(FakeRunner):
        def __call__(self, point: Point, run_dir: Path) -> dict:
            record = super().__call__(point, run_dir)
            return record | ({"roc_auc": 0.45} if point.epsilon == 1.0 else {})

    cfg = config(tmp_path, settings=("federated-client-dp",))
    md = run_sweep(cfg, runner=Weak()).paths["md"].read_text()
    caution = md.index(
        "Caution: 1 row(s) rank customers no better than random (mean ROC-AUC <= 0.5): "
        "federated-client-dp at epsilon 1."
    )
    assert caution < md.index("| setting |")


def test_a_one_seed_row_shows_the_intervals_of_its_test_set(tmp_path: Path):
    class WithIntervals(FakeRunner):
        def __call__(self, point: Point, run_dir: Path) -> dict:
            record = super().__call__(point, run_dir)
            bounds = {"roc_auc_low": 0.4, "roc_auc_high": 0.95}
            return record | bounds | {"pr_auc": 0.3, "pr_auc_low": 0.21, "pr_auc_high": 0.41}

    cfg = config(tmp_path, settings=("federated-client-dp",))
    result = run_sweep(cfg, runner=WithIntervals())
    assert {"roc_auc_low", "pr_auc_high"} <= set(load_table(result.paths["csv"]).columns)
    md = result.paths["md"].read_text()
    # epsilon 8: roc_auc 0.58; one seed, so the test set's interval in brackets
    assert "| 0.5800 [0.400, 0.950] | 0.3000 [0.210, 0.410] |" in md
    two_seeds = run_sweep(config(tmp_path / "two", seeds=(0, 1)), runner=WithIntervals())
    assert "0.5805 ± 0.0007 |" in two_seeds.paths["md"].read_text()  # seeds: their spread


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"epsilons": (0.0,)}, "positive finite"),
        ({"epsilons": (1.0, 1.0)}, "repeat"),
        ({"settings": ("federated",)}, "unknown or no settings"),
        ({"seeds": ()}, "seeds"),
        ({"seeds": (-1,)}, "seeds"),
        ({"rounds": 0}, "rounds"),
        ({"run_config": "dp='none'"}, "set by the sweep"),
        ({"run_config": "seed=3 model='lstm'"}, "set by the sweep"),
    ],
)
def test_bad_sweep_settings(tmp_path: Path, changes, message):
    with pytest.raises(ConfigError, match=message):
        config(tmp_path, **changes)


def test_quick_mode_defaults(tmp_path: Path):
    cfg = SweepConfig.quick_mode(tmp_path, audit=False)
    assert (cfg.epsilons, cfg.seeds, cfg.rounds, cfg.quick, cfg.settings) == (
        (1.0, 8.0),
        (0,),
        2,
        True,
        SETTINGS,
    )
    assert len(sweep_runs(cfg)) == 8
    assert cfg.fixed()["data"] == "quick synthetic"


def test_format_overrides_round_trips_through_the_run_config_parser():
    from fedmarket.config import parse_overrides

    values = {
        "dp": "central",
        "central-noise-multiplier": 13.4375,
        "seed": 2,
        "delta": 1e-05,
        "target-epsilon": 0.5,
    }
    text = format_overrides(values)
    assert text == (
        "dp='central' central-noise-multiplier=13.4375 seed=2 delta=1e-05 target-epsilon=0.5"
    )
    assert parse_overrides(text) == values
    assert parse_overrides(format_overrides({"out-dir": "it's a run"})) == {"out-dir": "it's a run"}
    with pytest.raises(ConfigError, match="both quote characters"):
        format_overrides({"model": 'it\'s "x"'})


def test_cli_tradeoff_rejects_bad_numbers(tmp_path: Path):
    from typer.testing import CliRunner

    from fedmarket.cli import app

    result = CliRunner().invoke(app, ["tradeoff", "--out", str(tmp_path), "--epsilons", "1,x"])
    assert result.exit_code == 2 and "--epsilons" in result.output


@pytest.mark.slow
def test_real_mini_sweep(tiny_data: Path, tmp_path: Path):
    """Every setting at epsilon 8 and without DP, one round, on the tiny data, audited."""
    cfg = SweepConfig(out=tmp_path / "sweep", data=tiny_data, epsilons=(8.0,), seeds=(0,), rounds=1)
    result = run_sweep(cfg)
    assert result.failed == []
    frame = load_table(result.paths["csv"])
    assert len(frame) == 6 and (frame["status"] == "ok").all()
    dp = frame[frame["target_epsilon"] == 8.0]
    assert ((dp["epsilon"] > 7.9) & (dp["epsilon"] <= 8.0)).all()
    assert set(dp["unit"]) == {"customer", "retailer"}
    assert frame["roc_auc"].between(0, 1).all() and frame["attack_auc"].between(0, 1).all()
    central = json.loads(
        (cfg.out / "points" / "federated-central-dp-eps8-seed0" / "config.json").read_text()
    )
    assert central["dp"] == "central" and central["central-noise-multiplier"] > 0
    assert (cfg.out / "points" / "centralised-dp-eps8-seed0" / "centralised" / "model.pt").is_file()


def test_a_sweep_on_encrypted_data_needs_the_key_before_any_point(
    tiny_encrypted: EncryptedData, tmp_path: Path, monkeypatch
):
    from tests.cli.output import cli, one_error_line

    monkeypatch.delenv(ENCRYPTION_KEY_ENV, raising=False)
    out = tmp_path / "sweep"
    args = ["--out", out, "--data", tiny_encrypted.data, "--settings", "centralised-dp"]
    line = one_error_line(cli("tradeoff", *args, "--epsilons", "8", "--seeds", "0"))
    assert "holds encrypted prepared data; pass --encryption-key-file" in line
    assert not (out / "points").exists() and not (out / "records").exists()


def test_centralised_points_and_their_audit_read_encrypted_data(
    tiny_data: Path, tiny_encrypted: EncryptedData, tmp_path: Path, monkeypatch
):
    """A no-DP centralised point, trained and audited, on the plain and the encrypted copy."""
    monkeypatch.delenv(ENCRYPTION_KEY_ENV, raising=False)
    shared = {"epsilons": (), "settings": ("centralised-dp",), "run_config": "local-epochs=1"}
    plain = run_sweep(config(tmp_path / "plain", data=tiny_data, **shared))
    encrypted = run_sweep(
        config(
            tmp_path / "encrypted",
            data=tiny_encrypted.data,
            key_file=tiny_encrypted.key_file,
            **shared,
        )
    )
    assert plain.failed == encrypted.failed == []
    [row_plain], [row_encrypted] = plain.rows, encrypted.rows
    for key in ("roc_auc", "pr_auc", "attack_auc", "attack_epsilon_lb"):
        assert row_encrypted[key] == pytest.approx(row_plain[key]), key
    sweep = (tmp_path / "encrypted" / "sweep" / "sweep.json").read_text()
    assert str(tiny_encrypted.key_file) not in sweep  # a resumed sweep may take another path
    assert not files_holding(tmp_path / "encrypted", tiny_encrypted.secret_forms())
