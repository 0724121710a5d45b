"""VectorIO: OpenAI-style vector stores and raw chunk insert/query."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from stackkit.apis.datatypes import DeleteResponse, Metadata, route


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())


# OpenAI's limits: metadata is up to 16 string pairs; attributes are strings, numbers or booleans.
Attributes = Annotated[dict[Annotated[str, StringConstraints(max_length=64)],
                            Annotated[str, StringConstraints(max_length=512)] | bool | float], Field(max_length=16)]


class ExpiresAfter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    anchor: Literal["last_active_at"] = "last_active_at"
    days: int = Field(ge=1, le=365)


# ---- raw chunks -----------------------------------------------------------------------------


class Chunk(BaseModel):
    content: str
    chunk_id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    embedding: list[float] | None = None


class InsertChunksRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vector_store_id: str
    chunks: list[Chunk] = Field(min_length=1)


class InsertChunksResponse(BaseModel):
    inserted: int


SearchMode = Literal["vector", "keyword", "hybrid"]


class QueryParams(BaseModel):
    max_chunks: int = Field(default=10, ge=1, le=1000)
    score_threshold: float | None = None
    mode: SearchMode = "vector"


class QueryChunksRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vector_store_id: str
    query: str = Field(min_length=1)
    params: QueryParams = Field(default_factory=QueryParams)


class QueryChunksResponse(BaseModel):
    chunks: list[Chunk]
    scores: list[float]


# ---- OpenAI vector stores -------------------------------------------------------------------


class FileCounts(BaseModel):
    in_progress: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    total: int = 0


class VectorStore(_Open):
    id: str
    object: Literal["vector_store"] = "vector_store"
    created_at: int
    name: str | None = None
    usage_bytes: int = 0
    file_counts: FileCounts = Field(default_factory=FileCounts)
    status: Literal["expired", "in_progress", "completed"] = "completed"
    expires_after: ExpiresAfter | None = None
    expires_at: int | None = None
    last_active_at: int | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class VectorStoreList(BaseModel):
    object: Literal["list"] = "list"
    data: list[VectorStore]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class CreateVectorStoreRequest(_Open):
    name: str | None = Field(default=None, max_length=256)
    file_ids: list[str] = Field(default_factory=list, max_length=500)
    chunking_strategy: dict[str, Any] | None = None
    metadata: Metadata = Field(default_factory=dict)
    expires_after: ExpiresAfter | None = None
    embedding_model: str | None = None
    embedding_dimension: int | None = Field(default=None, ge=1, le=8192)
    provider_id: str | None = None
    vector_store_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,128}$",
                                        description="stackkit: create the store under this id (as run.yaml does)")


class ListVectorStoresRequest(BaseModel):
    limit: int = Field(default=20, ge=1, le=100)
    order: Literal["asc", "desc"] = "desc"
    after: str | None = None
    before: str | None = None


class VectorStoreIdRequest(BaseModel):
    vector_store_id: str


class UpdateVectorStoreRequest(_Open):
    vector_store_id: str
    name: str | None = Field(default=None, max_length=256)
    metadata: Metadata | None = None
    expires_after: ExpiresAfter | None = None


class RankingOptions(BaseModel):
    ranker: str | None = None
    score_threshold: float | None = None


class SearchVectorStoreRequest(_Open):
    vector_store_id: str
    query: str | list[str]
    filters: dict[str, Any] | None = None
    max_num_results: int = Field(default=10, ge=1, le=50)
    ranking_options: RankingOptions | None = None
    rewrite_query: bool = False
    search_mode: SearchMode = "vector"


class SearchResultContent(BaseModel):
    type: Literal["text"] = "text"
    text: str


class SearchResult(BaseModel):
    file_id: str | None = None
    filename: str | None = None
    score: float
    attributes: dict[str, Any] = Field(default_factory=dict)
    content: list[SearchResultContent]


class SearchResultsPage(BaseModel):
    object: Literal["vector_store.search_results.page"] = "vector_store.search_results.page"
    search_query: list[str]
    data: list[SearchResult]
    has_more: bool = False
    next_page: str | None = None


# ---- files in vector stores -----------------------------------------------------------------


class FileError(BaseModel):
    code: Literal["server_error", "unsupported_file", "invalid_file", "rate_limit_exceeded"]
    message: str


FileStatus = Literal["in_progress", "completed", "failed", "cancelled"]


class VectorStoreFile(BaseModel):
    id: str
    object: Literal["vector_store.file"] = "vector_store.file"
    created_at: int
    vector_store_id: str
    status: FileStatus
    last_error: FileError | None = None
    usage_bytes: int = 0
    attributes: dict[str, Any] = Field(default_factory=dict)
    chunking_strategy: dict[str, Any] | None = None


class VectorStoreFileList(BaseModel):
    object: Literal["list"] = "list"
    data: list[VectorStoreFile]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class AttachFileRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vector_store_id: str
    file_id: str
    attributes: Attributes = Field(default_factory=dict)
    chunking_strategy: dict[str, Any] | None = None


class ListVectorStoreFilesRequest(BaseModel):
    vector_store_id: str
    limit: int = Field(default=20, ge=1, le=100)
    order: Literal["asc", "desc"] = "desc"
    after: str | None = None
    before: str | None = None
    filter: FileStatus | None = None


class VectorStoreFileRequest(BaseModel):
    vector_store_id: str
    file_id: str


class UpdateVectorStoreFileRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vector_store_id: str
    file_id: str
    attributes: Attributes


class FileContentPart(BaseModel):
    type: Literal["text"] = "text"
    text: str


class VectorStoreFileContent(BaseModel):
    object: Literal["vector_store.file_content.page"] = "vector_store.file_content.page"
    data: list[FileContentPart]
    has_more: bool = False
    next_page: str | None = None


class FileBatch(BaseModel):
    id: str
    object: Literal["vector_store.files_batch"] = "vector_store.files_batch"
    created_at: int
    vector_store_id: str
    status: Literal["in_progress", "completed", "cancelled", "failed"]
    file_counts: FileCounts


class CreateFileBatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vector_store_id: str
    file_ids: list[str] = Field(min_length=1, max_length=500)
    attributes: Attributes = Field(default_factory=dict)
    chunking_strategy: dict[str, Any] | None = None


class FileBatchRequest(BaseModel):
    vector_store_id: str
    batch_id: str


class ListFileBatchFilesRequest(BaseModel):
    vector_store_id: str
    batch_id: str
    limit: int = Field(default=20, ge=1, le=100)
    order: Literal["asc", "desc"] = "desc"
    after: str | None = None
    before: str | None = None
    filter: FileStatus | None = None


@runtime_checkable
class VectorIO(Protocol):
    @route("POST", "/v1/vector-io/insert", sdk="vector_io.insert", key="vector_store_id")
    async def insert_chunks(self, request: InsertChunksRequest) -> InsertChunksResponse:
        """Insert chunks (embedded by the store's embedding model when no embedding is given)."""
        ...

    @route("POST", "/v1/vector-io/query", sdk="vector_io.query", key="vector_store_id")
    async def query_chunks(self, request: QueryChunksRequest) -> QueryChunksResponse:
        """Find the chunks nearest a query."""
        ...

    @route("POST", "/v1/vector_stores", sdk="vector_stores.create")
    async def create_vector_store(self, request: CreateVectorStoreRequest) -> VectorStore:
        """Create a vector store."""
        ...

    @route("GET", "/v1/vector_stores", sdk="vector_stores.list")
    async def list_vector_stores(self, request: ListVectorStoresRequest) -> VectorStoreList:
        """List vector stores."""
        ...

    @route("GET", "/v1/vector_stores/{vector_store_id}", sdk="vector_stores.retrieve", key="vector_store_id")
    async def get_vector_store(self, request: VectorStoreIdRequest) -> VectorStore:
        """Get one vector store."""
        ...

    @route("POST", "/v1/vector_stores/{vector_store_id}", sdk="vector_stores.update", key="vector_store_id")
    async def update_vector_store(self, request: UpdateVectorStoreRequest) -> VectorStore:
        """Rename a vector store or change its metadata."""
        ...

    @route("DELETE", "/v1/vector_stores/{vector_store_id}", sdk="vector_stores.delete", key="vector_store_id")
    async def delete_vector_store(self, request: VectorStoreIdRequest) -> DeleteResponse:
        """Delete a vector store and its chunks."""
        ...

    @route(
        "POST", "/v1/vector_stores/{vector_store_id}/search", sdk="vector_stores.search", key="vector_store_id"
    )
    async def search_vector_store(self, request: SearchVectorStoreRequest) -> SearchResultsPage:
        """Search a vector store (vector, keyword or hybrid)."""
        ...

    @route("POST", "/v1/vector_stores/{vector_store_id}/files", sdk="vector_stores.files.create", key="vector_store_id")
    async def attach_file(self, request: AttachFileRequest) -> VectorStoreFile:
        """Add an uploaded file to a vector store; it is chunked and embedded in the background."""
        ...

    @route("GET", "/v1/vector_stores/{vector_store_id}/files", sdk="vector_stores.files.list", key="vector_store_id")
    async def list_vector_store_files(self, request: ListVectorStoreFilesRequest) -> VectorStoreFileList:
        """List a vector store's files (optionally by status)."""
        ...

    @route("GET", "/v1/vector_stores/{vector_store_id}/files/{file_id}", sdk="vector_stores.files.retrieve",
           key="vector_store_id")
    async def get_vector_store_file(self, request: VectorStoreFileRequest) -> VectorStoreFile:
        """Get one file of a vector store, with its ingestion status."""
        ...

    @route("POST", "/v1/vector_stores/{vector_store_id}/files/{file_id}", sdk="vector_stores.files.update",
           key="vector_store_id")
    async def update_vector_store_file(self, request: UpdateVectorStoreFileRequest) -> VectorStoreFile:
        """Replace a file's attributes (used by search filters)."""
        ...

    @route("DELETE", "/v1/vector_stores/{vector_store_id}/files/{file_id}", sdk="vector_stores.files.delete",
           key="vector_store_id")
    async def delete_vector_store_file(self, request: VectorStoreFileRequest) -> DeleteResponse:
        """Remove a file and its chunks from a vector store (the uploaded file stays)."""
        ...

    @route("GET", "/v1/vector_stores/{vector_store_id}/files/{file_id}/content", sdk="vector_stores.files.content",
           key="vector_store_id")
    async def vector_store_file_content(self, request: VectorStoreFileRequest) -> VectorStoreFileContent:
        """A file's chunks as text."""
        ...

    @route("POST", "/v1/vector_stores/{vector_store_id}/file_batches", sdk="vector_stores.file_batches.create",
           key="vector_store_id")
    async def create_file_batch(self, request: CreateFileBatchRequest) -> FileBatch:
        """Add several files at once."""
        ...

    @route("GET", "/v1/vector_stores/{vector_store_id}/file_batches/{batch_id}",
           sdk="vector_stores.file_batches.retrieve", key="vector_store_id")
    async def get_file_batch(self, request: FileBatchRequest) -> FileBatch:
        """A batch's status and file counts."""
        ...

    @route("POST", "/v1/vector_stores/{vector_store_id}/file_batches/{batch_id}/cancel",
           sdk="vector_stores.file_batches.cancel", key="vector_store_id")
    async def cancel_file_batch(self, request: FileBatchRequest) -> FileBatch:
        """Stop ingesting a batch's files that have not finished."""
        ...

    @route("GET", "/v1/vector_stores/{vector_store_id}/file_batches/{batch_id}/files",
           sdk="vector_stores.file_batches.list_files", key="vector_store_id")
    async def list_file_batch_files(self, request: ListFileBatchFilesRequest) -> VectorStoreFileList:
        """List a batch's files."""
        ...
