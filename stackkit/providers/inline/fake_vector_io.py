"""inline::fake — vector stores in memory, for tests and examples: the real vector store logic
(stores, files, batches, search modes, filters) over an in-memory sqlite and a brute-force index."""

from __future__ import annotations

import sqlite3
from typing import Any

import numpy as np

from stackkit.apis.datatypes import Api
from stackkit.providers.utils.vector_meta import sqlite_connection
from stackkit.providers.utils.vector_stores import VectorStoreConfigBase, VectorStoreService


class FakeVectorIOConfig(VectorStoreConfigBase):
    """Nothing is persisted."""

    @classmethod
    def sample_run_config(cls, **kwargs: Any) -> dict[str, Any]:
        return {"embedding_model": "embed"}


class MemoryIndex:
    def __init__(self) -> None:
        self.stores: dict[str, dict[int, np.ndarray]] = {}

    def create(self, store_id: str, dimension: int) -> None:
        self.stores[store_id] = {}

    def drop(self, store_id: str) -> None:
        self.stores.pop(store_id, None)

    def add(self, store_id: str, ids: list[int], vectors: np.ndarray) -> None:
        self.stores[store_id].update(zip(ids, vectors, strict=True))

    def remove(self, store_id: str, ids: list[int]) -> None:
        for i in ids:
            self.stores.get(store_id, {}).pop(i, None)

    def search(self, store_id: str, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        scored = [(i, float(np.dot(v, vector))) for i, v in self.stores[store_id].items()]
        return sorted(scored, key=lambda s: -s[1])[:k]

    def close(self) -> None:
        self.stores.clear()


async def create(config: FakeVectorIOConfig, deps: dict[Api, Any]) -> VectorStoreService:
    db = sqlite3.connect(":memory:", check_same_thread=False)
    return VectorStoreService(config, sqlite_connection(db), MemoryIndex, deps[Api.inference], deps.get(Api.files))
