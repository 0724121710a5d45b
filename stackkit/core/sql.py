"""The SQL store behind stackkit's own tables (responses, conversations, stored completions, owners, file
records): SQLAlchemy 2 over sqlite (one file per store under the state directory) or PostgreSQL (psycopg 3,
one database that any number of replicas share), each call in a worker thread.

Each module declares its tables as SQLAlchemy Core `Table`s on a module `MetaData`; queries are Core expressions, so the
same code runs on both. The one statement the two dialects spell differently, an upsert, is `upsert()`
(`put()` on a store).
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, Engine, MetaData, Table, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.pool import QueuePool
from sqlalchemy.sql import Executable

from stackkit.errors import ConfigError, MissingPackageError

T = TypeVar("T")


class SqlStore(Protocol):
    """What a service needs from a SQL database: its tables created, statements run, transactions."""

    shared: bool

    async def create(self, tables: MetaData) -> None: ...
    async def fetch(self, statement: Executable) -> list[Any]: ...
    async def execute(self, statement: Executable, rows: Sequence[dict[str, Any]] | None = None) -> int: ...
    async def run(self, work: Callable[[Connection], T]) -> T: ...
    async def put(self, table: Table, row: dict[str, Any], keys: Sequence[str]) -> None: ...
    async def close(self) -> None: ...


class AlchemyStore:
    """A SqlStore on a SQLAlchemy engine whose calls run in worker threads, so the event loop never waits on
    the database. `shared` is true when other processes may write the same tables (PostgreSQL), so callers
    must not trust what they cached.

    Not SQLAlchemy's asyncio extension: its greenlets are tied to the thread that started them, and the
    synchronous LibraryClient runs its event loop on whichever thread calls it (core/loop_driver.py)."""

    def __init__(self, url: str, synchronous: str = "NORMAL") -> None:
        self.shared = url.startswith("postgresql")
        self.engine = _engine(url, synchronous)

    async def create(self, tables: MetaData) -> None:
        """Create the tables (and indexes) that do not exist yet."""
        def create(conn: Connection) -> None:
            lock_schema(conn)
            tables.create_all(conn)

        await self.run(create)

    async def fetch(self, statement: Executable) -> list[Any]:
        """The rows a query returns (SQLAlchemy Rows: tuples with attribute access by column name)."""
        return await self.run(lambda conn: list(conn.execute(statement).all()))

    async def execute(self, statement: Executable, rows: Sequence[dict[str, Any]] | None = None) -> int:
        """Run one statement in its own transaction (rows: many parameter sets at once); the rows it changed."""
        def work(conn: Connection) -> int:
            result = conn.execute(statement, list(rows)) if rows is not None else conn.execute(statement)
            return int(result.rowcount)

        return await self.run(work)

    async def run(self, work: Callable[[Connection], T]) -> T:
        """`work(connection)` in a worker thread, in one transaction: committed when it returns, rolled back
        if it raises."""
        def transaction() -> T:
            with self.engine.begin() as conn:
                return work(conn)

        return await asyncio.to_thread(transaction)

    async def put(self, table: Table, row: dict[str, Any], keys: Sequence[str]) -> None:
        """INSERT `row`, or UPDATE the row with the same `keys` (sqlite's INSERT OR REPLACE, in both dialects)."""
        statement = upsert("postgresql" if self.shared else "sqlite", table, tuple(row), tuple(keys))
        await self.execute(statement, [row])

    async def close(self) -> None:
        await asyncio.to_thread(self.engine.dispose)


@functools.lru_cache(maxsize=64)
def upsert(dialect: str, table: Table, columns: tuple[str, ...], keys: tuple[str, ...]) -> Executable:
    """INSERT of `columns` (bound by name), or UPDATE of the row with the same `keys`; built once per shape,
    so SQLAlchemy compiles it once."""
    insert = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    changed = {c: insert.excluded[c] for c in columns if c not in keys}
    if not changed:
        return insert.on_conflict_do_nothing(index_elements=list(keys))
    return insert.on_conflict_do_update(index_elements=list(keys), set_=changed)


def lock_schema(conn: Connection) -> None:
    """On PostgreSQL, wait for the schema lock until the transaction ends: replicas starting together on an
    empty database would otherwise race to create the same tables (CREATE ... IF NOT EXISTS is not atomic)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(7250313)"))


def sqlite_url(path: str | Path | None) -> str:
    """The SQLAlchemy URL of a sqlite file; None gives a private in-memory database."""
    if path is None:
        return f"sqlite:///file:stackkit-{uuid.uuid4().hex}?mode=memory&cache=shared&uri=true"
    file = Path(path).expanduser()
    file.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{file}"


def postgres_url(url: str) -> str:
    """`postgresql://...` as SQLAlchemy's psycopg URL (other postgres URL spellings accepted too)."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    raise ConfigError(f"'{url[:60]}' is not a PostgreSQL URL; use postgresql://user:password@host:port/database")


def _engine(url: str, synchronous: str) -> Engine:
    if url.startswith("postgresql"):
        if importlib.util.find_spec("psycopg") is None:
            raise MissingPackageError("psycopg", "postgres")
        return create_engine(url, pool_size=8, max_overflow=8, pool_pre_ping=True)
    # one connection, like one writer: sqlite serializes writers anyway, and this never sees SQLITE_BUSY
    engine = create_engine(url, poolclass=QueuePool, pool_size=1, max_overflow=0, pool_timeout=600,
                           connect_args={"check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        if "mode=memory" not in url:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    return engine
