"""Safety: run a shield over messages, and OpenAI's moderations endpoint."""

from __future__ import annotations

import enum
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from stackkit.apis.datatypes import route
from stackkit.apis.inference import Message


class ViolationLevel(enum.StrEnum):
    info = "info"
    warn = "warn"
    error = "error"


class SafetyViolation(BaseModel):
    violation_level: ViolationLevel
    user_message: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class RunShieldRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shield_id: str
    messages: list[Message] = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)


class RunShieldResponse(BaseModel):
    violation: SafetyViolation | None = None


class ModerationRequest(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())

    input: str | list[str]
    model: str | None = None


class ModerationResult(BaseModel):
    flagged: bool
    categories: dict[str, bool] = Field(default_factory=dict)
    category_scores: dict[str, float] = Field(default_factory=dict)
    category_applied_input_types: dict[str, list[str]] | None = None
    user_message: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class ModerationResponse(BaseModel):
    id: str
    model: str
    results: list[ModerationResult]


@runtime_checkable
class Safety(Protocol):
    @route("POST", "/v1/safety/run-shield", sdk="safety.run_shield", key="shield_id")
    async def run_shield(self, request: RunShieldRequest) -> RunShieldResponse:
        """Check messages against a shield; returns the violation, if any."""
        ...

    @route("POST", "/v1/moderations", sdk="moderations.create", key="model")
    async def moderation(self, request: ModerationRequest) -> ModerationResponse:
        """Classify text against a shield (OpenAI's moderations shape)."""
        ...
