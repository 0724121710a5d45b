"""remote::vllm — a vLLM server (its OpenAI-compatible API, `vllm serve MODEL`)."""

from __future__ import annotations

from typing import Any

from stackkit.apis.datatypes import Api
from stackkit.apis.inference import ProviderModel
from stackkit.providers.utils.openai_compat import OpenAICompatConfig, OpenAICompatProvider


class VLLMConfig(OpenAICompatConfig):
    base_url: str = "http://127.0.0.1:8000/v1"

    @classmethod
    def sample_run_config(cls, **kwargs: Any) -> dict[str, Any]:
        return {"base_url": "${env.VLLM_URL:=http://127.0.0.1:8000/v1}", "api_key": "${env.VLLM_API_TOKEN:=}"}


class VLLMInference(OpenAICompatProvider):
    label = "remote::vllm"
    api_key_env = "VLLM_API_TOKEN"
    provider_data_key = "vllm_api_token"

    async def list_provider_models(self) -> list[ProviderModel] | None:
        listed = await self._get_json("models")
        models = [m for m in listed.get("data", []) if isinstance(m, dict) and isinstance(m.get("id"), str)]
        allowed = set(self._allowed([m["id"] for m in models]))
        return [
            ProviderModel(provider_model_id=m["id"], model_type="embedding" if "embed" in m["id"] else "llm",
                          metadata={"max_model_len": m["max_model_len"]} if "max_model_len" in m else {})
            for m in models if m["id"] in allowed
        ]


async def create(config: VLLMConfig, deps: dict[Api, Any]) -> VLLMInference:
    return VLLMInference(config)
