"""VectorIO providers."""

from __future__ import annotations

from stackkit.apis.datatypes import Api, ProviderSpec


def available_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            api=Api.vector_io,
            provider_type="inline::fake",
            module="stackkit.providers.inline.fake_vector_io",
            config_class="stackkit.providers.inline.fake_vector_io.FakeVectorIOConfig",
            optional_api_dependencies=(Api.inference,),
            description="In-memory vector store with keyword-overlap scoring; for tests and examples.",
        ),
    ]
