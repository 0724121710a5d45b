"""The sqlite side of a vector store provider: stores, their files and batches, chunk text and
metadata, and the keyword (BM25) index (keywords.py) fed in the same transactions. Vectors live in the
provider's index.

Not thread-safe by itself: the service calls it from one worker thread at a time, under a lock.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from stackkit.providers.utils.keywords import KeywordIndex, open_keywords

SCHEMA = """
CREATE TABLE IF NOT EXISTS stores (
    id TEXT PRIMARY KEY, name TEXT, created_at INTEGER NOT NULL, metadata TEXT NOT NULL,
    embedding_model TEXT NOT NULL, embedding_dimension INTEGER NOT NULL, expires_after TEXT, chunking TEXT,
    last_active_at INTEGER
);
CREATE TABLE IF NOT EXISTS store_files (
    store_id TEXT NOT NULL, file_id TEXT NOT NULL, filename TEXT, created_at INTEGER NOT NULL,
    status TEXT NOT NULL, last_error TEXT, usage_bytes INTEGER NOT NULL DEFAULT 0, attributes TEXT NOT NULL,
    chunking TEXT, batch_id TEXT, PRIMARY KEY (store_id, file_id)
);
CREATE INDEX IF NOT EXISTS store_files_batch ON store_files (batch_id);
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY, store_id TEXT NOT NULL, created_at INTEGER NOT NULL, cancelled INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT, store_id TEXT NOT NULL, file_id TEXT, chunk_id TEXT NOT NULL,
    position INTEGER NOT NULL DEFAULT 0, content TEXT NOT NULL, metadata TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_file ON chunks (store_id, file_id, position);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(content, store_id UNINDEXED);
"""
FILE_COLUMNS = ("store_id, file_id, filename, created_at, status, last_error, usage_bytes, attributes, chunking, "
                "batch_id")


def _json(value: Any) -> str | None:
    if value is None:
        return None
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # e.g. integers beyond 64 bits in free-form chunk metadata
        return json.dumps(value, default=str)


def _load(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


class VectorMeta:
    def __init__(self, db: Any, keyword_index: str = "fts5") -> None:
        self.db = db
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(SCHEMA)
        if "last_active_at" not in {row[1] for row in db.execute("PRAGMA table_info(stores)")}:
            db.execute("ALTER TABLE stores ADD COLUMN last_active_at INTEGER")  # a store made before it existed
        self.keywords: KeywordIndex = open_keywords(keyword_index, db)

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        return list(self.db.execute(sql, args).fetchall())

    # ---- stores -------------------------------------------------------------------------------

    def insert_store(self, store: dict[str, Any]) -> None:
        self.db.execute(
            "INSERT INTO stores (id, name, created_at, metadata, embedding_model, embedding_dimension, expires_after, "
            "chunking, last_active_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", (
                store["id"], store["name"], store["created_at"], _json(store["metadata"]), store["embedding_model"],
                store["embedding_dimension"], _json(store.get("expires_after")), _json(store.get("chunking")),
                store["created_at"]))
        self.db.commit()

    def store(self, store_id: str) -> dict[str, Any] | None:
        rows = self._all("SELECT id, name, created_at, metadata, embedding_model, embedding_dimension, "
                         "expires_after, chunking, last_active_at FROM stores WHERE id = ?", (store_id,))
        if not rows:
            return None
        r = rows[0]
        return {"id": r[0], "name": r[1], "created_at": r[2], "metadata": _load(r[3]), "embedding_model": r[4],
                "embedding_dimension": r[5], "expires_after": _load(r[6]), "chunking": _load(r[7]),
                "last_active_at": r[8] if r[8] is not None else r[2]}

    def touch(self, store_id: str, now: int) -> None:
        """Record activity (searches, writes); at most one write a minute per store."""
        cursor = self.db.execute("UPDATE stores SET last_active_at = ? WHERE id = ? AND "
                                 "(last_active_at IS NULL OR last_active_at < ?)", (now, store_id, now - 60))
        if cursor.rowcount:
            self.db.commit()

    def store_ids(self) -> list[str]:
        return [r[0] for r in self._all("SELECT id FROM stores ORDER BY created_at")]

    def update_store(self, store_id: str, name: str | None, metadata: Any, expires_after: Any) -> None:
        if name is not None:
            self.db.execute("UPDATE stores SET name = ? WHERE id = ?", (name, store_id))
        if metadata is not None:
            self.db.execute("UPDATE stores SET metadata = ? WHERE id = ?", (_json(metadata), store_id))
        if expires_after is not None:
            self.db.execute("UPDATE stores SET expires_after = ? WHERE id = ?", (_json(expires_after), store_id))
        self.db.commit()

    def delete_store(self, store_id: str) -> None:
        self.keywords.stage_drop(store_id)
        for table in ("chunks", "store_files", "batches"):
            self.db.execute(f"DELETE FROM {table} WHERE store_id = ?", (store_id,))
        self.db.execute("DELETE FROM stores WHERE id = ?", (store_id,))
        self.db.commit()
        self.keywords.committed()

    def usage(self, store_id: str) -> dict[str, int]:
        counts = dict(self._all("SELECT status, COUNT(*) FROM store_files WHERE store_id = ? GROUP BY status",
                                (store_id,)))
        size = self._all("SELECT COALESCE(SUM(usage_bytes), 0) FROM store_files WHERE store_id = ?", (store_id,))
        return {**counts, "bytes": int(size[0][0])}

    # ---- files --------------------------------------------------------------------------------

    def insert_file(self, f: dict[str, Any]) -> None:
        marks = ", ".join("?" * 10)
        self.db.execute(f"INSERT OR REPLACE INTO store_files ({FILE_COLUMNS}) VALUES ({marks})", (
            f["store_id"], f["file_id"], f.get("filename"), f["created_at"], f["status"], _json(f.get("last_error")),
            f.get("usage_bytes", 0), _json(f.get("attributes") or {}), _json(f.get("chunking")), f.get("batch_id")))
        self.db.commit()

    def _file_row(self, r: Any) -> dict[str, Any]:
        keys = FILE_COLUMNS.split(", ")
        row = dict(zip(keys, r, strict=True))
        for key in ("last_error", "attributes", "chunking"):
            row[key] = _load(row[key])
        return row

    def file(self, store_id: str, file_id: str) -> dict[str, Any] | None:
        rows = self._all(f"SELECT {FILE_COLUMNS} FROM store_files WHERE store_id = ? AND file_id = ?",
                         (store_id, file_id))
        return self._file_row(rows[0]) if rows else None

    def files(self, store_id: str, status: str | None = None, batch_id: str | None = None) -> list[dict[str, Any]]:
        sql, args = f"SELECT {FILE_COLUMNS} FROM store_files WHERE store_id = ?", [store_id]
        if status:
            sql, args = sql + " AND status = ?", [*args, status]
        if batch_id:
            sql, args = sql + " AND batch_id = ?", [*args, batch_id]
        return [self._file_row(r) for r in self._all(sql + " ORDER BY created_at, file_id", tuple(args))]

    def files_in_progress(self) -> list[dict[str, Any]]:
        return [self._file_row(r) for r in self._all(
            f"SELECT {FILE_COLUMNS} FROM store_files WHERE status = 'in_progress'")]

    def set_file(self, store_id: str, file_id: str, status: str, last_error: Any = None, usage_bytes: int = 0,
                 commit: bool = True) -> None:
        self.db.execute("UPDATE store_files SET status = ?, last_error = ?, usage_bytes = ? WHERE store_id = ? AND "
                        "file_id = ?", (status, _json(last_error), usage_bytes, store_id, file_id))
        if commit:
            self.db.commit()

    def update_file_attributes(self, store_id: str, file_id: str, attributes: dict[str, Any]) -> None:
        self.db.execute("UPDATE store_files SET attributes = ? WHERE store_id = ? AND file_id = ?",
                        (_json(attributes), store_id, file_id))
        for row_id, meta in self._all("SELECT id, metadata FROM chunks WHERE store_id = ? AND file_id = ?",
                                      (store_id, file_id)):
            merged = {**_load(meta), **attributes}
            self.db.execute("UPDATE chunks SET metadata = ? WHERE id = ?", (_json(merged), row_id))
        self.db.commit()

    def delete_file(self, store_id: str, file_id: str) -> list[int]:
        """Remove a file and its chunks; returns the chunk row ids (for the vector index)."""
        ids = self.chunk_ids(store_id, file_id)
        self._delete_chunks(ids)
        self.db.execute("DELETE FROM store_files WHERE store_id = ? AND file_id = ?", (store_id, file_id))
        self.db.commit()
        self.keywords.committed()
        return ids

    # ---- batches ------------------------------------------------------------------------------

    def insert_batch(self, batch_id: str, store_id: str, created_at: int) -> None:
        self.db.execute("INSERT INTO batches VALUES (?, ?, ?, 0)", (batch_id, store_id, created_at))
        self.db.commit()

    def batch(self, batch_id: str) -> tuple[str, int, bool] | None:
        rows = self._all("SELECT store_id, created_at, cancelled FROM batches WHERE id = ?", (batch_id,))
        return (rows[0][0], rows[0][1], bool(rows[0][2])) if rows else None

    def cancel_batch(self, batch_id: str) -> None:
        self.db.execute("UPDATE batches SET cancelled = 1 WHERE id = ?", (batch_id,))
        self.db.execute("UPDATE store_files SET status = 'cancelled' WHERE batch_id = ? AND status = 'in_progress'",
                        (batch_id,))
        self.db.commit()

    # ---- chunks -------------------------------------------------------------------------------

    def insert_chunks(self, store_id: str, file_id: str | None, chunks: list[tuple[str, str, dict[str, Any]]]
                      ) -> list[int]:
        """Insert (chunk_id, content, metadata) rows without committing; returns their row ids."""
        ids = []
        for position, (chunk_id, content, metadata) in enumerate(chunks):
            cur = self.db.execute("INSERT INTO chunks (store_id, file_id, chunk_id, position, content, metadata) "
                                  "VALUES (?, ?, ?, ?, ?, ?)", (store_id, file_id, chunk_id, position, content,
                                                                _json(metadata)))
            ids.append(int(cur.lastrowid))
        self.keywords.stage_add([(i, store_id, c[1]) for i, c in zip(ids, chunks, strict=True)])
        return ids

    def chunk_ids(self, store_id: str, file_id: str | None = None) -> list[int]:
        if file_id is None:
            return [r[0] for r in self._all("SELECT id FROM chunks WHERE store_id = ?", (store_id,))]
        return [r[0] for r in self._all("SELECT id FROM chunks WHERE store_id = ? AND file_id = ?",
                                        (store_id, file_id))]

    def _delete_chunks(self, ids: list[int]) -> None:
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            marks = ",".join("?" * len(part))
            self.db.execute(f"DELETE FROM chunks WHERE id IN ({marks})", part)
        self.keywords.stage_remove(ids)

    def chunks(self, ids: list[int]) -> dict[int, dict[str, Any]]:
        out: dict[int, dict[str, Any]] = {}
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            rows = self._all(f"SELECT c.id, c.file_id, c.chunk_id, c.content, c.metadata, f.filename FROM chunks c "
                             f"LEFT JOIN store_files f ON f.store_id = c.store_id AND f.file_id = c.file_id "
                             f"WHERE c.id IN ({','.join('?' * len(part))})", tuple(part))
            for r in rows:
                out[r[0]] = {"file_id": r[1], "chunk_id": r[2], "content": r[3], "metadata": _load(r[4]),
                             "filename": r[5]}
        return out

    def file_text(self, store_id: str, file_id: str) -> list[str]:
        return [r[0] for r in self._all("SELECT content FROM chunks WHERE store_id = ? AND file_id = ? "
                                        "ORDER BY position", (store_id, file_id))]
