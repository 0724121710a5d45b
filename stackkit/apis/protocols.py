"""The route table: every operation, read once from the Protocols' @route declarations.

The HTTP app, the LibraryClient, ``GET /v1/inspect/routes``, the OpenAPI spec and
``stackkit list-apis`` are all generated from :func:`route_table`.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import typing
from collections.abc import AsyncIterator

from pydantic import BaseModel

from stackkit.apis.agents import Agents
from stackkit.apis.arena import Arena
from stackkit.apis.datatypes import Api, Route
from stackkit.apis.files import Files
from stackkit.apis.inference import Inference
from stackkit.apis.inspect import Inspect
from stackkit.apis.models import Models
from stackkit.apis.safety import Safety
from stackkit.apis.shields import Shields
from stackkit.apis.stored_completions import StoredCompletions
from stackkit.apis.tools import ToolRuntime
from stackkit.apis.vector_io import VectorIO

API_PROTOCOLS: dict[Api, type] = {
    Api.inference: Inference,
    Api.models: Models,
    Api.safety: Safety,
    Api.shields: Shields,
    Api.vector_io: VectorIO,
    Api.files: Files,
    Api.agents: Agents,
    Api.tool_runtime: ToolRuntime,
    Api.inspect: Inspect,
    Api.arena: Arena,
    Api.stored_completions: StoredCompletions,
}

_PATH_PARAM = re.compile(r"{(\w+)(?::\w+)?}")


def _response_type(annotation: object) -> type | None:
    """The non-streaming member of a return annotation like ``X | AsyncIterator[Chunk]``."""
    for member in typing.get_args(annotation) or (annotation,):
        if typing.get_origin(member) is not AsyncIterator and isinstance(member, type):
            return member
    return None


def _routes_of(api: Api, protocol: type) -> list[Route]:
    routes = []
    for name, fn in vars(protocol).items():
        declared: Route | None = getattr(fn, "__stackkit_route__", None)
        if declared is None:
            continue
        hints = typing.get_type_hints(fn)
        request_type = hints.get("request")
        if not (isinstance(request_type, type) and issubclass(request_type, BaseModel)):
            raise TypeError(f"{protocol.__name__}.{name} must take one pydantic `request` argument")
        routes.append(
            dataclasses.replace(
                declared,
                name=name,
                api=api,
                request_type=request_type,
                response_type=_response_type(hints["return"]),
                summary=(fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else "",
                path_params=tuple(_PATH_PARAM.findall(declared.path)),
            )
        )
    return routes


@functools.cache
def route_table() -> tuple[Route, ...]:
    """Every operation of every API, in declaration order."""
    return tuple(route for api, proto in API_PROTOCOLS.items() for route in _routes_of(api, proto))


def routes_for(api: Api) -> tuple[Route, ...]:
    return tuple(r for r in route_table() if r.api is api)


def protocol_methods(api: Api) -> list[str]:
    """The methods a provider of `api` must implement (routed ones and provider hooks)."""
    protocol = API_PROTOCOLS[api]
    return [n for n, v in vars(protocol).items() if callable(v) and not n.startswith("_")]
