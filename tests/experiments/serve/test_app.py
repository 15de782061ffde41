"""The scoring app in process: the same scores as batch scoring, and every refusal a 4xx that
names the field."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from fedmarket.experiments.serve.app import create_app, where
from fedmarket.experiments.serve.decision import fixed_decision
from fedmarket.experiments.serve.scorer import Limits
from fedmarket.scoring.featurise import featurise_export
from fedmarket.scoring.run_model import RunModel
from tests.experiments.serve.conftest import as_json

Customer = tuple[str, list[dict[str, Any]]]


@pytest.fixture(scope="module")
def client(served_run: RunModel) -> TestClient:
    app = create_app(served_run, decision=fixed_decision(served_run, 0.5))
    return TestClient(app)


def _batch_scores(run: RunModel, export: Path, as_of: pd.Timestamp) -> dict[str, float]:
    (inputs,) = featurise_export(run, export, as_of=as_of)
    return dict(zip(map(str, inputs.customer), run.predict(inputs.X), strict=True))


def test_the_service_scores_as_batch_scoring_does(
    client: TestClient, served_run: RunModel, retailer_events: tuple[Path, pd.DataFrame]
) -> None:
    export, events = retailer_events
    as_of = events["event_time"].max().normalize() + pd.Timedelta(days=1)
    expected = _batch_scores(served_run, export, as_of)
    who = events["user_id"].value_counts().index[:6].map(str)
    for customer in who[:2]:  # one per request
        body = {
            "customer_id": customer,
            "as_of": f"{as_of:%Y-%m-%d}",
            "events": as_json(events[events["user_id"] == customer]),
        }
        answer = client.post("/v1/score", json=body)
        assert answer.status_code == 200, answer.text
        got = answer.json()
        assert got["customer_id"] == customer and got["as_of"] == f"{as_of:%Y-%m-%d}"
        assert got["propensity"] == pytest.approx(expected[customer], abs=1e-6)
        assert got["expected_count"] is None
        assert got["selected"] is bool(expected[customer] >= 0.5)
        assert got["model"] == {"name": "cnn-lstm", "source": "federated", "round": 2}
    batch = {
        "customers": [
            {
                "customer_id": c,
                "as_of": f"{as_of:%Y-%m-%d}",
                "events": as_json(events[events["user_id"] == c]),
            }
            for c in who
        ]
    }
    answer = client.post("/v1/score/batch", json=batch)
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["customer_id"] for r in results] == list(who)
    np.testing.assert_allclose(
        [r["propensity"] for r in results], [expected[c] for c in who], atol=1e-6
    )
