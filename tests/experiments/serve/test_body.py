"""``parse_body`` accepts and refuses what a FastAPI route with the model as its body does."""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from starlette.requests import Request

from fedmarket.experiments.serve.body import parse_body
from fedmarket.experiments.serve.schema import ScoreRequest

EVENT = {"event_time": "2019-10-01 00:00:04 UTC", "event_type": "view", "price": 1.5}


def _apps() -> tuple[TestClient, TestClient]:
    """FastAPI's own body handling, and ``parse_body``, answering the same way."""

    def handlers(app: FastAPI) -> None:
        @app.exception_handler(RequestValidationError)
        async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
            keep = ("type", "loc", "msg")
            errors = [{k: e.get(k) for k in keep} | {"ctx": e.get("ctx")} for e in exc.errors()]
            return JSONResponse(json.loads(json.dumps(errors, default=str)), status_code=422)

    fastapi_app, ours = FastAPI(), FastAPI()
    handlers(fastapi_app)
    handlers(ours)

    @fastapi_app.post("/")
    async def theirs(request: ScoreRequest) -> JSONResponse:
        return JSONResponse(request.model_dump(mode="json"))

    @ours.post("/")
    async def mine(request: Request) -> JSONResponse:
        body = parse_body(ScoreRequest, await request.body(), request.headers.get("content-type"))
        return JSONResponse(body.model_dump(mode="json"))

    return TestClient(fastapi_app), TestClient(ours)


JSON = {"content-type": "application/json"}
CASES: list[tuple[bytes, dict[str, str]]] = [
    (json.dumps({"events": [EVENT]}).encode(), JSON),
    (json.dumps({"customer_id": "7", "as_of": "2020-01-02", "events": [EVENT] * 3}).encode(), JSON),
    (json.dumps({"events": [{**EVENT, "price": 3, "product_id": 2**63}]}).encode(), JSON),
    (json.dumps({"events": [{**EVENT, "price": "3.5", "product_id": "12"}]}).encode(), JSON),
    (json.dumps({"events": [{**EVENT, "price": True}]}).encode(), JSON),
    (json.dumps({"events": [{**EVENT, "colour": "red"}]}).encode(), JSON),
    (json.dumps({"events": [EVENT]}).encode(), {"content-type": "application/vnd.x+json"}),
    (json.dumps({"events": [EVENT]}).encode(), {"content-type": "text/plain"}),
    (json.dumps({"events": [EVENT]}).encode(), {}),
    (b"{not json", JSON),
    (b'{"events": [1, 2]', JSON),
    (b"", JSON),
    (b"null", JSON),
    (b"[]", JSON),
    (b'{"events": []}', JSON),
    (b'{"as_of": "2020-01-01T05:00:00Z", "events": []}', JSON),
    (b'{"events": [{"event_type": "view", "price": NaN}]}', JSON),
    ('{"events": ["\u00e9"]}'.encode("latin-1"), JSON),
]


@pytest.mark.parametrize(("body", "headers"), CASES)
def test_same_answer_as_fastapi(body: bytes, headers: dict[str, str]) -> None:
    theirs, ours = _apps()
    expected = theirs.post("/", content=body, headers=headers)
    got = ours.post("/", content=body, headers=headers)
    assert (got.status_code, got.json()) == (expected.status_code, expected.json())
