"""What the HTTP server and the LibraryClient share: building a request from a route's inputs
(validated the same way on both transports) and calling the implementation that serves it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from stackkit.apis.datatypes import Route
from stackkit.errors import InvalidRequestError


def invalid_request(exc: ValidationError) -> InvalidRequestError:
    """A pydantic ValidationError as a 400 naming the first bad field in `param`."""
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"]]
    # drop discriminator/union tags pydantic adds to locations (e.g. "user", "str")
    param = ".".join(p for p in loc if not p.startswith(("function-", "list[", "tagged-union")))
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
        raise invalid_request(exc) from None


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
        raise invalid_request(exc) from None


def wants_stream(route: Route, request: BaseModel) -> bool:
    return route.stream_type is not None and bool(getattr(request, "stream", False))
