"""The service's outer layer: the bearer token, the body size and the internal-error answer.

It is plain ASGI, under FastAPI's own error middleware and above its router, because each of
its checks must come before the body is parsed: a caller without the token learns nothing and
costs nothing, a body larger than the bound is refused (413) whether it announces its length or
streams it, and an exception the code did not expect becomes a 500 with a generic message and a
log line naming only the exception type and where it arose, never the request's customer ids,
events or a traceback with their values.
"""

from __future__ import annotations

import hmac
import json
import logging
import traceback
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("fedmarket.serve")
OPEN_PATHS = frozenset({"/healthz"})  # liveness probes carry no token and learn nothing


class Guard:
    """ASGI middleware; ``token`` None: no authentication (loopback use)."""

    def __init__(self, app: ASGIApp, *, token: str | None, max_body_bytes: int) -> None:
        self.app, self.max_body_bytes = app, max_body_bytes
        self._token = token.encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if (
            self._token is not None
            and scope["path"] not in OPEN_PATHS
            and not self._authorised(headers.get(b"authorization", b""))
        ):
            await _answer(
                send,
                401,
                "missing or wrong bearer token: send 'Authorization: Bearer <token>'",
                {"www-authenticate": "Bearer"},
            )
            return
        body = await self._body(headers, receive, send)
        if body is None:
            return
        started = False

        async def replay() -> Message:
            nonlocal body
            if body is not None:
                message, body = {"type": "http.request", "body": body, "more_body": False}, None
                return message
            return await receive()

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, replay, tracked)
        except Exception as exc:  # the point: no exception reaches the caller
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            log.error(
                "internal error on %s %s: %s at %s:%s (values withheld)",
                scope.get("method"),
                scope["path"],
                type(exc).__name__,
                frame.filename,
                frame.lineno,
            )
            if not started:
                await _answer(send, 500, "internal error; the service log names where")

    def _authorised(self, header: bytes) -> bool:
        scheme, _, given = header.partition(b" ")
        expected = self._token or b""
        return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), expected)

    async def _body(
        self, headers: dict[bytes, bytes], receive: Receive, send: Send
    ) -> bytes | None:
        """The whole body, or None when it was refused (413) or the caller left."""
        too_big = (
            f"request body over {self.max_body_bytes:,} bytes (the service's bound); "
            "send fewer events or customers per request"
        )
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await _answer(send, 413, too_big)
            return None
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await _answer(send, 413, too_big)
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


async def _answer(send: Send, status: int, error: str, extra: dict[str, str] | None = None) -> None:
    body = json.dumps({"error": error}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
