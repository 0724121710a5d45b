"""What every provider that calls an HTTP service shares.

One pooled ``httpx.AsyncClient`` per provider for its lifetime, on aiohttp's transport:
httpx's own connection pool costs about 1.2 ms of CPU per request at 16 concurrent requests,
aiohttp's about 0.25 ms (bench/README.md), and keeping the httpx API keeps record/replay at
the httpx layer. API keys come from the per-request X-Stackkit-Provider-Data header, the
config, or the environment, in that order. Upstream failures become stackkit errors here.
"""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from typing import Any, ClassVar
from urllib.parse import unquote

import aiohttp
import httpx
import orjson
from httpx_aiohttp import AiohttpTransport
from pydantic import Field, SecretStr

from stackkit.apis.datatypes import ProviderConfigBase
from stackkit.core.redact import redact_url
from stackkit.core.request_context import provider_data
from stackkit.core.streams import Stream
from stackkit.core.telemetry import inject_trace_context
from stackkit.errors import (
    AuthenticationError,
    ConfigError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    ProviderUnavailableError,
    RateLimitError,
    StackkitError,
    UpstreamError,
    UpstreamTimeoutError,
)

JSON_HEADERS = {"content-type": "application/json"}


class HTTPProviderConfig(ProviderConfigBase):
    base_url: str = Field(description="the service's API root")
    api_key: SecretStr | None = Field(default=None, description="falls back to the provider's env var")
    timeout_s: float = Field(default=120.0, gt=0, description="per-request read timeout")
    connect_timeout_s: float = Field(default=5.0, gt=0)
    max_connections: int = Field(default=256, ge=1)
    allowed_models: list[str] | None = Field(default=None, description="expose only these upstream models")


def _split_credentials(url: str) -> tuple[str, str | None]:
    """`url` without its user:password, and those as a Basic Authorization header value."""
    parsed = httpx.URL(url)
    if not parsed.userinfo:
        return url, None
    token = base64.b64encode(unquote(parsed.userinfo.decode()).encode()).decode()
    return str(parsed.copy_with(username=None, password=None)), f"Basic {token}"


class HTTPProvider:
    """Transport, auth and error translation for one upstream service."""

    label: ClassVar[str] = "remote"
    api_key_env: ClassVar[str | None] = None  # env var read when config.api_key is unset; named in auth errors
    provider_data_key: ClassVar[str | None] = None  # key of X-Stackkit-Provider-Data holding a per-request key

    def __init__(self, config: HTTPProviderConfig) -> None:
        self.config = config
        key = config.api_key.get_secret_value() if config.api_key is not None else ""
        if not key and self.api_key_env:
            key = os.environ.get(self.api_key_env, "")
        base_url, basic = _split_credentials(config.base_url)
        if basic and key:
            raise ConfigError(f"{self.label}: base_url carries credentials and an API key is set; both would be "
                              "the Authorization header. Keep one of them.", field="base_url")
        headers = {"user-agent": "stackkit", **(self._auth_headers(key) if key else {}),
                   **({"authorization": basic} if basic else {})}
        limits = httpx.Limits(max_connections=config.max_connections,
                              max_keepalive_connections=config.max_connections)
        self.client = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(config.timeout_s, connect=config.connect_timeout_s),
            transport=AiohttpTransport(limits=limits),
        )

    def _auth_headers(self, key: str) -> dict[str, str]:
        return {"authorization": f"Bearer {key}"}

    def _request_headers(self) -> dict[str, str]:
        """JSON headers, plus auth from X-Stackkit-Provider-Data when the request carries a key."""
        data = provider_data.get()
        if not data or self.provider_data_key is None or self.provider_data_key not in data:
            return inject_trace_context(JSON_HEADERS)
        key = data[self.provider_data_key]
        if not isinstance(key, str) or not key:
            raise InvalidRequestError(
                f"X-Stackkit-Provider-Data: '{self.provider_data_key}' must be a non-empty string; send the "
                "key there or leave it out.",
                param=self.provider_data_key,
            )
        return inject_trace_context({**JSON_HEADERS, **self._auth_headers(key)})

    def _check_model(self, model: str) -> None:
        allowed = self.config.allowed_models
        if allowed is not None and model not in allowed:
            raise NotFoundError(
                f"{self.label}: model '{model}' is not in this provider's allowed_models "
                f"({', '.join(allowed) or 'none'}); add it there or pick an allowed model.",
                code="model_not_found",
            )

    def _allowed(self, model_ids: list[str]) -> list[str]:
        allowed = self.config.allowed_models
        return model_ids if allowed is None else [m for m in model_ids if m in allowed]

    async def shutdown(self) -> None:
        await self.client.aclose()

    health_path = "models"  # a cheap GET that answers 2xx when the service is up

    async def health(self) -> dict[str, Any]:
        try:
            await self._get_json(self.health_path, timeout=3.0)
        except StackkitError as exc:
            return {"status": "Error", "message": exc.message}
        return {"status": "OK"}

    # ---- transport ----------------------------------------------------------------------------

    def _translate(self, exc: Exception) -> StackkitError:
        url = redact_url(self.config.base_url)
        # the aiohttp transport reports a refused connection as ConnectTimeout: look at the cause
        if isinstance(exc, httpx.ConnectError) or isinstance(exc.__cause__, aiohttp.ClientConnectorError):
            return UpstreamError(f"{self.label}: cannot connect to {url} ({redact_url(str(exc)) or 'refused'}); "
                                 "is the server running, and is base_url right?")
        if isinstance(exc, httpx.TimeoutException):
            return UpstreamTimeoutError(f"{self.label}: the upstream at {url} did not answer in time "
                                        f"({type(exc).__name__}); raise timeout_s or check the server.")
        return UpstreamError(f"{self.label}: request to {url} failed: {type(exc).__name__}: {redact_url(str(exc))}")

    def _status_error(self, status: int, body: bytes, headers: httpx.Headers | None = None) -> StackkitError:
        message, param = body.decode(errors="replace")[:500], None
        try:
            err = orjson.loads(body).get("error")
            if isinstance(err, dict):
                message, param = str(err.get("message") or message), err.get("param")
            elif isinstance(err, str):
                message = err
        except (orjson.JSONDecodeError, AttributeError):
            pass
        where = f"{self.label} (upstream {redact_url(self.config.base_url)})"
        if status == 401:
            fix = f"Set {self.api_key_env} or" if self.api_key_env else "Set"
            return AuthenticationError(f"{where} rejected the API key: {message}. {fix} api_key in the "
                                       "provider's config.")
        if status == 403:
            return PermissionDeniedError(f"{where}: {message}")
        if status == 404:
            return NotFoundError(f"{where}: {message}", code="model_not_found" if "model" in message.lower() else None)
        if status in (400, 413, 422):
            return InvalidRequestError(f"{where}: {message}", param=param)
        if status == 429:
            retry = headers.get("retry-after") if headers is not None else None
            seconds = float(retry) if retry and retry.replace(".", "", 1).isdigit() else None
            return RateLimitError(f"{where} is rate limiting: {message}", retry_after=seconds)
        if status in (503, 529):
            return ProviderUnavailableError(f"{where} is unavailable or overloaded ({status}): {message}")
        return UpstreamError(f"{where} answered {status}: {message}")

    async def _get_json(self, path: str, timeout: float | None = None) -> Any:
        try:
            response = await self.client.get(path, headers=self._request_headers(),
                                             timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT)
        except httpx.HTTPError as exc:
            raise self._translate(exc) from exc
        if response.status_code >= 400:
            raise self._status_error(response.status_code, response.content, response.headers)
        return orjson.loads(response.content)

    async def _post(self, path: str, body: bytes) -> bytes:
        try:
            response = await self.client.post(path, content=body, headers=self._request_headers())
        except httpx.HTTPError as exc:
            raise self._translate(exc) from exc
        if response.status_code >= 400:
            raise self._status_error(response.status_code, response.content, response.headers)
        return response.content

    async def _post_stream(self, path: str, body: bytes) -> Stream[str]:
        """Send the request now (so errors surface before streaming starts); return its SSE data lines."""
        request = self.client.build_request("POST", path, content=body, headers=self._request_headers())
        try:
            response = await self.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise self._translate(exc) from exc
        if response.status_code >= 400:
            content = await response.aread()
            await response.aclose()
            raise self._status_error(response.status_code, content, response.headers)
        return Stream(self._data_lines(response), response.aclose)

    async def _data_lines(self, response: httpx.Response) -> AsyncIterator[str]:
        try:
            async for line in response.aiter_lines():  # read to the end, so the connection is reused
                if line.startswith("data:"):
                    yield line[5:].strip()
        except httpx.HTTPError as exc:
            raise self._translate(exc) from exc
        finally:
            await response.aclose()
