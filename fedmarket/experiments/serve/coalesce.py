"""Single-customer requests that arrive together are scored together.

Scoring one customer costs a few milliseconds, almost all of it the fixed cost of one pass
through the validator, the feature builder and the model (pandas, pyarrow and torch calls on
a tiny frame), hardly more for a hundred customers. Scored one by one, eight concurrent
callers each wait for the seven before them. So requests queue here while the model is busy,
and its next call takes every request waiting (up to ``max_customers``): at one caller nothing
changes, at many the fixed cost is shared. A bad customer in a merged call does not fail the
others: that call is then repeated one customer at a time, so each gets its own answer.

Scoring runs on one worker thread, off the event loop, which meanwhile reads and parses the
next requests; one thread, because the work holds the GIL for most of its time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from fedmarket.errors import FedmarketError
from fedmarket.experiments.serve.schema import ScoreRequest
from fedmarket.experiments.serve.scorer import Loc, RequestError

_ONE: Loc = ("body",)


class Scores(Protocol):
    """What a coalescer calls: ``Scorer.score``'s signature (the recommender's too)."""

    def score(
        self, customers: Sequence[ScoreRequest], prefixes: Sequence[Loc]
    ) -> list[dict[str, Any]]: ...


class Coalescer:
    """``executor``: the one worker thread, when several coalescers share it (the
    recommender's, one per ``k`` and ``exclude_bought``)."""

    def __init__(
        self, scorer: Scores, max_customers: int, executor: ThreadPoolExecutor | None = None
    ) -> None:
        self.scorer, self.max_customers = scorer, max_customers
        self._executor = executor or ThreadPoolExecutor(1, thread_name_prefix="fedmarket-score")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[tuple[ScoreRequest, asyncio.Future[Any]]] | None = None
        self._consumer: asyncio.Task[None] | None = None

    async def score_one(self, request: ScoreRequest) -> dict[str, Any]:
        """The request's result, scored with whatever else is waiting."""
        queue = self._ready()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        queue.put_nowait((request, future))
        return await future

    async def score_many(
        self, requests: Sequence[ScoreRequest], prefixes: Sequence[Loc]
    ) -> list[dict[str, Any]]:
        """A batch request: one call of its own, on the same thread as the rest."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.scorer.score, requests, prefixes)

    def _ready(self) -> asyncio.Queue[tuple[ScoreRequest, asyncio.Future[Any]]]:
        loop, queue = asyncio.get_running_loop(), self._queue
        if (
            queue is None
            or self._loop is not loop
            or self._consumer is None
            or self._consumer.done()
        ):
            self._loop, self._queue = loop, (queue := asyncio.Queue())
            self._consumer = loop.create_task(self._consume(queue))
        return queue

    async def _consume(
        self, queue: asyncio.Queue[tuple[ScoreRequest, asyncio.Future[Any]]]
    ) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = [await queue.get()]
            while len(items) < self.max_customers and not queue.empty():
                items.append(queue.get_nowait())
            requests = [r for r, _ in items]
            try:
                results = await loop.run_in_executor(self._executor, self._score, requests)
            except Exception as exc:  # unexpected: every caller gets it (the guard makes a 500)
                results = [exc] * len(items)
            for (_, future), result in zip(items, results, strict=True):
                if future.done():  # the caller went away
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    def _score(self, requests: list[ScoreRequest]) -> list[dict[str, Any] | Exception]:
        try:
            return list(self.scorer.score(requests, [_ONE] * len(requests)))
        except (RequestError, FedmarketError) as exc:
            if len(requests) == 1:
                return [exc]
        out: list[dict[str, Any] | Exception] = []
        for request in requests:  # find who was wrong; the others still get their score
            try:
                out.append(self.scorer.score([request], [_ONE])[0])
            except (RequestError, FedmarketError) as exc:
                out.append(exc)
        return out
