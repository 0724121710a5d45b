"""The OpenAPI document, generated from the route table (the same table the app is built from)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from stackkit.apis.datatypes import Route

_REF = "#/components/schemas/{model}"


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


_ERROR_STATUSES = {
    "400": "Invalid request (bad JSON, a field that fails validation)",
    "404": "Unknown model, shield, vector store or route",
    "409": "Conflict with an existing resource",
    "413": "Request body over server.limits.max_request_bytes",
    "429": "Rate limited upstream",
    "502": "Upstream failed",
    "503": "No provider available",
    "504": "Upstream timed out",
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


def _body_schema(schema: dict[str, Any], drop: tuple[str, ...]) -> dict[str, Any]:
    out = dict(schema)
    out["properties"] = {k: v for k, v in schema.get("properties", {}).items() if k not in drop}
    if "required" in schema:
        out["required"] = [k for k in schema["required"] if k not in drop]
    return out


def _operation(route: Route, components: dict[str, Any]) -> dict[str, Any]:
    assert route.request_type is not None and route.response_type is not None
    if route.response_type is bytes:
        ok: dict[str, Any] = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
    else:
        ok = {"application/json": {"schema": _ref(route.response_type)}}
    if route.stream_type is not None:
        ok["text/event-stream"] = {"schema": {"type": "string", "description": "SSE: data: <chunk>, then [DONE]"}}
    responses: dict[str, Any] = {"200": {"description": "OK", "content": ok}}
    for status, text in _ERROR_STATUSES.items():
        responses[status] = {"description": text, "content": {"application/json": {"schema": _ref(ErrorResponse)}}}
    op: dict[str, Any] = {"operationId": route.name, "summary": route.summary, "tags": [str(route.api)],
                          "responses": responses, "x-sdk-name": route.sdk}
    params = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in route.path_params]
    request_schema = components[route.request_type.__name__]
    if route.method in ("GET", "DELETE"):
        for name, prop in request_schema.get("properties", {}).items():
            if name not in route.path_params:
                params.append({"name": name, "in": "query", "required": name in request_schema.get("required", []),
                               "schema": prop})
    elif route.body == "multipart":
        schema = _body_schema(request_schema, ("filename",))
        schema["properties"] = {**schema["properties"], "file": {"type": "string", "format": "binary"}}
        op["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": schema}}}
    else:
        name = route.request_type.__name__
        if route.path_params:
            name += "Body"
            components[name] = _body_schema(request_schema, route.path_params)
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": {"$ref": _REF.format(
            model=name)}}}}
    if params:
        op["parameters"] = params
    return op


def openapi_spec(routes: list[Route], version: str) -> dict[str, Any]:
    models: list[tuple[type[BaseModel], Any]] = [(ErrorResponse, "serialization")]
    for r in routes:
        assert r.request_type is not None and r.response_type is not None
        models.append((r.request_type, "validation"))
        if r.response_type is not bytes:
            models.append((r.response_type, "serialization"))
    _, defs = models_json_schema(list(dict.fromkeys(models)), ref_template=_REF)
    components: dict[str, Any] = defs.get("$defs", {})
    paths: dict[str, dict[str, Any]] = {}
    for r in routes:
        path = r.path.replace(":path}", "}")
        paths.setdefault(path, {})[r.method.lower()] = _operation(r, components)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "stackkit",
            "version": version,
            "description": "OpenAI-compatible where OpenAI defines the operation; generated from the route table.",
        },
        "paths": paths,
        "components": {"schemas": components},
    }
