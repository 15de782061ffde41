"""``fedmarket.ray_session()``: a block of runs on one Ray runtime (see
tests/experiments/test_ray_session.py for the runs themselves)."""

import fedmarket
from fedmarket.experiments.ray_session import in_session


def test_the_apis_session_is_the_experiments_and_nests():
    assert not in_session()
    with fedmarket.ray_session():
        assert in_session()
        with fedmarket.ray_session():
            assert in_session()
        assert in_session()
    assert not in_session()
