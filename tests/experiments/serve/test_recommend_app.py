"""The service of a recommendation run in process: the categories and scores `fedmarket score`
ranks, the cold-start path, the bound on k, the card, and the options it refuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from fedmarket.errors import ConfigError
from fedmarket.experiments.serve.recommend_app import create_recommend_app
from fedmarket.experiments.serve.recommend_service import recommend_service
from fedmarket.experiments.serve.runner import ServeOptions
from fedmarket.scoring.rec_featurise import featurise_rec_export
from fedmarket.scoring.rec_model import RecModel, load_rec_model
from fedmarket.scoring.rec_rank import rank_inputs
from tests.experiments.serve.conftest import as_json
from tests.scoring.conftest import rec_run  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RETAILER = "retailer_00"  # the first export's retailer (retailer_events)


@pytest.fixture(scope="module")
def model(rec_run: Path) -> RecModel:  # noqa: F811
    return load_rec_model(rec_run)


@pytest.fixture(scope="module")
def client(model: RecModel) -> TestClient:
    return TestClient(create_recommend_app(model, retailer=RETAILER))


def _batch_lists(
    model: RecModel, export: Path, as_of: pd.Timestamp, k: int, **kw: Any
) -> dict[str, tuple[list[str], np.ndarray]]:
    """`fedmarket score`'s lists of the export's customers: id -> (categories, scores)."""
    (inputs,) = featurise_rec_export(model, export, as_of=as_of, bought=True)
    ranked = rank_inputs(model, inputs, k=k, **kw)
    return {
        str(c): ([model.items[i] for i in ranked.item[r] if i >= 0], ranked.score[r])
        for r, c in enumerate(inputs.customer)
    }


def test_the_service_recommends_what_score_writes(
    client: TestClient, model: RecModel, retailer_events: tuple[Path, pd.DataFrame]
) -> None:
    export, events = retailer_events
    assert events["retailer_id"].iloc[0] == RETAILER
    as_of = events["event_time"].max().normalize() + pd.Timedelta(days=1)
    expected = _batch_lists(model, export, as_of, 5)
    who = list(events["user_id"].value_counts().index[:4].map(str))
    body = {
        "customer_id": who[0],
        "as_of": f"{as_of:%Y-%m-%d}",
        "events": as_json(events[events["user_id"] == who[0]]),
    }
    answer = client.post("/v1/score?k=5", json=body)
    assert answer.status_code == 200, answer.text
    got = answer.json()
    categories, scores = expected[who[0]]
    assert [r["category"] for r in got["recommendations"]] == categories
    np.testing.assert_allclose([r["score"] for r in got["recommendations"]], scores, atol=1e-6)
    assert got["cold"] is False and got["model"] == {
        "name": "gru-ncf",
        "source": "federated",
        "round": 2,
    }
    assert "propensity" not in got
    batch = {
        "customers": [
            {"customer_id": c, "events": as_json(events[events["user_id"] == c])} for c in who
        ]
    }  # as_of left out: the midnight after each customer's last event
    results = client.post("/v1/score/batch", json=batch).json()["results"]
    for c, result in zip(who, results, strict=True):
        last = events.loc[events["user_id"] == c, "event_time"].max()
        own = _batch_lists(model, export, last.normalize() + pd.Timedelta(days=1), 10)[c]
        assert result["customer_id"] == c and len(result["recommendations"]) == 10
        assert [r["category"] for r in result["recommendations"]] == own[0]
        np.testing.assert_allclose([r["score"] for r in result["recommendations"]], own[1], 1e-6)


def test_exclude_bought_and_a_customer_without_history(
    client: TestClient, model: RecModel, retailer_events: tuple[Path, pd.DataFrame]
) -> None:
    export, events = retailer_events
    as_of = events["event_time"].max().normalize() + pd.Timedelta(days=1)
    start = model.window_at(as_of).start
    buyers = events.loc[
        (events["event_type"] == "purchase")
        & events["category_code"].notna()
        & (events["event_time"] >= start)
    ]
    who = str(buyers["user_id"].iloc[0])
    expected = _batch_lists(model, export, as_of, 8, exclude_bought=True)[who]
    body = {"as_of": f"{as_of:%Y-%m-%d}", "events": as_json(events[events["user_id"] == who])}
    got = client.post("/v1/score?k=8&exclude_bought=true", json=body).json()
    assert [r["category"] for r in got["recommendations"]] == expected[0]
    bought = set(buyers.loc[buyers["user_id"] == who, "category_code"].astype(str))
    assert not bought & {r["category"] for r in got["recommendations"]}
    # no category code in any event: the served retailer's popularity, flagged cold
    bare = [{k: v for k, v in e.items() if k != "category_code"} for e in body["events"]]
    got = client.post("/v1/score?k=3", json={**body, "events": bare}).json()
    popularity = model.cold_start(RETAILER)
    top = [model.items[i] for i in np.argsort(-popularity, kind="stable")[:3]]
    assert [r["category"] for r in got["recommendations"]] == top and got["cold"] is True


def test_k_is_bounded_and_bad_events_are_refused_as_for_propensity(
    client: TestClient, busy_customer: tuple[str, list[dict[str, Any]]]
) -> None:
    _, events = busy_customer
    for k in (0, 101, "ten"):
        answer = client.post(f"/v1/score?k={k}", json={"events": events})
        assert answer.status_code == 422 and answer.json()["error"].startswith("query.k")
    bad = [dict(events[0], event_type="teleport"), *events[1:]]
    answer = client.post("/v1/score", json={"events": bad})
    assert answer.status_code == 422
    assert answer.json()["error"].startswith("events[0].event_type")
    late = client.post("/v1/score", json={"as_of": "2000-01-01", "events": events})
    assert late.status_code == 422 and "not before as_of" in late.json()["error"]


def test_the_card_says_it_ranks_categories(client: TestClient, model: RecModel) -> None:
    card = client.get("/v1/model").json()
    assert card["task"]["name"] == "next-categories" and card["task"]["ranks"] == "categories"
    assert card["inputs"]["categories"] == list(model.items)
    assert card["task"]["cold_threshold_events"] == 3 and "popularity" in card["task"]["cold_start"]
    assert client.get("/healthz").json() == {"status": "ok"}


def test_the_service_options_of_a_recommendation_run(rec_run: Path) -> None:  # noqa: F811
    with pytest.raises(ConfigError, match="ranks categories"):
        recommend_service(ServeOptions(run_dir=rec_run, threshold=0.5), None)
    with pytest.raises(ConfigError, match="not a retailer of the run"):
        recommend_service(ServeOptions(run_dir=rec_run, retailer="nobody"), None)
    _, serving, note = recommend_service(ServeOptions(run_dir=rec_run, retailer=RETAILER), None)
    assert "recommendations" in serving and "retailer retailer_00's popularity" in note


def test_concurrent_requests_are_ranked_together_each_with_its_own_answer(
    client: TestClient, model: RecModel, retailer_events: tuple[Path, pd.DataFrame]
) -> None:
    """Requests sent at once (merged per k and exclude_bought by the coalescer) get what each
    gets alone: the same categories, scores to 1e-6 (one model call for several rows), the
    same refusals."""
    import asyncio

    import httpx

    _, events = retailer_events
    as_of = events["event_time"].max().normalize() + pd.Timedelta(days=1)
    who = list(events["user_id"].value_counts().index[:6].map(str))
    bodies = [
        {
            "customer_id": c,
            "as_of": f"{as_of:%Y-%m-%d}",
            "events": as_json(events[events["user_id"] == c]),
        }
        for c in who
    ]
    bodies[2] = {**bodies[2], "as_of": "2000-01-01"}  # events after as_of: a 422
    paths = [
        "/v1/score?k=5",
        "/v1/score?k=5",
        "/v1/score?k=5",
        "/v1/score",
        "/v1/score?k=5&exclude_bought=true",
        "/v1/score?k=5",
    ]
    alone = [client.post(p, json=b) for p, b in zip(paths, bodies, strict=True)]
    app = create_recommend_app(model, retailer=RETAILER)

    async def together() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            return await asyncio.gather(
                *(http.post(p, json=b) for p, b in zip(paths, bodies, strict=True))
            )

    assert [a.status_code for a in alone] == [200, 200, 422, 200, 200, 200]
    for one, merged in zip(alone, asyncio.run(together()), strict=True):
        assert merged.status_code == one.status_code
        a, b = one.json(), merged.json()
        if one.status_code != 200:
            assert a == b
            continue
        ra, rb = a.pop("recommendations"), b.pop("recommendations")
        assert a == b and [r["category"] for r in ra] == [r["category"] for r in rb]
        np.testing.assert_allclose([r["score"] for r in ra], [r["score"] for r in rb], atol=1e-6)
