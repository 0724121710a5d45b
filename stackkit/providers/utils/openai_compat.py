"""Inference over any upstream that speaks OpenAI's HTTP API (OpenAI, vLLM, Ollama's /v1, stackkit).

Request bodies are the validated request re-serialized (extras included, unset fields left out);
responses are parsed straight from bytes by pydantic-core.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeVar

from pydantic import BaseModel

from stackkit.apis.inference import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Completion,
    CompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
    ProviderModel,
)
from stackkit.core.streams import Stream
from stackkit.errors import UpstreamError
from stackkit.providers.utils.http_provider import HTTPProvider, HTTPProviderConfig

T = TypeVar("T", bound=BaseModel)


class OpenAICompatConfig(HTTPProviderConfig):
    pass


class OpenAICompatProvider(HTTPProvider):
    forwards_unknown_fields = True  # the upstream takes its own extras (vLLM's top_k, ...) and 400s the rest
    def _parse(self, body: bytes, response_type: type[T]) -> T:
        try:
            return response_type.model_validate_json(body)
        except ValueError as exc:
            raise UpstreamError(f"{self.label}: the upstream's answer is not a valid {response_type.__name__}: "
                                f"{str(exc)[:300]}. Check that base_url points at an OpenAI-compatible API.") from exc

    async def _call(self, path: str, request: BaseModel, response_type: type[T]) -> T:
        body = await self._post(path, request.model_dump_json(exclude_unset=True, by_alias=True).encode())
        return self._parse(body, response_type)

    async def _stream(self, path: str, request: BaseModel, chunk_type: type[T]) -> AsyncIterator[T]:
        lines = await self._post_stream(path, request.model_dump_json(exclude_unset=True, by_alias=True).encode())
        return Stream(self._chunks(lines, chunk_type), lines.aclose)  # closes the upstream even if never read

    async def _chunks(self, lines: AsyncIterator[str], chunk_type: type[T]) -> AsyncIterator[T]:
        async for data in lines:
            if data == "[DONE]":
                continue
            if data.startswith('{"error"'):
                raise self._status_error(502, data.encode())
            yield self._parse(data.encode(), chunk_type)

    async def chat_completion(
        self, request: ChatCompletionRequest
    ) -> ChatCompletion | AsyncIterator[ChatCompletionChunk]:
        self._check_model(request.model)
        if request.stream:
            return await self._stream("chat/completions", request, ChatCompletionChunk)
        return await self._call("chat/completions", request, ChatCompletion)

    async def completion(self, request: CompletionRequest) -> Completion | AsyncIterator[Completion]:
        self._check_model(request.model)
        if request.stream:
            return await self._stream("completions", request, Completion)
        return await self._call("completions", request, Completion)

    async def embeddings(self, request: EmbeddingRequest) -> EmbeddingResponse:
        self._check_model(request.model)
        return await self._call("embeddings", request, EmbeddingResponse)

    async def list_provider_models(self) -> list[ProviderModel] | None:
        listed = await self._get_json("models")
        ids = [m["id"] for m in listed.get("data", []) if isinstance(m, dict) and isinstance(m.get("id"), str)]
        return [ProviderModel(provider_model_id=i, model_type="embedding" if "embed" in i else "llm")
                for i in self._allowed(ids)]

