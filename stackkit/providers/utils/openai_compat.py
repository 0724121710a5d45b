"""The shared base of every provider that speaks OpenAI's HTTP API upstream.

One pooled ``httpx.AsyncClient`` per provider for its lifetime, on aiohttp's transport:
httpx's own connection pool costs about 1.2 ms of CPU per request at 16 concurrent
requests, aiohttp's about 0.25 ms (bench/README.md), and keeping the httpx API keeps
record/replay at the httpx layer. Request bodies are the validated request re-serialized
(extras included, unset fields left out); responses are parsed straight from bytes by
pydantic-core. Upstream failures become stackkit errors here, at the boundary.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeVar

import aiohttp
import httpx
import orjson
from httpx_aiohttp import AiohttpTransport
from pydantic import BaseModel, Field, SecretStr

from stackkit.apis.datatypes import ProviderConfigBase
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
from stackkit.errors import (
    AuthenticationError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    StackkitError,
    UpstreamError,
    UpstreamTimeoutError,
)

T = TypeVar("T", bound=BaseModel)
_JSON = {"content-type": "application/json"}


class OpenAICompatConfig(ProviderConfigBase):
    base_url: str = Field(description="the server's OpenAI API root, e.g. http://127.0.0.1:8000/v1")
    api_key: SecretStr | None = None
    timeout_s: float = Field(default=120.0, gt=0, description="per-request timeout")
    connect_timeout_s: float = Field(default=5.0, gt=0)
    max_connections: int = Field(default=256, ge=1)


class OpenAICompatProvider:
    """Inference over an OpenAI-compatible upstream."""

    api_key_env = "OPENAI_API_KEY"  # named in auth errors

    def __init__(self, config: OpenAICompatConfig, provider_label: str) -> None:
        self.config = config
        self.label = provider_label
        headers = {"user-agent": "stackkit"}
        if config.api_key is not None and config.api_key.get_secret_value():
            headers["authorization"] = f"Bearer {config.api_key.get_secret_value()}"
        limits = httpx.Limits(max_connections=config.max_connections,
                              max_keepalive_connections=config.max_connections)
        self.client = httpx.AsyncClient(
            base_url=config.base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(config.timeout_s, connect=config.connect_timeout_s),
            transport=AiohttpTransport(limits=limits),
        )

    async def shutdown(self) -> None:
        await self.client.aclose()

    async def health(self) -> dict[str, Any]:
        try:
            response = await self.client.get("models", timeout=3.0)
        except httpx.HTTPError as exc:
            return {"status": "Error", "message": f"{self.config.base_url}: {type(exc).__name__}: {exc}"}
        ok = response.status_code < 400
        return {"status": "OK" if ok else "Error", "upstream_status": response.status_code}

    # ---- transport and error translation ----------------------------------------------------

    def _translate(self, exc: Exception) -> StackkitError:
        url = self.config.base_url
        # the aiohttp transport reports a refused connection as ConnectTimeout: look at the cause
        if isinstance(exc, httpx.ConnectError) or isinstance(exc.__cause__, aiohttp.ClientConnectorError):
            return UpstreamError(f"{self.label}: cannot connect to {url} ({exc or 'connection refused'}); "
                                 "is the server running, and is base_url right?")
        if isinstance(exc, httpx.TimeoutException):
            return UpstreamTimeoutError(f"{self.label}: the upstream at {url} did not answer in time "
                                        f"({type(exc).__name__}); raise timeout_s or check the server.")
        return UpstreamError(f"{self.label}: request to {url} failed: {type(exc).__name__}: {exc}")

    def _status_error(self, response: httpx.Response, body: bytes) -> StackkitError:
        message = body.decode(errors="replace")[:500]
        param = None
        try:
            err = orjson.loads(body).get("error")
            if isinstance(err, dict):
                message, param = str(err.get("message") or message), err.get("param")
            elif isinstance(err, str):
                message = err
        except (orjson.JSONDecodeError, AttributeError):
            pass
        status = response.status_code
        where = f"{self.label} (upstream {self.config.base_url})"
        if status == 401:
            return AuthenticationError(f"{where} rejected the API key: {message}. Set {self.api_key_env} or "
                                       "api_key in the provider's config.")
        if status == 403:
            return PermissionDeniedError(f"{where}: {message}")
        if status == 404:
            return NotFoundError(f"{where}: {message}")
        if status in (400, 422):
            return InvalidRequestError(f"{where}: {message}", param=param)
        if status == 429:
            retry = response.headers.get("retry-after")
            return RateLimitError(f"{where} is rate limiting: {message}",
                                  retry_after=float(retry) if retry and retry.replace(".", "").isdigit() else None)
        return UpstreamError(f"{where} answered {status}: {message}")

    async def _post(self, path: str, request: BaseModel, response_type: type[T]) -> T:
        body = request.model_dump_json(exclude_unset=True, by_alias=True)
        try:
            response = await self.client.post(path, content=body, headers=_JSON)
        except httpx.HTTPError as exc:
            raise self._translate(exc) from exc
        if response.status_code >= 400:
            raise self._status_error(response, response.content)
        try:
            return response_type.model_validate_json(response.content)
        except ValueError as exc:
            raise UpstreamError(f"{self.label}: the upstream's answer is not a valid {response_type.__name__}: "
                                f"{str(exc)[:300]}") from exc

    async def _stream(self, path: str, request: BaseModel, chunk_type: type[T]) -> AsyncIterator[T]:
        body = request.model_dump_json(exclude_unset=True, by_alias=True)
        try:
            response = await self.client.send(
                self.client.build_request("POST", path, content=body, headers=_JSON), stream=True
            )
        except httpx.HTTPError as exc:
            raise self._translate(exc) from exc
        if response.status_code >= 400:
            content = await response.aread()
            await response.aclose()
            raise self._status_error(response, content)
        return self._chunks(response, chunk_type)

    async def _chunks(self, response: httpx.Response, chunk_type: type[T]) -> AsyncIterator[T]:
        try:
            async for line in response.aiter_lines():  # read to the end, so the connection is reused
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    continue
                if data.startswith('{"error"'):
                    raise self._status_error(response, data.encode())
                yield chunk_type.model_validate_json(data)
        except httpx.HTTPError as exc:
            raise self._translate(exc) from exc
        finally:
            await response.aclose()

    # ---- the Inference API ------------------------------------------------------------------

    async def chat_completion(
        self, request: ChatCompletionRequest
    ) -> ChatCompletion | AsyncIterator[ChatCompletionChunk]:
        if request.stream:
            return await self._stream("chat/completions", request, ChatCompletionChunk)
        return await self._post("chat/completions", request, ChatCompletion)

    async def completion(self, request: CompletionRequest) -> Completion | AsyncIterator[Completion]:
        if request.stream:
            return await self._stream("completions", request, Completion)
        return await self._post("completions", request, Completion)

    async def embeddings(self, request: EmbeddingRequest) -> EmbeddingResponse:
        return await self._post("embeddings", request, EmbeddingResponse)

    async def list_provider_models(self) -> list[ProviderModel] | None:
        try:
            response = await self.client.get("models")
        except httpx.HTTPError as exc:
            raise self._translate(exc) from exc
        if response.status_code >= 400:
            raise self._status_error(response, response.content)
        return [
            ProviderModel(provider_model_id=m["id"], model_type="embedding" if "embed" in m["id"] else "llm")
            for m in orjson.loads(response.content).get("data", [])
            if isinstance(m, dict) and "id" in m
        ]
