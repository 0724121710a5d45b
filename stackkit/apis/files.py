"""Files: OpenAI's Files API (multipart upload, list, retrieve, delete, content)."""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from stackkit.apis.datatypes import DeleteResponse, route

Purpose = Literal["assistants", "batch", "fine-tune", "vision", "user_data", "evals"]


class FileObject(BaseModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: Purpose
    status: Literal["uploaded", "processed", "error"] = "processed"
    expires_at: int | None = None


class FileExpiresAfter(BaseModel):
    """When an uploaded file expires: `seconds` after its creation (OpenAI: one hour to 30 days)."""

    model_config = ConfigDict(extra="forbid")

    anchor: Literal["created_at"] = "created_at"
    seconds: int = Field(ge=3600, le=2592000)


class UploadFileRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: bytes = Field(description="the file's bytes (a multipart `file` field over HTTP)")
    filename: str = Field(min_length=1, max_length=512)
    purpose: Purpose
    expires_after: FileExpiresAfter | None = None


class ListFilesRequest(BaseModel):
    after: str | None = None
    limit: int = Field(default=10000, ge=1, le=10000)
    order: Literal["asc", "desc"] = "desc"
    purpose: Purpose | None = None


class FileList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FileObject]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class FileIdRequest(BaseModel):
    file_id: str


@runtime_checkable
class Files(Protocol):
    @route("POST", "/v1/files", sdk="files.create", body="multipart")
    async def upload_file(self, request: UploadFileRequest) -> FileObject:
        """Upload a file (multipart: `file`, `purpose`)."""
        ...

    @route("GET", "/v1/files", sdk="files.list")
    async def list_files(self, request: ListFilesRequest) -> FileList:
        """List uploaded files, newest first."""
        ...

    @route("GET", "/v1/files/{file_id}", sdk="files.retrieve")
    async def get_file(self, request: FileIdRequest) -> FileObject:
        """Get a file's metadata."""
        ...

    @route("DELETE", "/v1/files/{file_id}", sdk="files.delete")
    async def delete_file(self, request: FileIdRequest) -> DeleteResponse:
        """Delete a file and its content."""
        ...

    @route("GET", "/v1/files/{file_id}/content", sdk="files.content")
    async def file_content(self, request: FileIdRequest) -> bytes:
        """The file's bytes."""
        ...
