"""inline::faiss — vector stores on FAISS (exact inner product on normalized vectors, or HNSW).

Persistence is one append-only log per store (`<store>.vlog`): fixed-size records of an int64 chunk
row id followed by its float32 vector, so an id can never be paired with another record's vector.
A record is fsynced before the sqlite transaction that commits its chunk, so every committed chunk's
vector is durable. Opening a store recovers the longest consistent state from whatever a crash left:

* a torn tail (a size that is not a whole number of records) is cut off;
* records whose chunk never committed (a crash between the append and the commit) are dropped;
* when an id appears twice (sqlite can hand out a rolled-back id again), the later record wins.

Then, if anything was dropped, the log is compacted: written whole to a temporary file, fsynced,
renamed over the log in one step and the directory fsynced, so a crash mid-compaction leaves either
the old log or the new one. Deleted vectors stay in the log until more than half of it is dead.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from stackkit.apis.datatypes import Api
from stackkit.errors import MissingPackageError
from stackkit.providers.utils.vector_meta import sqlite_connection
from stackkit.providers.utils.vector_stores import VectorStoreConfigBase, VectorStoreService


class FaissConfig(VectorStoreConfigBase):
    storage_dir: str = Field(description="where the sqlite metadata and the vector logs live")
    omp_threads: int = Field(default=1, ge=1, description="FAISS threads per search (one query per search "
                                                            "here: more threads contend and slow it down)")
    index: Literal["flat", "hnsw"] = Field(default="flat", description="flat: exact search; hnsw: approximate, "
                                           "~4x faster at 100k, slower inserts, lower recall (bench/README.md)")
    hnsw_m: int = Field(default=32, ge=4, le=128, description="HNSW links per vector")
    hnsw_ef_search: int = Field(default=128, ge=8, description="HNSW candidates per search (recall vs speed)")

    @classmethod
    def sample_run_config(cls, **kwargs: Any) -> dict[str, Any]:
        return {"storage_dir": "${env.STACKKIT_HOME:=~/.stackkit}/starter/faiss"}


def record_dtype(dim: int) -> np.dtype[Any]:
    return np.dtype([("id", "<i8"), ("vec", "<f4", (dim,))])


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FaissIndex:
    """The VectorIndex of inline::faiss: one FAISS index and one record log per store."""

    def __init__(self, root: Path, db: Any, config: FaissConfig) -> None:
        try:
            import faiss
        except ImportError as exc:
            raise MissingPackageError("faiss-cpu", "faiss") from exc
        self.faiss = faiss
        self.config = config
        self.root = root
        self.db = db
        self.indexes: dict[str, Any] = {}
        self.dims: dict[str, int] = {}
        self.dead: dict[str, int] = {}
        for store_id, dim in db.execute("SELECT id, embedding_dimension FROM stores").fetchall():
            self._load(store_id, int(dim))

    def _log(self, store_id: str) -> Path:
        return self.root / f"{store_id}.vlog"

    def _new_index(self, dim: int) -> Any:
        if self.config.index == "hnsw":
            inner = self.faiss.IndexHNSWFlat(dim, self.config.hnsw_m, self.faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efSearch = self.config.hnsw_ef_search
            return self.faiss.IndexIDMap2(inner)
        return self.faiss.IndexIDMap2(self.faiss.IndexFlatIP(dim))

    def _read_log(self, store_id: str, dim: int) -> tuple[np.ndarray, bool]:
        """The log's whole records (memory-mapped), and whether a torn tail was cut off."""
        path = self._log(store_id)
        dtype = record_dtype(dim)
        size = path.stat().st_size if path.exists() else 0
        whole = size // dtype.itemsize
        if whole == 0:
            return np.empty(0, dtype), size > 0
        return np.memmap(path, dtype=dtype, mode="r", shape=(whole,)), size != whole * dtype.itemsize

    def _upgrade(self, store_id: str, dim: int) -> None:
        """Stores written by stackkit 0.1's two parallel logs (`.ids`, `.f32`) become one record log."""
        ids_path, vec_path = self.root / f"{store_id}.ids", self.root / f"{store_id}.f32"
        if self._log(store_id).exists() or not ids_path.exists():
            return
        ids = np.fromfile(ids_path, dtype="<i8")
        vectors = np.fromfile(vec_path, dtype="<f4") if vec_path.exists() else np.empty(0, "<f4")
        n = min(len(ids), len(vectors) // dim)
        rows = np.empty(n, record_dtype(dim))
        rows["id"], rows["vec"] = ids[:n], vectors[: n * dim].reshape(n, dim)
        tmp = self._log(store_id).with_suffix(".vlog.tmp")
        tmp.write_bytes(rows.tobytes())
        tmp.replace(self._log(store_id))
        _fsync_dir(self.root)
        ids_path.unlink()
        vec_path.unlink(missing_ok=True)

    def _load(self, store_id: str, dim: int) -> None:
        self._upgrade(store_id, dim)
        records, torn = self._read_log(store_id, dim)
        live = np.fromiter((r[0] for r in self.db.execute("SELECT id FROM chunks WHERE store_id = ?", (store_id,))),
                           dtype=np.int64)
        ids = records["id"]
        # the last record of each id wins; then keep only ids whose chunk committed
        _, last_from_end = np.unique(ids[::-1], return_index=True)
        keep = np.zeros(len(ids), dtype=bool)
        keep[len(ids) - 1 - last_from_end] = True
        keep &= np.isin(ids, live)
        index, start = self._saved_graph(store_id, ids, keep), 0
        if index is not None:  # a saved HNSW graph covers the log's first records: add only the rest
            start = index.ntotal
        else:
            index = self._new_index(dim)
        tail = keep[start:]
        if tail.all():
            if len(ids) > start:
                index.add_with_ids(np.ascontiguousarray(records["vec"][start:]), np.ascontiguousarray(ids[start:]))
        elif tail.any():
            index.add_with_ids(np.ascontiguousarray(records["vec"][start:][tail]),
                               np.ascontiguousarray(ids[start:][tail]))
        self.indexes[store_id], self.dims[store_id], self.dead[store_id] = index, dim, 0
        del records
        if torn or not keep.all():
            self._compact(store_id)  # what a crash left is gone before anything is appended
        elif self.config.index == "hnsw" and start < len(ids):
            self._save_graph(store_id)

    def _graph(self, store_id: str) -> Path:
        return self.root / f"{store_id}.hnsw"

    def _saved_graph(self, store_id: str, ids: np.ndarray, keep: np.ndarray) -> Any:
        """The saved HNSW graph, if it is exactly the kept records at the head of the log (else None)."""
        path = self._graph(store_id)
        if self.config.index != "hnsw" or not path.exists():
            return None
        try:
            index: Any = self.faiss.read_index(str(path))
        except RuntimeError:
            return None
        n = index.ntotal
        graph_ids = self.faiss.vector_to_array(index.id_map)
        if n > len(ids) or not keep[:n].all() or not np.array_equal(graph_ids, ids[:n]):
            return None  # the log moved on in a way the graph cannot follow: rebuild
        inner: Any = self.faiss.downcast_index(index.index)
        inner.hnsw.efSearch = self.config.hnsw_ef_search
        return index

    def _save_graph(self, store_id: str) -> None:
        """Keep the HNSW graph beside the log (atomically), so opening the store does not rebuild it."""
        tmp = self._graph(store_id).with_suffix(".hnsw.tmp")
        self.faiss.write_index(self.indexes[store_id], str(tmp))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        tmp.replace(self._graph(store_id))

    def create(self, store_id: str, dimension: int) -> None:
        self.indexes[store_id] = self._new_index(dimension)
        self.dims[store_id], self.dead[store_id] = dimension, 0
        self._log(store_id).touch()

    def drop(self, store_id: str) -> None:
        self.indexes.pop(store_id, None)
        self._log(store_id).unlink(missing_ok=True)
        self._graph(store_id).unlink(missing_ok=True)

    def add(self, store_id: str, ids: list[int], vectors: np.ndarray) -> None:
        rows = np.empty(len(ids), record_dtype(self.dims[store_id]))
        rows["id"], rows["vec"] = ids, vectors
        with open(self._log(store_id), "ab") as log:
            log.write(rows.tobytes())
            log.flush()
            os.fsync(log.fileno())
        self.indexes[store_id].add_with_ids(np.ascontiguousarray(rows["vec"]), np.asarray(ids, dtype=np.int64))

    def remove(self, store_id: str, ids: list[int]) -> None:
        if not ids or store_id not in self.indexes:
            return
        index = self.indexes[store_id]
        if self.config.index == "hnsw":  # HNSW cannot delete: rebuild from the surviving records
            self.dead[store_id] += len(ids)
            self._rebuild_without(store_id, set(ids))
            return
        index.remove_ids(np.asarray(ids, dtype=np.int64))
        self.dead[store_id] += len(ids)
        if self.dead[store_id] > max(1000, index.ntotal):
            self._compact(store_id)

    def _rebuild_without(self, store_id: str, gone: set[int]) -> None:
        old = self.indexes[store_id]
        ids = self.faiss.vector_to_array(old.id_map).astype("<i8")
        vectors = old.index.reconstruct_n(0, old.ntotal) if len(ids) else np.empty((0, self.dims[store_id]))
        keep = ~np.isin(ids, np.fromiter(gone, dtype=np.int64))
        index = self._new_index(self.dims[store_id])
        if keep.any():
            index.add_with_ids(np.ascontiguousarray(vectors[keep], dtype="<f4"), ids[keep])
        self.indexes[store_id] = index
        if self.dead[store_id] > max(1000, index.ntotal):
            self._compact(store_id)

    def _compact(self, store_id: str) -> None:
        """Rewrite the log as exactly the index's records, atomically."""
        index, dim = self.indexes[store_id], self.dims[store_id]
        ids = self.faiss.vector_to_array(index.id_map).astype("<i8")
        rows = np.empty(len(ids), record_dtype(dim))
        if len(ids):
            rows["id"], rows["vec"] = ids, index.index.reconstruct_n(0, index.ntotal)
        log = self._log(store_id)
        tmp = log.with_suffix(".vlog.tmp")
        with open(tmp, "wb") as out:
            out.write(rows.tobytes())
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(log)
        _fsync_dir(self.root)
        self.dead[store_id] = 0
        if self.config.index == "hnsw":
            self._save_graph(store_id)

    def search(self, store_id: str, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        self.faiss.omp_set_num_threads(self.config.omp_threads)  # per thread: searches run in worker threads
        index = self.indexes[store_id]
        if index.ntotal == 0:
            return []
        scores, ids = index.search(np.asarray(vector, dtype=np.float32)[None, :], min(k, index.ntotal))
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i != -1]

    def close(self) -> None:
        if self.config.index == "hnsw":
            for store_id in self.indexes:
                self._save_graph(store_id)
        self.indexes.clear()


async def create(config: FaissConfig, deps: dict[Api, Any]) -> VectorStoreService:
    import sqlite3

    root = Path(config.storage_dir).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(root / "vector_stores.db", check_same_thread=False)
    return VectorStoreService(config, sqlite_connection(db), lambda: FaissIndex(root, db, config), deps[Api.inference],
                              deps.get(Api.files))
