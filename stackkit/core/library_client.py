"""In-process clients over the route table: no HTTP, no JSON round trip.

Their namespaces mirror the ``openai`` SDK (``client.chat.completions.create(...)``,
``client.models.retrieve(id)``) plus stackkit's own (``client.safety.run_shield``,
``client.inspect.routes``), generated from the same route table as the HTTP server, and
requests are validated exactly as the server validates them.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

from stackkit.apis.datatypes import Route
from stackkit.apis.protocols import route_table
from stackkit.core.config import RunConfig
from stackkit.core.dispatch import build_request
from stackkit.core.request_context import PROVIDER_DATA_HEADER, parse_provider_data, provider_data
from stackkit.core.stack import Stack
from stackkit.errors import StackkitError

_SDK_ONLY = ("extra_headers", "extra_query", "timeout")


class _Namespace:
    """A node of the SDK-shaped tree: attributes are sub-namespaces or operations."""

    def __init__(self, path: str) -> None:
        self._path = path

    def __repr__(self) -> str:
        ops = ", ".join(k for k in vars(self) if not k.startswith("_"))
        return f"<{self._path or 'client'}: {ops}>"


def _request_data(route: Route, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    # like the openai SDK: the innermost path parameter is positional, the others are keywords
    if len(args) > min(1, len(route.path_params)):
        raise TypeError(f"{route.sdk}() takes {min(1, len(route.path_params))} positional argument(s)"
                        + (f" ({route.path_params[-1]})" if route.path_params else "") + "; pass the rest by keyword")
    data = {route.path_params[-1]: args[0]} if args else {}
    if route.body == "multipart" and "file" in kwargs:
        kwargs["filename"], kwargs["file"] = _file_argument(kwargs["file"])
    extra = kwargs.pop("extra_body", None) or {}
    for name in _SDK_ONLY:
        kwargs.pop(name, None)
    data.update(kwargs)
    data.update(extra)
    return data


def _file_argument(value: Any) -> tuple[str, bytes]:
    """The openai SDK's file forms: bytes, a path, an open file, or (filename, content[, mime])."""
    if isinstance(value, tuple):
        name, content = value[0], value[1]
        return str(name), content if isinstance(content, bytes) else content.read()
    if isinstance(value, (str, os.PathLike)):
        return os.path.basename(os.fspath(value)), Path(value).read_bytes()
    if isinstance(value, bytes):
        return "upload", value
    return os.path.basename(str(getattr(value, "name", "upload"))), value.read()


def _build_tree(root: Any, make_op: Callable[[Route], Callable[..., Any]], routes: list[Route]) -> None:
    for route in routes:
        *parents, leaf = route.sdk.split(".")
        node = root
        for i, part in enumerate(parents):
            child = getattr(node, part, None)
            if child is None:
                child = _Namespace(".".join(parents[: i + 1]))
                setattr(node, part, child)
            node = child
        setattr(node, leaf, make_op(route))


def _missing(client: Any, name: str) -> AttributeError:
    served = sorted(k for k in vars(client) if not k.startswith("_") and isinstance(vars(client)[k], _Namespace))
    hint = "" if vars(client).get("stack") else " (call `await client.initialize()` or use `async with` first)"
    return AttributeError(f"This stack has no '{name}' operations{hint}. It serves: {', '.join(served) or 'none'}. "
                          "Add a provider for that API to run.yaml.")


class AsyncLibraryClient:
    """``async with AsyncLibraryClient("starter") as client: await client.chat.completions.create(...)``"""

    def __getattr__(self, name: str) -> Any:  # only for names the route table did not create
        raise _missing(self, name)

    def __init__(self, config: RunConfig | str | os.PathLike[str]) -> None:
        self._config = config
        self.stack: Stack | None = None

    async def initialize(self) -> AsyncLibraryClient:
        if self.stack is None:
            self.stack = await Stack.create(self._config)
            self.stack.start()
            served = set(self.stack.served_apis())
            _build_tree(self, self._operation, [r for r in route_table() if r.api in served])
        return self

    def _operation(self, route: Route) -> Callable[..., Any]:
        assert self.stack is not None
        impls = self.stack.impls

        assert route.api is not None
        api = route.api

        async def call(*args: Any, **kwargs: Any) -> Any:
            headers = {k.lower(): v for k, v in (kwargs.get("extra_headers") or {}).items()}
            request = build_request(route, _request_data(route, args, kwargs))
            raw = headers.get(PROVIDER_DATA_HEADER)
            if raw is None:
                return await getattr(impls[api], route.name)(request)
            token = provider_data.set(parse_provider_data(raw))
            try:
                return await getattr(impls[api], route.name)(request)
            finally:
                provider_data.reset(token)

        call.__name__ = route.name
        call.__doc__ = route.summary
        return call

    async def close(self) -> None:
        if self.stack is not None:
            stack, self.stack = self.stack, None
            await stack.shutdown()

    async def __aenter__(self) -> AsyncLibraryClient:
        return await self.initialize()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class _SyncStream(Iterator[Any]):
    def __init__(self, loop: asyncio.AbstractEventLoop, stream: AsyncIterator[Any]) -> None:
        self._loop, self._stream = loop, stream

    def __next__(self) -> Any:
        try:
            return self._loop.run_until_complete(self._stream.__anext__())
        except StopAsyncIteration:
            raise StopIteration from None

    def close(self) -> None:
        closer = getattr(self._stream, "aclose", None)
        if closer is not None and not self._loop.is_closed():
            self._loop.run_until_complete(closer())

    def __enter__(self) -> _SyncStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LibraryClient:
    """The blocking twin of AsyncLibraryClient; streams are plain iterators.

    It runs the stack on an event loop of its own, driven by each call, so it must not be
    used from inside a running event loop (use AsyncLibraryClient there).
    """

    def __getattr__(self, name: str) -> Any:  # only for names the route table did not create
        raise _missing(self, name)

    def __init__(self, config: RunConfig | str | os.PathLike[str]) -> None:
        self._async = AsyncLibraryClient(config)
        self._loop = asyncio.new_event_loop()
        try:
            self._run(self._async.initialize())
        except BaseException:
            self._loop.close()
            raise
        assert self._async.stack is not None
        self.stack = self._async.stack
        served = set(self.stack.served_apis())
        _build_tree(self, self._operation, [r for r in route_table() if r.api in served])

    def _run(self, coro: Any) -> Any:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self._loop.run_until_complete(coro)
        coro.close()
        raise StackkitError("LibraryClient cannot be used inside a running event loop; use AsyncLibraryClient.")

    def _operation(self, route: Route) -> Callable[..., Any]:
        async_op = self._async._operation(route)
        loop = self._loop

        def call(*args: Any, **kwargs: Any) -> Any:
            result = self._run(async_op(*args, **kwargs))
            if route.stream_type is not None and hasattr(result, "__anext__"):
                return _SyncStream(loop, result)
            return result

        call.__name__ = route.name
        call.__doc__ = route.summary
        return call

    def close(self) -> None:
        if not self._loop.is_closed():
            self._run(self._async.close())
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    def __enter__(self) -> LibraryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
