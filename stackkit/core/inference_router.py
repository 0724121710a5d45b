"""The inference router: each chat, completion and embedding request goes to the provider owning its model
(or, for a model with several targets, to the one failover picks), inside the model's guardrails, its
quotas and its telemetry; ``store: true`` completions are kept; streams are answered under the name the
client used."""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from stackkit.apis.datatypes import ModelResource, ModelType, Resource
from stackkit.apis.inference import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Completion,
    CompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
)
from stackkit.core.failover import TargetPool, call_with_failover
from stackkit.core.guardrails import Guardrails, requested_shields
from stackkit.core.quotas import Admission, QuotaGate
from stackkit.core.response_cache import ResponseCache, cache_status, caching, replay
from stackkit.core.routing import ResourceTable
from stackkit.core.stored_completions import CompletionStore, new_completion_id, store_options, stored_stream
from stackkit.core.streams import Stream, aclose, as_asked, asking_for_usage
from stackkit.core.telemetry import ModelCall, Telemetry
from stackkit.errors import InvalidRequestError, StackkitError

log = logging.getLogger("stackkit.routing")
T = TypeVar("T", ChatCompletionRequest, CompletionRequest, EmbeddingRequest)


class InferenceRouter:
    """Sends each inference request to the provider owning its model, inside the model's guardrails,
    and answers with the model named as the client named it."""

    def __init__(self, table: ResourceTable) -> None:
        self.table = table
        self.guardrails: Guardrails | None = None  # set by the Stack when a safety API is configured
        self.completions: CompletionStore | None = None  # set by the Stack: where store: true completions go
        self.quotas: QuotaGate | None = None  # set by the Stack when run.yaml has quotas
        self.telemetry: Telemetry | None = None  # set by the Stack when run.yaml has telemetry
        self._pools: dict[str, TargetPool] = {}  # models with several targets: their load and health
        self.cache: ResponseCache | None = None  # set by the Stack when run.yaml has response_cache
        self._floors: dict[tuple[str, str], tuple[str, ...]] = {}
        self._floors_version = -1

    def _resolve(self, model: str, want: ModelType) -> tuple[Any, Resource]:
        impl, resource = self.table.resolve(model)
        if isinstance(resource, ModelResource) and resource.model_type is not want:
            raise InvalidRequestError(
                f"Model '{model}' is a {resource.model_type.value} model; this endpoint needs a {want.value} "
                f"model: pick one from GET /v1/models.",
                param="model",
            )
        return impl, resource

    def _upstream(self, request: T, want: ModelType) -> tuple[Any, Resource, T]:
        """The provider for `request.model`, the resource, and the request naming the upstream model."""
        impl, resource = self._resolve(request.model, want)
        if resource.provider_resource_id != request.model:
            request = request.model_copy(update={"model": resource.provider_resource_id})
        return impl, resource, request

    def floor(self, resource: Resource) -> tuple[str, ...]:
        """The operator's shields for the upstream model behind `resource`, whatever name reached it."""
        if self._floors_version != self.table.version:
            floors: dict[tuple[str, str], tuple[str, ...]] = {}
            for r in self.table.all():
                if isinstance(r, ModelResource) and r.guardrails:
                    key = (r.provider_id, r.provider_resource_id)
                    floors[key] = tuple(dict.fromkeys([*floors.get(key, ()), *r.guardrails]))
            self._floors, self._floors_version = floors, self.table.version
        return self._floors.get((resource.provider_id, resource.provider_resource_id), ())

    def _check_fields(self, impl: Any, resource: Resource,
                      request: ChatCompletionRequest | CompletionRequest | EmbeddingRequest) -> None:
        """A field nobody on the request's path honours is a 400, never silently dropped: typos of known
        fields always; any unknown field unless the provider forwards extras to an upstream that judges them."""
        extra = request.model_extra
        if not extra:
            return
        for name in extra:
            close = difflib.get_close_matches(name, type(request).model_fields, n=1, cutoff=0.85)
            if close:
                raise InvalidRequestError(f"Unrecognized parameter '{name}'; did you mean '{close[0]}'?", param=name)
        if not getattr(impl, "forwards_unknown_fields", False):
            name = next(iter(extra))
            raise InvalidRequestError(
                f"Unrecognized parameter '{name}': provider '{resource.provider_id}', which serves this model, does "
                "not take it. Remove it, or send it to a provider that passes extra fields upstream.", param=name)

    def _shields(self, impl: Any, resource: Resource, request: ChatCompletionRequest | CompletionRequest
                 ) -> tuple[list[str], Guardrails | None]:
        shields = requested_shields(self.floor(resource), request)
        self._check_fields(impl, resource, request)
        if shields and self.guardrails is None:
            raise InvalidRequestError("guardrails need a safety provider; add one under providers.safety.",
                                      param="guardrails")
        return shields, self.guardrails

    async def chat_completion(
        self, request: ChatCompletionRequest
    ) -> ChatCompletion | AsyncIterator[ChatCompletionChunk]:
        await self.table.fresh(request.model)
        key = self.cache.key(request, self._cached_by_default(request.model)) if self.cache is not None else None
        if key is not None and self.cache is not None:
            hit = await self.cache.get(key)
            self._count_cache("hit" if hit is not None else "miss")
            if hit is not None:
                if not request.stream:
                    return hit
                options = request.stream_options
                return replay(hit, options is not None and bool(options.include_usage))
        hide_usage = False
        if key is not None and request.stream:  # the cached answer keeps its usage, asked for or not
            request, hide_usage = asking_for_usage(request)
        result = await self._model_call(
            request, lambda r: self._generate(r, "chat_completion", ChatCompletion, "chat"), "chat")
        if key is not None and self.cache is not None:
            if hasattr(result, "__anext__"):
                return caching(result, self.cache, key, request.model, hide_usage)
            await self.cache.put(key, result)
        return result  # type: ignore[no-any-return]

    def _cached_by_default(self, model: str) -> bool:
        try:
            resource = self.table.resolve(model)[1]
        except StackkitError:
            return False
        return isinstance(resource, ModelResource) and resource.response_cache

    def _count_cache(self, result: str) -> None:
        cache_status.set(result)
        if self.telemetry is not None and self.telemetry.metrics is not None:
            self.telemetry.child("cache", result).inc()

    async def completion(self, request: CompletionRequest) -> Completion | AsyncIterator[Completion]:
        await self.table.fresh(request.model)
        return await self._model_call(  # type: ignore[no-any-return]
            request, lambda r: self._generate(r, "completion", Completion, "completion"), "text_completion")

    async def _model_call(self, request: Any, run: Callable[[Any], Awaitable[Any]], operation: str) -> Any:
        """`run(request)` once the quotas admit it, measured when telemetry is on; a stream's tokens are
        charged and its span ended when the stream ends."""
        if self.quotas is None and self.telemetry is None:
            return await run(request)
        admission = await self.quotas.admit(request.model) if self.quotas is not None else None
        call = (self.telemetry.model_call(operation, request.model, self._provider_of(request.model))
                if self.telemetry is not None else None)
        hide_usage = False
        if getattr(request, "stream", False) and (call is not None or (admission and admission.wants_tokens)):
            request, hide_usage = asking_for_usage(request)  # usage is needed for the quota and the metrics
        try:
            with call.current() if call is not None else contextlib.nullcontext():
                result = await run(request)
        except BaseException as exc:
            await _finish(admission, call, None, exc)
            raise
        if hasattr(result, "__anext__"):
            return metered(result, admission, call, hide_usage)
        await _finish(admission, call, getattr(result, "usage", None), None)
        return result

    async def _send(self, resource: Resource, impl: Any, method: str, request: Any) -> Any:
        """The provider's answer; for a model with several targets, the first target's that answers."""
        if not isinstance(resource, ModelResource) or not resource.targets:
            return await getattr(impl, method)(request)
        pool = self._pools.get(resource.identifier)
        if pool is None or [t.spec for t in pool.targets] != resource.targets:
            pool = self._pools[resource.identifier] = TargetPool(resource.targets)
        return await call_with_failover(pool, self.table.providers, request,
                                        lambda provider, upstream: getattr(provider, method)(upstream))

    async def close(self) -> None:
        """Stop the failover probes."""
        for pool in self._pools.values():
            await pool.close()

    def _provider_of(self, model: str) -> str:
        try:
            return self.table.resolve(model)[1].provider_id
        except StackkitError:
            return "unknown"

    async def _generate(self, request: ChatCompletionRequest | CompletionRequest, method: str, whole: type[Any],
                        kind: str) -> Any:
        """A text-producing call, inside the model's guardrails (`kind` picks the guardrails' chat or
        completion checks), answered under the name the client used."""
        asked = request.model
        store, metadata = store_options(request) if isinstance(request, ChatCompletionRequest) else (False, {})
        if store and self.completions is None:
            raise InvalidRequestError("store: true needs a stack with stored completions; use Stack or "
                                      "LibraryClient, which keep them.", param="store")
        impl, resource, request = self._upstream(request, ModelType.llm)  # type: ignore[type-var]
        shields, guard = self._shields(impl, resource, request)
        checked = guard if guard is not None and shields else None
        if checked is not None:
            request = await getattr(checked, f"check_{kind}_input")(shields, request)
        result = await self._send(resource, impl, method, request)
        if isinstance(result, whole):
            result.model = asked
            result = await getattr(checked, f"check_{kind}_output")(shields, result) if checked else result
            if store and self.completions is not None and isinstance(request, ChatCompletionRequest):
                result.id = new_completion_id()
                await self.completions.record(request, result, metadata)  # the messages as the model saw them
            return result
        if checked is not None:
            result = getattr(checked, f"guard_{kind}_stream")(shields, result)
        result = renamed(result, asked)
        if store and self.completions is not None and isinstance(request, ChatCompletionRequest):
            return stored_stream(result, request, asked, metadata, self.completions)
        return result

    async def embeddings(self, request: EmbeddingRequest) -> EmbeddingResponse:
        await self.table.fresh(request.model)
        return await self._model_call(request, self._embed, "embeddings")  # type: ignore[no-any-return]

    async def _embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        asked = request.model
        impl, resource, request = self._upstream(request, ModelType.embedding)
        self._check_fields(impl, resource, request)
        response: EmbeddingResponse = await self._send(resource, impl, "embeddings", request)
        response.model = asked
        return response

    async def refresh(self, timeout: float) -> None:
        """Ask every provider which models it serves; a slow or failing provider is skipped."""
        await asyncio.gather(*(self._refresh_one(pid, impl, timeout) for pid, impl in self.table.providers.items()))

    async def _refresh_one(self, provider_id: str, impl: Any, timeout: float) -> None:
        lister = getattr(impl, "list_provider_models", None)
        if lister is None:
            return
        loading = getattr(impl, "loading", None)
        if loading is not None:
            await loading.wait()  # a model loading in the background is listed once it is in
        try:
            listed = await asyncio.wait_for(lister(), timeout)
        except Exception as exc:  # noqa: BLE001 - a provider's listing must never break the stack
            log.warning("could not list models of provider %r: %s", provider_id, exc or type(exc).__name__)
            return
        if listed is None:
            return
        self.table.set_listed(
            provider_id,
            [
                ModelResource(
                    identifier=f"{provider_id}/{m.provider_model_id}",
                    provider_id=provider_id,
                    provider_resource_id=m.provider_model_id,
                    model_type=ModelType(m.model_type),
                    metadata=m.metadata,
                    source="listed",
                )
                for m in listed
            ],
        )


async def _finish(admission: Admission | None, call: ModelCall | None, usage: Any, error: BaseException | None
                  ) -> None:
    if call is not None:
        call.finish(usage, error)
    if admission is not None:
        if usage is not None:
            await admission.charge(usage)
        await admission.finish()


def metered(stream: AsyncIterator[Any], admission: Admission | None, call: ModelCall | None,
            hide_usage: bool) -> Stream[Any]:
    """`stream`, its usage charged to the quotas and its span ended, its concurrency slot freed when it
    ends or is closed; the usage chunk asked for on the client's behalf is not shown to a client that did
    not ask for it."""
    usage: Any = None
    done = False

    async def finish(error: BaseException | None) -> None:
        nonlocal done
        if not done:  # once, whether the stream ended or was closed first
            done = True
            await _finish(admission, call, usage, error)

    async def relay() -> AsyncIterator[Any]:
        nonlocal usage
        error: BaseException | None = None
        try:
            async for chunk in stream:
                usage = chunk.usage or usage
                shown = as_asked(chunk, hide_usage)
                if shown is not None:
                    yield shown
        except BaseException as exc:
            error = exc
            raise
        finally:
            await finish(error)

    async def close() -> None:
        await aclose(stream)
        await finish(None)

    return Stream(relay(), close)


def renamed(stream: AsyncIterator[Any], model: str) -> Stream[Any]:
    """`stream` with each chunk's `model` set to the name the client used."""

    async def rename() -> AsyncIterator[Any]:
        async for chunk in stream:
            chunk.model = model
            yield chunk

    return Stream(rename(), lambda: aclose(stream))
