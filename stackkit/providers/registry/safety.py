"""Safety providers."""

from __future__ import annotations

from stackkit.apis.datatypes import Api, ProviderSpec


def available_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            api=Api.safety,
            provider_type="inline::llama-guard",
            module="stackkit.providers.inline.llama_guard",
            config_class="stackkit.providers.inline.llama_guard.LlamaGuardConfig",
            api_dependencies=(Api.inference,),
            description="Llama Guard 3 (S1-S14) through any inference provider serving a Llama Guard model.",
        ),
        ProviderSpec(
            api=Api.safety,
            provider_type="inline::pii",
            module="stackkit.providers.inline.pii",
            config_class="stackkit.providers.inline.pii.PIIConfig",
            description="Offline PII and secret detection (e-mail, phone, cards, IBAN, API keys); block or redact.",
        ),
        ProviderSpec(
            api=Api.safety,
            provider_type="inline::prompt-guard",
            module="stackkit.providers.inline.prompt_guard",
            config_class="stackkit.providers.inline.prompt_guard.PromptGuardConfig",
            pip_packages=("torch", "transformers"),
            extra="transformers",
            description="A local Transformers classifier for prompt injection and jailbreaks.",
        ),
        ProviderSpec(
            api=Api.safety,
            provider_type="remote::openai-moderation",
            module="stackkit.providers.remote.openai_moderation",
            config_class="stackkit.providers.remote.openai_moderation.OpenAIModerationConfig",
            pip_packages=("httpx",),
            description="OpenAI's moderation endpoint.",
        ),
        ProviderSpec(
            api=Api.safety,
            provider_type="inline::fake",
            module="stackkit.providers.inline.fake_safety",
            config_class="stackkit.providers.inline.fake_safety.FakeSafetyConfig",
            description="Flags messages containing configured words; for tests and examples.",
        ),
    ]
