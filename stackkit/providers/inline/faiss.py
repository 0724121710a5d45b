"""inline::faiss — vector stores on FAISS (exact inner-product search on normalized vectors).

Persistence is incremental: each store's vectors go to an append-only log (`<store>.vec`: int64 id +
float32 vector per record), fsynced before the chunks that own them are committed in sqlite, so an
insert or delete never rewrites the index. Reopening reads the log and keeps the ids whose chunks
exist (a crash can leave orphan vectors; they are dropped here). Deleted vectors stay in the log
until more than half of it is dead, then it is compacted.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from stackkit.apis.datatypes import Api
from stackkit.errors import MissingPackageError
from stackkit.providers.utils.vector_stores import VectorStoreConfigBase, VectorStoreService


class FaissConfig(VectorStoreConfigBase):
    storage_dir: str = Field(description="where the sqlite metadata and the vector logs live")

    @classmethod
    def sample_run_config(cls, **kwargs: Any) -> dict[str, Any]:
        return {"storage_dir": "${env.STACKKIT_STATE_DIR:=~/.stackkit/starter}/faiss"}


class FaissIndex:
    def __init__(self, root: Path, db: Any) -> None:
        try:
            import faiss
        except ImportError as exc:
            raise MissingPackageError("faiss-cpu", "faiss") from exc
        self.faiss = faiss
        self.root = root
        self.db = db
        self.indexes: dict[str, Any] = {}
        self.dims: dict[str, int] = {}
        self.dead: dict[str, int] = {}
        for store_id, dim in db.execute("SELECT id, embedding_dimension FROM stores").fetchall():
            self._load(store_id, int(dim))

    def _log(self, store_id: str) -> Path:
        return self.root / f"{store_id}.vec"

    def _record(self, dim: int) -> np.dtype[Any]:
        return np.dtype([("id", "<i8"), ("v", "<f4", (dim,))])

    def _load(self, store_id: str, dim: int) -> None:
        index = self.faiss.IndexIDMap2(self.faiss.IndexFlatIP(dim))
        path = self._log(store_id)
        records = np.fromfile(path, dtype=self._record(dim)) if path.exists() else np.empty(0, self._record(dim))
        live = {r[0] for r in self.db.execute("SELECT id FROM chunks WHERE store_id = ?", (store_id,))}
        keep = np.fromiter((i in live for i in records["id"]), dtype=bool, count=len(records))
        if keep.any():
            index.add_with_ids(np.ascontiguousarray(records["v"][keep]), records["id"][keep])
        self.indexes[store_id], self.dims[store_id] = index, dim
        self.dead[store_id] = int(len(records) - keep.sum())

    def create(self, store_id: str, dimension: int) -> None:
        self.indexes[store_id] = self.faiss.IndexIDMap2(self.faiss.IndexFlatIP(dimension))
        self.dims[store_id], self.dead[store_id] = dimension, 0
        self._log(store_id).touch()

    def drop(self, store_id: str) -> None:
        self.indexes.pop(store_id, None)
        self._log(store_id).unlink(missing_ok=True)

    def add(self, store_id: str, ids: list[int], vectors: np.ndarray) -> None:
        records = np.empty(len(ids), dtype=self._record(self.dims[store_id]))
        records["id"], records["v"] = ids, vectors
        with open(self._log(store_id), "ab") as log:
            log.write(records.tobytes())
            log.flush()
            os.fsync(log.fileno())
        self.indexes[store_id].add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32),
                                            np.asarray(ids, dtype=np.int64))

    def remove(self, store_id: str, ids: list[int]) -> None:
        if not ids or store_id not in self.indexes:
            return
        index = self.indexes[store_id]
        index.remove_ids(np.asarray(ids, dtype=np.int64))
        self.dead[store_id] += len(ids)
        if self.dead[store_id] > max(1000, index.ntotal):
            self._compact(store_id)

    def _compact(self, store_id: str) -> None:
        index = self.indexes[store_id]
        ids = self.faiss.vector_to_array(index.id_map).astype(np.int64)
        records = np.empty(len(ids), dtype=self._record(self.dims[store_id]))
        records["id"] = ids
        records["v"] = index.index.reconstruct_n(0, index.ntotal) if len(ids) else records["v"]
        tmp = self._log(store_id).with_suffix(".tmp")
        with open(tmp, "wb") as out:
            out.write(records.tobytes())
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(self._log(store_id))
        self.dead[store_id] = 0

    def search(self, store_id: str, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        index = self.indexes[store_id]
        if index.ntotal == 0:
            return []
        scores, ids = index.search(np.asarray(vector, dtype=np.float32)[None, :], min(k, index.ntotal))
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i != -1]

    def close(self) -> None:
        self.indexes.clear()


async def create(config: FaissConfig, deps: dict[Api, Any]) -> VectorStoreService:
    root = Path(config.storage_dir).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(root / "vector_stores.db", check_same_thread=False)
    service = VectorStoreService(config, db, lambda: FaissIndex(root, db), deps[Api.inference], deps.get(Api.files))
    return service
