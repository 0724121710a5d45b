"""Key-value stores: a small Protocol, sqlite (WAL) as the embedded default, memory for tests.

sqlite work runs in a worker thread (core/sqlite.py) so the event loop never blocks on disk.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import orjson

from stackkit.core.config import RunConfig, StorageBackend, default_state_dir
from stackkit.core.sqlite import SqliteDB
from stackkit.errors import StateInUseError


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


class SqliteKVStore:
    """One table of (key, value) in a WAL-mode sqlite file, namespaced by a key prefix."""

    def __init__(self, path: str | Path, namespace: str = "") -> None:
        self._ns = f"{namespace}:" if namespace else ""
        self._db = SqliteDB(path)
        schema = "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
        self._db.run_sync(lambda conn: conn.execute(schema))

    async def get(self, key: str) -> str | None:
        rows = await self._db.execute("SELECT value FROM kv WHERE key = ?", (self._ns + key,))
        return str(rows[0][0]) if rows else None

    async def set(self, key: str, value: str) -> None:
        sql = "INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"
        await self._db.execute(sql, (self._ns + key, value))

    async def delete(self, key: str) -> None:
        await self._db.execute("DELETE FROM kv WHERE key = ?", (self._ns + key,))

    async def range(self, prefix: str) -> list[tuple[str, str]]:
        start = self._ns + prefix
        sql = "SELECT key, value FROM kv WHERE key >= ? AND key < ? ORDER BY key"
        rows = await self._db.execute(sql, (start, start + "\U0010ffff"))
        cut = len(self._ns)
        return [(k[cut:], v) for k, v in rows]

    async def close(self) -> None:
        await self._db.close()


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
    """The directory holding the stack's sqlite registry, where its other stores live too (None when the
    registry is in memory: then so is everything else the stack keeps)."""
    backend_name = config.storage.stores.get("registry")
    backend = config.storage.backends.get(backend_name) if backend_name else StorageBackend(type="sqlite")
    if backend is None or backend.type != "sqlite":
        return None
    path = Path(backend.db_path).expanduser() if backend.db_path else default_state_dir(config.distro_name) / "x"
    return path.parent


def state_lock(config: RunConfig) -> StateLock | None:
    """The lock of the stack's state directory (none for an in-memory stack)."""
    directory = state_dir(config)
    return StateLock(directory) if directory is not None else None


def open_sqldb(config: RunConfig, name: str) -> SqliteDB:
    """The SQL store `name` (a sqlite file in the state directory, or in memory for an in-memory stack)."""
    directory = state_dir(config)
    return SqliteDB(directory / f"{name}.db" if directory is not None else ":memory:")


def open_kvstore(config: RunConfig, store: str = "registry") -> KVStore:
    """The KV store named `store` in config.storage (sqlite under the state dir by default)."""
    backend_name = config.storage.stores.get(store)
    if backend_name is None:
        backend = StorageBackend(type="sqlite")
    elif backend_name in config.storage.backends:
        backend = config.storage.backends[backend_name]
    else:
        known = ", ".join(config.storage.backends) or "none"
        raise config.error(
            f"store '{store}' uses backend '{backend_name}', which is not defined under storage.backends "
            f"(defined: {known}); add it or fix the name",
            "storage",
            "stores",
            store,
        )
    if backend.type == "memory":
        return MemoryKVStore()
    if backend.type == "sqlite":
        path = backend.db_path or str(default_state_dir(config.distro_name) / "kvstore.db")
        return SqliteKVStore(path, namespace=store)
    raise config.error(
        f"unknown storage backend type '{backend.type}'; use 'sqlite' or 'memory'", "storage", "backends"
    )
