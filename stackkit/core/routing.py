"""Routing tables (registries of models, shields, vector stores) and the routers over them.

A request naming a resource goes to the provider that owns it: by registered id, by
``provider_id/upstream_id`` straight to that provider, or by an upstream id that exactly one
provider listed. Registered resources persist in the KV store; listed ones are refreshed
from the providers in the background. The inference router is in inference_router.py.
"""

from __future__ import annotations

import logging
from typing import Any

from stackkit.apis.datatypes import (
    RESOURCE_CLASSES,
    DeleteResponse,
    EmptyRequest,
    ModelResource,
    Resource,
    ShieldResource,
    VectorStoreResource,
)
from stackkit.apis.models import GetModelRequest, Model, ModelList, RegisterModelRequest
from stackkit.apis.safety import ModerationRequest, ModerationResponse, RunShieldRequest, RunShieldResponse
from stackkit.apis.shields import GetShieldRequest, RegisterShieldRequest, Shield, ShieldList
from stackkit.apis.vector_io import (
    AttachFileRequest,
    CreateFileBatchRequest,
    CreateVectorStoreRequest,
    FileBatch,
    FileBatchRequest,
    InsertChunksRequest,
    InsertChunksResponse,
    ListFileBatchFilesRequest,
    ListVectorStoreFilesRequest,
    ListVectorStoresRequest,
    QueryChunksRequest,
    QueryChunksResponse,
    SearchResultsPage,
    SearchVectorStoreRequest,
    UpdateVectorStoreFileRequest,
    UpdateVectorStoreRequest,
    VectorStore,
    VectorStoreFile,
    VectorStoreFileContent,
    VectorStoreFileList,
    VectorStoreFileRequest,
    VectorStoreIdRequest,
    VectorStoreList,
)
from stackkit.core.request_context import current_principal
from stackkit.core.storage import KVStore
from stackkit.core.telemetry import Telemetry, span
from stackkit.errors import ConflictError, InvalidRequestError, NotFoundError, ProviderUnavailableError

log = logging.getLogger("stackkit.routing")

_NOUN = {"model": "Model", "shield": "Shield", "vector_store": "Vector store"}


class ResourceTable:
    """The resources of one kind and the providers (by provider_id) that own them."""

    def __init__(self, kind: str, providers: dict[str, Any], kvstore: KVStore) -> None:
        self.kind = kind
        self.providers = providers
        self._kv = kvstore
        self._registered: dict[str, Resource] = {}
        self._listed: dict[str, Resource] = {}
        self._by_upstream: dict[str, list[Resource]] = {}
        self._declared: set[str] = set()
        self._skipped: set[str] = set()  # stored resources of providers this stack does not have
        self.shared = bool(getattr(kvstore, "shared", False))  # other replicas register and delete too
        self.version = 0  # bumped on every change, for views computed from the resources

    async def load(self) -> None:
        for _, value in await self._kv.range(f"{self.kind}:"):
            self._adopt(value)

    def _adopt(self, value: str) -> str:
        """Take a stored resource in (run.yaml's of the same id win); its identifier."""
        resource = RESOURCE_CLASSES[self.kind].model_validate_json(value)
        if resource.identifier in self._declared:
            pass
        elif resource.provider_id in self.providers:
            if self._registered.get(resource.identifier) != resource:
                self._registered[resource.identifier] = resource
                self.version += 1
        elif resource.identifier not in self._skipped:  # said once, not at every listing
            self._skipped.add(resource.identifier)
            log.warning("skipping %s %r: provider %r is not configured", self.kind, resource.identifier,
                        resource.provider_id)
        return resource.identifier

    async def fresh(self, identifier: str | None = None) -> None:
        """On a KV store replicas share, catch up with what they registered or deleted: `identifier` alone
        (one read, before routing a request), or everything (before listing). Free on a private store."""
        if not self.shared:
            return
        if identifier is None:
            kept = {self._adopt(value) for _, value in await self._kv.range(f"{self.kind}:")}
            for gone in [i for i in self._registered if i not in self._declared and i not in kept]:
                del self._registered[gone]
                self.version += 1
            return
        if identifier in self._declared:
            return
        stored = await self._kv.get(f"{self.kind}:{identifier}")
        if stored is not None:
            self._adopt(stored)
        elif self._registered.pop(identifier, None) is not None:
            self.version += 1

    def declared(self, identifier: str) -> bool:
        """Whether `identifier` comes from run.yaml (not registered at run time)."""
        return identifier in self._declared

    def default_provider_id(self, what: str) -> str:
        if len(self.providers) == 1:
            return next(iter(self.providers))
        if not self.providers:
            raise InvalidRequestError(f"No provider is configured that can serve {what}; add one to run.yaml.")
        raise InvalidRequestError(
            f"provider_id is required when several providers are configured: set it to one of "
            f"{', '.join(self.providers)}",
            param="provider_id",
        )

    def declare(self, resource: Resource) -> None:
        """A resource from run.yaml: it wins over a persisted one of the same id, and is not persisted."""
        self._declared.add(resource.identifier)
        self._registered[resource.identifier] = resource
        self.version += 1

    async def register(self, resource: Resource) -> Resource:
        await self.fresh(resource.identifier)
        if resource.provider_id not in self.providers:
            raise NotFoundError(
                f"Provider '{resource.provider_id}' is not configured for {self.kind}s. "
                f"Configured: {', '.join(self.providers) or 'none'}; use one of those or add it to run.yaml.",
                param="provider_id",
            )
        existing = self._registered.get(resource.identifier)
        if existing is not None and existing != resource:
            raise ConflictError(
                f"{_NOUN[self.kind]} '{resource.identifier}' is already registered with provider "
                f"'{existing.provider_id}'; delete it first or pick another id."
            )
        self._registered[resource.identifier] = resource
        self.version += 1
        await self._kv.set(f"{self.kind}:{resource.identifier}", resource.model_dump_json())
        return resource

    async def unregister(self, identifier: str) -> Resource:
        await self.fresh(identifier)
        resource = self._registered.pop(identifier, None)
        if resource is None:
            raise self._not_found(identifier)
        self.version += 1
        await self._kv.delete(f"{self.kind}:{identifier}")
        return resource

    def set_listed(self, provider_id: str, resources: list[Resource]) -> None:
        self._listed = {k: r for k, r in self._listed.items() if r.provider_id != provider_id}
        registered = {(r.provider_id, r.provider_resource_id) for r in self._registered.values()}
        for r in resources:
            if (r.provider_id, r.provider_resource_id) not in registered:
                self._listed[r.identifier] = r
        self._by_upstream = {}
        self.version += 1
        for r in self._listed.values():
            self._by_upstream.setdefault(r.provider_resource_id, []).append(r)

    def all(self) -> list[Resource]:
        return [*self._registered.values(), *self._listed.values()]

    def get(self, identifier: str) -> Resource:
        if not self.providers:
            raise ProviderUnavailableError(
                f"No provider is configured to serve {self.kind}s. Add one to run.yaml "
                "(or set the env var that enables it in your distribution) and restart."
            )
        found = self._registered.get(identifier) or self._listed.get(identifier)
        if found is not None:
            return found
        head, sep, tail = identifier.partition("/")
        if sep and head in self.providers and tail:
            cls = RESOURCE_CLASSES[self.kind]
            return cls(identifier=identifier, provider_id=head, provider_resource_id=tail)
        candidates = self._by_upstream.get(identifier, ())
        if len(candidates) == 1:
            return candidates[0]
        raise self._not_found(identifier)

    def resolve(self, identifier: str) -> tuple[Any, Resource]:
        """The provider implementation that owns `identifier`, and the resource."""
        resource = self.get(identifier)
        return self.providers[resource.provider_id], resource

    def _not_found(self, identifier: str) -> NotFoundError:
        if current_principal.get() is not None:  # callers see only what they may reach: no list of ids here
            return NotFoundError(
                f"{_NOUN[self.kind]} '{identifier}' not found. GET /v1/{self.kind}s lists the ones you can use; "
                f"register it (registered_resources.{self.kind}s in run.yaml or the register endpoint).",
                code=f"{self.kind}_not_found")
        known = sorted(r.identifier for r in self.all())
        shown = ", ".join(known[:50]) + (f" (and {len(known) - 50} more)" if len(known) > 50 else "")
        return NotFoundError(
            f"{_NOUN[self.kind]} '{identifier}' not found. Known {self.kind}s: {shown or 'none'}. "
            f"Register it (registered_resources.{self.kind}s in run.yaml or the register endpoint), "
            f"or name it as 'provider_id/{self.kind}_id' with a configured provider "
            f"({', '.join(self.providers) or 'none'}).",
            code=f"{self.kind}_not_found",
        )


# ---- routing tables served as APIs ----------------------------------------------------------


def _model_view(r: Resource) -> Model:
    assert isinstance(r, ModelResource)
    return Model(
        id=r.identifier,
        owned_by=r.provider_id,
        provider_id=r.provider_id,
        provider_model_id=r.provider_resource_id,
        model_type=r.model_type,
        metadata=r.metadata,
        guardrails=r.guardrails,
    )


class ModelsTable:
    """The Models API, over the inference providers' resource table."""

    def __init__(self, table: ResourceTable) -> None:
        self.table = table

    async def list_models(self, request: EmptyRequest) -> ModelList:
        await self.table.fresh()
        return ModelList(data=[_model_view(r) for r in self.table.all()])

    async def get_model(self, request: GetModelRequest) -> Model:
        await self.table.fresh(request.model_id)
        return _model_view(self.table.get(request.model_id))

    async def register_model(self, request: RegisterModelRequest) -> Model:
        provider_id = request.provider_id or self.table.default_provider_id("models")
        resource = ModelResource(
            identifier=request.model_id,
            provider_id=provider_id,
            provider_resource_id=request.provider_model_id or request.model_id,
            model_type=request.model_type,
            metadata=request.metadata,
            guardrails=request.guardrails,
        )
        return _model_view(await self.table.register(resource))

    async def unregister_model(self, request: GetModelRequest) -> DeleteResponse:
        await self.table.unregister(request.model_id)
        return DeleteResponse(id=request.model_id, object="model")


def _shield_view(r: Resource) -> Shield:
    assert isinstance(r, ShieldResource)
    return Shield(
        identifier=r.identifier, provider_id=r.provider_id, provider_resource_id=r.provider_resource_id,
        params=r.params,
    )


class ShieldsTable:
    """The Shields API, over the safety providers' resource table."""

    def __init__(self, table: ResourceTable) -> None:
        self.table = table

    async def list_shields(self, request: EmptyRequest) -> ShieldList:
        await self.table.fresh()
        return ShieldList(data=[_shield_view(r) for r in self.table.all()])

    async def get_shield(self, request: GetShieldRequest) -> Shield:
        await self.table.fresh(request.identifier)
        return _shield_view(self.table.get(request.identifier))

    async def register_shield(self, request: RegisterShieldRequest) -> Shield:
        provider_id = request.provider_id or self.table.default_provider_id("shields")
        resource = ShieldResource(
            identifier=request.shield_id,
            provider_id=provider_id,
            provider_resource_id=request.provider_shield_id or request.shield_id,
            params=request.params,
        )
        return _shield_view(await self.table.register(resource))

    async def unregister_shield(self, request: GetShieldRequest) -> DeleteResponse:
        await self.table.unregister(request.identifier)
        return DeleteResponse(id=request.identifier, object="shield")


# ---- routers --------------------------------------------------------------------------------


class SafetyRouter:
    """Sends shield runs and moderations to the provider owning the shield, with the shield's params."""

    def __init__(self, table: ResourceTable, default_shield_id: str | None = None) -> None:
        self.table = table
        self.telemetry: Telemetry | None = None
        self.default_shield_id = default_shield_id

    async def run_shield(self, request: RunShieldRequest) -> RunShieldResponse:
        await self.table.fresh(request.shield_id)
        impl, resource = self.table.resolve(request.shield_id)
        params = resource.params if isinstance(resource, ShieldResource) else {}
        request = request.model_copy(update={"shield_id": resource.provider_resource_id,
                                             "params": {**params, **request.params}})
        with span(self.telemetry, f"shield {resource.identifier}", **{"stackkit.shield": resource.identifier,
                                                                      "stackkit.provider": resource.provider_id}):
            return await impl.run_shield(request)  # type: ignore[no-any-return]

    async def moderation(self, request: ModerationRequest) -> ModerationResponse:
        shield_id = request.model or self.default_shield_id
        if shield_id is None:
            shields = self.table.all()
            if len(shields) != 1:
                raise InvalidRequestError(
                    "Name the shield to use in `model`, or set safety.default_shield_id in run.yaml.",
                    param="model",
                )
            shield_id = shields[0].identifier
        await self.table.fresh(shield_id)
        impl, resource = self.table.resolve(shield_id)
        response: ModerationResponse = await impl.moderation(
            request.model_copy(update={"model": resource.provider_resource_id})
        )
        response.model = shield_id
        return response


class VectorIORouter:
    def __init__(self, table: ResourceTable) -> None:
        self.table = table
        self.telemetry: Telemetry | None = None

    async def insert_chunks(self, request: InsertChunksRequest) -> InsertChunksResponse:
        return await self._to_owner("insert_chunks", request)  # type: ignore[no-any-return]

    async def query_chunks(self, request: QueryChunksRequest) -> QueryChunksResponse:
        with span(self.telemetry, "vector_search", **{"stackkit.vector_store": request.vector_store_id}):
            return await self._to_owner("query_chunks", request)  # type: ignore[no-any-return]

    async def create_vector_store(self, request: CreateVectorStoreRequest) -> VectorStore:
        provider_id = request.provider_id or self.table.default_provider_id("vector stores")
        if provider_id not in self.table.providers:
            raise NotFoundError(
                f"Provider '{provider_id}' is not configured for vector_io. "
                f"Configured: {', '.join(self.table.providers)}; use one of those.",
                param="provider_id",
            )
        store: VectorStore = await self.table.providers[provider_id].create_vector_store(request)
        await self.table.register(
            VectorStoreResource(
                identifier=store.id,
                provider_id=provider_id,
                provider_resource_id=store.id,
                embedding_model=request.embedding_model,
                embedding_dimension=request.embedding_dimension,
            )
        )
        return store

    async def _provider_stores(self, provider_id: str) -> list[VectorStore]:
        """Every store a provider has (providers own their stores' data: they are the source of truth)."""
        impl, stores, after = self.table.providers[provider_id], [], None
        while True:
            page = await impl.list_vector_stores(ListVectorStoresRequest(limit=100, after=after, order="asc"))
            stores += page.data
            if not page.has_more or not page.data:
                return stores
            after = page.data[-1].id

    async def sync_stores(self, declared: list[VectorStoreResource]) -> None:
        """Learn the stores each provider has; create the ones run.yaml declares that do not exist yet."""
        known: dict[str, str] = {}
        for provider_id in self.table.providers:
            for store in await self._provider_stores(provider_id):
                known[store.id] = provider_id
        for resource in declared:
            if resource.identifier not in known:
                await self.table.providers[resource.provider_id].create_vector_store(CreateVectorStoreRequest(
                    vector_store_id=resource.identifier, name=resource.identifier,
                    embedding_model=resource.embedding_model, embedding_dimension=resource.embedding_dimension))
                known[resource.identifier] = resource.provider_id
            elif known[resource.identifier] != resource.provider_id:
                raise ConflictError(f"Vector store '{resource.identifier}' is declared for provider "
                                    f"'{resource.provider_id}' but exists in '{known[resource.identifier]}'; "
                                    "fix provider_id in run.yaml.")
        for stale in [] if self.table.shared else list(self.table.all()):  # shared: another replica's to judge
            if stale.identifier not in known:  # its data is gone: forget it rather than 404 every listing
                log.warning("forgetting vector store %r: provider %r no longer has it", stale.identifier,
                            stale.provider_id)
                await self.table.unregister(stale.identifier)
        for store_id, provider_id in known.items():
            if store_id not in {r.identifier for r in self.table.all()}:
                self.table.declare(VectorStoreResource(identifier=store_id, provider_id=provider_id,
                                                       provider_resource_id=store_id))

    async def list_vector_stores(self, request: ListVectorStoresRequest) -> VectorStoreList:
        stores = [s for provider_id in self.table.providers for s in await self._provider_stores(provider_id)]
        stores.sort(key=lambda s: (s.created_at, s.id), reverse=request.order == "desc")
        ids = [s.id for s in stores]
        if request.after in ids:
            stores = stores[ids.index(request.after) + 1 :]
        elif request.before in ids:
            stores = stores[: ids.index(request.before)]
        page = stores[: request.limit]
        return VectorStoreList(
            data=page,
            first_id=page[0].id if page else None,
            last_id=page[-1].id if page else None,
            has_more=len(stores) > len(page),
        )

    async def get_vector_store(self, request: VectorStoreIdRequest) -> VectorStore:
        return await self._to_owner("get_vector_store", request)  # type: ignore[no-any-return]

    async def update_vector_store(self, request: UpdateVectorStoreRequest) -> VectorStore:
        return await self._to_owner("update_vector_store", request)  # type: ignore[no-any-return]

    async def delete_vector_store(self, request: VectorStoreIdRequest) -> DeleteResponse:
        impl, _ = self.table.resolve(request.vector_store_id)
        response: DeleteResponse = await impl.delete_vector_store(request)
        await self.table.unregister(request.vector_store_id)
        return response

    async def search_vector_store(self, request: SearchVectorStoreRequest) -> SearchResultsPage:
        with span(self.telemetry, "vector_search", **{"stackkit.vector_store": request.vector_store_id,
                                                      "stackkit.search_mode": request.search_mode}):
            return await self._to_owner("search_vector_store", request)  # type: ignore[no-any-return]

    async def _to_owner(self, name: str, request: Any) -> Any:
        await self.table.fresh(request.vector_store_id)
        impl, _ = self.table.resolve(request.vector_store_id)
        return await getattr(impl, name)(request)

    async def attach_file(self, request: AttachFileRequest) -> VectorStoreFile:
        return await self._to_owner("attach_file", request)  # type: ignore[no-any-return]

    async def list_vector_store_files(self, request: ListVectorStoreFilesRequest) -> VectorStoreFileList:
        return await self._to_owner("list_vector_store_files", request)  # type: ignore[no-any-return]

    async def get_vector_store_file(self, request: VectorStoreFileRequest) -> VectorStoreFile:
        return await self._to_owner("get_vector_store_file", request)  # type: ignore[no-any-return]

    async def update_vector_store_file(self, request: UpdateVectorStoreFileRequest) -> VectorStoreFile:
        return await self._to_owner("update_vector_store_file", request)  # type: ignore[no-any-return]

    async def delete_vector_store_file(self, request: VectorStoreFileRequest) -> DeleteResponse:
        return await self._to_owner("delete_vector_store_file", request)  # type: ignore[no-any-return]

    async def vector_store_file_content(self, request: VectorStoreFileRequest) -> VectorStoreFileContent:
        return await self._to_owner("vector_store_file_content", request)  # type: ignore[no-any-return]

    async def create_file_batch(self, request: CreateFileBatchRequest) -> FileBatch:
        return await self._to_owner("create_file_batch", request)  # type: ignore[no-any-return]

    async def get_file_batch(self, request: FileBatchRequest) -> FileBatch:
        return await self._to_owner("get_file_batch", request)  # type: ignore[no-any-return]

    async def cancel_file_batch(self, request: FileBatchRequest) -> FileBatch:
        return await self._to_owner("cancel_file_batch", request)  # type: ignore[no-any-return]

    async def list_file_batch_files(self, request: ListFileBatchFilesRequest) -> VectorStoreFileList:
        return await self._to_owner("list_file_batch_files", request)  # type: ignore[no-any-return]

