"""The response cache (``response_cache:`` in run.yaml): exact-match answers for repeated chat completions.

A request is cached when its model has ``response_cache: true`` or the request says ``cache: true``, and
only at temperature 0 unless the request itself asks (a sampled answer is not the answer). The key is a
hash of the normalized request (the model as the client named it, messages, tools, every sampling and
format field; not ``stream``, ``stream_options``, ``user``) and of the principal, so one principal's answers
never reach another. A stream that misses is cached once it has finished; a stream that hits is replayed
as chunks. ``X-Stackkit-Cache: hit|miss`` tells HTTP clients which it was.
"""

from __future__ import annotations

import collections
import contextvars
import hashlib
import time
from collections.abc import AsyncIterator
from typing import Any, Protocol

import orjson

from stackkit.apis.inference import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ChoiceDelta
from stackkit.apis.inference import ChatCompletionChunkChoice as ChunkChoice
from stackkit.core.config import ResponseCacheConfig
from stackkit.core.request_context import current_principal
from stackkit.core.stored_completions import whole
from stackkit.core.streams import Stream, aclose, as_asked
from stackkit.errors import InvalidRequestError, ProviderUnavailableError, StackkitError

cache_status: contextvars.ContextVar[str | None] = contextvars.ContextVar("stackkit_cache_status", default=None)
_NOT_PART_OF_THE_ANSWER = {"stream", "stream_options", "user", "cache"}


class CacheBackend(Protocol):
    async def get(self, key: str) -> bytes | None: ...
    async def put(self, key: str, value: bytes) -> None: ...
    async def close(self) -> None: ...


class MemoryCache:
    """Least recently used entries, each for ttl_s."""

    def __init__(self, ttl_s: float, max_entries: int) -> None:
        self.ttl_s, self.max_entries = ttl_s, max_entries
        self.entries: collections.OrderedDict[str, tuple[float, bytes]] = collections.OrderedDict()

    async def get(self, key: str) -> bytes | None:
        entry = self.entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            self.entries.pop(key, None)
            return None
        self.entries.move_to_end(key)
        return entry[1]

    async def put(self, key: str, value: bytes) -> None:
        self.entries[key] = (time.monotonic() + self.ttl_s, value)
        self.entries.move_to_end(key)
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)

    async def close(self) -> None:
        return None


class RedisCache:
    """Entries in Redis, shared by replicas, each for ttl_s."""

    def __init__(self, url: str, ttl_s: float) -> None:
        try:
            import redis.asyncio as redis
        except ImportError as exc:
            raise StackkitError("response_cache.redis_url needs the redis package: pip install 'stackkit[redis]'") \
                from exc
        self.redis: Any = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self.errors = redis.RedisError
        self.ttl_ms = int(ttl_s * 1000)
        self.where = url.split("@")[-1]

    async def get(self, key: str) -> bytes | None:
        try:
            value = await self.redis.get(f"stackkit:cache:{key}")
        except self.errors as exc:
            raise ProviderUnavailableError(f"The response cache (Redis at {self.where}) cannot be reached "
                                           f"({type(exc).__name__}); start it or check response_cache.redis_url."
                                           ) from None
        return value if isinstance(value, bytes) else None

    async def put(self, key: str, value: bytes) -> None:
        try:
            await self.redis.set(f"stackkit:cache:{key}", value, px=self.ttl_ms)
        except self.errors:
            return  # an answer that could not be cached is still the answer

    async def close(self) -> None:
        await self.redis.aclose()


class ResponseCache:
    """Decides what is cached, keys it, and stores whole completions."""

    def __init__(self, config: ResponseCacheConfig) -> None:
        self.backend: CacheBackend = (RedisCache(config.redis_url, config.ttl_s) if config.redis_url
                                      else MemoryCache(config.ttl_s, config.max_entries))

    @staticmethod
    def key(request: ChatCompletionRequest, model_default: bool) -> str | None:
        """The request's key, or None when it is not to be cached (the `cache` field is taken off)."""
        extra = request.model_extra if request.model_extra is not None else {}
        asked = extra.pop("cache", None)
        if asked is not None and not isinstance(asked, bool):
            raise InvalidRequestError("Send cache as true or false.", param="cache")
        if asked is False or (asked is None and not model_default):
            return None
        if asked is None and (request.temperature is None or request.temperature > 0):
            return None  # sampled answers are cached only when the request asks for it
        body = request.model_dump(mode="json", exclude=_NOT_PART_OF_THE_ANSWER, exclude_none=True)
        principal = current_principal.get()
        body["__principal"] = principal.name if principal is not None else None
        return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()

    async def get(self, key: str) -> ChatCompletion | None:
        raw = await self.backend.get(key)
        return ChatCompletion.model_validate_json(raw) if raw is not None else None

    async def put(self, key: str, completion: ChatCompletion) -> None:
        await self.backend.put(key, completion.model_dump_json().encode())


def replay(completion: ChatCompletion, include_usage: bool) -> Stream[ChatCompletionChunk]:
    """A cached completion as the stream a provider would have sent."""

    async def chunks() -> AsyncIterator[ChatCompletionChunk]:
        head = {"id": completion.id, "created": completion.created, "model": completion.model}
        for choice in completion.choices:
            message = choice.message
            yield ChatCompletionChunk(**head, choices=[ChunkChoice(index=choice.index, delta=ChoiceDelta(
                role="assistant", content=message.content, refusal=message.refusal, tool_calls=[
                    {"index": i, "id": c.id, "type": "function",  # type: ignore[misc]
                     "function": {"name": c.function.name, "arguments": c.function.arguments}}
                    for i, c in enumerate(message.tool_calls or [])] or None))])
            yield ChatCompletionChunk(**head, choices=[ChunkChoice(index=choice.index, delta=ChoiceDelta(),
                                                                   finish_reason=choice.finish_reason)])
        if include_usage and completion.usage is not None:
            yield ChatCompletionChunk(**head, choices=[], usage=completion.usage)

    return Stream(chunks())


def caching(stream: AsyncIterator[ChatCompletionChunk], cache: ResponseCache, key: str, model: str,
            hide_usage: bool) -> Stream[ChatCompletionChunk]:
    """`stream`, cached whole once it has finished (a stream cut short is not cached); the usage asked for
    on the cache's behalf is not shown to a client that did not ask for it."""
    async def relay() -> AsyncIterator[ChatCompletionChunk]:
        seen: list[ChatCompletionChunk] = []
        async for chunk in stream:
            seen.append(chunk.model_copy())
            shown = as_asked(chunk, hide_usage)
            if shown is not None:
                yield shown
        if seen:
            await cache.put(key, whole(seen, model))

    return Stream(relay(), lambda: aclose(stream))
