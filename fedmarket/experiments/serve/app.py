"""The scoring service: a FastAPI app that holds one run's model and answers per customer.

``POST /v1/score`` takes one customer's recent events and answers its propensity (or expected
purchase count), the decision and the model that made it; ``POST /v1/score/batch`` does the
same for many customers in one model call; ``GET /v1/model`` is the model card and ``GET
/healthz`` liveness. It runs at the retailer, next to the shop that calls it: the events it
receives are scored in memory and forgotten, never written or logged.

Every refusal is a 4xx whose JSON says which field is wrong: ``{"error": "events[3].event_type:
...", "detail": [{"loc": [...], "msg": ..., "type": ...}]}``, the shape FastAPI gives its own
422s, with the one-line ``error`` a person reads. Nothing the code did not expect reaches the
caller but a 500 with a generic message (``guard``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from fedmarket.errors import FedmarketError
from fedmarket.experiments.serve.body import parse_body
from fedmarket.experiments.serve.coalesce import Coalescer
from fedmarket.experiments.serve.decision import Decision
from fedmarket.experiments.serve.guard import Guard
from fedmarket.experiments.serve.schema import BatchRequest, ScoreRequest
from fedmarket.experiments.serve.scorer import Limits, RequestError, Scorer
from fedmarket.scoring.card import model_card
from fedmarket.scoring.run_model import RunModel

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024  # ~10,000 events of a few hundred bytes each, and more


def create_app(
    run: RunModel,
    *,
    decision: Decision,
    token: str | None = None,
    limits: Limits | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    predict: Callable[[np.ndarray], np.ndarray] | None = None,
) -> FastAPI:
    """The app serving ``run``'s model; ``token`` None: no authentication; ``predict``:
    ``run.predict`` in another runtime (``scoring.onnx_model``)."""
    limits = limits or Limits()
    scorer = Coalescer(Scorer(run, decision, limits, predict), limits.max_customers)
    card = model_card(run)
    model = {"name": run.model_name, "source": run.source, "round": run.round}
    about = {"decision": decision.to_dict(), "model": model}
    app = FastAPI(
        title="fedmarket scoring service",
        summary=f"{run.model_name} ({run.source}) of {run.run_dir.name}",
        docs_url=None,  # no pages fetching scripts from a CDN; /openapi.json stays
        redoc_url=None,
    )
    app.add_middleware(Guard, token=token, max_body_bytes=max_body_bytes)
    _add_error_handlers(app)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/model")
    async def model_info() -> JSONResponse:
        return JSONResponse(card)

    # The body is read by ``parse_body`` (one pydantic-core pass, FastAPI's refusals) and the
    # answer is a JSONResponse of plain JSON types: FastAPI's body handling and encoder cost
    # more than the scoring of a merged request. The models still document the body.
    @app.post("/v1/score", openapi_extra=_documents(ScoreRequest))
    async def score(request: Request) -> JSONResponse:
        if request.query_params:  # the fast path: no query, nothing to check
            _refuse_recommend_query(request)
        body = parse_body(ScoreRequest, await request.body(), request.headers.get("content-type"))
        return JSONResponse({**await scorer.score_one(body), **about})

    @app.post("/v1/score/batch", openapi_extra=_documents(BatchRequest))
    async def score_batch(request: Request) -> JSONResponse:
        if request.query_params:
            _refuse_recommend_query(request)
        body = parse_body(BatchRequest, await request.body(), request.headers.get("content-type"))
        prefixes = [("body", "customers", i) for i in range(len(body.customers))]
        results = await scorer.score_many(body.customers, prefixes)
        return JSONResponse({"results": results, **about})

    return app


# The recommendation service's query (recommend_app.py): a propensity run would ignore it and
# answer as though the caller had not asked, so it is refused.
RECOMMEND_QUERY = ("k", "exclude_bought")


def _refuse_recommend_query(request: Request) -> None:
    """A 422 naming ``?k=`` / ``?exclude_bought=`` sent to a propensity run."""
    for name in RECOMMEND_QUERY:
        if name in request.query_params:
            raise RequestError(
                ("query", name),
                f"?{name}= applies to recommendation runs only (task next-categories); this "
                "service scores propensity: leave it out",
                "recommend_only",
            )


def _documents(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI request body of a route that reads its body itself (definitions inlined:
    the models nest, they do not recurse)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {k: inline(v) for k, v in node.items()}
        return [inline(v) for v in node] if isinstance(node, list) else node

    content = {"application/json": {"schema": inline(schema)}}
    return {"requestBody": {"required": True, "content": content}}


def where(loc: list[Any] | tuple[Any, ...]) -> str:
    """``["body", "customers", 2, "events", 3, "price"]`` -> ``customers[2].events[3].price``."""
    out = ""
    for part in loc[1:] if loc and loc[0] == "body" else loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out.lstrip(".") or "body"


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [_pydantic_detail(e) for e in exc.errors()]
        first = detail[0] if detail else {"loc": ["body"], "msg": "invalid request"}
        return _refuse(422, f"{where(first['loc'])}: {first['msg']}", detail)

    @app.exception_handler(RequestError)
    async def refused(request: Request, exc: RequestError) -> JSONResponse:
        return _refuse(exc.status, f"{where(exc.loc)}: {exc.msg}", [exc.detail()])

    @app.exception_handler(FedmarketError)
    async def fedmarket_error(request: Request, exc: FedmarketError) -> JSONResponse:
        return _refuse(422, str(exc), [])


def _pydantic_detail(error: dict[str, Any]) -> dict[str, Any]:
    """Pydantic's error without the input it echoes (it may be the whole body)."""
    loc, msg = list(error.get("loc", ("body",))), str(error.get("msg", "invalid"))
    if error.get("type") == "json_invalid":  # loc is ["body", character position]
        reason = error.get("ctx", {}).get("error", "decode error")
        loc, msg = ["body"], f"the body is not JSON ({reason} at character {loc[-1]})"
    return {"loc": loc, "msg": msg, "type": error.get("type")}


def _refuse(status: int, error: str, detail: list[dict[str, Any]]) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status)
