"""Key-value stores (a small Protocol: sqlite as the embedded default, PostgreSQL or Redis for replicas,
memory for tests), and where each of the stack's stores lives.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import orjson
from sqlalchemy import Column, MetaData, String, Table, Text, func, select

from stackkit.core.config import RunConfig, StorageBackend, default_state_dir
from stackkit.core.sql import AlchemyStore, postgres_url, sqlite_url
from stackkit.errors import MissingPackageError, StateInUseError

_KV_TABLES = MetaData()
KV = Table("kv", _KV_TABLES, Column("key", String, primary_key=True), Column("value", Text, nullable=False))


@runtime_checkable
class KVStore(Protocol):
    async def get(self, key: str) -> str | None: ...
    async def set(self, key: str, value: str) -> None: ...
    async def delete(self, key: str) -> None: ...
    async def range(self, prefix: str) -> list[tuple[str, str]]:
        """Every (key, value) whose key starts with `prefix`, in key order."""
        ...

    async def close(self) -> None: ...


class MemoryKVStore:
    def __init__(self) -> None:
        self._data: dict[str, str] = {}

    async def get(self, key: str) -> str | None:
        return self._data.get(key)

    async def set(self, key: str, value: str) -> None:
        self._data[key] = value

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)

    async def range(self, prefix: str) -> list[tuple[str, str]]:
        return sorted((k, v) for k, v in self._data.items() if k.startswith(prefix))

    async def close(self) -> None:
        return None


class SqlKVStore:
    """One table of (key, value) in a SQL store (a sqlite file, or PostgreSQL shared by replicas),
    namespaced by a key prefix."""

    def __init__(self, db: AlchemyStore, namespace: str = "") -> None:
        self._ns = f"{namespace}:" if namespace else ""
        self._db = db
        self.shared = db.shared
        self._ready = False

    async def _table(self) -> Table:
        if not self._ready:
            await self._db.create(_KV_TABLES)
            self._ready = True
        return KV

    async def get(self, key: str) -> str | None:
        kv = await self._table()
        rows = await self._db.fetch(select(kv.c.value).where(kv.c.key == self._ns + key))
        return str(rows[0][0]) if rows else None

    async def set(self, key: str, value: str) -> None:
        kv = await self._table()
        await self._db.put(kv, {"key": self._ns + key, "value": value}, ["key"])

    async def delete(self, key: str) -> None:
        kv = await self._table()
        await self._db.execute(kv.delete().where(kv.c.key == self._ns + key))

    async def range(self, prefix: str) -> list[tuple[str, str]]:
        kv = await self._table()
        start = self._ns + prefix
        # substr, not LIKE (case-blind in sqlite) or a range (collation-dependent in PostgreSQL)
        query = select(kv.c.key, kv.c.value).where(func.substr(kv.c.key, 1, len(start)) == start)
        cut = len(self._ns)
        return sorted((k[cut:], v) for k, v in await self._db.fetch(query))

    async def close(self) -> None:
        await self._db.close()


class RedisKVStore:
    """Keys in Redis (shared by every replica that names the same server), namespaced by a key prefix;
    `range` walks the namespace with SCAN, so it is for the registry's few keys, not bulk data."""

    def __init__(self, url: str, namespace: str = "") -> None:
        try:
            import redis.asyncio as aioredis
        except ImportError as exc:
            raise MissingPackageError("redis", "redis") from exc
        self._ns = f"stackkit:{namespace}:" if namespace else "stackkit:"
        self._redis = aioredis.Redis.from_url(url, decode_responses=True)
        self.shared = True

    async def get(self, key: str) -> str | None:
        value = await self._redis.get(self._ns + key)
        return str(value) if value is not None else None

    async def set(self, key: str, value: str) -> None:
        await self._redis.set(self._ns + key, value)

    async def delete(self, key: str) -> None:
        await self._redis.delete(self._ns + key)

    async def range(self, prefix: str) -> list[tuple[str, str]]:
        pattern = re.sub(r"([\\*?\[\]])", r"\\\1", self._ns + prefix) + "*"  # the prefix, glob-escaped
        keys = sorted([k async for k in self._redis.scan_iter(match=pattern, count=500)])
        values = await self._redis.mget(keys) if keys else []
        cut = len(self._ns)
        return [(k[cut:], str(v)) for k, v in zip(keys, values, strict=True) if v is not None]

    async def close(self) -> None:
        await self._redis.aclose()


class StateLock:
    """One writer per state directory: an exclusive lock on ``<dir>/stackkit.lock`` for the process's
    lifetime (released by the OS if the process dies), recording who holds it and where it serves."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "stackkit.lock"
        self._file: Any = None

    def acquire(self) -> None:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = _holder(handle.read())
            handle.close()
            raise StateInUseError(
                f"The state directory {self.path.parent} is in use by another stackkit process ({holder}). "
                "Talk to it instead of opening the same state twice (e.g. `stackkit ingest --base-url "
                f"{_url_hint(holder)} ...`, or OpenAI(base_url=...)), or stop it first.") from None
        self._file = handle
        self.announce(None)

    def announce(self, url: str | None) -> None:
        """Record this process (and the URL it serves at) for the error a second process gets."""
        if self._file is not None:
            self._file.seek(0)
            self._file.truncate()
            self._file.write(orjson.dumps({"pid": os.getpid(), "url": url}).decode())
            self._file.flush()

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _holder(text: str) -> str:
    try:
        info = orjson.loads(text)
    except orjson.JSONDecodeError:
        return "unknown pid"
    url = info.get("url")
    return f"pid {info.get('pid')}" + (f", serving {url}" if url else ", in-process")


def _url_hint(holder: str) -> str:
    return holder.split("serving ", 1)[1] if "serving " in holder else "http://127.0.0.1:8321/v1"


def state_dir(config: RunConfig) -> Path | None:
    """The directory holding the stack's sqlite registry, where its other sqlite stores live too (None when
    the registry is in memory or on a server: then no local state is kept)."""
    backend = _backend(config, "registry")
    if backend.type != "sqlite":
        return None
    path = Path(backend.db_path).expanduser() if backend.db_path else default_state_dir(config.distro_name) / "x"
    return path.parent


def state_lock(config: RunConfig) -> StateLock | None:
    """The lock of the stack's state directory (none for an in-memory or server-backed stack)."""
    directory = state_dir(config)
    return StateLock(directory) if directory is not None else None


def sql_backend(config: RunConfig, name: str) -> tuple[str, StorageBackend] | None:
    """The store and backend holding the SQL store `name`: `storage.stores.<name>`, else `.sql`, else the
    registry's PostgreSQL; None for the default (sqlite files in the state directory)."""
    store = next((s for s in (name, "sql") if s in config.storage.stores), None)
    if store is not None:
        return store, _backend(config, store)
    registry = _backend(config, "registry")
    if registry.type == "postgres":
        return "registry", registry
    if registry.type == "redis":  # no SQL there, and no state directory either
        raise config.error("the registry is on Redis, which holds no SQL tables: set storage.stores.sql to a "
                           "postgres (or sqlite) backend for responses, conversations and the other tables, or "
                           "they would live only in this process's memory", "storage", "stores")
    return None


def check_storage(config: RunConfig) -> None:
    """Raise the config error a store layout would meet at start, before anything is opened."""
    sql_backend(config, "sql")


def open_sqldb(config: RunConfig, name: str) -> AlchemyStore:
    """The SQL store `name`: on the backend `storage.stores.<name>` (or `.sql`) names, else on the registry's
    PostgreSQL, else a sqlite file `<name>.db` in the state directory (in memory for an in-memory stack)."""
    found = sql_backend(config, name)
    if found is None:
        directory = state_dir(config)
        return AlchemyStore(sqlite_url(directory / f"{name}.db" if directory is not None else None))
    store, backend = found
    if backend.type == "postgres":
        return AlchemyStore(postgres_url(_url(config, store, backend)))
    if backend.type == "sqlite":
        path = Path(backend.db_path).expanduser().parent if backend.db_path else default_state_dir(config.distro_name)
        return AlchemyStore(sqlite_url(path / f"{name}.db"))
    if backend.type == "memory":
        return AlchemyStore(sqlite_url(None))
    raise config.error(f"store '{store}' holds SQL tables; give it a sqlite, postgres or memory backend, not "
                       f"{backend.type}", "storage", "stores", store)


def open_kvstore(config: RunConfig, store: str = "registry") -> KVStore:
    """The KV store named `store` in config.storage (sqlite under the state dir by default)."""
    backend = _backend(config, store)
    if backend.type == "memory":
        return MemoryKVStore()
    if backend.type == "sqlite":
        path = backend.db_path or str(default_state_dir(config.distro_name) / "kvstore.db")
        return SqlKVStore(AlchemyStore(sqlite_url(path)), namespace=store)
    if backend.type == "postgres":
        return SqlKVStore(AlchemyStore(postgres_url(_url(config, store, backend))), namespace=store)
    if backend.type == "redis":
        return RedisKVStore(_url(config, store, backend), namespace=store)
    raise config.error(f"unknown storage backend type '{backend.type}'; use sqlite, memory, postgres or redis",
                       "storage", "backends")


def _backend(config: RunConfig, store: str) -> StorageBackend:
    backend_name = config.storage.stores.get(store)
    if backend_name is None:
        return StorageBackend(type="sqlite")
    if backend_name not in config.storage.backends:
        known = ", ".join(config.storage.backends) or "none"
        raise config.error(
            f"store '{store}' uses backend '{backend_name}', which is not defined under storage.backends "
            f"(defined: {known}); add it or fix the name", "storage", "stores", store)
    return config.storage.backends[backend_name]


def _url(config: RunConfig, store: str, backend: StorageBackend) -> str:
    if not backend.url:
        raise config.error(f"the {backend.type} backend of store '{store}' has no url; set url (e.g. "
                           f"{'postgresql://user:pass@host:5432/db' if backend.type == 'postgres' else 'redis://host:6379/0'})",
                           "storage", "backends")
    return backend.url
