"""inline::faiss — vector stores on FAISS (exact inner-product search on normalized vectors).

Persistence is incremental: each store's vectors go to an append-only log (`<store>.f32`: float32
rows, and `<store>.ids`: their int64 ids, in the same order), fsynced before the chunks that own them
are committed in sqlite, so an insert or delete never rewrites the index. Reopening reads the log
and keeps the ids whose chunks exist (a crash can leave orphan vectors; they are dropped here).
Deleted vectors stay in the log until more than half of it is dead, then it is compacted.
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
    omp_threads: int = Field(default=1, ge=1, description="FAISS threads per search (one query per search "
                                                            "here: more threads contend and slow it down)")

    @classmethod
    def sample_run_config(cls, **kwargs: Any) -> dict[str, Any]:
        return {"storage_dir": "${env.STACKKIT_STATE_DIR:=~/.stackkit/starter}/faiss"}


class FaissIndex:
    def __init__(self, root: Path, db: Any, omp_threads: int = 1) -> None:
        try:
            import faiss
        except ImportError as exc:
            raise MissingPackageError("faiss-cpu", "faiss") from exc
        self.faiss = faiss
        self.omp_threads = omp_threads
        self.root = root
        self.db = db
        self.indexes: dict[str, Any] = {}
        self.dims: dict[str, int] = {}
        self.dead: dict[str, int] = {}
        for store_id, dim in db.execute("SELECT id, embedding_dimension FROM stores").fetchall():
            self._load(store_id, int(dim))

    def _files(self, store_id: str) -> tuple[Path, Path]:
        return self.root / f"{store_id}.ids", self.root / f"{store_id}.f32"

    def _load(self, store_id: str, dim: int) -> None:
        index = self.faiss.IndexIDMap2(self.faiss.IndexFlatIP(dim))
        ids_path, vec_path = self._files(store_id)
        ids = np.fromfile(ids_path, dtype="<i8") if ids_path.exists() else np.empty(0, "<i8")
        # mapped, not read: FAISS copies the rows into its own storage, so one allocation instead of two
        has_rows = vec_path.exists() and vec_path.stat().st_size > 0
        vectors: np.ndarray = np.memmap(vec_path, dtype="<f4", mode="r") if has_rows else np.empty(0, "<f4")
        n = min(len(ids), len(vectors) // dim)  # a crash between the two appends leaves a partial tail
        ids, vectors = ids[:n], vectors[: n * dim].reshape(n, dim)
        rows = self.db.execute("SELECT id FROM chunks WHERE store_id = ?", (store_id,))
        live = np.fromiter((r[0] for r in rows), dtype=np.int64)
        keep = np.isin(ids, live)
        if keep.all():
            index.add_with_ids(vectors, ids)
        elif keep.any():
            index.add_with_ids(np.ascontiguousarray(vectors[keep]), ids[keep])
        self.indexes[store_id], self.dims[store_id] = index, dim
        self.dead[store_id] = int(n - keep.sum())

    def create(self, store_id: str, dimension: int) -> None:
        self.indexes[store_id] = self.faiss.IndexIDMap2(self.faiss.IndexFlatIP(dimension))
        self.dims[store_id], self.dead[store_id] = dimension, 0
        for path in self._files(store_id):
            path.touch()

    def drop(self, store_id: str) -> None:
        self.indexes.pop(store_id, None)
        for path in self._files(store_id):
            path.unlink(missing_ok=True)

    @staticmethod
    def _append(path: Path, data: bytes, mode: str = "ab") -> None:
        with open(path, mode) as log:
            log.write(data)
            log.flush()
            os.fsync(log.fileno())

    def add(self, store_id: str, ids: list[int], vectors: np.ndarray) -> None:
        ids_path, vec_path = self._files(store_id)
        rows = np.ascontiguousarray(vectors, dtype="<f4")
        self._append(vec_path, rows.tobytes())
        self._append(ids_path, np.asarray(ids, dtype="<i8").tobytes())
        self.indexes[store_id].add_with_ids(rows, np.asarray(ids, dtype=np.int64))

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
        ids = self.faiss.vector_to_array(index.id_map).astype("<i8")
        vectors = index.index.reconstruct_n(0, index.ntotal) if len(ids) else np.empty((0, self.dims[store_id]))
        ids_path, vec_path = self._files(store_id)
        rows = np.ascontiguousarray(vectors, dtype="<f4").tobytes()
        for path, data in ((vec_path, rows), (ids_path, ids.tobytes())):
            tmp = path.with_suffix(path.suffix + ".tmp")
            self._append(tmp, data, "wb")
            tmp.replace(path)
        self.dead[store_id] = 0

    def search(self, store_id: str, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        self.faiss.omp_set_num_threads(self.omp_threads)  # per thread: searches run in worker threads
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
    service = VectorStoreService(config, db, lambda: FaissIndex(root, db, config.omp_threads), deps[Api.inference],
                                 deps.get(Api.files))
    return service
