"""BG/NBD's per-customer predictions as model inputs (`data prepare --btyd-inputs`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedmarket.btyd import fit_bgnbd, from_aggregates
from fedmarket.data import store
from fedmarket.data.btyd_inputs import NAMES, PREFIX
from fedmarket.data.prepare import PrepareOptions, prepare
from fedmarket.errors import DataError
from tests.conftest import TINY_PREPARE


@pytest.fixture(scope="module")
def with_inputs(tiny_raw: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("btyd") / "prepared"
    prepare(PrepareOptions(raw=tiny_raw, out=out, btyd_inputs=True, **TINY_PREPARE))
    return out


def test_inputs_are_each_partitions_own_fit_on_its_training_customers(with_inputs, tiny_data):
    manifest = store.read_manifest(with_inputs)
    plain = store.read_manifest(tiny_data)
    added = [PREFIX + n for n in NAMES]
    assert manifest["feature_names"] == [*plain["feature_names"], *added]
    assert manifest["aggregate_names"] == [*plain["aggregate_names"], *added]
    horizon = manifest["window"]["horizon_days"] / 7
    names = plain["aggregate_names"]
    for pid in store.partition_ids(manifest):
        before = {s: store.load_split(tiny_data, pid, s) for s in store.SPLITS}
        after = {s: store.load_split(with_inputs, pid, s) for s in store.SPLITS}
        fit = fit_bgnbd(from_aggregates(np.asarray(before["train"].agg), names))
        assert manifest["btyd_inputs"]["parameters"][str(pid)] == pytest.approx(
            fit.params, rel=1e-5
        )
        for split in store.SPLITS:
            old, new = before[split], after[split]
            np.testing.assert_array_equal(new.X[:, :, : old.X.shape[2]], old.X)
            np.testing.assert_array_equal(new.agg[:, : old.agg.shape[1]], old.agg)
            np.testing.assert_array_equal(new.y_purchase, old.y_purchase)
            history = from_aggregates(np.asarray(old.agg), names)
            expected = np.column_stack(
                [
                    fit.p_alive(history),
                    fit.p_purchase(horizon, history),
                    np.log1p(fit.expected_transactions(horizon, history)),
                ]
            )
            np.testing.assert_allclose(new.agg[:, -3:], expected, rtol=1e-5, atol=1e-6)
            # constant on every step of the sequence
            np.testing.assert_array_equal(new.X[:, :, -3:], np.repeat(new.agg[:, None, -3:], 8, 1))
            probabilities = new.agg[:, -3:-1]
            assert ((probabilities >= 0) & (probabilities <= 1)).all()


def test_a_partition_without_training_customers_is_refused(tmp_path):
    from fedmarket.data.btyd_inputs import _fit

    empty = store.SplitArrays(
        X=np.zeros((0, 1, 1)),
        agg=np.zeros((0, 4)),
        y_purchase=np.zeros(0),
        y_count=np.zeros(0),
        customer=np.array([], dtype="<U8"),
    )
    with pytest.raises(DataError, match="partition 3 has no training customers"):
        _fit(empty, ["a", "b", "c", "d"], 3)
