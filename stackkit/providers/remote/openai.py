"""remote::openai — OpenAI, or any server that speaks OpenAI's API at `base_url`."""

from __future__ import annotations

from typing import Any

from stackkit.apis.datatypes import Api
from stackkit.providers.utils.openai_compat import OpenAICompatConfig, OpenAICompatProvider


class OpenAIConfig(OpenAICompatConfig):
    base_url: str = "https://api.openai.com/v1"

    @classmethod
    def sample_run_config(cls, **kwargs: Any) -> dict[str, Any]:
        return {"base_url": "${env.OPENAI_BASE_URL:=https://api.openai.com/v1}", "api_key": "${env.OPENAI_API_KEY:=}"}


class OpenAIInference(OpenAICompatProvider):
    label = "remote::openai"
    api_key_env = "OPENAI_API_KEY"
    provider_data_key = "openai_api_key"


async def create(config: OpenAIConfig, deps: dict[Api, Any]) -> OpenAIInference:
    return OpenAIInference(config)
