"""inline::fake — an in-memory vector store for tests and examples.

Scores are word-overlap (Jaccard) for every search mode, so results are deterministic and
need no embedding model. Nothing is persisted.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from stackkit.apis.datatypes import Api, DeleteResponse, ProviderConfigBase
from stackkit.apis.vector_io import (
    Chunk,
    CreateVectorStoreRequest,
    InsertChunksRequest,
    InsertChunksResponse,
    ListVectorStoresRequest,
    QueryChunksRequest,
    QueryChunksResponse,
    SearchResult,
    SearchResultContent,
    SearchResultsPage,
    SearchVectorStoreRequest,
    UpdateVectorStoreRequest,
    VectorStore,
    VectorStoreIdRequest,
    VectorStoreList,
)
from stackkit.errors import NotFoundError
from stackkit.providers.utils.filters import matches


class FakeVectorIOConfig(ProviderConfigBase):
    """No settings: the store lives in memory."""


def _overlap(query: str, text: str) -> float:
    q, t = set(query.lower().split()), set(text.lower().split())
    return len(q & t) / len(q | t) if q and t else 0.0


class FakeVectorIO:
    def __init__(self) -> None:
        self.stores: dict[str, VectorStore] = {}
        self.chunks: dict[str, list[Chunk]] = {}

    def _store(self, vector_store_id: str) -> VectorStore:
        if vector_store_id not in self.stores:
            raise NotFoundError(f"Vector store '{vector_store_id}' not found in this provider.")
        return self.stores[vector_store_id]

    def _ranked(self, store_id: str, query: str, flt: dict[str, Any] | None) -> list[tuple[float, Chunk]]:
        scored = [(_overlap(query, c.content), c) for c in self.chunks[store_id] if matches(c.metadata, flt)]
        return sorted((s for s in scored if s[0] > 0), key=lambda s: -s[0])

    async def insert_chunks(self, request: InsertChunksRequest) -> InsertChunksResponse:
        self._store(request.vector_store_id)
        self.chunks[request.vector_store_id].extend(request.chunks)
        return InsertChunksResponse(inserted=len(request.chunks))

    async def query_chunks(self, request: QueryChunksRequest) -> QueryChunksResponse:
        self._store(request.vector_store_id)
        ranked = self._ranked(request.vector_store_id, request.query, None)[: request.params.max_chunks]
        if request.params.score_threshold is not None:
            ranked = [r for r in ranked if r[0] >= request.params.score_threshold]
        return QueryChunksResponse(chunks=[c for _, c in ranked], scores=[s for s, _ in ranked])

    async def create_vector_store(self, request: CreateVectorStoreRequest) -> VectorStore:
        store = VectorStore(id=f"vs_{uuid.uuid4().hex}", created_at=int(time.time()), name=request.name,
                            metadata=request.metadata)
        self.stores[store.id] = store
        self.chunks[store.id] = []
        return store

    async def list_vector_stores(self, request: ListVectorStoresRequest) -> VectorStoreList:
        stores = sorted(self.stores.values(), key=lambda s: s.created_at, reverse=request.order == "desc")
        page = stores[: request.limit]
        return VectorStoreList(data=page, has_more=len(stores) > len(page))

    async def get_vector_store(self, request: VectorStoreIdRequest) -> VectorStore:
        return self._store(request.vector_store_id)

    async def update_vector_store(self, request: UpdateVectorStoreRequest) -> VectorStore:
        store = self._store(request.vector_store_id)
        changes = {k: v for k, v in (("name", request.name), ("metadata", request.metadata)) if v is not None}
        self.stores[store.id] = store.model_copy(update=changes)
        return self.stores[store.id]

    async def delete_vector_store(self, request: VectorStoreIdRequest) -> DeleteResponse:
        self._store(request.vector_store_id)
        del self.stores[request.vector_store_id], self.chunks[request.vector_store_id]
        return DeleteResponse(id=request.vector_store_id, object="vector_store.deleted")

    async def search_vector_store(self, request: SearchVectorStoreRequest) -> SearchResultsPage:
        self._store(request.vector_store_id)
        query = request.query if isinstance(request.query, str) else " ".join(request.query)
        ranked = self._ranked(request.vector_store_id, query, request.filters)
        threshold = request.ranking_options.score_threshold if request.ranking_options else None
        if threshold is not None:
            ranked = [r for r in ranked if r[0] >= threshold]
        return SearchResultsPage(search_query=request.query, data=[
            SearchResult(file_id=c.metadata.get("file_id"), filename=c.metadata.get("filename"), score=s,
                         attributes=c.metadata, content=[SearchResultContent(text=c.content)])
            for s, c in ranked[: request.max_num_results]
        ])


async def create(config: FakeVectorIOConfig, deps: dict[Api, Any]) -> FakeVectorIO:
    return FakeVectorIO()
