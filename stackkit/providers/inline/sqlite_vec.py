"""inline::sqlite-vec — vector stores in one sqlite file: sqlite-vec's vec0 tables for vectors,
FTS5 for keyword search, WAL journaling. Vectors and chunks commit in the same transaction.

This Python's own sqlite3 may not load extensions; pysqlite3-binary (in the `sqlite-vec` extra)
is used when it cannot.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from stackkit.apis.datatypes import Api
from stackkit.errors import MissingPackageError
from stackkit.providers.utils.vector_meta import sqlite_connection
from stackkit.providers.utils.vector_stores import VectorStoreConfigBase, VectorStoreService

_SAFE = re.compile(r"^[A-Za-z0-9_]+$")


class SqliteVecConfig(VectorStoreConfigBase):
    db_path: str = Field(description="the sqlite database file")

    @classmethod
    def sample_run_config(cls, **kwargs: Any) -> dict[str, Any]:
        return {"db_path": "${env.STACKKIT_HOME:=~/.stackkit}/starter/sqlite_vec.db"}


def connect(path: Path) -> Any:
    """A sqlite connection with sqlite-vec loaded."""
    try:
        import sqlite_vec
    except ImportError as exc:
        raise MissingPackageError("sqlite-vec", "sqlite-vec") from exc
    module: Any = sqlite3
    if not hasattr(sqlite3.Connection, "enable_load_extension"):
        try:
            from pysqlite3 import dbapi2
        except ImportError as exc:
            raise MissingPackageError("pysqlite3-binary", "sqlite-vec") from exc
        module = dbapi2
    db = module.connect(str(path), check_same_thread=False)
    db.enable_load_extension(True)
    sqlite_vec.load(db)
    db.enable_load_extension(False)
    return db


class SqliteVecIndex:
    def __init__(self, db: Any) -> None:
        self.db = db

    @staticmethod
    def _table(store_id: str) -> str:
        if not _SAFE.match(store_id):
            raise ValueError(f"unsafe vector store id {store_id!r}")
        return f"vec_{store_id}"

    def create(self, store_id: str, dimension: int) -> None:
        self.db.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {self._table(store_id)} USING "
                        f"vec0(embedding float[{dimension}] distance_metric=cosine)")

    def drop(self, store_id: str) -> None:
        self.db.execute(f"DROP TABLE IF EXISTS {self._table(store_id)}")
        self.db.commit()

    def add(self, store_id: str, ids: list[int], vectors: np.ndarray) -> None:
        rows = [(i, np.ascontiguousarray(v, dtype=np.float32).tobytes()) for i, v in zip(ids, vectors, strict=True)]
        self.db.executemany(f"INSERT INTO {self._table(store_id)} (rowid, embedding) VALUES (?, ?)", rows)

    def remove(self, store_id: str, ids: list[int]) -> None:
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            self.db.execute(f"DELETE FROM {self._table(store_id)} WHERE rowid IN ({','.join('?' * len(part))})",
                            part)

    def search(self, store_id: str, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        rows = self.db.execute(f"SELECT rowid, distance FROM {self._table(store_id)} WHERE embedding MATCH ? "
                               "AND k = ? ORDER BY distance",
                               (np.asarray(vector, dtype=np.float32).tobytes(), min(k, 4096))).fetchall()
        return [(int(r[0]), 1.0 - float(r[1])) for r in rows]

    def close(self) -> None:
        return None


async def create(config: SqliteVecConfig, deps: dict[Api, Any]) -> VectorStoreService:
    path = Path(config.db_path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    db = connect(path)
    service = VectorStoreService(config, sqlite_connection(db), lambda: SqliteVecIndex(db), deps[Api.inference],
                                 deps.get(Api.files))
    return service
