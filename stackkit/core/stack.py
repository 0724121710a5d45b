"""Stack: build the providers, routers and routing tables of a RunConfig; start and stop them."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from stackkit.apis.datatypes import (
    ROUTED_APIS,
    Api,
    EmptyRequest,
    ModelResource,
    Resource,
    Route,
    ShieldResource,
    VectorStoreResource,
)
from stackkit.apis.inspect import (
    GetProviderRequest,
    HealthInfo,
    ProviderInfo,
    ProviderList,
    RouteInfo,
    RouteList,
    VersionInfo,
)
from stackkit.apis.protocols import route_table
from stackkit.core.access import AccessControl
from stackkit.core.arena import ArenaService
from stackkit.core.config import RunConfig, load_config
from stackkit.core.guardrails import Guardrails
from stackkit.core.inference_router import InferenceRouter
from stackkit.core.quotas import QuotaGate, QuotaStore, open_quota_store
from stackkit.core.redact import redact_config
from stackkit.core.resolver import PlannedProvider, create_provider, plan
from stackkit.core.response_cache import ResponseCache
from stackkit.core.responses import ResponsesService
from stackkit.core.routing import (
    ModelsTable,
    ResourceTable,
    SafetyRouter,
    ShieldsTable,
    VectorIORouter,
)
from stackkit.core.storage import KVStore, StateLock, check_storage, open_kvstore, open_sqldb, state_lock
from stackkit.core.stored_completions import CompletionStore
from stackkit.core.telemetry import Telemetry
from stackkit.core.tool_runtime import ToolRuntimeService
from stackkit.core.tools import McpSessions
from stackkit.errors import NotFoundError, StackkitError

log = logging.getLogger("stackkit")


def version() -> str:
    from stackkit import __version__

    return __version__


class Stack:
    """Everything a RunConfig describes, running. Build it with ``await Stack.create(config)``."""

    def __init__(self, config: RunConfig, kvstore: KVStore) -> None:
        self.config = config
        self.kvstore = kvstore
        self.providers: list[PlannedProvider] = []
        self.impls: dict[Api, Any] = {}
        self.tables: dict[Api, ResourceTable] = {}
        self._refresh_task: asyncio.Task[None] | None = None
        self.state_lock: StateLock | None = None
        self._background: set[asyncio.Task[None]] = set()
        self.quota_store: QuotaStore | None = None
        self.access: AccessControl | None = None
        self.telemetry = Telemetry(config.telemetry) if config.telemetry is not None else None

    @classmethod
    async def create(cls, config: RunConfig | str | os.PathLike[str]) -> Stack:
        if not isinstance(config, RunConfig):
            config = load_config(config)
        ordered = plan(config)  # validates everything before anything is created
        check_storage(config)  # ... the storage layout included
        lock = state_lock(config)
        if lock is not None:
            lock.acquire()
        try:
            stack = cls(config, open_kvstore(config))
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        stack.state_lock = lock
        try:
            await stack._build(ordered)
        except BaseException:
            await stack.shutdown()
            raise
        return stack

    async def _build(self, ordered: list[PlannedProvider]) -> None:
        for api, group in itertools.groupby(ordered, key=lambda p: p.api):
            created: dict[str, Any] = {}
            for p in group:
                p.impl = await create_provider(p, self.impls)
                self.providers.append(p)
                created[p.provider_id] = p.impl
            if api in ROUTED_APIS:
                self.impls[api] = self._router(api, created)
            elif len(created) > 1:
                raise self.config.error(f"the {api.value} API takes one provider; {len(created)} are configured",
                                        "providers", api.value)
            else:
                self.impls[api] = next(iter(created.values()))
        for api in self.served_apis():
            if api in ROUTED_APIS and api not in self.impls:
                self.impls[api] = self._router(api, {})
        for table in self.tables.values():
            await table.load()
        declared = await self._declare_resources()
        vector_io = self.impls.get(Api.vector_io)
        if isinstance(vector_io, VectorIORouter):
            stores = [r for api, r in declared if isinstance(r, VectorStoreResource)]
            try:
                await vector_io.sync_stores(stores)
            except StackkitError as exc:
                raise self.config.error(exc.message, "registered_resources", "vector_stores") from None
        self.impls[Api.models] = ModelsTable(self.tables[Api.inference])
        completions = CompletionStore(open_sqldb(self.config, "completions"))
        await completions.open()
        self.impls[Api.stored_completions] = completions
        if isinstance(self.impls[Api.inference], InferenceRouter):
            self.impls[Api.inference].completions = completions
            if self.config.response_cache is not None:
                self.impls[Api.inference].cache = ResponseCache(self.config.response_cache)
            if self.config.quotas is not None:
                self.quota_store = open_quota_store(self.config.quotas)
                self.impls[Api.inference].quotas = QuotaGate(self.config.quotas, self.quota_store)
        if Api.safety in self.impls:
            self.impls[Api.shields] = ShieldsTable(self.tables[Api.safety])
            inference = self.impls[Api.inference]
            if isinstance(inference, InferenceRouter):
                inference.guardrails = Guardrails(self.impls[Api.safety],
                                                  int(self.config.safety.get("stream_check_chars", 200)),
                                                  int(self.config.safety.get("stream_holdback_chars", 48)))
        sessions = McpSessions()
        self._instrument(sessions)
        self.impls[Api.tool_runtime] = ToolRuntimeService(self.config.registered_resources.tool_groups, sessions)
        self.impls[Api.agents] = ResponsesService(self.impls[Api.inference], open_sqldb(self.config, "responses"),
                                                  self.impls.get(Api.vector_io), self.impls[Api.tool_runtime],
                                                  self.impls[Api.models])
        await self.impls[Api.agents].open()
        self.impls[Api.inspect] = StackInspector(self)
        if self.config.server.auth is not None or self.config.access_policy:
            self.access = AccessControl(open_sqldb(self.config, "access"), self.config.access_policy, self.impls,
                                        list(route_table()))
            await self.access.open()
        self.impls[Api.arena] = ArenaService(self.kvstore, self.impls[Api.models])

    def _instrument(self, sessions: McpSessions) -> None:
        """Hand the telemetry (when run.yaml has it) to what makes model calls, runs shields, searches and
        calls tools."""
        if self.telemetry is None:
            return
        for api in (Api.inference, Api.safety, Api.vector_io):
            if isinstance(self.impls.get(api), InferenceRouter | SafetyRouter | VectorIORouter):
                self.impls[api].telemetry = self.telemetry
        sessions.telemetry = self.telemetry
        completions = self.impls.get(Api.stored_completions)
        if isinstance(completions, CompletionStore):
            self.telemetry.watch_queue("stored_completions", completions.queue_depth)

    def operation(self, route: Route) -> Callable[[Any], Awaitable[Any]]:
        """The implementation of `route`, behind the access policy when one is on (both transports call this)."""
        assert route.api is not None
        method: Callable[[Any], Awaitable[Any]] = getattr(self.impls[route.api], route.name)
        return self.access.guard(route, method) if self.access is not None else method

    def served_apis(self) -> list[Api]:
        apis = {a for a in self.config.apis if a in ROUTED_APIS} | {p.api for p in self.providers} | {Api.inference}
        apis |= {Api.models, Api.inspect, Api.agents, Api.tool_runtime, Api.arena, Api.stored_completions}
        if Api.safety in apis:
            apis.add(Api.shields)
        return [api for api in Api if api in apis]

    def _router(self, api: Api, providers: dict[str, Any]) -> Any:
        table = ResourceTable(ROUTED_APIS[api], providers, self.kvstore)
        self.tables[api] = table
        if api is Api.inference:
            return InferenceRouter(table)
        if api is Api.safety:
            return SafetyRouter(table, self.config.safety.get("default_shield_id"))
        return VectorIORouter(table)

    async def _declare_resources(self) -> list[tuple[Api, Resource]]:
        res = self.config.registered_resources
        declared: list[tuple[Api, Resource]] = []
        for i, m in enumerate(res.models):
            first = m.targets[0] if m.targets else None
            pid = self._provider_for(Api.inference, first.provider_id if first else m.provider_id,
                                     ("registered_resources", "models", i))
            for j, target in enumerate(m.targets[1:], 1):
                self._provider_for(Api.inference, target.provider_id, ("registered_resources", "models", i,
                                                                       "targets", j))
            declared.append((Api.inference, ModelResource(
                identifier=m.model_id, provider_id=pid,
                provider_resource_id=first.provider_model_id if first else m.provider_model_id or m.model_id,
                model_type=m.model_type, metadata=m.metadata, guardrails=m.guardrails, targets=m.targets,
                response_cache=m.response_cache,
            )))
        for i, s in enumerate(res.shields):
            pid = self._provider_for(Api.safety, s.provider_id, ("registered_resources", "shields", i))
            declared.append((Api.safety, ShieldResource(
                identifier=s.shield_id, provider_id=pid, provider_resource_id=s.provider_shield_id or s.shield_id,
                params=s.params,
            )))
        for i, v in enumerate(res.vector_stores):
            pid = self._provider_for(Api.vector_io, v.provider_id, ("registered_resources", "vector_stores", i))
            declared.append((Api.vector_io, VectorStoreResource(
                identifier=v.vector_store_id, provider_id=pid, provider_resource_id=v.vector_store_id,
                embedding_model=v.embedding_model, embedding_dimension=v.embedding_dimension,
            )))
        for api, resource in declared:
            self.tables[api].declare(resource)
        shields = {r.identifier for r in self.tables[Api.safety].all()} if Api.safety in self.tables else set()
        for i, m in enumerate(res.models):
            unknown = [s for s in m.guardrails if s not in shields]
            if unknown:
                known = ", ".join(sorted(shields)) or "none"
                raise self.config.error(
                    f"guardrails name unknown shield(s) {', '.join(unknown)} (known: {known}); declare them under "
                    "registered_resources.shields", "registered_resources", "models", i, "guardrails")
        return declared

    def _provider_for(self, api: Api, provider_id: str | None, path: tuple[str | int, ...]) -> str:
        ids = [p.provider_id for p in self.providers if p.api is api]
        if provider_id is None and len(ids) == 1:
            return ids[0]
        if provider_id in ids:
            return provider_id
        if provider_id is None:
            raise self.config.error(
                f"set provider_id: several {api.value} providers are configured ({', '.join(ids)})"
                if ids else f"no {api.value} provider is configured to serve this resource; add one under "
                f"providers.{api.value} or remove the resource",
                *path,
            )
        raise self.config.error(
            f"provider '{provider_id}' is not configured for {api.value} (configured: {', '.join(ids) or 'none'}); "
            "it may be disabled because its env var is unset",
            *path, "provider_id",
        )

    def start(self) -> None:
        """Begin background work: provider start hooks, and refreshing provider model lists (never blocks
        start-up)."""
        loop = asyncio.get_running_loop()
        for p in self.providers:
            starter = getattr(p.impl, "start", None)
            if starter is not None:
                self._background.add(loop.create_task(starter(), name=f"start-{p.provider_id}"))
        router = self.impls.get(Api.inference)
        if isinstance(router, InferenceRouter) and self._refresh_task is None:
            self._refresh_task = asyncio.get_running_loop().create_task(
                router.refresh(self.config.model_refresh_timeout), name="stackkit-model-refresh"
            )

    async def wait_refreshed(self) -> None:
        if self._refresh_task is not None:
            await self._refresh_task

    async def wait_ready(self) -> None:
        """Wait for the background start-up work: models loading, provider start hooks, model listing."""
        loads = [p.impl.loading.wait() for p in self.providers if getattr(p.impl, "loading", None) is not None]
        await asyncio.gather(*loads, *(t for t in (self._refresh_task, *self._background) if t is not None))

    async def shutdown(self) -> None:
        pending = [t for t in (self._refresh_task, *self._background) if t is not None and not t.done()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for p in reversed(self.providers):
            closer = getattr(p.impl, "shutdown", None)
            if closer is not None:
                try:
                    await closer()
                except Exception as exc:  # noqa: BLE001 - shut the rest down regardless
                    log.warning("%s failed to shut down: %s", p.label, exc)
        agents = self.impls.get(Api.agents)
        if isinstance(agents, ResponsesService):
            await agents.shutdown()
        completions = self.impls.get(Api.stored_completions)
        if isinstance(completions, CompletionStore):
            await completions.shutdown()  # after the agents: their turns may still store completions
        if self.access is not None:
            await self.access.db.close()
        if self.quota_store is not None:
            await self.quota_store.close()
        if self.telemetry is not None:
            await self.telemetry.shutdown()
        inference = self.impls.get(Api.inference)
        if isinstance(inference, InferenceRouter):
            await inference.close()
            if inference.cache is not None:
                await inference.cache.backend.close()
        await self.kvstore.close()
        if self.state_lock is not None:
            self.state_lock.release()


class StackInspector:
    """The Inspect API over a Stack."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    async def health(self, request: EmptyRequest) -> HealthInfo:
        info = HealthInfo(status="OK")
        for p in self.stack.providers:
            loading = getattr(p.impl, "loading", None)
            if loading is not None:
                state = loading.status()["status"]
                if state == "Loading":
                    info.loading.append(p.provider_id)
                elif state == "Error":
                    info.failed.append(p.provider_id)
        return info

    async def version(self, request: EmptyRequest) -> VersionInfo:
        return VersionInfo(version=version())

    async def list_routes(self, request: EmptyRequest) -> RouteList:
        served = set(self.stack.served_apis())
        return RouteList(data=[
            RouteInfo(method=r.method, path=r.path, api=str(r.api), operation=r.name, sdk=r.sdk,
                      streams=r.stream_type is not None)
            for r in route_table() if r.api in served
        ])

    async def list_providers(self, request: EmptyRequest) -> ProviderList:
        return ProviderList(data=list(await asyncio.gather(*(self._info(p) for p in self.stack.providers))))

    async def get_provider(self, request: GetProviderRequest) -> ProviderInfo:
        for p in self.stack.providers:
            if p.provider_id == request.provider_id:
                return await self._info(p)
        known = ", ".join(p.provider_id for p in self.stack.providers) or "none"
        raise NotFoundError(f"Provider '{request.provider_id}' not found. Configured providers: {known}; "
                            "use one of those ids.")

    async def _info(self, p: PlannedProvider) -> ProviderInfo:
        health: dict[str, Any] = {"status": "OK"}
        checker = getattr(p.impl, "health", None)
        if checker is not None:
            try:
                health = await asyncio.wait_for(checker(), 5.0)
            except Exception as exc:  # noqa: BLE001 - report, never fail the listing
                health = {"status": "Error", "message": str(exc) or type(exc).__name__}
        return ProviderInfo(
            api=p.api.value, provider_id=p.provider_id, provider_type=p.spec.provider_type,
            config=redact_config(p.config), health=health,
        )

