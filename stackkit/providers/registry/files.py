"""Files providers."""

from __future__ import annotations

from stackkit.apis.datatypes import Api, ProviderSpec


def available_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            api=Api.files,
            provider_type="inline::localfs",
            module="stackkit.providers.inline.localfs",
            config_class="stackkit.providers.inline.localfs.LocalFSConfig",
            description="Files on the local disk, metadata in sqlite.",
        ),
    ]
