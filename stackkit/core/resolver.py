"""From a validated RunConfig to running providers.

1. :func:`plan` checks every provider against the registry, validates its typed config and
   orders the APIs by their providers' dependencies (a cycle or a missing dependency is a
   DependencyError naming both ends). It imports config classes but creates nothing.
2. :func:`instantiate` creates each provider with ``await module.create(config, deps)``,
   checks that it implements its API's Protocol, and wraps routed APIs in routers.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from stackkit.apis.datatypes import Api, ProviderSpec
from stackkit.apis.protocols import protocol_methods
from stackkit.core.config import ProviderConfig, RunConfig
from stackkit.errors import ConfigError, DependencyError, ProtocolComplianceError
from stackkit.providers.registry import import_object, provider_registry, specs_from_module


@dataclass
class PlannedProvider:
    api: Api
    index: int  # position under providers.<api> in run.yaml, for error messages
    provider_id: str
    spec: ProviderSpec
    config: BaseModel
    impl: Any = field(default=None, repr=False)

    @property
    def label(self) -> str:
        return f"provider '{self.provider_id}' ({self.spec.provider_type}, {self.api.value})"


def _find_spec(config: RunConfig, api: Api, index: int, entry: ProviderConfig) -> ProviderSpec:
    where = ("providers", api.value, index)
    if entry.module:
        specs = [s for s in specs_from_module(entry.module) if s.api is api]
        if entry.provider_type:
            types = [entry.provider_type] if isinstance(entry.provider_type, str) else entry.provider_type
            specs = [s for s in specs if s.provider_type in types]
        if not specs:
            raise config.error(
                f"module '{entry.module}' declares no {api.value} provider"
                + (f" of type '{entry.provider_type}'" if entry.provider_type else ""),
                *where, "module",
            )
        return specs[0]
    if not entry.provider_type:
        raise config.error("set provider_type (e.g. remote::openai) or module", *where)
    known = provider_registry()[api]
    wanted = [entry.provider_type] if isinstance(entry.provider_type, str) else entry.provider_type
    specs = []
    for provider_type in wanted:
        spec = known.get(provider_type)
        if spec is None:
            names = ", ".join(sorted(known)) or "none"
            raise config.error(
                f"unknown provider_type '{provider_type}' for the {api.value} API. Known types: {names}. "
                f"See `stackkit list-providers {api.value}`.",
                *where, "provider_type",
            )
        specs.append(spec)
    return next((s for s in specs if installed(s)), specs[-1])


def installed(spec: ProviderSpec) -> bool:
    """Whether the provider's pip packages are installed (their metadata is read; nothing is imported)."""
    for package in spec.pip_packages:
        try:
            importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return False
    return True


def _typed_config(config: RunConfig, api: Api, index: int, spec: ProviderSpec, raw: dict[str, Any]) -> BaseModel:
    try:
        config_class = import_object(spec.config_class)
    except (ImportError, AttributeError) as exc:
        raise config.error(
            f"cannot load config class {spec.config_class} ({exc})", "providers", api.value, index
        ) from exc
    try:
        return config_class.model_validate(raw)  # type: ignore[no-any-return]
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        path = ("providers", api.value, index, "config", *loc)
        hint = "remove it or check its spelling" if err["type"] == "extra_forbidden" else "fix the value"
        got = "" if err["type"] in ("missing", "extra_forbidden") else f" (got {err.get('input')!r})"
        raise config.error(f"{err['msg']}{got}: {hint}", *path) from None


def plan(config: RunConfig) -> list[PlannedProvider]:
    """Validate providers and return them ordered so that dependencies come first."""
    planned: dict[Api, list[PlannedProvider]] = {}
    for api, entries in config.providers.items():
        seen: set[str] = set()
        for i, entry in enumerate(entries):
            if entry.provider_id in seen:
                raise config.error(
                    f"provider_id '{entry.provider_id}' is used twice under providers.{api.value}; "
                    "give each provider its own id",
                    "providers", api.value, i, "provider_id",
                )
            seen.add(entry.provider_id)
            spec = _find_spec(config, api, i, entry)
            typed = _typed_config(config, api, i, spec, entry.config)
            planned.setdefault(api, []).append(PlannedProvider(api, i, entry.provider_id, spec, typed))
    order = _api_order(config, planned)
    return [p for api in order for p in planned[api]]


def _api_order(config: RunConfig, planned: dict[Api, list[PlannedProvider]]) -> list[Api]:
    """APIs in dependency order; raises DependencyError on a missing dependency or a cycle."""
    needs: dict[Api, list[tuple[Api, PlannedProvider]]] = {api: [] for api in planned}
    for api, providers in planned.items():
        for p in providers:
            for dep in p.spec.api_dependencies:
                if dep not in planned:
                    raise DependencyError(
                        f"{p.label} depends on the {dep.value} API, but no {dep.value} provider is configured. "
                        f"Add one under providers.{dep.value} (or set the env var that enables it).",
                        file=config.source, line=config.line_of("providers", api.value, p.index),
                        field=f"providers.{api.value}[{p.index}]",
                    )
                needs[api].append((dep, p))
            needs[api] += [(dep, p) for dep in p.spec.optional_api_dependencies if dep in planned]
    order: list[Api] = []
    state: dict[Api, str] = {}

    def visit(api: Api, chain: list[tuple[Api, PlannedProvider]]) -> None:
        if state.get(api) == "done":
            return
        if state.get(api) == "visiting":
            start = next(i for i, (a, _) in enumerate(chain) if a is api)
            cycle = chain[start:]
            steps = " -> ".join(f"{a.value} ({p.label})" for a, p in cycle)
            raise DependencyError(
                f"dependency cycle: {steps} -> {api.value}. Remove one of these dependencies or use "
                "providers that do not depend on each other.",
                file=config.source, line=config.line_of("providers", cycle[0][0].value),
            )
        state[api] = "visiting"
        for dep, provider in needs[api]:
            visit(dep, [*chain, (api, provider)])
        state[api] = "done"
        order.append(api)

    for api in planned:
        visit(api, [])
    return order


def check_compliance(api: Api, label: str, impl: Any) -> None:
    """Raise unless `impl` has every method of `api`'s Protocol, each an async function."""
    missing = []
    for name in protocol_methods(api):
        method = getattr(impl, name, None)
        if method is None or not inspect.iscoroutinefunction(method):
            missing.append(name)
    if missing:
        raise ProtocolComplianceError(
            f"{label} does not implement the {api.value} API: missing or not async: {', '.join(missing)}. "
            f"Implement them on {type(impl).__name__}."
        )


async def create_provider(p: PlannedProvider, impls: dict[Api, Any]) -> Any:
    deps = {dep: impls[dep] for dep in (*p.spec.api_dependencies, *p.spec.optional_api_dependencies) if dep in impls}
    module = importlib.import_module(p.spec.module)
    factory = getattr(module, "create", None)
    if factory is None:
        raise ConfigError(f"{p.label}: module {p.spec.module} has no `async def create(config, deps)`")
    impl = await factory(p.config, deps)
    check_compliance(p.api, p.label, impl)
    return impl

