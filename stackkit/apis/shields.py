"""Shields: the registry of safety shields (a shield is a policy a safety provider enforces)."""

from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from stackkit.apis.datatypes import DeleteResponse, EmptyRequest, route


class Shield(BaseModel):
    identifier: str
    object: Literal["shield"] = "shield"
    provider_id: str
    provider_resource_id: str
    params: dict[str, Any] = Field(default_factory=dict)


class ShieldList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Shield]


class GetShieldRequest(BaseModel):
    identifier: str


class RegisterShieldRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shield_id: str = Field(min_length=1)
    provider_id: str | None = None
    provider_shield_id: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)


@runtime_checkable
class Shields(Protocol):
    @route("GET", "/v1/shields", sdk="shields.list")
    async def list_shields(self, request: EmptyRequest) -> ShieldList:
        """List registered shields."""
        ...

    @route("GET", "/v1/shields/{identifier:path}", sdk="shields.retrieve")
    async def get_shield(self, request: GetShieldRequest) -> Shield:
        """Get one shield."""
        ...

    @route("POST", "/v1/shields", sdk="shields.register")
    async def register_shield(self, request: RegisterShieldRequest) -> Shield:
        """Register a shield with a safety provider; it survives restarts."""
        ...

    @route("DELETE", "/v1/shields/{identifier:path}", sdk="shields.delete")
    async def unregister_shield(self, request: GetShieldRequest) -> DeleteResponse:
        """Remove a registered shield."""
        ...
