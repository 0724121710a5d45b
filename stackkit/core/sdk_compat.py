"""What makes LibraryClient return what the ``openai`` SDK returns: pages that iterate their items
and auto-paginate, binary file content, and errors that are also the SDK's exception classes.

``openai`` is imported only when an error is raised and only if it is installed, so ``import stackkit``
stays light and stackkit works without it.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from stackkit.apis.datatypes import Route
from stackkit.errors import StackkitError


def is_page_route(route: Route) -> bool:
    """Routes the SDK answers with a page: lists, and vector store search."""
    fields = getattr(route.response_type, "model_fields", {})
    return "data" in fields and (route.method == "GET" or route.sdk.endswith(".search"))


def is_cursor_route(route: Route) -> bool:
    return route.request_type is not None and "after" in route.request_type.model_fields


class _Page:
    """What both page kinds share: the response's attributes, its items, whether a next page exists."""

    def __init__(self, result: BaseModel, fetch: Callable[[str], Any] | None) -> None:
        self._result = result
        self._fetch = fetch
        self.data: list[Any] = list(getattr(result, "data", []))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._result, name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._result!r})"

    def has_next_page(self) -> bool:
        return self._fetch is not None and bool(getattr(self._result, "has_more", False)) and bool(self.data)

    def _next(self) -> Any:
        if not self.has_next_page() or self._fetch is None:
            raise RuntimeError("No next page expected; check `.has_next_page()` before `.get_next_page()`.")
        return self._fetch(self.data[-1].id)

    def model_dump(self, **kwargs: Any) -> dict[str, Any]:
        return self._result.model_dump(**kwargs)


class SyncPage(_Page):
    """A page of a list: iterating it yields every item of every page (fetched as needed), like the
    SDK's ``SyncPage``/``SyncCursorPage``; other attributes are the response's (``data``, ``has_more``)."""

    def __len__(self) -> int:
        return len(self.data)

    def get_next_page(self) -> SyncPage:
        page: SyncPage = self._next()
        return page

    def iter_pages(self) -> Iterator[SyncPage]:
        page: SyncPage = self
        yield page
        while page.has_next_page():
            page = page.get_next_page()
            yield page

    def __iter__(self) -> Iterator[Any]:
        for page in self.iter_pages():
            yield from page.data

    def to_dict(self) -> dict[str, Any]:
        return self._result.model_dump(mode="json", exclude_none=True)


class AsyncPage(_Page):
    """The async twin of SyncPage: ``async for`` yields every item of every page."""

    async def get_next_page(self) -> AsyncPage:
        page: AsyncPage = await self._next()
        return page

    async def iter_pages(self) -> AsyncIterator[AsyncPage]:
        page: AsyncPage = self
        yield page
        while page.has_next_page():
            page = await page.get_next_page()
            yield page

    async def __aiter__(self) -> AsyncIterator[Any]:
        async for page in self.iter_pages():
            for item in page.data:
                yield item


class AsyncPaginator:
    """What the async SDK's list methods return: ``await`` it for the first page, or ``async for`` over it
    for every item."""

    def __init__(self, first: Callable[[], Awaitable[AsyncPage]]) -> None:
        self._first = first

    def __await__(self) -> Generator[Any, None, AsyncPage]:
        return self._first().__await__()

    async def __aiter__(self) -> AsyncIterator[Any]:
        page = await self._first()
        async for item in page:
            yield item


class BinaryContent:
    """File content as the SDK's ``HttpxBinaryResponseContent``: ``.content``, ``.text``, ``.read()``,
    ``.json()``, ``.iter_bytes()``, ``.write_to_file(path)``."""

    def __init__(self, content: bytes) -> None:
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode()

    def read(self) -> bytes:
        return self.content

    def json(self) -> Any:
        return json.loads(self.content)

    def iter_bytes(self, chunk_size: int | None = None) -> Iterator[bytes]:
        size = chunk_size or 65536
        for start in range(0, len(self.content), size):
            yield self.content[start:start + size]

    def write_to_file(self, file: str | Path) -> None:
        Path(file).write_bytes(self.content)


# ---- errors as the openai SDK's exception classes ------------------------------------------------

_SDK_CLASS_BY_STATUS = {400: "BadRequestError", 401: "AuthenticationError", 403: "PermissionDeniedError",
                        404: "NotFoundError", 409: "ConflictError", 422: "UnprocessableEntityError",
                        429: "RateLimitError"}


@functools.cache
def _openai() -> Any:
    if importlib.util.find_spec("openai") is None:
        return None
    import openai

    return openai


_DUAL: dict[tuple[type[StackkitError], type[Exception]], type[StackkitError]] = {}


def _dual_class(ours: type[StackkitError], theirs: type[Exception]) -> type[StackkitError]:
    """An exception class that is both stackkit's and the openai SDK's, so either `except` catches it."""
    if (ours, theirs) in _DUAL:
        return _DUAL[ours, theirs]
    def init(self: StackkitError, message: str, *, param: str | None = None, code: str | None = None) -> None:
        Exception.__init__(self, message)  # neither class's __init__: the attributes are set by as_sdk_error
        self.message, self.param, self.code = message, param, code

    made = type(ours.__name__, (ours, theirs), {"__module__": ours.__module__, "__init__": init,
                                                "__str__": lambda self: self.message})
    _DUAL[ours, theirs] = made
    return made


def as_sdk_error(exc: StackkitError, route: Route) -> StackkitError:
    """`exc`, also an instance of the matching ``openai`` exception class when openai is installed."""
    openai = _openai()
    if openai is None or isinstance(exc, openai.APIError):
        return exc
    status = exc.status_code
    name = _SDK_CLASS_BY_STATUS.get(status, "InternalServerError" if status >= 500 else "APIStatusError")
    err = _dual_class(type(exc), getattr(openai, name))(exc.message, param=exc.param, code=exc.code)
    err.__dict__.update(exc.__dict__)
    body = exc.to_openai_body()["error"]
    http = _http_module(openai)
    request = http.Request(route.method, f"http://stackkit.library{route.path}")
    retry_after = getattr(exc, "retry_after", None)
    headers = {"retry-after": str(int(retry_after + 0.999))} if retry_after else {}
    err.__dict__.update(request=request, response=http.Response(status, request=request, json={"error": body},
                                                                 headers=headers),
                        status_code=status, body=body, type=body["type"], request_id=None)
    return err.with_traceback(exc.__traceback__)


def _http_module(openai: Any) -> Any:
    """The HTTP library the installed openai SDK is built on (httpx for 1.x/2.x, httpx2 for 3.x)."""
    import sys

    base = sys.modules["openai._exceptions"]
    return base.httpx2 if hasattr(base, "httpx2") else base.httpx
