"""remote::chroma — vectors in a Chroma server (one collection per store, cosine space).

Chunk text and metadata, files, batches and the keyword index stay in a local sqlite file, as for
the inline providers, so search modes, filters and crash safety behave the same everywhere.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
from pydantic import Field

from stackkit.apis.datatypes import Api
from stackkit.errors import MissingPackageError, UpstreamError
from stackkit.providers.utils.vector_meta import sqlite_connection
from stackkit.providers.utils.vector_stores import VectorStoreConfigBase, VectorStoreService


class ChromaConfig(VectorStoreConfigBase):
    url: str = Field(description="the Chroma server, e.g. http://127.0.0.1:8000")
    storage_dir: str = Field(description="where the local sqlite metadata lives")

    @classmethod
    def sample_run_config(cls, **kwargs: Any) -> dict[str, Any]:
        return {"url": "${env.CHROMA_URL:=http://127.0.0.1:8000}",
                "storage_dir": "${env.STACKKIT_HOME:=~/.stackkit}/starter/chroma"}


class ChromaIndex:
    def __init__(self, url: str) -> None:
        try:
            import chromadb
        except ImportError as exc:
            raise MissingPackageError("chromadb", "chroma") from exc
        parsed = urlparse(url)
        try:
            self.client: Any = chromadb.HttpClient(host=parsed.hostname or "127.0.0.1", port=parsed.port or 8000,
                                              ssl=parsed.scheme == "https")
            self.client.heartbeat()
        except Exception as exc:
            raise UpstreamError(f"remote::chroma: cannot reach the Chroma server at {url} ({exc}); is "
                                "`chroma run` up, and is url right?") from exc
        self.collections: dict[str, Any] = {}

    def _collection(self, store_id: str) -> Any:
        if store_id not in self.collections:
            self.collections[store_id] = self.client.get_or_create_collection(
                store_id, configuration={"hnsw": {"space": "cosine"}}, embedding_function=None)
        return self.collections[store_id]

    def create(self, store_id: str, dimension: int) -> None:
        self._collection(store_id)

    def drop(self, store_id: str) -> None:
        self.collections.pop(store_id, None)
        try:
            self.client.delete_collection(store_id)
        except Exception:  # noqa: BLE001 - already gone is fine
            pass

    def add(self, store_id: str, ids: list[int], vectors: np.ndarray) -> None:
        for start in range(0, len(ids), 4096):
            self._collection(store_id).add(ids=[str(i) for i in ids[start:start + 4096]],
                                           embeddings=vectors[start:start + 4096].tolist())

    def remove(self, store_id: str, ids: list[int]) -> None:
        if ids:
            self._collection(store_id).delete(ids=[str(i) for i in ids])

    def search(self, store_id: str, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        collection = self._collection(store_id)
        found = collection.query(query_embeddings=[vector.tolist()], n_results=max(1, min(k, collection.count())),
                                 include=["distances"])
        return [(int(i), 1.0 - float(d)) for i, d in zip(found["ids"][0], found["distances"][0], strict=True)]

    def close(self) -> None:
        self.collections.clear()
        # chromadb 1.5's close() stops its System but not the HTTP session of its REST client, whose
        # sockets then outlive the provider: close that session too, where it exists
        owners = (self.client, getattr(self.client, "_admin_client", None))
        sessions = [getattr(getattr(o, "_server", None), "_session", None) for o in owners]
        self.client.close()
        for session in sessions:
            if session is not None:
                session.close()


async def create(config: ChromaConfig, deps: dict[Api, Any]) -> VectorStoreService:
    import asyncio

    root = Path(config.storage_dir).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(root / "vector_stores.db", check_same_thread=False)
    index = await asyncio.to_thread(ChromaIndex, config.url)
    service = VectorStoreService(config, sqlite_connection(db), lambda: index, deps[Api.inference], deps.get(Api.files))
    return service
