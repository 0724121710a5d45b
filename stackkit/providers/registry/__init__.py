"""The provider registry: built-in registry modules, plus third-party entry points.

A registry module (built-in or third-party) defines ``available_providers() -> list[ProviderSpec]``.
Third-party packages register theirs under the ``stackkit.providers`` entry-point group, or are
named in run.yaml with ``module:``; both go through :func:`specs_from_module`, as the built-ins do.
"""

from __future__ import annotations

import functools
import importlib
from importlib.metadata import entry_points
from typing import Any

from stackkit.apis.datatypes import Api, ProviderSpec
from stackkit.errors import ConfigError

ENTRY_POINT_GROUP = "stackkit.providers"
BUILTIN_REGISTRY_MODULES = (
    "stackkit.providers.registry.inference",
    "stackkit.providers.registry.safety",
    "stackkit.providers.registry.vector_io",
    "stackkit.providers.registry.files",
)


def specs_from_module(module_name: str) -> list[ProviderSpec]:
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"cannot import provider module '{module_name}' ({exc}); install its package (pip install ...) "
            "or fix `module:` in run.yaml"
        ) from exc
    available = getattr(module, "available_providers", None)
    if available is None:
        raise ConfigError(
            f"module '{module_name}' defines no available_providers(); a provider module must return "
            "its ProviderSpec list from available_providers()"
        )
    specs = list(available())
    for spec in specs:
        if not isinstance(spec, ProviderSpec):
            raise ConfigError(f"{module_name}.available_providers() returned {spec!r}, not a ProviderSpec; "
                              "return a list of ProviderSpec")
    return specs


@functools.cache
def provider_registry() -> dict[Api, dict[str, ProviderSpec]]:
    """Every known provider by API and provider_type."""
    registry: dict[Api, dict[str, ProviderSpec]] = {api: {} for api in Api}
    modules = list(BUILTIN_REGISTRY_MODULES)
    modules += [ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)]
    for module_name in modules:
        for spec in specs_from_module(module_name):
            registry[spec.api][spec.provider_type] = spec
    return registry


def import_object(dotted: str) -> Any:
    """Import `package.module.Name`."""
    module_name, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module_name), name)
