"""A request body read into its pydantic model as FastAPI would, at a third of the cost.

FastAPI reads a JSON body with ``json.loads``, then validates the Python objects field by field
(``validate_python``), after resolving the route's dependencies: ~0.7 ms of the ~2 ms the service
spends per single-customer request at 8 clients. Here a valid body is parsed and validated in
one pass by pydantic-core (``model_validate_json``); only a body it refuses takes FastAPI's own
way again, so that every refusal keeps the words, ``loc`` and ``type`` FastAPI gave it
(``json_invalid`` with the character position, ``missing``, ``model_attributes_type``...).
"""

from __future__ import annotations

import email.message
import json
from typing import Any, TypeVar

from fastapi import HTTPException
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)


def parse_body(model: type[Model], body: bytes, content_type: str | None) -> Model:
    """``body`` as ``model``; a refusal is FastAPI's ``RequestValidationError`` for it."""
    if body and _is_json(content_type):
        try:
            return model.model_validate_json(body)
        except ValidationError:
            pass  # worded below, as FastAPI words it
    return _as_fastapi(model, body, content_type)


def _is_json(content_type: str | None) -> bool:
    """FastAPI's rule (strict content type): only ``application/json`` or ``*+json`` bodies are
    read as JSON; without the header the body stays bytes and is refused."""
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def _as_fastapi(model: type[Model], body: bytes, content_type: str | None) -> Model:
    value: Any = None
    if body:
        value = body
        if _is_json(content_type):
            try:
                value = json.loads(body)
            except json.JSONDecodeError as exc:
                error = {
                    "type": "json_invalid",
                    "loc": ("body", exc.pos),
                    "msg": "JSON decode error",
                }
                raise RequestValidationError([{**error, "ctx": {"error": exc.msg}}]) from None
            except ValueError:  # not text in a Unicode encoding
                raise HTTPException(400, "There was an error parsing the body") from None
    if value is None:
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body",), "msg": "Field required"}]
        )
    try:
        return model.model_validate(value, from_attributes=True)
    except ValidationError as exc:
        errors = [
            {**e, "loc": ("body", *e["loc"])}
            for e in exc.errors(include_url=False, include_input=False)
        ]
        raise RequestValidationError(errors) from None
