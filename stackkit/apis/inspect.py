"""Inspect and Providers: health, version, the route table, and the configured providers."""

from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from stackkit.apis.datatypes import EmptyRequest, route


class HealthInfo(BaseModel):
    """The server answers (``OK``); `loading` names the providers whose models are still loading (their
    requests wait), `failed` those whose models could not load (their requests are 503s)."""

    status: Literal["OK", "Error"] = "OK"
    loading: list[str] = Field(default_factory=list)
    failed: list[str] = Field(default_factory=list)


class VersionInfo(BaseModel):
    version: str


class RouteInfo(BaseModel):
    method: str
    path: str
    api: str
    operation: str
    sdk: str
    streams: bool = False


class RouteList(BaseModel):
    data: list[RouteInfo]


class ProviderInfo(BaseModel):
    api: str
    provider_id: str
    provider_type: str
    config: dict[str, Any] = Field(default_factory=dict)
    health: dict[str, Any] = Field(default_factory=dict)


class ProviderList(BaseModel):
    data: list[ProviderInfo]


class GetProviderRequest(BaseModel):
    provider_id: str


@runtime_checkable
class Inspect(Protocol):
    @route("GET", "/v1/health", sdk="inspect.health")
    async def health(self, request: EmptyRequest) -> HealthInfo:
        """Whether the stack is up."""
        ...

    @route("GET", "/v1/version", sdk="inspect.version")
    async def version(self, request: EmptyRequest) -> VersionInfo:
        """The stackkit version."""
        ...

    @route("GET", "/v1/inspect/routes", sdk="inspect.routes")
    async def list_routes(self, request: EmptyRequest) -> RouteList:
        """Every operation this stack serves."""
        ...

    @route("GET", "/v1/providers", sdk="providers.list")
    async def list_providers(self, request: EmptyRequest) -> ProviderList:
        """The configured providers, their configs (secrets redacted) and health."""
        ...

    @route("GET", "/v1/providers/{provider_id}", sdk="providers.retrieve")
    async def get_provider(self, request: GetProviderRequest) -> ProviderInfo:
        """One configured provider."""
        ...
