"""One sqlite connection shared by the event loop's worker threads: each call runs in a thread under a
lock, so the loop never waits on disk and the connection is never used by two threads at once."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class SqliteDB:
    """A WAL-mode sqlite file for async code: ``await db.execute(sql, args)`` or ``await db.run(fn)``."""

    def __init__(self, path: str | Path, synchronous: str = "NORMAL") -> None:
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute(f"PRAGMA synchronous={synchronous}")

    def run_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            return fn(self.conn)

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`fn(connection)` in a worker thread, alone on the connection."""
        return await asyncio.to_thread(self.run_sync, fn)

    async def execute(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return await self.run(lambda conn: conn.execute(sql, args).fetchall())

    async def close(self) -> None:
        await self.run(lambda conn: conn.close())
