"""OpenAI vector stores on any vector index: what faiss, sqlite-vec and Chroma providers share.

Chunk text, metadata, files and batches live in sqlite (vector_meta.py), keywords in FTS5 or tantivy
(keywords.py);
vectors live in the provider's `VectorIndex`. Crash safety comes from the order of writes: a file's
vectors are durable in the index before the sqlite transaction that adds its chunks and marks it
`completed` commits, and search only returns vectors whose chunk row exists. A file still
`in_progress` when the process stops is ingested again at the next start.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Literal, Protocol, TypeVar

import numpy as np
from pydantic import Field
from sqlalchemy import Connection

from stackkit.apis.datatypes import DeleteResponse, ProviderConfigBase
from stackkit.apis.files import FileIdRequest
from stackkit.apis.inference import EmbeddingRequest
from stackkit.apis.vector_io import (
    AttachFileRequest,
    Chunk,
    CreateFileBatchRequest,
    CreateVectorStoreRequest,
    FileBatch,
    FileBatchRequest,
    FileContentPart,
    FileCounts,
    InsertChunksRequest,
    InsertChunksResponse,
    ListFileBatchFilesRequest,
    ListVectorStoreFilesRequest,
    ListVectorStoresRequest,
    QueryChunksRequest,
    QueryChunksResponse,
    SearchResult,
    SearchResultContent,
    SearchResultsPage,
    SearchVectorStoreRequest,
    UpdateVectorStoreFileRequest,
    UpdateVectorStoreRequest,
    VectorStore,
    VectorStoreFile,
    VectorStoreFileContent,
    VectorStoreFileList,
    VectorStoreFileRequest,
    VectorStoreIdRequest,
    VectorStoreList,
)
from stackkit.errors import ConflictError, InvalidRequestError, NotFoundError, StackkitError
from stackkit.providers.utils.filters import matches
from stackkit.providers.utils.ingest import FileError, chunk_text, chunking_settings, extract_text
from stackkit.providers.utils.vector_meta import VectorMeta

log = logging.getLogger("stackkit.vector_stores")
T = TypeVar("T")
RRF_K = 60
RESUME_EVERY_S = 10.0


class VectorIndex(Protocol):
    """A provider's vectors, per store. Called from one worker thread at a time."""

    def create(self, store_id: str, dimension: int) -> None: ...
    def drop(self, store_id: str) -> None: ...
    def add(self, store_id: str, ids: list[int], vectors: np.ndarray) -> None:
        """Store vectors (L2-normalized rows) under chunk row ids; durable when it returns."""
        ...

    def remove(self, store_id: str, ids: list[int]) -> None: ...
    def search(self, store_id: str, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The k nearest (row id, cosine similarity), best first."""
        ...

    def close(self) -> None: ...


class VectorStoreConfigBase(ProviderConfigBase):
    embedding_model: str = Field(default="all-MiniLM-L6-v2", description="the default embedding model id")
    embedding_dimension: int | None = Field(default=None, description="found by embedding a probe when unset")
    embedding_batch_size: int = Field(default=128, ge=1)
    keyword_index: Literal["fts5", "tantivy"] = Field(
        default="fts5", description="BM25 for keyword and hybrid search: fts5 (sqlite, no extra package; ~100 ms "
        "for common words at 100k chunks) or tantivy (pip extra `search`; ~2 ms at 100k)")
    max_concurrent_ingestions: int = Field(default=16, ge=1, description="files chunked and embedded at once "
                                           "(their embedding calls are batched together by the model)")


def _page(items: list[T], key: Callable[[T], tuple[int, str]], ident: Callable[[T], str], order: str,
          after: str | None, before: str | None, limit: int) -> tuple[list[T], bool]:
    items = sorted(items, key=key, reverse=order == "desc")
    ids = [ident(i) for i in items]
    if after in ids:
        items = items[ids.index(after) + 1:]
    elif before in ids:
        items = items[: ids.index(before)]
    return items[:limit], len(items) > limit


class VectorStoreService:
    def __init__(self, config: VectorStoreConfigBase, db: Connection, make_index: Callable[[], VectorIndex],
                 inference: Any, files: Any | None) -> None:
        self.config = config
        self.lock = threading.Lock()
        self.meta = VectorMeta(db, config.keyword_index)  # creates the schema the index may read when it opens
        self.db = db
        self.index = make_index()
        self.inference = inference
        self.files = files
        self.tasks: set[asyncio.Task[None]] = set()
        self.ingesting: set[tuple[str, str]] = set()  # (store, file) ingestions of this process
        self._resuming: asyncio.Task[None] | None = None
        self.ingest_slots = asyncio.Semaphore(config.max_concurrent_ingestions)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        def locked() -> T:
            with self.lock:
                try:
                    result = fn(*args)
                except BaseException:
                    self.meta.rollback()
                    raise
                self.meta.commit()  # ends the transaction reads began (PostgreSQL holds locks until then)
                return result

        return await asyncio.to_thread(locked)

    async def start(self) -> None:
        """Ingest again the files that were in progress when the process last stopped (once the stack is up);
        on a database replicas share, also every RESUME_EVERY_S the files a stopped replica left behind."""
        await self._resume()
        if self.meta.dialect != "sqlite":
            self._resuming = asyncio.get_running_loop().create_task(self._resume_forever())

    async def _resume(self) -> None:
        for f in await self._run(self.meta.files_in_progress):
            if (f["store_id"], f["file_id"]) not in self.ingesting:
                log.info("resuming ingestion of %s into %s", f["file_id"], f["store_id"])
                self._spawn(f["store_id"], f["file_id"])

    async def _resume_forever(self) -> None:
        while True:
            await asyncio.sleep(RESUME_EVERY_S)
            try:
                await self._resume()
            except Exception as exc:  # noqa: BLE001 - the database may be back at the next round
                log.warning("could not look for interrupted ingestions: %s", exc)

    async def shutdown(self) -> None:
        if self._resuming is not None:
            self._resuming.cancel()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        with self.lock:
            self.index.close()
            self.meta.keywords.close()
            self.db.close()
            self.db.engine.dispose()

    # ---- embeddings ---------------------------------------------------------------------------

    async def _embed(self, model: str, texts: list[str], dimension: int | None = None) -> np.ndarray:
        """Unit vectors of `texts`; a model whose vectors are not `dimension` long is a clear error."""
        rows: list[list[float]] = []
        for start in range(0, len(texts), self.config.embedding_batch_size):
            part = texts[start:start + self.config.embedding_batch_size]
            out = await self.inference.embeddings(EmbeddingRequest(model=model, input=part))
            rows += [d.embedding for d in sorted(out.data, key=lambda d: d.index)]
        vectors = np.asarray(rows, dtype=np.float32)
        if dimension is not None and vectors.shape[1] != dimension:
            raise StackkitError(f"The embedding model '{model}' returns {vectors.shape[1]}-dimensional vectors, but "
                                f"the vector store holds {dimension}-dimensional ones: set embedding_dimension in "
                                "run.yaml to the model's, or make a new store with the model that filled this one.")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        normalized: np.ndarray = vectors / np.maximum(norms, 1e-12)
        return normalized

    # ---- stores -------------------------------------------------------------------------------

    async def _store(self, store_id: str) -> dict[str, Any]:
        store = await self._run(self.meta.store, store_id)
        if store is None:
            raise NotFoundError(f"Vector store '{store_id}' not found; GET /v1/vector_stores lists the "
                                "stores.", code="vector_store_not_found")
        return store

    async def _view(self, store: dict[str, Any]) -> VectorStore:
        usage = await self._run(self.meta.usage, store["id"])
        counts = FileCounts(**{k: usage.get(k, 0) for k in ("in_progress", "completed", "failed", "cancelled")})
        counts.total = counts.in_progress + counts.completed + counts.failed + counts.cancelled
        expires = store["expires_after"]
        expires_at = store["last_active_at"] + expires["days"] * 86400 if expires else None
        status = "expired" if expires_at is not None and expires_at <= time.time() else \
            "in_progress" if counts.in_progress else "completed"
        return VectorStore(id=store["id"], created_at=store["created_at"], name=store["name"],
                           usage_bytes=usage["bytes"], file_counts=counts, metadata=store["metadata"],
                           status=status, last_active_at=store["last_active_at"], expires_at=expires_at,
                           expires_after=expires,
                           embedding_model=store["embedding_model"],  # extras, as Llama Stack reports them
                           embedding_dimension=store["embedding_dimension"])

    async def create_vector_store(self, request: CreateVectorStoreRequest) -> VectorStore:
        model = request.embedding_model or self.config.embedding_model
        dimension = request.embedding_dimension or (self.config.embedding_dimension
                                                    if model == self.config.embedding_model else None)
        if dimension is None:
            dimension = int((await self._embed(model, ["dimension probe"])).shape[1])
        try:
            chunking_settings(request.chunking_strategy)
        except ValueError as exc:
            raise InvalidRequestError(str(exc), param="chunking_strategy") from None
        store_id = request.vector_store_id or f"vs_{uuid.uuid4().hex}"
        if request.vector_store_id and await self._run(self.meta.store, store_id) is not None:
            raise ConflictError(f"Vector store '{store_id}' already exists; pick another id or use it.")
        now = int(time.time())
        store = {"id": store_id, "name": request.name, "created_at": now, "last_active_at": now,
                 "metadata": request.metadata, "embedding_model": model, "embedding_dimension": dimension,
                 "expires_after": request.expires_after.model_dump() if request.expires_after else None,
                 "chunking": request.chunking_strategy}
        await self._run(self._create_store, store)
        if request.file_ids:
            try:
                await self._attach_all(store_id, request.file_ids, {}, request.chunking_strategy, None)
            except BaseException:  # an unknown file id: no half-made store is left behind
                await self._run(self._drop_store, store_id)
                raise
        return await self._view(store)

    def _create_store(self, store: dict[str, Any]) -> None:
        self.index.create(store["id"], store["embedding_dimension"])
        self.meta.insert_store(store)

    async def list_vector_stores(self, request: ListVectorStoresRequest) -> VectorStoreList:
        views = [await self._view(s) for s in [await self._store(i) for i in await self._run(self.meta.store_ids)]]
        page, more = _page(views, lambda s: (s.created_at, s.id), lambda s: s.id, request.order, request.after,
                           request.before, request.limit)
        return VectorStoreList(data=page, first_id=page[0].id if page else None,
                               last_id=page[-1].id if page else None, has_more=more)

    async def get_vector_store(self, request: VectorStoreIdRequest) -> VectorStore:
        return await self._view(await self._store(request.vector_store_id))

    async def update_vector_store(self, request: UpdateVectorStoreRequest) -> VectorStore:
        await self._store(request.vector_store_id)
        await self._run(self.meta.update_store, request.vector_store_id, request.name, request.metadata,
                        request.expires_after)
        return await self._view(await self._store(request.vector_store_id))

    async def delete_vector_store(self, request: VectorStoreIdRequest) -> DeleteResponse:
        await self._store(request.vector_store_id)
        await self._run(self._drop_store, request.vector_store_id)
        return DeleteResponse(id=request.vector_store_id, object="vector_store.deleted")

    def _drop_store(self, store_id: str) -> None:
        self.meta.delete_store(store_id)
        self.index.drop(store_id)

    # ---- raw chunks ---------------------------------------------------------------------------

    async def insert_chunks(self, request: InsertChunksRequest) -> InsertChunksResponse:
        store = await self._store(request.vector_store_id)
        for i, chunk in enumerate(request.chunks):
            vector = chunk.embedding
            if vector is not None and (len(vector) != store["embedding_dimension"]
                                       or not all(math.isfinite(x) for x in vector)):
                raise InvalidRequestError(
                    f"chunks[{i}].embedding must have {store['embedding_dimension']} finite numbers (the store's "
                    f"dimension); it has {len(vector)}" + ("" if all(math.isfinite(x) for x in vector)
                                                           else ", some of them NaN or infinite") + "; send the "
                    "store's dimension of finite numbers, or no embedding to have it computed.",
                    param=f"chunks.{i}.embedding")
        missing = [c.content for c in request.chunks if c.embedding is None]
        computed = iter(await self._embed(store["embedding_model"], missing)) if missing else iter(())
        vectors = np.asarray([c.embedding if c.embedding is not None else next(computed) for c in request.chunks],
                             dtype=np.float32)
        if vectors.shape[1] != store["embedding_dimension"]:
            raise InvalidRequestError(f"embeddings have {vectors.shape[1]} dimensions; the store's have "
                                      f"{store['embedding_dimension']}; send vectors of that size", param="chunks")
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        rows = [(c.chunk_id or uuid.uuid4().hex, c.content, c.metadata) for c in request.chunks]
        await self._run(self._write_chunks, store["id"], None, rows, vectors, None)
        return InsertChunksResponse(inserted=len(rows))

    def _write_chunks(self, store_id: str, file_id: str | None, rows: list[tuple[str, str, dict[str, Any]]],
                      vectors: np.ndarray, finish_file: int | None) -> bool:
        """Chunks (uncommitted) -> vectors (durable) -> mark the file completed and commit, in that order."""
        if file_id is not None:
            current = self.meta.file(store_id, file_id)
            if current is None or current["status"] != "in_progress":
                return False  # cancelled or removed meanwhile
            old = self.meta.chunk_ids(store_id, file_id)
            if old:
                self.meta._delete_chunks(old)
                self.index.remove(store_id, old)
        try:
            ids = self.meta.insert_chunks(store_id, file_id, rows)
            self.index.add(store_id, ids, vectors)
            if file_id is not None:
                self.meta.set_file(store_id, file_id, "completed", usage_bytes=finish_file or 0, commit=False)
            self.meta.commit()
        except BaseException:
            self.meta.rollback()
            raise
        self.meta.keywords.committed()
        return True

    async def query_chunks(self, request: QueryChunksRequest) -> QueryChunksResponse:
        store = await self._store(request.vector_store_id)
        hits = await self._search(store, request.query, request.params.max_chunks, request.params.mode, None,
                                  request.params.score_threshold)
        return QueryChunksResponse(
            chunks=[Chunk(content=c["content"], chunk_id=c["chunk_id"], metadata=c["metadata"]) for _, c in hits],
            scores=[s for s, _ in hits])

    # ---- search -------------------------------------------------------------------------------

    async def _search(self, store: dict[str, Any], query: str, k: int, mode: str, filters: dict[str, Any] | None,
                      threshold: float | None) -> list[tuple[float, dict[str, Any]]]:
        vector: np.ndarray | None = None
        if mode != "keyword":
            vector = (await self._embed(store["embedding_model"], [query], store["embedding_dimension"]))[0]
        fetch = k if not filters else k * 10
        while True:
            hits = await self._run(self._ranked, store["id"], query, vector, fetch, mode)
            rows = await self._run(self.meta.chunks, [i for i, _ in hits])
            found = [(score, rows[i]) for i, score in hits if i in rows and matches(rows[i]["metadata"], filters)]
            if threshold is not None:
                found = [f for f in found if f[0] >= threshold]
            if len(found) >= k or len(hits) < fetch:
                return found[:k]
            fetch *= 4

    def _ranked(self, store_id: str, query: str, vector: np.ndarray | None, k: int, mode: str
                ) -> list[tuple[int, float]]:
        if mode == "vector":
            assert vector is not None
            return self.index.search(store_id, vector, k)
        if mode == "keyword":
            return self.meta.keywords.search(store_id, query, k)
        assert vector is not None  # hybrid: reciprocal rank fusion of both rankings
        fused: dict[int, float] = {}
        for ranking in (self.index.search(store_id, vector, k), self.meta.keywords.search(store_id, query, k)):
            for rank, (row_id, _) in enumerate(ranking):
                fused[row_id] = fused.get(row_id, 0.0) + 1.0 / (RRF_K + rank + 1)
        return sorted(fused.items(), key=lambda item: -item[1])[:k]

    async def search_vector_store(self, request: SearchVectorStoreRequest) -> SearchResultsPage:
        store = await self._store(request.vector_store_id)
        query = request.query if isinstance(request.query, str) else " ".join(request.query)
        threshold = request.ranking_options.score_threshold if request.ranking_options else None
        hits = await self._search(store, query, request.max_num_results, request.search_mode, request.filters,
                                  threshold)
        await self._run(self.meta.touch, store["id"], int(time.time()))
        queries = [request.query] if isinstance(request.query, str) else list(request.query)
        return SearchResultsPage(search_query=queries, data=[
            SearchResult(file_id=c["file_id"], filename=c["filename"], score=score, attributes=c["metadata"],
                         content=[SearchResultContent(text=c["content"])]) for score, c in hits])

    # ---- files --------------------------------------------------------------------------------

    def _file_view(self, f: dict[str, Any]) -> VectorStoreFile:
        return VectorStoreFile(id=f["file_id"], created_at=f["created_at"], vector_store_id=f["store_id"],
                               status=f["status"], last_error=f.get("last_error"), usage_bytes=f.get("usage_bytes", 0),
                               attributes=f["attributes"] or {}, chunking_strategy=f["chunking"])

    async def _file(self, store_id: str, file_id: str) -> dict[str, Any]:
        found = await self._run(self.meta.file, store_id, file_id)
        if found is None:
            raise NotFoundError(f"File '{file_id}' is not in vector store '{store_id}'; attach it first "
                                "(POST .../files).", code="file_not_found")
        return found

    async def _attach_all(self, store_id: str, file_ids: list[str], attributes: dict[str, Any],
                          chunking: dict[str, Any] | None, batch_id: str | None) -> list[dict[str, Any]]:
        if self.files is None:
            raise InvalidRequestError("Attaching files needs a files provider; add one under providers.files.")
        try:
            _, _, stored = chunking_settings(chunking)
        except ValueError as exc:
            raise InvalidRequestError(str(exc), param="chunking_strategy") from None
        uploads = [await self.files.get_file(FileIdRequest(file_id=f)) for f in file_ids]  # 404s before any change
        rows = []
        for upload in uploads:
            row = {"store_id": store_id, "file_id": upload.id, "filename": upload.filename,
                   "created_at": int(time.time()), "status": "in_progress", "attributes": attributes,
                   "chunking": stored, "batch_id": batch_id}
            await self._run(self.meta.insert_file, row)
            self._spawn(store_id, upload.id)
            rows.append(row)
        return rows

    def _spawn(self, store_id: str, file_id: str) -> None:
        key = (store_id, file_id)
        self.ingesting.add(key)
        task = asyncio.get_running_loop().create_task(self._ingest(store_id, file_id))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        task.add_done_callback(lambda _: self.ingesting.discard(key))

    async def _ingest(self, store_id: str, file_id: str) -> None:
        async with self.ingest_slots:
            if not await self._run(self.meta.claim, store_id, file_id):
                return  # another replica is ingesting it
            try:
                await self._ingest_claimed(store_id, file_id)
            finally:
                await asyncio.shield(self._run(self.meta.release, store_id, file_id))

    async def _ingest_claimed(self, store_id: str, file_id: str) -> None:
        try:
            f = await self._file(store_id, file_id)
            if f["status"] != "in_progress":
                return
            store = await self._store(store_id)
            assert self.files is not None
            content = await self.files.file_content(FileIdRequest(file_id=file_id))
            text = await asyncio.to_thread(extract_text, f["filename"] or file_id, content)
            size, overlap, _ = chunking_settings(f["chunking"])
            pieces = await asyncio.to_thread(chunk_text, text, size, overlap)
            vectors = await self._embed(store["embedding_model"], pieces, store["embedding_dimension"])
            attrs = f["attributes"] or {}
            rows = [(f"{file_id}-{i}", p, {**attrs, "file_id": file_id, "filename": f["filename"]})
                    for i, p in enumerate(pieces)]
            await self._run(self._write_chunks, store_id, file_id, rows, vectors,
                            sum(len(p.encode()) for p in pieces))
        except FileError as exc:
            await self._fail(store_id, file_id, exc.code, str(exc))
        except StackkitError as exc:
            await self._fail(store_id, file_id, "server_error", exc.message)
        except Exception as exc:
            log.exception("ingesting %s into %s failed", file_id, store_id)
            await self._fail(store_id, file_id, "server_error", f"{type(exc).__name__}: {exc}")

    async def _fail(self, store_id: str, file_id: str, code: str, message: str) -> None:
        current = await self._run(self.meta.file, store_id, file_id)
        if current is not None and current["status"] == "in_progress":
            await self._run(self.meta.set_file, store_id, file_id, "failed", {"code": code, "message": message})

    async def attach_file(self, request: AttachFileRequest) -> VectorStoreFile:
        await self._store(request.vector_store_id)
        rows = await self._attach_all(request.vector_store_id, [request.file_id], request.attributes,
                                      request.chunking_strategy, None)
        return self._file_view(rows[0])

    async def list_vector_store_files(self, request: ListVectorStoreFilesRequest) -> VectorStoreFileList:
        await self._store(request.vector_store_id)
        rows = await self._run(self.meta.files, request.vector_store_id, request.filter, None)
        return self._file_list(rows, request.order, request.after, request.before, request.limit)

    def _file_list(self, rows: list[dict[str, Any]], order: str, after: str | None, before: str | None,
                   limit: int) -> VectorStoreFileList:
        views = [self._file_view(r) for r in rows]
        page, more = _page(views, lambda f: (f.created_at, f.id), lambda f: f.id, order, after, before, limit)
        return VectorStoreFileList(data=page, first_id=page[0].id if page else None,
                                   last_id=page[-1].id if page else None, has_more=more)

    async def get_vector_store_file(self, request: VectorStoreFileRequest) -> VectorStoreFile:
        return self._file_view(await self._file(request.vector_store_id, request.file_id))

    async def update_vector_store_file(self, request: UpdateVectorStoreFileRequest) -> VectorStoreFile:
        await self._file(request.vector_store_id, request.file_id)
        await self._run(self.meta.update_file_attributes, request.vector_store_id, request.file_id,
                        request.attributes)
        return self._file_view(await self._file(request.vector_store_id, request.file_id))

    async def delete_vector_store_file(self, request: VectorStoreFileRequest) -> DeleteResponse:
        await self._file(request.vector_store_id, request.file_id)
        await self._run(self._delete_file, request.vector_store_id, request.file_id)
        return DeleteResponse(id=request.file_id, object="vector_store.file.deleted")

    def _delete_file(self, store_id: str, file_id: str) -> None:
        self.index.remove(store_id, self.meta.delete_file(store_id, file_id))

    async def vector_store_file_content(self, request: VectorStoreFileRequest) -> VectorStoreFileContent:
        await self._file(request.vector_store_id, request.file_id)
        texts = await self._run(self.meta.file_text, request.vector_store_id, request.file_id)
        return VectorStoreFileContent(data=[FileContentPart(text=t) for t in texts])

    # ---- batches ------------------------------------------------------------------------------

    async def _batch_view(self, store_id: str, batch_id: str) -> FileBatch:
        found = await self._run(self.meta.batch, batch_id)
        if found is None or found[0] != store_id:
            raise NotFoundError(f"File batch '{batch_id}' not found in vector store '{store_id}'; check both ids.")
        rows = await self._run(self.meta.files, store_id, None, batch_id)
        counts = FileCounts(total=len(rows), **{s: sum(r["status"] == s for r in rows)
                                               for s in ("in_progress", "completed", "failed", "cancelled")})
        status = "in_progress" if counts.in_progress else "cancelled" if found[2] else (
            "failed" if counts.failed == counts.total else "completed")
        return FileBatch(id=batch_id, created_at=found[1], vector_store_id=store_id, status=status,  # type: ignore[arg-type]
                         file_counts=counts)

    async def create_file_batch(self, request: CreateFileBatchRequest) -> FileBatch:
        await self._store(request.vector_store_id)
        batch_id = f"vsfb_{uuid.uuid4().hex}"
        await self._run(self.meta.insert_batch, batch_id, request.vector_store_id, int(time.time()))
        await self._attach_all(request.vector_store_id, request.file_ids, request.attributes,
                               request.chunking_strategy, batch_id)
        return await self._batch_view(request.vector_store_id, batch_id)

    async def get_file_batch(self, request: FileBatchRequest) -> FileBatch:
        return await self._batch_view(request.vector_store_id, request.batch_id)

    async def cancel_file_batch(self, request: FileBatchRequest) -> FileBatch:
        await self._batch_view(request.vector_store_id, request.batch_id)
        await self._run(self.meta.cancel_batch, request.batch_id)
        return await self._batch_view(request.vector_store_id, request.batch_id)

    async def list_file_batch_files(self, request: ListFileBatchFilesRequest) -> VectorStoreFileList:
        await self._batch_view(request.vector_store_id, request.batch_id)
        rows = await self._run(self.meta.files, request.vector_store_id, request.filter, request.batch_id)
        return self._file_list(rows, request.order, request.after, request.before, request.limit)
