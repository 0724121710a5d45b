"""Inference providers."""

from __future__ import annotations

from stackkit.apis.datatypes import Api, ProviderSpec


def available_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            api=Api.inference,
            provider_type="inline::fake",
            module="stackkit.providers.inline.fake_inference",
            config_class="stackkit.providers.inline.fake_inference.FakeInferenceConfig",
            description="Deterministic echo model for tests and examples: streams, tool calls on request.",
        ),
        ProviderSpec(
            api=Api.inference,
            provider_type="remote::openai",
            module="stackkit.providers.remote.openai",
            config_class="stackkit.providers.remote.openai.OpenAIConfig",
            pip_packages=("httpx",),
            description="OpenAI, or any OpenAI-compatible server at base_url.",
        ),
    ]
