"""Keyword search for vector stores: BM25 with FTS5 inside a sqlite metadata database or tantivy beside it,
or PostgreSQL full-text search for remote::pgvector.

`fts5` needs nothing more than sqlite, but it ranks every row that matches any query word, so a query
of common words costs ~100 ms at 100k chunks. `tantivy` (pip extra `search`) prunes with block-max
WAND and answers any query in ~2 ms at that size (bench/README.md).

Both are fed from inside the metadata transaction that writes the chunks, so neither can disagree
with sqlite after a crash. FTS5 rows commit with the chunks. Tantivy cannot join a sqlite
transaction, so the transaction records the touched chunk ids in `keyword_outbox`; the outbox is
applied to tantivy (a delete and re-add per id, read from the committed chunks, so replaying it is
harmless), tantivy commits, and only then is the outbox cleared. That happens before a search reads
the index, when the outbox grows large, at shutdown and at open. Opening also rebuilds the tantivy
index from sqlite when it is missing, unreadable or holds a different number of chunks, and switching
a store directory between the two rebuilds the one switched to.

Terms are prefixed with a hash of their store's id, so a query touches only its store's postings and
stays a pure disjunction (which WAND can prune) instead of a filtered one.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Connection, text

from stackkit.core.sql import lock_schema
from stackkit.errors import MissingPackageError

log = logging.getLogger("stackkit.keywords")
WORD = re.compile(r"\w+", re.UNICODE)
OUTBOX_SYNC_AT = 2000  # chunks waiting for tantivy before a write applies them itself
SETTINGS = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS keyword_outbox (chunk_id INTEGER PRIMARY KEY);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(content, store_id UNINDEXED);
"""


class KeywordIndex(Protocol):
    """A store directory's keyword index. `stage_*` run inside the caller's sqlite transaction."""

    def stage_add(self, rows: list[tuple[int, str, str]]) -> None:
        """(chunk row id, store id, text) rows inserted by the open transaction."""
        ...

    def stage_remove(self, ids: list[int]) -> None: ...
    def stage_drop(self, store_id: str) -> None:
        """Called before the store's chunk rows are deleted, in the same transaction."""
        ...

    def committed(self) -> None:
        """The caller's transaction committed."""
        ...

    def search(self, store_id: str, query: str, k: int) -> list[tuple[int, float]]:
        """The k best (chunk row id, BM25 score), best first."""
        ...

    def close(self) -> None: ...


def query_words(query: str) -> list[str]:
    return list(dict.fromkeys(WORD.findall(query.lower())))


def _marker(db: Any) -> str | None:
    row = db.execute("SELECT value FROM settings WHERE key = 'keyword_index'").fetchone()
    return None if row is None else str(row[0])


def _set_marker(db: Any, value: str) -> None:
    db.execute("INSERT OR REPLACE INTO settings VALUES ('keyword_index', ?)", (value,))


class Fts5Keywords:
    """BM25 with sqlite's FTS5 in the metadata database: no extra package, cost grows with matches."""

    def __init__(self, db: Any) -> None:
        self.db = db
        db.executescript(SETTINGS)
        if _marker(db) == "tantivy":  # the directory was served with tantivy: FTS5 missed those writes
            log.info("rebuilding the FTS5 keyword index from the chunks")
            db.execute("DELETE FROM chunks_fts")
            db.execute("INSERT INTO chunks_fts (rowid, content, store_id) SELECT id, content, store_id FROM chunks")
        db.execute("DELETE FROM keyword_outbox")
        _set_marker(db, "fts5")
        db.commit()

    def stage_add(self, rows: list[tuple[int, str, str]]) -> None:
        self.db.executemany("INSERT INTO chunks_fts (rowid, store_id, content) VALUES (?, ?, ?)", rows)

    def stage_remove(self, ids: list[int]) -> None:
        self.db.executemany("DELETE FROM chunks_fts WHERE rowid = ?", [(i,) for i in ids])

    def stage_drop(self, store_id: str) -> None:
        self.db.execute("DELETE FROM chunks_fts WHERE store_id = ?", (store_id,))

    def committed(self) -> None:
        pass

    def search(self, store_id: str, query: str, k: int) -> list[tuple[int, float]]:
        words = query_words(query)
        if not words:
            return []
        match = " OR ".join(f'"{w}"' for w in words)
        rows = self.db.execute("SELECT rowid, bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ? AND "
                               "store_id = ? ORDER BY bm25(chunks_fts) LIMIT ?", (match, store_id, k)).fetchall()
        return [(int(r[0]), -float(r[1])) for r in rows]

    def close(self) -> None:
        pass


def _store_key(store_id: str) -> str:
    return hashlib.blake2b(store_id.encode(), digest_size=6).hexdigest() + ":"


class TantivyKeywords:
    """BM25 with tantivy in `<dir>`: top-k pruning keeps any query in milliseconds as stores grow."""

    def __init__(self, db: Any, path: Path) -> None:
        try:
            import tantivy
        except ImportError as exc:
            raise MissingPackageError("tantivy", "search") from exc
        self.tantivy = tantivy
        self.db = db
        self.path = path
        self.pending = 0
        builder = tantivy.SchemaBuilder()
        builder.add_text_field("body", tokenizer_name="whitespace", index_option="freq")
        builder.add_integer_field("id", indexed=True, fast=True)
        self.schema = builder.build()
        db.executescript(SETTINGS)
        if not self._open() or _marker(db) != "tantivy" or not self._matches_sqlite():
            self._rebuild()

    def _open(self) -> bool:
        """Open the index directory; False when it was unreadable and had to be started empty."""
        try:
            self._open_dir()
            return True
        except (OSError, ValueError, RuntimeError) as exc:  # torn or foreign: start it again from sqlite
            log.warning("keyword index %s unreadable (%s); rebuilding it", self.path, exc)
            shutil.rmtree(self.path, ignore_errors=True)
            self._open_dir()
            return False

    def _open_dir(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self.index = self.tantivy.Index(self.schema, path=str(self.path))
        self.writer = self.index.writer(heap_size=30_000_000, num_threads=1)

    def _matches_sqlite(self) -> bool:
        self._sync()
        self.index.reload()
        count = self.db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        return bool(self.index.searcher().num_docs == count)

    def _rebuild(self) -> None:
        log.info("building the tantivy keyword index %s from the chunks", self.path)
        self.writer.delete_all_documents()
        for row in self.db.execute("SELECT id, store_id, content FROM chunks"):
            self._add(*row)
        self.writer.commit()
        self.index.reload()
        self.db.execute("DELETE FROM keyword_outbox")
        self.db.execute("DELETE FROM chunks_fts")  # served by tantivy from now on: FTS5 rows would only cost disk
        _set_marker(self.db, "tantivy")
        self.db.commit()

    def _add(self, chunk_id: int, store_id: str, text: str) -> None:
        key = _store_key(store_id)
        body = " ".join(key + w for w in WORD.findall(text.lower()))
        self.writer.add_document(self.tantivy.Document(id=chunk_id, body=body))

    def stage_add(self, rows: list[tuple[int, str, str]]) -> None:
        self._stage([r[0] for r in rows])

    def stage_remove(self, ids: list[int]) -> None:
        self._stage(ids)

    def stage_drop(self, store_id: str) -> None:
        cursor = self.db.execute("INSERT OR IGNORE INTO keyword_outbox SELECT id FROM chunks WHERE store_id = ?",
                                 (store_id,))
        self.pending += max(cursor.rowcount, 0)

    def _stage(self, ids: list[int]) -> None:
        self.db.executemany("INSERT OR IGNORE INTO keyword_outbox VALUES (?)", [(i,) for i in ids])
        self.pending += len(ids)

    def committed(self) -> None:
        if self.pending >= OUTBOX_SYNC_AT:
            self._sync()

    def _sync(self) -> None:
        """Apply the committed outbox to tantivy, commit tantivy, then clear what was applied."""
        ids = [r[0] for r in self.db.execute("SELECT chunk_id FROM keyword_outbox")]
        self.pending = 0
        if not ids:
            return
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            for chunk_id in part:
                self.writer.delete_documents_by_term("id", chunk_id)
            marks = ",".join("?" * len(part))
            for row in self.db.execute(f"SELECT id, store_id, content FROM chunks WHERE id IN ({marks})", part):
                self._add(*row)
        self.writer.commit()
        self.index.reload()
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            self.db.execute(f"DELETE FROM keyword_outbox WHERE chunk_id IN ({','.join('?' * len(part))})", part)
        self.db.commit()

    def search(self, store_id: str, query: str, k: int) -> list[tuple[int, float]]:
        self._sync()
        words = query_words(query)
        if not words:
            return []
        key, tv = _store_key(store_id), self.tantivy
        should = [(tv.Occur.Should, tv.Query.term_query(self.schema, "body", key + w)) for w in words]
        searcher = self.index.searcher()
        hits = searcher.search(tv.Query.boolean_query(should), k).hits
        ids = searcher.fast_field_values("id", [address for _, address in hits])
        return [(int(i), float(score)) for (score, _), i in zip(hits, ids, strict=True) if i is not None]

    def close(self) -> None:
        try:
            self._sync()
        finally:
            self.writer.wait_merging_threads()


class PgKeywords:
    """Keyword search on PostgreSQL full-text search (remote::pgvector): a tsvector per chunk in
    `pgvector_terms` ('simple' configuration: no stemming, any language), ranked by ts_rank_cd."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        lock_schema(conn)
        conn.execute(text("CREATE TABLE IF NOT EXISTS pgvector_terms (id BIGINT PRIMARY KEY, store_id TEXT NOT "
                          "NULL, terms tsvector NOT NULL)"))
        conn.execute(text("CREATE INDEX IF NOT EXISTS pgvector_terms_gin ON pgvector_terms USING gin (terms)"))
        conn.execute(text("CREATE INDEX IF NOT EXISTS pgvector_terms_store ON pgvector_terms (store_id)"))
        conn.commit()

    def stage_add(self, rows: list[tuple[int, str, str]]) -> None:
        if rows:
            self.conn.execute(text("INSERT INTO pgvector_terms (id, store_id, terms) "
                                   "VALUES (:id, :s, to_tsvector('simple', :t))"),
                              [{"id": i, "s": s, "t": t} for i, s, t in rows])

    def stage_remove(self, ids: list[int]) -> None:
        for start in range(0, len(ids), 1000):
            self.conn.execute(text("DELETE FROM pgvector_terms WHERE id = ANY(:ids)"), {"ids": ids[start:start + 1000]})

    def stage_drop(self, store_id: str) -> None:
        self.conn.execute(text("DELETE FROM pgvector_terms WHERE store_id = :s"), {"s": store_id})

    def committed(self) -> None:
        pass

    def search(self, store_id: str, query: str, k: int) -> list[tuple[int, float]]:
        words = query_words(query)
        if not words:
            return []
        rows = self.conn.execute(text(
            "SELECT id, ts_rank_cd(terms, q) AS score FROM pgvector_terms, to_tsquery('simple', :q) AS q "
            "WHERE store_id = :s AND terms @@ q ORDER BY score DESC, id LIMIT :k"),
            {"q": " | ".join("'" + w.replace("'", "''") + "'" for w in words), "s": store_id, "k": k}).all()
        return [(int(r[0]), float(r[1])) for r in rows]

    def close(self) -> None:
        pass


def open_keywords(kind: str, conn: Connection) -> KeywordIndex:
    """The keyword index `kind` for the metadata database on `conn` (tantivy's lives beside its file)."""
    if kind == "postgres":
        return PgKeywords(conn)
    db: Any = conn.connection.dbapi_connection  # FTS5 and the outbox speak sqlite3 directly, in one transaction
    if kind == "fts5":
        return Fts5Keywords(db)
    file = next(row[2] for row in db.execute("PRAGMA database_list") if row[1] == "main")
    if not file:
        raise ValueError("keyword_index: tantivy needs the vector store metadata on disk, not in memory")
    return TantivyKeywords(db, Path(file + ".keywords"))
