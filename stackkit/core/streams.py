"""Streams that always release what they hold.

An async generator that was never iterated does not run its ``finally`` when closed, so a provider
that opened an upstream response (or took a batch slot) before returning its stream would keep it
until garbage collection. :class:`Stream` closes its source and runs its cleanup on ``aclose()``
whether or not iteration started; every layer that wraps a stream closes the one inside it.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from stackkit.apis.inference import StreamOptions

T = TypeVar("T")


async def aclose(stream: Any) -> None:
    """Close `stream` if it can be closed (async generators, Streams, httpx line iterators)."""
    closer = getattr(stream, "aclose", None)
    if closer is not None:
        await closer()


class Stream(AsyncIterator[T]):
    """An async iterator over `source` whose ``aclose`` closes `source` and then runs `on_close`."""

    def __init__(self, source: AsyncIterator[T], on_close: Callable[[], Awaitable[Any]] | None = None) -> None:
        self._source = source
        self._on_close = on_close
        self._closed = False
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None

    def __del__(self) -> None:
        # dropped without being closed (an abandoned stream): release what it holds on its own loop
        loop = self._loop
        if not self._closed and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(loop.create_task, self.aclose())

    def __aiter__(self) -> Stream[T]:
        return self

    async def __anext__(self) -> T:
        if self._closed:
            raise StopAsyncIteration
        return await self._source.__anext__()

    async def close(self) -> None:
        """The openai SDK's name for it (``await stream.close()`` on an AsyncStream)."""
        await self.aclose()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await aclose(self._source)
        finally:
            if self._on_close is not None:
                await self._on_close()


class ContextStream(Stream[T]):
    """A stream whose every step runs in `context` (so per-request provider keys stay in effect
    for the whole stream, whichever task iterates it)."""

    def __init__(self, source: AsyncIterator[T], context: contextvars.Context) -> None:
        super().__init__(source)
        self._context = context

    async def __anext__(self) -> T:
        if self._closed:
            raise StopAsyncIteration
        loop = asyncio.get_running_loop()
        return await loop.create_task(self._source.__anext__(), context=self._context)  # type: ignore[arg-type]

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await asyncio.get_running_loop().create_task(aclose(self._source), context=self._context)


def asking_for_usage(request: Any) -> tuple[Any, bool]:
    """A streaming request with the provider asked for its usage chunk (quotas, metrics and the cache need
    it), and whether that chunk is to be hidden from the client (it had not asked for it)."""
    options = request.stream_options
    hide = options is None or not options.include_usage
    return request.model_copy(update={"stream_options": StreamOptions(include_usage=True)}), hide


def as_asked(chunk: Any, hide_usage: bool) -> Any:
    """`chunk` as the client asked for it: None for a usage-only chunk it did not ask for, else the chunk
    (its usage taken off when the client did not ask)."""
    if hide_usage and chunk.usage is not None:
        if not chunk.choices:
            return None
        chunk.usage = None
    return chunk
