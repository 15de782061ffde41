"""Per-retailer gains of a run: a run directory made by hand (config, prepared training
labels, the three models' test scores), whose ROC-AUCs are those of test_per_retailer."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fedmarket.config import RunConfig
from fedmarket.data import store
from fedmarket.errors import ConfigError, DataError
from fedmarket.predictions import Predictions, write_predictions
from fedmarket.rundir import RunDir
from fedmarket.value.gains import COLUMNS, gains_plot, partition_setting, retailer_gains
from fedmarket.value.per_retailer import compare_retailers

# Test customers and the federated / local-only scores of test_per_retailer:
#   partition 0: federated ROC-AUC 1, local-only 4/6; partition 1: federated 1/4, local 1.
Y0, FED0, LOC0 = [1, 0, 1, 0, 0], [0.9, 0.1, 0.8, 0.3, 0.2], [0.4, 0.7, 0.6, 0.3, 0.2]
Y1, FED1, LOC1 = [0, 1, 0, 1], [0.6, 0.5, 0.4, 0.3], [0.1, 0.9, 0.2, 0.8]
# Personalised: partition 0 ranks buyer 0.9 above all 3 non-buyers and buyer 0.5 above two
#   (0.4, 0.2): ROC-AUC 5/6 (gain 5/6 - 4/6 = 1/6); partition 1: buyers 0.7 and 0.6 above
#   non-buyer 0.5, below 0.8: ROC-AUC 2/4 (gain 1/2 - 1 = -1/2).
PER0, PER1 = [0.9, 0.6, 0.5, 0.4, 0.2], [0.8, 0.7, 0.5, 0.6]
# Training customers: partition 0 has 10, 3 buyers (30 %); partition 1 has 4, 2 buyers.
TRAIN = {0: [1, 0, 0, 1, 0, 0, 0, 1, 0, 0], 1: [0, 1, 1, 0]}


def scores(score0, score1) -> Predictions:
    partition = np.array([0] * 5 + [1] * 4)
    customer = np.array([f"c{i}" for i in range(5)] + [f"d{i}" for i in range(4)])
    label = np.array(Y0 + Y1, dtype=float)
    return Predictions(
        "purchase", "cnn-lstm", partition, customer, label, np.array(score0 + score1)
    )


def prepared(data: Path) -> Path:
    """Training splits holding only what the gains read: labels (and the array shapes)."""
    entries = []
    for pid, labels in TRAIN.items():
        y = np.array(labels, dtype=np.float32)
        n = len(y)
        arrays = store.SplitArrays(
            X=np.zeros((n, 2, 3), np.float32),
            agg=np.zeros((n, 1), np.float32),
            y_purchase=y,
            y_count=y,
            customer=np.array([f"t{pid}-{i}" for i in range(n)]),
        )
        directory = store.split_dir(data, pid, "train")
        directory.mkdir(parents=True)
        store.write_split(directory, arrays)
        entries.append({"id": pid, "retailer": f"retailer_0{pid}", "train": {"n": n}})
    partitioning = {"scheme": "dirichlet", "n_partitions": 2, "alpha": 0.1, "seed": 0}
    store.write_manifest(data, {"partitions": entries, "partitioning": partitioning})
    return data


@pytest.fixture
def make_run(tmp_path: Path):
    data = prepared(tmp_path / "data")

    def make(*, personal: bool = True, local: bool = True, method: str = "finetune") -> RunDir:
        run = RunDir(tmp_path / f"run-{method}")
        run.path.mkdir()
        settings = {"data-dir": str(data), "out-dir": str(run.path), "personalisation": method}
        run.write_config(RunConfig.from_mapping(settings))
        write_predictions(run.test_scores, scores(FED0, FED1))
        if local:
            run.local_only.mkdir()
            write_predictions(run.local_only_scores, scores(LOC0, LOC1))
        if personal:
            run.personal.mkdir()
            write_predictions(run.personal_scores, scores(PER0, PER1))
        return run

    return make


def test_gains_per_retailer_by_hand(make_run):
    table = retailer_gains(make_run().path)
    assert list(table.columns) == list(COLUMNS)
    assert list(table["name"]) == ["retailer_00", "retailer_01"]
    assert list(table["setting"]) == ["dirichlet:0.1"] * 2  # read from the manifest
    assert list(table["method"]) == ["finetune"] * 2
    assert list(table["n_train"]) == [10, 4] and list(table["n_test"]) == [5, 4]
    assert table["base_rate"].tolist() == pytest.approx([0.3, 0.5])
    assert table["test_base_rate"].tolist() == pytest.approx([0.4, 0.5])
    assert table["roc_auc_federated"].tolist() == pytest.approx([1.0, 0.25])
    assert table["roc_auc_local"].tolist() == pytest.approx([4 / 6, 1.0])
    assert table["roc_auc_personal"].tolist() == pytest.approx([5 / 6, 0.5])
    assert table["gain_federated"].tolist() == pytest.approx([1 / 3, -0.75])
    assert table["gain_personal"].tolist() == pytest.approx([1 / 6, -0.5])


def test_gains_are_per_retailers_numbers(make_run):
    table = retailer_gains(make_run().path, setting="mine")
    rows = compare_retailers(scores(FED0, FED1), scores(LOC0, LOC1), personal=scores(PER0, PER1))
    assert list(table["setting"]) == ["mine", "mine"]
    for got, row in zip(table.itertuples(), rows, strict=True):
        assert got.roc_auc_federated == row.federated["roc_auc"]
        assert got.gain_federated == row.difference["roc_auc"]
        assert got.gain_personal == row.personal_difference["roc_auc"]
        paired = row.personal_difference["roc_auc_paired"]
        if paired is None:  # two buyers and two non-buyers or fewer still have a variance
            assert math.isnan(got.gain_personal_low)
        else:
            assert (got.gain_personal_low, got.gain_personal_high) == (
                paired["low"],
                paired["high"],
            )
        fed = row.difference["roc_auc_paired"]
        assert (got.gain_federated_low, got.gain_federated_high) == (fed["low"], fed["high"])


def test_a_run_without_personal_scores_names_the_file_and_the_setting(make_run):
    run = make_run(personal=False, method="none")
    with pytest.raises(DataError, match=r"personal/test_scores\.csv.*personalisation = "):
        retailer_gains(run.path)


def test_a_run_without_local_only_scores_names_the_setting(make_run):
    run = make_run(local=False)
    with pytest.raises(DataError, match=r"local/test_scores\.csv.*local-only-models = true"):
        retailer_gains(run.path)


def test_moved_data_and_a_non_run_are_refused(make_run, tmp_path):
    run = make_run()
    with pytest.raises(DataError, match="give the prepared directory"):
        retailer_gains(run.path, data_dir=tmp_path / "elsewhere")
    with pytest.raises(ConfigError, match="not a fedmarket run directory"):
        retailer_gains(tmp_path)


def test_partition_setting_in_the_scripts_words():
    assert partition_setting({"partitioning": {"scheme": "natural", "alpha": None}}) == "natural"
    assert partition_setting({"partitioning": {"scheme": "quantity", "alpha": 0.5}}) == (
        "quantity:0.5"
    )
    assert partition_setting({}) == "natural"


def test_the_plot_is_written(make_run, tmp_path):
    one = retailer_gains(make_run().path)
    two = retailer_gains(make_run(method="ditto").path, setting="natural")
    path = gains_plot(pd.concat([one, two]), tmp_path / "fig" / "gains.png")
    assert path == tmp_path / "fig" / "gains.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_the_plot_refuses_what_it_cannot_draw(make_run, tmp_path):
    table = retailer_gains(make_run().path)
    with pytest.raises(ConfigError, match="empty"):
        gains_plot(table.iloc[:0], tmp_path / "g.png")
    with pytest.raises(ConfigError, match=r"lacks columns \['base_rate'\]"):
        gains_plot(table.drop(columns="base_rate"), tmp_path / "g.png")
    with pytest.raises(ConfigError, match="PNG"):
        gains_plot(table, tmp_path / "g.pdf")
