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
from fedmarket.experiments.serve.decision import fixed_decision, top_decision
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


def test_single_requests_of_every_size_score_as_batch_scoring_does(
    client: TestClient, served_run: RunModel, retailer_events: tuple[Path, pd.DataFrame]
) -> None:
    """Customers with the fewest, a random few and the most events, one per request (the
    builder's and the model's small-input paths), each exactly as batch scoring scores it."""
    export, events = retailer_events
    as_of = events["event_time"].max().normalize() + pd.Timedelta(days=1)
    expected = _batch_scores(served_run, export, as_of)
    counts = events[events["user_id"].astype(str).isin(expected)]["user_id"].value_counts()
    rng = np.random.default_rng(15)
    picked = [counts.index[-1], counts.index[0], *rng.choice(counts.index, 6, replace=False)]
    for customer in map(str, picked):
        body = {
            "as_of": f"{as_of:%Y-%m-%d}",
            "events": as_json(events[events["user_id"] == customer]),
        }
        answer = client.post("/v1/score", json=body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["propensity"] == pytest.approx(expected[customer], abs=1e-6)


def _refusal(answer: Any, status: int, loc: list[Any], kind: str) -> str:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["detail"][0]["loc"] == loc and body["detail"][0]["type"] == kind
    assert body["error"].startswith(where(loc) + ": ")
    return body["error"]


def _with(events: list[dict[str, Any]], i: int, **change: Any) -> list[dict[str, Any]]:
    events = [dict(e) for e in events]
    events[i].update(change)
    return [{k: v for k, v in e.items() if v is not None} for e in events]


@pytest.mark.parametrize(
    ("change", "field", "kind", "says"),
    [
        ({"event_type": "click"}, "event_type", "unknown_event_type", "'click'"),
        ({"event_time": "yesterday"}, "event_time", "unparseable_timestamp", "'yesterday'"),
        ({"event_time": "2020-01-01 10:00:00"}, "event_time", "missing_timezone", "time zone"),
        ({"price": -3.0}, "price", "negative_price", "-3.0"),
        ({"product_id": 2**64}, "product_id", "less_than_equal", str(2**63 - 1)),
        ({"price": "cheap"}, "price", "float_parsing", "number"),
        ({"price": None}, "price", "missing", "required"),
        ({"colour": "red"}, "colour", "extra_forbidden", "not permitted"),
    ],
)
def test_a_bad_event_is_a_422_naming_its_index_and_field(
    client: TestClient, busy_customer: Customer, change: dict, field: str, kind: str, says: str
) -> None:
    _, events = busy_customer
    body = {"events": _with(events, 3, **change)}
    error = _refusal(client.post("/v1/score", json=body), 422, ["body", "events", 3, field], kind)
    assert says in error


def test_a_batch_error_names_the_customer(client: TestClient, busy_customer: Customer) -> None:
    _, events = busy_customer
    bad = {"events": _with(events, 1, event_type="refund")}
    answer = client.post("/v1/score/batch", json={"customers": [{"events": events}, bad]})
    loc = ["body", "customers", 1, "events", 1, "event_type"]
    error = _refusal(answer, 422, loc, "unknown_event_type")
    assert error.startswith("customers[1].events[1].event_type: unknown_event_type")


def test_events_at_or_after_as_of_are_refused(client: TestClient, busy_customer: Customer) -> None:
    _, events = busy_customer
    first = pd.Timestamp(events[0]["event_time"])
    as_of = first.normalize() + pd.Timedelta(days=1)
    late = next(j for j, e in enumerate(events) if pd.Timestamp(e["event_time"]) >= as_of)
    body = {"as_of": f"{as_of:%Y-%m-%d}", "events": events}
    answer = client.post("/v1/score", json=body)
    error = _refusal(answer, 422, ["body", "events", late, "event_time"], "event_after_as_of")
    assert f"not before as_of {as_of:%Y-%m-%d}" in error


def test_a_customer_without_events_in_the_window_is_refused(
    client: TestClient, busy_customer: Customer
) -> None:
    _, events = busy_customer
    body = {"as_of": "2031-01-01", "events": events}
    error = _refusal(
        client.post("/v1/score", json=body), 422, ["body", "events"], "no_event_in_window"
    )
    assert "2031-01-01" in error


@pytest.mark.parametrize(
    ("body", "loc", "kind"),
    [
        (b"{not json", ["body"], "json_invalid"),
        (b'{"events": []}', ["body", "events"], "too_short"),
        (
            b'{"events": [{"event_type": "view", "price": 1}]}',
            ["body", "events", 0, "event_time"],
            "missing",
        ),
        (
            b'{"as_of": "2020-01-01T05:00:00Z", "events": []}',
            ["body", "as_of"],
            "date_from_datetime_inexact",
        ),
        (b"[]", ["body"], "model_attributes_type"),
    ],
)
def test_a_malformed_body_is_a_422_naming_the_field(
    client: TestClient, body: bytes, loc: list[Any], kind: str
) -> None:
    answer = client.post("/v1/score", content=body, headers={"content-type": "application/json"})
    _refusal(answer, 422, loc, kind)


def test_limits_on_events_customers_and_body_size(
    served_run: RunModel, busy_customer: Customer
) -> None:
    _, events = busy_customer
    app = create_app(
        served_run,
        decision=fixed_decision(served_run, 0.5),
        limits=Limits(max_events=5, max_customers=2),
        max_body_bytes=50_000,
    )
    client = TestClient(app)
    error = _refusal(
        client.post("/v1/score", json={"events": events[:6]}),
        413,
        ["body", "events"],
        "too_many_events",
    )
    assert "at most 5" in error
    many = {"customers": [{"events": events[:2]}] * 3}
    _refusal(
        client.post("/v1/score/batch", json=many), 413, ["body", "customers"], "too_many_customers"
    )
    big = json.dumps({"events": events[:2], "pad": "x" * 60_000}).encode()
    answer = client.post("/v1/score", content=big, headers={"content-type": "application/json"})
    assert answer.status_code == 413 and "over 50,000 bytes" in answer.json()["error"]
    streamed = client.post("/v1/score", content=iter([big[:30_000], big[30_000:]]))
    assert streamed.status_code == 413


def test_an_internal_error_is_a_generic_500_that_logs_no_values(
    served_run: RunModel, busy_customer: Customer, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    def broken(self: RunModel, X: np.ndarray, **kw: Any) -> np.ndarray:
        raise RuntimeError("secret-customer-42 broke the model")

    monkeypatch.setattr(RunModel, "predict", broken)
    client = TestClient(create_app(served_run, decision=fixed_decision(served_run, 0.5)))
    with caplog.at_level(logging.DEBUG):
        answer = client.post(
            "/v1/score", json={"customer_id": "secret-customer-42", "events": busy_customer[1]}
        )
    assert answer.status_code == 500
    assert answer.json() == {"error": "internal error; the service log names where"}
    assert "Traceback" not in answer.text and "secret" not in answer.text
    assert "RuntimeError" in caplog.text and "secret" not in caplog.text


def test_the_token_is_required_but_not_for_liveness(
    served_run: RunModel, busy_customer: Customer
) -> None:
    app = create_app(served_run, decision=fixed_decision(served_run, 0.5), token="s3cret-token")
    client = TestClient(app)
    body = {"events": busy_customer[1]}
    assert client.get("/healthz").json() == {"status": "ok"}
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "Basic s3cret-token"}):
        answer = client.post("/v1/score", json=body, headers=headers)
        assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
    assert client.get("/v1/model").status_code == 401
    ok = client.post("/v1/score", json=body, headers={"authorization": "Bearer s3cret-token"})
    assert ok.status_code == 200 and 0 <= ok.json()["propensity"] <= 1


def test_model_card_and_liveness(client: TestClient, served_run: RunModel) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    card = client.get("/v1/model").json()
    assert card["model"]["name"] == "cnn-lstm" and card["model"]["round"] == 2
    assert card["inputs"] and card["task"]["name"] == "purchase"


def test_top_percent_cut_selects_that_share_of_the_test_customers(
    served_run: RunModel, tiny_data: Path
) -> None:
    from fedmarket.data import store

    X = np.concatenate([np.asarray(p.X) for p in store.load_partitions(tiny_data, "test")])
    scores = served_run.predict(X)
    decision = top_decision(served_run, 10, None)
    n_top = int(np.ceil(0.1 * len(scores)))
    assert decision.threshold == pytest.approx(np.sort(scores)[::-1][n_top - 1])
    assert (scores >= decision.threshold).sum() == n_top  # no ties among the scores
    assert f"top 10% of the run's {len(scores):,} test customers" in decision.rule


def test_concurrent_requests_are_scored_together_each_with_its_own_answer(
    served_run: RunModel, busy_customer: Customer, client: TestClient
) -> None:
    import asyncio

    import httpx

    _, events = busy_customer
    bodies = [{"customer_id": str(i), "events": events[: 10 + 5 * i]} for i in range(6)]
    bodies[3]["events"] = _with(bodies[3]["events"], 2, price=-1.0)
    alone = [client.post("/v1/score", json=b) for b in bodies]
    app = create_app(served_run, decision=fixed_decision(served_run, 0.5))

    async def together() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            return await asyncio.gather(*(http.post("/v1/score", json=b) for b in bodies))

    for one, merged in zip(alone, asyncio.run(together()), strict=True):
        assert merged.status_code == one.status_code
        assert merged.json() == one.json()
    assert [a.status_code for a in alone] == [200, 200, 200, 422, 200, 200]


@pytest.mark.parametrize(
    ("as_of", "when"), [("9999-01-01", None), (None, "2262-04-11T00:00:00Z"), ("1000-01-01", None)]
)
def test_dates_beyond_what_the_features_can_hold_are_a_422(
    client: TestClient, as_of: str | None, when: str | None
) -> None:
    event = {"event_time": when or "2019-10-15 09:47:09 UTC", "event_type": "view", "price": 3}
    body = {"events": [event], **({"as_of": as_of} if as_of else {})}
    _refusal(client.post("/v1/score", json=body), 422, ["body", "as_of"], "as_of_out_of_range")


def test_events_of_another_user_are_refused(client: TestClient, busy_customer: Customer) -> None:
    who, events = busy_customer
    named = [dict(e, user_id=who) for e in events[:4]]
    named[2]["user_id"] = "someone-else"
    body = {"customer_id": who, "events": named}
    answer = client.post("/v1/score", json=body)
    _refusal(answer, 422, ["body", "events", 2, "user_id"], "mixed_customers")
    body["events"] = [dict(e, user_id=who) for e in events[:4]]
    assert client.post("/v1/score", json=body).status_code == 200


def test_a_purchase_count_run_answers_the_expected_count(
    tiny_data: Path, tmp_path: Path, busy_customer: Customer
) -> None:
    from fedmarket.config import RunConfig
    from fedmarket.data import store
    from fedmarket.models import build_model
    from fedmarket.rundir import RunDir
    from fedmarket.scoring.run_model import load_run_model

    out = tmp_path / "count-run"
    settings = {"data-dir": str(tiny_data), "out-dir": str(out), "dp": "none"}
    cfg = RunConfig.from_mapping({**settings, "task": "purchase-count"})
    files = RunDir(out)
    out.mkdir()
    files.write_config(cfg)
    n_features = store.n_features(store.read_manifest(tiny_data))
    net = build_model("cnn-lstm", n_features, task="purchase-count", seed=1)
    files.save_checkpoint(1, net.state_dict())
    files.latest_marker.write_text('{"round": 1, "path": "round-0001.pt"}')
    run = load_run_model(out)
    decision = top_decision(run, 20)
    assert decision.score == "expected_count"
    client = TestClient(create_app(run, decision=decision))
    got = client.post("/v1/score", json={"events": busy_customer[1]}).json()
    assert got["expected_count"] > 0  # Poisson: P(at least one purchase) = 1 - exp(-mean)
    assert got["propensity"] == pytest.approx(1 - np.exp(-got["expected_count"]), abs=1e-12)
    assert got["selected"] is (got["expected_count"] >= decision.threshold)


@pytest.mark.parametrize(
    ("path", "query"),
    [("/v1/score", "k=3"), ("/v1/score/batch", "exclude_bought=true"), ("/v1/score", "k=3&x=1")],
)
def test_a_recommendation_query_is_refused_on_a_propensity_run(
    client: TestClient, busy_customer: Customer, path: str, query: str
) -> None:
    _, events = busy_customer
    body = {"events": events} if path == "/v1/score" else {"customers": [{"events": events}]}
    name = query.split("=")[0]
    answer = client.post(f"{path}?{query}", json=body)
    error = _refusal(answer, 422, ["query", name], "recommend_only")
    assert f"?{name}= applies to recommendation runs only" in error
    assert client.post(f"{path}?other=1", json=body).status_code == 200  # other queries pass
