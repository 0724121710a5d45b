"""remote::ollama — an Ollama server: models listed from its native /api/tags, chat and embeddings
through its OpenAI-compatible /v1 endpoints."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from stackkit.apis.datatypes import Api
from stackkit.apis.inference import ProviderModel
from stackkit.providers.utils.openai_compat import OpenAICompatConfig, OpenAICompatProvider

_EMBEDDING_FAMILIES = {"bert", "nomic-bert"}


class OllamaConfig(OpenAICompatConfig):
    base_url: str = Field(default="http://127.0.0.1:11434", description="the Ollama server (not its /v1)")

    @classmethod
    def sample_run_config(cls, **kwargs: Any) -> dict[str, Any]:
        return {"base_url": "${env.OLLAMA_URL:=http://127.0.0.1:11434}"}


class OllamaInference(OpenAICompatProvider):
    label = "remote::ollama"
    api_key_env = "OLLAMA_API_KEY"
    provider_data_key = "ollama_api_key"
    def __init__(self, config: OllamaConfig) -> None:
        root = config.base_url.rstrip("/").removesuffix("/v1")
        super().__init__(config.model_copy(update={"base_url": root + "/v1"}))
        self.health_path = f"{root}/api/version"
        self.tags_url = f"{root}/api/tags"

    async def list_provider_models(self) -> list[ProviderModel] | None:
        listed = await self._get_json(self.tags_url)
        models = [m for m in listed.get("models", []) if isinstance(m, dict) and isinstance(m.get("name"), str)]
        allowed = set(self._allowed([m["name"] for m in models]))
        out = []
        for m in models:
            if m["name"] not in allowed:
                continue
            details = m.get("details") or {}
            families = set(details.get("families") or []) | {details.get("family")}
            embedding = "embed" in m["name"] or bool(families & _EMBEDDING_FAMILIES)
            out.append(ProviderModel(provider_model_id=m["name"], model_type="embedding" if embedding else "llm",
                                     metadata={k: details[k] for k in ("family", "parameter_size",
                                                                       "quantization_level") if k in details}))
        return out


async def create(config: OllamaConfig, deps: dict[Api, Any]) -> OllamaInference:
    return OllamaInference(config)
