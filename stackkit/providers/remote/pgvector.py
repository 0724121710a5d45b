"""remote::pgvector — vector stores in PostgreSQL with the pgvector extension.

Everything lives in the database: stores, files, batches and chunks (the shared vector_meta tables),
vectors (`pgvector_embeddings`, one HNSW cosine index per store, partial on its rows and cast to its
dimension), and the keyword index (`pgvector_terms`, a tsvector with a GIN index, ranked by
`ts_rank_cd`). A file's chunks, vectors and keyword rows commit in one transaction, so a crash never
leaves one without the others, and every replica pointed at the database serves the same stores.

Keyword scores are PostgreSQL's cover-density rank, not BM25: the order is comparable, the numbers are not
those of the sqlite-backed providers. Hybrid search fuses ranks (RRF), so it is unaffected.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any, Literal

import numpy as np
from pydantic import Field
from sqlalchemy import Connection, create_engine, text

from stackkit.apis.datatypes import Api
from stackkit.core.sql import lock_schema, postgres_url
from stackkit.errors import MissingPackageError, UpstreamError
from stackkit.providers.utils.vector_stores import VectorStoreConfigBase, VectorStoreService

_SCHEMA = [
    "CREATE EXTENSION IF NOT EXISTS vector",
    "CREATE TABLE IF NOT EXISTS pgvector_embeddings (id BIGINT PRIMARY KEY, store_id TEXT NOT NULL, "
    "embedding vector NOT NULL)",
]


class PgVectorConfig(VectorStoreConfigBase):
    url: str = Field(description="the PostgreSQL database (with the vector extension available), "
                     "postgresql://user:password@host:5432/db")
    keyword_index: Literal["postgres"] = Field(  # type: ignore[assignment]
        default="postgres", description="keyword search runs on PostgreSQL full-text search")
    hnsw_ef_search: int = Field(default=100, ge=1, le=1000, description="HNSW candidates per search (raised to "
                                "the number of results asked for); higher is more exact and slower")

    @classmethod
    def sample_run_config(cls, **kwargs: Any) -> dict[str, Any]:
        return {"url": "${env.PGVECTOR_URL:=postgresql://postgres@127.0.0.1:5432/stackkit}"}


def _literal(store_id: str) -> str:
    return "'" + store_id.replace("'", "''") + "'"


def _vector(row: np.ndarray) -> str:
    return "[" + ",".join(map(str, row.astype(np.float32).tolist())) + "]"


class PgVectorIndex:
    """The VectorIndex of remote::pgvector: rows in pgvector_embeddings, in the caller's transaction."""

    def __init__(self, conn: Connection, ef_search: int) -> None:
        self.conn = conn
        self.ef_search = ef_search
        self.dimensions: dict[str, int] = {}

    def _dimension(self, store_id: str) -> int:
        if store_id not in self.dimensions:
            found = self.conn.execute(text("SELECT embedding_dimension FROM stores WHERE id = :s"),
                                      {"s": store_id}).scalar()
            if found is None:
                raise KeyError(store_id)
            self.dimensions[store_id] = int(found)
        return self.dimensions[store_id]

    @staticmethod
    def _index_name(store_id: str) -> str:
        return "pgvector_hnsw_" + hashlib.blake2b(store_id.encode(), digest_size=8).hexdigest()

    def create(self, store_id: str, dimension: int) -> None:
        self.dimensions[store_id] = dimension
        self.conn.execute(text(
            f"CREATE INDEX IF NOT EXISTS {self._index_name(store_id)} ON pgvector_embeddings USING hnsw "
            f"((embedding::vector({int(dimension)})) vector_cosine_ops) WHERE store_id = {_literal(store_id)}"))
        self.conn.commit()

    def drop(self, store_id: str) -> None:
        self.conn.execute(text("DELETE FROM pgvector_embeddings WHERE store_id = :s"), {"s": store_id})
        self.conn.execute(text(f"DROP INDEX IF EXISTS {self._index_name(store_id)}"))
        self.conn.commit()
        self.dimensions.pop(store_id, None)

    def add(self, store_id: str, ids: list[int], vectors: np.ndarray) -> None:
        rows = [{"id": i, "s": store_id, "v": _vector(v)} for i, v in zip(ids, vectors, strict=True)]
        if rows:
            self.conn.execute(text("INSERT INTO pgvector_embeddings (id, store_id, embedding) "
                                   "VALUES (:id, :s, CAST(:v AS vector))"), rows)

    def remove(self, store_id: str, ids: list[int]) -> None:
        for start in range(0, len(ids), 1000):
            self.conn.execute(text("DELETE FROM pgvector_embeddings WHERE id = ANY(:ids)"),
                              {"ids": ids[start:start + 1000]})

    def search(self, store_id: str, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        dim = self._dimension(store_id)
        self.conn.execute(text(f"SET LOCAL hnsw.ef_search = {max(self.ef_search, min(k, 1000))}"))
        distance = f"embedding::vector({dim}) <=> CAST(:q AS vector({dim}))"
        rows = self.conn.execute(text(
            f"SELECT id, 1 - ({distance}) FROM pgvector_embeddings WHERE store_id = {_literal(store_id)} "
            f"ORDER BY {distance} LIMIT :k"), {"q": _vector(vector), "k": k}).all()
        return [(int(r[0]), float(r[1])) for r in rows]

    def close(self) -> None:
        pass


def _connect(config: PgVectorConfig) -> Connection:
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        raise MissingPackageError("psycopg", "postgres") from exc
    engine = create_engine(postgres_url(config.url), pool_size=1, max_overflow=0, pool_pre_ping=True)
    try:
        conn = engine.connect()
        lock_schema(conn)
        for statement in _SCHEMA:
            conn.execute(text(statement))
        conn.commit()
    except Exception as exc:
        engine.dispose()
        raise UpstreamError(f"remote::pgvector: cannot use the database at {config.url.split('@')[-1]} ({exc}); "
                            "check url, that PostgreSQL is up, and that the pgvector extension is installed.") from exc
    return conn


async def create(config: PgVectorConfig, deps: dict[Api, Any]) -> VectorStoreService:
    conn = await asyncio.to_thread(_connect, config)
    return VectorStoreService(config, conn, lambda: PgVectorIndex(conn, config.hnsw_ef_search), deps[Api.inference],
                              deps.get(Api.files))
