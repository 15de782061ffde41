"""The service of a recommendation run: the scoring service's endpoints, answering categories.

``POST /v1/score`` takes one customer's recent events (the propensity service's body) and
answers ``recommendations: [{category, score}, ...]``, its ``k`` best categories (query ``k``,
1 to ``MAX_K``, default 10; ``exclude_bought=true`` leaves out the categories it bought in the
window), with ``cold`` (fewer than 3 category events in the window) and the model; such
requests that arrive together (with the same ``k`` and ``exclude_bought``) are ranked in one
call (``coalesce.Coalescer``, as the propensity service does);
``POST /v1/score/batch`` does the same for many customers in one model call; ``GET /v1/model``
is the recommender's card (``task.ranks``: categories) and ``GET /healthz`` liveness. The
same guard (token, body size, no 500 with internals) and the same 4xx shape as the propensity
service (``fedmarket.experiments.serve.app``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import FastAPI, Query
from fastapi.responses import JSONResponse

from fedmarket.experiments.serve.app import DEFAULT_MAX_BODY_BYTES, _add_error_handlers
from fedmarket.experiments.serve.coalesce import Coalescer
from fedmarket.experiments.serve.guard import Guard
from fedmarket.experiments.serve.recommender import DEFAULT_K, MAX_K, RecScorer
from fedmarket.experiments.serve.schema import BatchRequest, ScoreRequest
from fedmarket.experiments.serve.scorer import Limits, Loc
from fedmarket.scoring.card import recommendation_card
from fedmarket.scoring.rec_model import RecModel

_K = Query(DEFAULT_K, ge=1, le=MAX_K, description="categories per customer")
_EXCLUDE = Query(False, description="leave out the categories bought in the window")


def create_recommend_app(
    model: RecModel,
    *,
    token: str | None = None,
    limits: Limits | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    retailer: str = "",
) -> FastAPI:
    """The app serving ``model``'s recommendations; ``retailer``: whose popularity ranks a
    customer without history (empty: every retailer's)."""
    limits = limits or Limits()
    scorer = RecScorer(model, limits, retailer)
    # one thread, off the event loop: the work holds the GIL (as the propensity service)
    executor = ThreadPoolExecutor(1, thread_name_prefix="fedmarket-recommend")
    card = recommendation_card(model)
    about = {"model": {"name": model.model_name, "source": model.source, "round": model.round}}
    app = FastAPI(
        title="fedmarket recommendation service",
        summary=f"{model.model_name} ({model.source}) of {model.run_dir.name}",
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(Guard, token=token, max_body_bytes=max_body_bytes)
    _add_error_handlers(app)

    async def ranked(
        requests: Sequence[ScoreRequest], prefixes: Sequence[Loc], k: int, exclude: bool
    ) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            executor, lambda: scorer.recommend(requests, prefixes, k=k, exclude_bought=exclude)
        )

    # single-customer requests that arrive together are ranked in one call (as the propensity
    # service merges them), one queue per (k, exclude_bought), all on the one thread
    queues: dict[tuple[int, bool], Coalescer] = {}

    def queue(k: int, exclude: bool) -> Coalescer:
        if (k, exclude) not in queues:
            ranking = _Ranking(scorer, k, exclude)
            queues[k, exclude] = Coalescer(ranking, limits.max_customers, executor)
        return queues[k, exclude]

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/model")
    async def model_info() -> JSONResponse:
        return JSONResponse(card)

    @app.post("/v1/score")
    async def score(
        request: ScoreRequest, k: int = _K, exclude_bought: bool = _EXCLUDE
    ) -> JSONResponse:
        result = await queue(k, exclude_bought).score_one(request)
        return JSONResponse({**result, **about})

    @app.post("/v1/score/batch")
    async def score_batch(
        request: BatchRequest, k: int = _K, exclude_bought: bool = _EXCLUDE
    ) -> JSONResponse:
        prefixes = [("body", "customers", i) for i in range(len(request.customers))]
        results = await ranked(request.customers, prefixes, k, exclude_bought)
        return JSONResponse({"results": results, **about})

    return app


class _Ranking:
    """``Scorer.score``'s signature for the coalescer: ``RecScorer.recommend`` at one ``k``
    and ``exclude_bought``."""

    def __init__(self, scorer: RecScorer, k: int, exclude: bool) -> None:
        self.scorer, self.k, self.exclude = scorer, k, exclude

    def score(self, customers: Sequence[ScoreRequest], prefixes: Sequence[Loc]) -> list[dict]:
        return self.scorer.recommend(customers, prefixes, k=self.k, exclude_bought=self.exclude)
