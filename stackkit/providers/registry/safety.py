"""Safety providers."""

from __future__ import annotations

from stackkit.apis.datatypes import Api, ProviderSpec


def available_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            api=Api.safety,
            provider_type="inline::fake",
            module="stackkit.providers.inline.fake_safety",
            config_class="stackkit.providers.inline.fake_safety.FakeSafetyConfig",
            description="Flags messages containing configured words; for tests and examples.",
        ),
    ]
