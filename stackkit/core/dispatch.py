"""What the HTTP server and the LibraryClient share: building a request from a route's inputs
(validated the same way on both transports) and calling the implementation that serves it."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from stackkit.apis.datatypes import Route
from stackkit.errors import InvalidRequestError

_UNION_MEMBERS = {"str", "int", "float", "bool", "none"}
_UNION_PREFIXES = ("function-", "list[", "dict[", "tagged-union", "literal[")


def _field_path(loc: tuple[int | str, ...], data: Any) -> str:
    """The request field at `loc`, without the union members and tags pydantic adds to locations
    (``str``, ``list[...]``, a message's ``user`` role, a content part's ``text`` type)."""
    parts: list[str] = []
    tag_seen = False  # one discriminator value per object
    for part in loc:
        if isinstance(part, str) and (part in _UNION_MEMBERS or part.startswith(_UNION_PREFIXES)):
            continue
        if isinstance(data, dict) and not tag_seen and part not in data \
                and part in (data.get("type"), data.get("role")):
            tag_seen = True
            continue  # a discriminator's value, not a field
        tag_seen = False
        parts.append(str(part))
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            data = None
    return ".".join(parts)


def invalid_request(exc: ValidationError, data: Any = None) -> InvalidRequestError:
    """A pydantic ValidationError as a 400 naming the first bad field in `param`."""
    errors = exc.errors()
    # when every member of a union failed, the deepest location is the one that says what is wrong
    err = max(errors, key=lambda e: len(e["loc"])) if len({e["loc"][:2] for e in errors}) == 1 else errors[0]
    param = _field_path(err["loc"], data)
    where = f"'{param}'" if param else "the request body"
    msg = err["msg"]
    if err["type"] == "missing":
        text = f"Missing required parameter {where}."
    elif err["type"] == "extra_forbidden":
        text = f"Unrecognized parameter {where}; remove it."
    else:
        text = f"Invalid value for {where}: {msg}."
    count = exc.error_count()
    if count > 1:
        text += f" ({count - 1} more problem(s) in the request.)"
    return InvalidRequestError(text, param=param or None, code="invalid_value")


def build_request(route: Route, data: dict[str, Any]) -> BaseModel:
    assert route.request_type is not None
    try:
        return route.request_type.model_validate(data)
    except ValidationError as exc:
        raise invalid_request(exc, data) from None


def build_request_json(route: Route, body: bytes) -> BaseModel:
    assert route.request_type is not None
    try:
        return route.request_type.model_validate_json(body)
    except ValidationError as exc:
        if exc.errors()[0]["type"] == "json_invalid":
            raise InvalidRequestError(
                f"The request body is not valid JSON: {exc.errors()[0]['msg']}. Send a JSON object.",
                code="invalid_json",
            ) from None
        raise invalid_request(exc, orjson.loads(body)) from None


def wants_stream(route: Route, request: BaseModel) -> bool:
    return route.stream_type is not None and bool(getattr(request, "stream", False))
