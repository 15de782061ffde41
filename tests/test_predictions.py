"""fedmarket.predictions: the per-customer test predictions every result keeps, written and
read back exactly, with pseudonyms as strings and the partition of each pooled row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedmarket.data import store
from fedmarket.errors import ConfigError, DataError
from fedmarket.predictions import (
    COLUMNS,
    Predictions,
    pooled_partitions,
    pooled_test_predictions,
    read_predictions,
    write_predictions,
)
from fedmarket.rundir import read_scores


def two_models() -> list[Predictions]:
    customers = np.array(["00123", "0x1f", "abc", "9e5"])  # numeric-looking pseudonyms stay text
    partition, label = np.array([0, 0, 1, 2]), np.array([1.0, 0.0, 0.0, 1.0])
    return [
        Predictions("purchase", "a", partition, customers, label, np.array([0.9, 0.1, 0.2, 1e-9])),
        Predictions("purchase", "b", partition, customers, label, np.array([0.5, 0.5, 0.25, 0.75])),
    ]


def test_a_long_file_of_two_models_reads_back_exactly(tmp_path: Path):
    path = write_predictions(tmp_path / "scores.csv", two_models())
    assert path.read_text().splitlines()[0] == ",".join(COLUMNS)
    assert not list(tmp_path.glob("*.tmp"))
    models = read_predictions(path)
    assert list(models) == ["a", "b"]
    for want in two_models():
        got = models[want.model]
        assert got.task == "purchase" and got.customer.tolist() == want.customer.tolist()
        assert got.partition.tolist() == want.partition.tolist()
        assert got.label.tolist() == want.label.tolist()
        assert got.score.tolist() == want.score.tolist()  # %.9g keeps these exactly


def test_read_scores_reads_one_model_and_the_older_two_column_file(tmp_path: Path):
    write_predictions(tmp_path / "one.csv", two_models()[0])
    y, score = read_scores(tmp_path / "one.csv")
    assert y.tolist() == [1.0, 0.0, 0.0, 1.0] and score.tolist() == [0.9, 0.1, 0.2, 1e-9]
    (tmp_path / "old.csv").write_text("y,score\n1,0.9\n0,0.2\n")
    y, score = read_scores(tmp_path / "old.csv")
    assert y.tolist() == [1.0, 0.0] and score.tolist() == [0.9, 0.2]
    with pytest.raises(ConfigError, match="2 models, expected one"):
        read_scores(write_predictions(tmp_path / "two.csv", two_models()))


def test_files_that_cannot_be_paired_are_refused(tmp_path: Path):
    (tmp_path / "old.csv").write_text("y,score\n1,0.9\n")
    with pytest.raises(ConfigError, match="older fedmarket, without the customers"):
        read_predictions(tmp_path / "old.csv")
    (tmp_path / "bad.csv").write_text("task,model,customer,label,score\npurchase,a,x,1,0.5\n")
    with pytest.raises(ConfigError, match="missing column"):
        read_predictions(tmp_path / "bad.csv")
    (tmp_path / "empty.csv").write_text(",".join(COLUMNS) + "\npurchase,a,0,x,1,\n")
    with pytest.raises(ConfigError, match="not a number"):
        read_predictions(tmp_path / "empty.csv")
    (tmp_path / "inf.csv").write_text(",".join(COLUMNS) + "\npurchase,a,0,x,1,inf\n")
    with pytest.raises(ConfigError, match="non-finite"):
        read_predictions(tmp_path / "inf.csv")
    with pytest.raises(ConfigError, match="no such predictions file"):
        read_predictions(tmp_path / "missing.csv")
    with pytest.raises(DataError, match="one value per test customer"):
        Predictions("purchase", "a", np.zeros(3), np.array(["x"] * 3), np.zeros(3), np.zeros(2))
    with pytest.raises(ConfigError, match="more than once"):
        write_predictions(tmp_path / "twice.csv", [two_models()[0], two_models()[0]])


def test_the_pooled_test_split_keeps_each_customers_partition_and_pseudonym(tiny_data: Path):
    test = store.load_pooled(tiny_data, "test")
    partition = pooled_partitions(tiny_data, "test", len(test))
    for pid in store.partition_ids(store.read_manifest(tiny_data)):
        own = store.load_split(tiny_data, pid, "test")
        assert test.customer[partition == pid].tolist() == own.customer.tolist()
    scores = {"m": np.linspace(0, 1, len(test)), "n": np.zeros(len(test))}
    [m, n] = pooled_test_predictions(tiny_data, test, task="purchase-count", scores=scores)
    assert (m.model, n.model, m.task) == ("m", "n", "purchase-count")
    assert m.label.tolist() == test.y_count.astype(float).tolist()
    with pytest.raises(DataError, match="do not add up"):
        pooled_partitions(tiny_data, "test", len(test) + 1)
