"""In-process clients over the route table: no HTTP, no JSON round trip.

Their namespaces mirror the ``openai`` SDK (``client.chat.completions.create(...)``,
``client.models.retrieve(id)``) plus stackkit's own (``client.safety.run_shield``,
``client.inspect.routes``), generated from the same route table as the HTTP server, and
requests are validated exactly as the server validates them.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from stackkit.apis.datatypes import Route
from stackkit.apis.protocols import route_table
from stackkit.core.config import RunConfig
from stackkit.core.dispatch import build_request
from stackkit.core.loop_driver import LoopDriver
from stackkit.core.request_context import (
    PROVIDER_DATA_HEADER,
    Principal,
    current_principal,
    parse_provider_data,
    provider_data,
)
from stackkit.core.sdk_compat import (
    AsyncPage,
    AsyncPaginator,
    BinaryContent,
    SyncPage,
    as_sdk_error,
    is_cursor_route,
    is_page_route,
)
from stackkit.core.stack import Stack
from stackkit.core.streams import ContextStream, aclose
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
    """``async with AsyncLibraryClient("starter") as client: await client.chat.completions.create(...)``

    The async twin of :class:`LibraryClient`, for code that already runs an event loop."""

    def __getattr__(self, name: str) -> Any:  # only for names the route table did not create
        raise _missing(self, name)

    def __init__(self, config: RunConfig | str | os.PathLike[str], principal: Principal | str | None = None) -> None:
        self._config = config
        self.stack: Stack | None = None
        self.principal = Principal(principal) if isinstance(principal, str) else principal

    async def initialize(self) -> AsyncLibraryClient:
        if self.stack is None:
            self.stack = await Stack.create(self._config)
            self.stack.start()
            served = set(self.stack.served_apis())
            _build_tree(self, self._public_operation, [r for r in route_table() if r.api in served])
        return self

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Wait for the stack's background start-up work (model listing, provider start hooks)."""
        assert self.stack is not None, "call `await client.initialize()` first"
        await asyncio.wait_for(self.stack.wait_ready(), timeout)

    def _operation(self, route: Route) -> Callable[..., Awaitable[Any]]:
        """The route as a coroutine function returning what the implementation returns."""
        assert self.stack is not None and route.api is not None
        method = self.stack.operation(route)

        async def call(*args: Any, **kwargs: Any) -> Any:
            headers = {k.lower(): v for k, v in (kwargs.get("extra_headers") or {}).items()}
            raw = headers.get(PROVIDER_DATA_HEADER)
            token = provider_data.set(parse_provider_data(raw)) if raw is not None else None
            who = current_principal.set(self.principal) if self.principal is not None else None
            try:
                result = await method(build_request(route, _request_data(route, args, kwargs)))
                if isinstance(result, bytes):
                    return BinaryContent(result)
                if (token or who) is not None and hasattr(result, "__anext__"):  # in effect for the stream too
                    return ContextStream(result, contextvars.copy_context())
                return result
            except StackkitError as exc:
                raise as_sdk_error(exc, route) from None
            finally:
                if token is not None:
                    provider_data.reset(token)
                if who is not None:
                    current_principal.reset(who)

        return call

    def _public_operation(self, route: Route) -> Callable[..., Any]:
        call = self._operation(route)
        if is_page_route(route):
            paged = _async_pager(call, route)
            paged.__name__, paged.__doc__ = route.name, route.summary
            return paged
        call.__name__, call.__doc__ = route.name, route.summary
        return call

    async def close(self) -> None:
        if self.stack is not None:
            stack, self.stack = self.stack, None
            await stack.shutdown()

    async def __aenter__(self) -> AsyncLibraryClient:
        return await self.initialize()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _async_pager(call: Callable[..., Awaitable[Any]], route: Route) -> Callable[..., AsyncPaginator]:
    def pager(*args: Any, **kwargs: Any) -> AsyncPaginator:
        async def page(**extra: Any) -> AsyncPage:
            result = await call(*args, **{**kwargs, **extra})
            fetch = (lambda after: page(after=after)) if is_cursor_route(route) else None
            return AsyncPage(result, fetch)

        return AsyncPaginator(page)

    return pager


class _SyncStream(Iterator[Any]):
    """A stream of the background loop as a plain iterator; closing it (or dropping it) stops the work."""

    def __init__(self, client: LibraryClient, stream: AsyncIterator[Any]) -> None:
        self._client, self._stream = client, stream
        self._closed = False

    def __next__(self) -> Any:
        if self._closed:
            raise StopIteration
        try:
            return self._client._call(self._stream.__anext__())
        except StopAsyncIteration:
            self._closed = True
            raise StopIteration from None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._client._call(aclose(self._stream))

    def __del__(self) -> None:
        if not self._closed:
            self._client._driver.schedule(aclose(self._stream))

    def __enter__(self) -> _SyncStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LibraryClient:
    """The stack in your process, called like the ``openai`` SDK: ``client.chat.completions.create(...)``
    returns what ``OpenAI(base_url=...)`` returns (lists are pages that iterate their items, errors are
    also the SDK's exception classes), with no HTTP in between.

    Calls run the stack's event loop on the calling thread; between calls a background thread keeps
    work in flight going (file ingestion, model listing), and calls from inside a running event loop
    run on a helper thread (core/loop_driver.py). `principal` (a name or a Principal with attributes) is
    who every call is made as, as an API key or token would say over HTTP.
    """

    def __getattr__(self, name: str) -> Any:  # only for names the route table did not create
        raise _missing(self, name)

    def __init__(self, config: RunConfig | str | os.PathLike[str], principal: Principal | str | None = None) -> None:
        self._driver = LoopDriver()
        self._async = AsyncLibraryClient(config, principal)
        try:
            self._call(self._async.initialize())
        except BaseException:
            self._driver.close()
            raise
        assert self._async.stack is not None
        self.stack = self._async.stack
        served = set(self.stack.served_apis())
        _build_tree(self, self._operation, [r for r in route_table() if r.api in served])

    def _call(self, coro: Any) -> Any:
        return self._driver.run(coro)

    def wait_ready(self, timeout: float | None = None) -> None:
        """Wait for the stack's background start-up work (model listing, provider start hooks)."""
        self._call(self._async.wait_ready(timeout))

    def _operation(self, route: Route) -> Callable[..., Any]:
        async_op = self._async._operation(route)
        page, cursor = is_page_route(route), is_cursor_route(route)

        def call(*args: Any, **kwargs: Any) -> Any:
            result = self._call(async_op(*args, **kwargs))
            if route.stream_type is not None and hasattr(result, "__anext__"):
                return _SyncStream(self, result)
            if page:
                return SyncPage(result, (lambda after: call(*args, **{**kwargs, "after": after})) if cursor else None)
            return result

        call.__name__ = route.name
        call.__doc__ = route.summary
        return call

    def close(self) -> None:
        if self._driver.loop.is_closed():
            return
        try:
            self._call(self._async.close())
        finally:
            self._driver.close()

    def __enter__(self) -> LibraryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
