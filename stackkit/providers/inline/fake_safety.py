"""inline::fake — a deterministic safety provider: flags messages containing configured words."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import Field

from stackkit.apis.datatypes import Api, ProviderConfigBase
from stackkit.apis.inference import content_text
from stackkit.apis.safety import (
    ModerationRequest,
    ModerationResponse,
    ModerationResult,
    RunShieldRequest,
    RunShieldResponse,
    SafetyViolation,
    ViolationLevel,
)


class FakeSafetyConfig(ProviderConfigBase):
    blocked_words: list[str] = Field(default_factory=lambda: ["forbidden"])
    category: str = "blocked_word"

    @classmethod
    def sample_run_config(cls, **kwargs: Any) -> dict[str, Any]:
        return {"blocked_words": ["forbidden"]}


class FakeSafety:
    def __init__(self, config: FakeSafetyConfig) -> None:
        self.config = config

    def _hits(self, text: str) -> list[str]:
        lowered = text.lower()
        return [w for w in self.config.blocked_words if w.lower() in lowered]

    async def run_shield(self, request: RunShieldRequest) -> RunShieldResponse:
        hits = [w for m in request.messages for w in self._hits(content_text(m.content))]
        if not hits:
            return RunShieldResponse()
        return RunShieldResponse(violation=SafetyViolation(
            violation_level=ViolationLevel.error,
            user_message="I can't help with that: the message contains blocked words.",
            metadata={"categories": [self.config.category], "words": hits, "shield_id": request.shield_id},
        ))

    async def moderation(self, request: ModerationRequest) -> ModerationResponse:
        inputs = [request.input] if isinstance(request.input, str) else request.input
        results = []
        for text in inputs:
            flagged = bool(self._hits(text))
            results.append(ModerationResult(
                flagged=flagged,
                categories={self.config.category: flagged},
                category_scores={self.config.category: 1.0 if flagged else 0.0},
            ))
        return ModerationResponse(id=f"modr-{uuid.uuid4().hex}", model=request.model or "", results=results)


async def create(config: FakeSafetyConfig, deps: dict[Api, Any]) -> FakeSafety:
    return FakeSafety(config)
