"""Third-party-style providers for tests: registered with `module:` in run.yaml, as a plugin would be."""

from __future__ import annotations

import asyncio
from typing import Any

from stackkit.apis.datatypes import Api, ProviderConfigBase, ProviderSpec
from stackkit.apis.inference import ProviderModel
from stackkit.providers.inline.fake_inference import FakeInference, FakeInferenceConfig

HERE = "tests.providers.third_party"


class NeedsConfig(ProviderConfigBase):
    pass


def available_providers() -> list[ProviderSpec]:
    return [
        # an inference provider that needs safety, and a safety provider that needs inference: a cycle
        ProviderSpec(api=Api.inference, provider_type="test::needs-safety", module=HERE,
                     config_class=f"{HERE}.FakeInferenceConfig", api_dependencies=(Api.safety,)),
        ProviderSpec(api=Api.safety, provider_type="test::needs-inference", module=HERE,
                     config_class=f"{HERE}.NeedsConfig", api_dependencies=(Api.inference,)),
        # an inference provider missing most of its API
        ProviderSpec(api=Api.inference, provider_type="test::incomplete", module=f"{HERE}_incomplete",
                     config_class=f"{HERE}.NeedsConfig"),
        # an inference provider whose model listing hangs
        ProviderSpec(api=Api.inference, provider_type="test::slow-lister", module=f"{HERE}_slow",
                     config_class=f"{HERE}.FakeInferenceConfig"),
    ]


async def create(config: Any, deps: dict[Api, Any]) -> Any:
    return FakeInference(config if isinstance(config, FakeInferenceConfig) else FakeInferenceConfig())


class SlowLister(FakeInference):
    async def list_provider_models(self) -> list[ProviderModel]:
        await asyncio.sleep(3600)
        return []
