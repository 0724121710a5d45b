"""The SQL side of a vector store provider: stores, their files and batches, chunk text and metadata, and
the keyword index (keywords.py) fed in the same transactions. Vectors live in the provider's index.

SQLAlchemy Core on one connection: a sqlite file beside a local index (faiss, sqlite-vec, Chroma), or
PostgreSQL for remote::pgvector, where every replica reads and writes the same rows.
Not thread-safe by itself: the service calls it from one worker thread at a time, under a lock.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.pool import StaticPool

from stackkit.core.sql import lock_schema, upsert
from stackkit.providers.utils.keywords import KeywordIndex, open_keywords

TABLES = MetaData()
STORES = Table(
    "stores", TABLES, Column("id", String, primary_key=True), Column("name", Text),
    Column("created_at", BigInteger, nullable=False), Column("metadata", Text, nullable=False),
    Column("embedding_model", Text, nullable=False), Column("embedding_dimension", Integer, nullable=False),
    Column("expires_after", Text), Column("chunking", Text), Column("last_active_at", BigInteger))
FILES = Table(
    "store_files", TABLES, Column("store_id", String, primary_key=True), Column("file_id", String, primary_key=True),
    Column("filename", Text), Column("created_at", BigInteger, nullable=False),
    Column("status", String, nullable=False),
    Column("last_error", Text), Column("usage_bytes", BigInteger, nullable=False, server_default="0"),
    Column("attributes", Text, nullable=False), Column("chunking", Text), Column("batch_id", String),
    Index("store_files_batch", "batch_id"))
BATCHES = Table(
    "batches", TABLES, Column("id", String, primary_key=True), Column("store_id", String, nullable=False),
    Column("created_at", BigInteger, nullable=False), Column("cancelled", Integer, nullable=False, server_default="0"))
CHUNKS = Table(
    "chunks", TABLES,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("store_id", String, nullable=False), Column("file_id", String), Column("chunk_id", Text, nullable=False),
    Column("position", Integer, nullable=False, server_default="0"), Column("content", Text, nullable=False),
    Column("metadata", Text, nullable=False), Index("chunks_file", "store_id", "file_id", "position"),
    sqlite_autoincrement=True)  # ids never reused: the vector index keys its vectors by them
FILE_COLUMNS = [c.name for c in FILES.columns]
_BATCH = 500


def _json(value: Any) -> str | None:
    if value is None:
        return None
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # e.g. integers beyond 64 bits in free-form chunk metadata
        return json.dumps(value, default=str)


def _load(raw: str | None) -> Any:
    return None if raw is None else orjson.loads(raw)


def _lock_key(store_id: str, file_id: str) -> int:
    digest = hashlib.blake2b(f"stackkit-ingest/{store_id}/{file_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def sqlite_connection(db: sqlite3.Connection) -> Connection:
    """A SQLAlchemy connection on an open sqlite3 connection (the same transaction as raw calls on it)."""
    return create_engine("sqlite://", creator=lambda: db, poolclass=StaticPool).connect()


class VectorMeta:
    """Stores, files, batches and chunks of one provider, on one SQLAlchemy connection."""

    def __init__(self, conn: Connection, keyword_index: str = "fts5") -> None:
        self.db = conn
        self.dialect = conn.dialect.name
        if self.dialect == "sqlite":
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
            conn.exec_driver_sql("PRAGMA synchronous=NORMAL")
        lock_schema(conn)
        TABLES.create_all(conn)
        if "last_active_at" not in {c["name"] for c in inspect(conn).get_columns("stores")}:
            conn.execute(text("ALTER TABLE stores ADD COLUMN last_active_at BIGINT"))  # a store made before it
        conn.commit()
        self.keywords: KeywordIndex = open_keywords(keyword_index, conn)

    def commit(self) -> None:
        self.db.commit()

    def claim(self, store_id: str, file_id: str) -> bool:
        """Take the right to ingest a file: always on a private database; on PostgreSQL a session advisory
        lock, which no other replica can take while this one holds it, and which dies with its session."""
        if self.dialect != "postgresql":
            return True
        return bool(self.db.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _lock_key(store_id, file_id)})
                    .scalar())

    def release(self, store_id: str, file_id: str) -> None:
        if self.dialect == "postgresql":
            self.db.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _lock_key(store_id, file_id)})

    def rollback(self) -> None:
        self.db.rollback()

    # ---- stores -------------------------------------------------------------------------------

    def insert_store(self, store: dict[str, Any]) -> None:
        self.db.execute(STORES.insert().values(
            id=store["id"], name=store["name"], created_at=store["created_at"], metadata=_json(store["metadata"]),
            embedding_model=store["embedding_model"], embedding_dimension=store["embedding_dimension"],
            expires_after=_json(store.get("expires_after")), chunking=_json(store.get("chunking")),
            last_active_at=store["created_at"]))
        self.db.commit()

    def store(self, store_id: str) -> dict[str, Any] | None:
        r = self.db.execute(select(STORES).where(STORES.c.id == store_id)).first()
        if r is None:
            return None
        return {"id": r.id, "name": r.name, "created_at": r.created_at, "metadata": _load(r.metadata),
                "embedding_model": r.embedding_model, "embedding_dimension": r.embedding_dimension,
                "expires_after": _load(r.expires_after), "chunking": _load(r.chunking),
                "last_active_at": r.last_active_at if r.last_active_at is not None else r.created_at}

    def touch(self, store_id: str, now: int) -> None:
        """Record activity (searches, writes); at most one write a minute per store."""
        stale = STORES.c.last_active_at.is_(None) | (STORES.c.last_active_at < now - 60)
        if self.db.execute(STORES.update().where(STORES.c.id == store_id, stale).values(last_active_at=now)).rowcount:
            self.db.commit()

    def store_ids(self) -> list[str]:
        return [r[0] for r in self.db.execute(select(STORES.c.id).order_by(STORES.c.created_at))]

    def update_store(self, store_id: str, name: str | None, metadata: Any, expires_after: Any) -> None:
        changes = {"name": name, "metadata": _json(metadata), "expires_after": _json(expires_after)}
        changes = {k: v for k, v in changes.items() if v is not None}
        if changes:
            self.db.execute(STORES.update().where(STORES.c.id == store_id).values(**changes))
        self.db.commit()

    def delete_store(self, store_id: str) -> None:
        self.keywords.stage_drop(store_id)
        for table in (CHUNKS, FILES, BATCHES):
            self.db.execute(table.delete().where(table.c.store_id == store_id))
        self.db.execute(STORES.delete().where(STORES.c.id == store_id))
        self.db.commit()
        self.keywords.committed()

    def usage(self, store_id: str) -> dict[str, int]:
        mine = FILES.c.store_id == store_id
        counts = {r[0]: int(r[1]) for r in self.db.execute(
            select(FILES.c.status, func.count()).where(mine).group_by(FILES.c.status))}
        size = self.db.execute(select(func.coalesce(func.sum(FILES.c.usage_bytes), 0)).where(mine)).scalar_one()
        return {**counts, "bytes": int(size)}

    # ---- files --------------------------------------------------------------------------------

    def insert_file(self, f: dict[str, Any]) -> None:
        row = {"store_id": f["store_id"], "file_id": f["file_id"], "filename": f.get("filename"),
               "created_at": f["created_at"], "status": f["status"], "last_error": _json(f.get("last_error")),
               "usage_bytes": f.get("usage_bytes", 0), "attributes": _json(f.get("attributes") or {}),
               "chunking": _json(f.get("chunking")), "batch_id": f.get("batch_id")}
        self.db.execute(upsert(self.dialect, FILES, tuple(row), ("store_id", "file_id")), [row])
        self.db.commit()

    def _file_row(self, r: Any) -> dict[str, Any]:
        row = dict(r._mapping)
        for key in ("last_error", "attributes", "chunking"):
            row[key] = _load(row[key])
        return row

    def _file_where(self, store_id: str, file_id: str) -> Any:
        return (FILES.c.store_id == store_id) & (FILES.c.file_id == file_id)

    def file(self, store_id: str, file_id: str) -> dict[str, Any] | None:
        r = self.db.execute(select(FILES).where(self._file_where(store_id, file_id))).first()
        return self._file_row(r) if r is not None else None

    def files(self, store_id: str, status: str | None = None, batch_id: str | None = None) -> list[dict[str, Any]]:
        query = select(FILES).where(FILES.c.store_id == store_id)
        if status:
            query = query.where(FILES.c.status == status)
        if batch_id:
            query = query.where(FILES.c.batch_id == batch_id)
        return [self._file_row(r) for r in self.db.execute(query.order_by(FILES.c.created_at, FILES.c.file_id))]

    def files_in_progress(self) -> list[dict[str, Any]]:
        return [self._file_row(r) for r in self.db.execute(select(FILES).where(FILES.c.status == "in_progress"))]

    def set_file(self, store_id: str, file_id: str, status: str, last_error: Any = None, usage_bytes: int = 0,
                 commit: bool = True) -> None:
        self.db.execute(FILES.update().where(self._file_where(store_id, file_id)).values(
            status=status, last_error=_json(last_error), usage_bytes=usage_bytes))
        if commit:
            self.db.commit()

    def update_file_attributes(self, store_id: str, file_id: str, attributes: dict[str, Any]) -> None:
        self.db.execute(FILES.update().where(self._file_where(store_id, file_id)).values(attributes=_json(attributes)))
        mine = (CHUNKS.c.store_id == store_id) & (CHUNKS.c.file_id == file_id)
        for row_id, meta in self.db.execute(select(CHUNKS.c.id, CHUNKS.c.metadata).where(mine)).all():
            merged = {**_load(meta), **attributes}
            self.db.execute(CHUNKS.update().where(CHUNKS.c.id == row_id).values(metadata=_json(merged)))
        self.db.commit()

    def delete_file(self, store_id: str, file_id: str) -> list[int]:
        """Remove a file and its chunks; returns the chunk row ids (for the vector index)."""
        ids = self.chunk_ids(store_id, file_id)
        self._delete_chunks(ids)
        self.db.execute(FILES.delete().where(self._file_where(store_id, file_id)))
        self.db.commit()
        self.keywords.committed()
        return ids

    # ---- batches ------------------------------------------------------------------------------

    def insert_batch(self, batch_id: str, store_id: str, created_at: int) -> None:
        self.db.execute(BATCHES.insert().values(id=batch_id, store_id=store_id, created_at=created_at, cancelled=0))
        self.db.commit()

    def batch(self, batch_id: str) -> tuple[str, int, bool] | None:
        r = self.db.execute(select(BATCHES).where(BATCHES.c.id == batch_id)).first()
        return (r.store_id, r.created_at, bool(r.cancelled)) if r is not None else None

    def cancel_batch(self, batch_id: str) -> None:
        self.db.execute(BATCHES.update().where(BATCHES.c.id == batch_id).values(cancelled=1))
        self.db.execute(FILES.update().where(FILES.c.batch_id == batch_id, FILES.c.status == "in_progress")
                        .values(status="cancelled"))
        self.db.commit()

    # ---- chunks -------------------------------------------------------------------------------

    def insert_chunks(self, store_id: str, file_id: str | None, chunks: list[tuple[str, str, dict[str, Any]]]
                      ) -> list[int]:
        """Insert (chunk_id, content, metadata) rows without committing; returns their row ids, in order."""
        if not chunks:
            return []
        rows = [{"store_id": store_id, "file_id": file_id, "chunk_id": chunk_id, "position": position,
                 "content": content, "metadata": _json(metadata)}
                for position, (chunk_id, content, metadata) in enumerate(chunks)]
        inserted = self.db.execute(CHUNKS.insert().returning(CHUNKS.c.id, sort_by_parameter_order=True), rows)
        ids = [int(r[0]) for r in inserted]
        self.keywords.stage_add([(i, store_id, c[1]) for i, c in zip(ids, chunks, strict=True)])
        return ids

    def chunk_ids(self, store_id: str, file_id: str | None = None) -> list[int]:
        query = select(CHUNKS.c.id).where(CHUNKS.c.store_id == store_id)
        if file_id is not None:
            query = query.where(CHUNKS.c.file_id == file_id)
        return [int(r[0]) for r in self.db.execute(query)]

    def _delete_chunks(self, ids: list[int]) -> None:
        for start in range(0, len(ids), _BATCH):
            self.db.execute(CHUNKS.delete().where(CHUNKS.c.id.in_(ids[start:start + _BATCH])))
        self.keywords.stage_remove(ids)

    def chunks(self, ids: list[int]) -> dict[int, dict[str, Any]]:
        out: dict[int, dict[str, Any]] = {}
        same_file = (FILES.c.store_id == CHUNKS.c.store_id) & (FILES.c.file_id == CHUNKS.c.file_id)
        joined = CHUNKS.outerjoin(FILES, same_file)
        columns = [CHUNKS.c.id, CHUNKS.c.file_id, CHUNKS.c.chunk_id, CHUNKS.c.content, CHUNKS.c.metadata,
                   FILES.c.filename]
        for start in range(0, len(ids), _BATCH):
            query = select(*columns).select_from(joined).where(CHUNKS.c.id.in_(ids[start:start + _BATCH]))
            for r in self.db.execute(query):
                out[int(r[0])] = {"file_id": r[1], "chunk_id": r[2], "content": r[3], "metadata": _load(r[4]),
                                  "filename": r[5]}
        return out

    def file_text(self, store_id: str, file_id: str) -> list[str]:
        query = (select(CHUNKS.c.content).where(CHUNKS.c.store_id == store_id, CHUNKS.c.file_id == file_id)
                 .order_by(CHUNKS.c.position))
        return [r[0] for r in self.db.execute(query)]
