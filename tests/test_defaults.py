"""The first run's default data: each stage's progress in its own unit."""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from fedmarket import defaults


def test_default_data_shows_customers_then_events(tmp_path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FEDMARKET_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("FEDMARKET_PSEUDONYM_KEY", "k" * 64)
    monkeypatch.setattr(
        defaults, "DEFAULT_SYNTH", {"n_retailers": 2, "n_customers": 60, "days": 70, "seed": 0}
    )
    stages: list[list] = []

    @contextmanager
    def stage(description: str, total: int | None, unit: str):
        stages.append([description, total, unit, 0])
        yield lambda n=1, **_: stages[-1].__setitem__(3, stages[-1][3] + n)

    prepared = defaults.ensure_default_data(stage, log=lambda _: None)
    assert (prepared / "manifest.json").is_file()
    (synth, synth_total, synth_unit, customers), (prep, prep_total, prep_unit, events) = stages
    assert (synth, synth_unit) == ("synthesising customers", "customers")
    assert (prep, prep_unit) == ("preparing events", "events")
    assert synth_total == customers > 0  # the bar's total is what the generator counts
    assert prep_total is None and events > customers  # event rows: counted, no total
    assert defaults.ensure_default_data(stage, log=lambda _: None) == prepared
    assert len(stages) == 2  # once per machine


def test_default_data_of_an_older_schema_is_prepared_again(
    tmp_path, monkeypatch: pytest.MonkeyPatch
):
    # An upgraded fedmarket must not stop the main job with "re-run data prepare" for data
    # it made itself: the raw synthetic data is kept, the features are rebuilt.
    import json

    from fedmarket.data import store

    monkeypatch.setenv("FEDMARKET_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("FEDMARKET_PSEUDONYM_KEY", "k" * 64)
    monkeypatch.setattr(
        defaults, "DEFAULT_SYNTH", {"n_retailers": 2, "n_customers": 60, "days": 70, "seed": 0}
    )
    prepared = defaults.ensure_default_data(log=lambda _: None)
    manifest = prepared / "manifest.json"
    old = {**json.loads(manifest.read_text()), "schema_version": store.SCHEMA_VERSION - 1}
    manifest.write_text(json.dumps(old))
    synth = (prepared.parent / "raw" / "synth.json").stat().st_mtime_ns
    said: list[str] = []
    assert defaults.ensure_default_data(log=said.append) == prepared
    assert store.read_manifest(prepared)["schema_version"] == store.SCHEMA_VERSION
    assert (prepared.parent / "raw" / "synth.json").stat().st_mtime_ns == synth  # not redrawn
    assert any("older fedmarket" in line for line in said)
    assert not any("synthesising" in line for line in said)
