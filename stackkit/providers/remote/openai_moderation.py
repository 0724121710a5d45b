"""remote::openai-moderation — OpenAI's moderation endpoint as a shield (POST /v1/moderations)."""

from __future__ import annotations

from typing import Any

import orjson

from stackkit.apis.datatypes import Api
from stackkit.apis.inference import content_text
from stackkit.apis.safety import (
    ModerationRequest,
    ModerationResponse,
    RunShieldRequest,
    RunShieldResponse,
    SafetyViolation,
    ViolationLevel,
)
from stackkit.providers.utils.http_provider import HTTPProvider, HTTPProviderConfig


class OpenAIModerationConfig(HTTPProviderConfig):
    base_url: str = "https://api.openai.com/v1"

    @classmethod
    def sample_run_config(cls, **kwargs: Any) -> dict[str, Any]:
        return {"api_key": "${env.OPENAI_API_KEY:=}"}


class OpenAIModeration(HTTPProvider):
    label = "remote::openai-moderation"
    api_key_env = "OPENAI_API_KEY"
    provider_data_key = "openai_api_key"

    async def moderation(self, request: ModerationRequest) -> ModerationResponse:
        body = orjson.dumps({"input": request.input, "model": request.model or "omni-moderation-latest"})
        return ModerationResponse.model_validate_json(await self._post("moderations", body))

    async def run_shield(self, request: RunShieldRequest) -> RunShieldResponse:
        texts = [content_text(m.content) for m in request.messages]
        checked = await self.moderation(ModerationRequest(input=texts, model=request.shield_id))
        flagged = sorted({k for r in checked.results if r.flagged for k, v in r.categories.items() if v})
        if not any(r.flagged for r in checked.results):
            return RunShieldResponse()
        return RunShieldResponse(violation=SafetyViolation(
            violation_level=ViolationLevel.error, metadata={"categories": flagged},
            user_message=f"I can't help with that: it was flagged for {', '.join(flagged) or 'unsafe content'}."))


async def create(config: OpenAIModerationConfig, deps: dict[Api, Any]) -> OpenAIModeration:
    return OpenAIModeration(config)
