"""inline::localfs — OpenAI's Files API on the local disk.

Content lives in files under `storage_dir` (written to a temporary name, then renamed, so a crash
never leaves a half file behind a record); records live in a sqlite table beside them, or in PostgreSQL
(`metadata_url`): replicas that share the directory (a shared volume) and the database share the files.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any

from pydantic import Field
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    select,
    text,
    tuple_,
)

from stackkit.apis.datatypes import Api, DeleteResponse, ProviderConfigBase
from stackkit.apis.files import FileIdRequest, FileList, FileObject, ListFilesRequest, UploadFileRequest
from stackkit.core.sql import AlchemyStore, SqlStore, lock_schema, postgres_url, sqlite_url
from stackkit.errors import NotFoundError, RequestTooLargeError


class LocalFSConfig(ProviderConfigBase):
    storage_dir: str = Field(description="where file content and the metadata database live")
    max_file_bytes: int = Field(default=512 * 1024 * 1024, ge=1)
    metadata_url: str | None = Field(default=None, description="postgresql://... to keep the records in "
                                     "PostgreSQL (replicas sharing storage_dir); default: files.db in storage_dir")

    @classmethod
    def sample_run_config(cls, **kwargs: Any) -> dict[str, Any]:
        return {"storage_dir": "${env.STACKKIT_HOME:=~/.stackkit}/starter/files"}


_FILE_ID = re.compile(r"file-[0-9a-f]{32}")
TABLES = MetaData()
FILES = Table("files", TABLES, Column("id", String, primary_key=True), Column("filename", Text, nullable=False),
              Column("purpose", String, nullable=False), Column("bytes", BigInteger, nullable=False),
              Column("created_at", BigInteger, nullable=False), Column("expires_at", BigInteger),
              # expiry runs before reads: an index keeps it a lookup of the files that can expire
              Index("files_expiry", "expires_at", sqlite_where=text("expires_at IS NOT NULL"),
                    postgresql_where=text("expires_at IS NOT NULL")))


class LocalFSFiles:
    """OpenAI's Files API over a directory: content in files named by id, records in a SQL table."""

    def __init__(self, config: LocalFSConfig) -> None:
        self.config = config
        self.root = Path(config.storage_dir).expanduser()
        self.root.mkdir(parents=True, exist_ok=True)
        url = postgres_url(config.metadata_url) if config.metadata_url else sqlite_url(self.root / "files.db")
        self.db: SqlStore = AlchemyStore(url, synchronous="FULL")

    async def _open(self) -> None:
        await self.db.run(_migrate)

    def _path(self, file_id: str) -> Path:
        """The content path of a valid file id; anything else (``../x``, other shapes) is a 404 first."""
        if not _FILE_ID.fullmatch(file_id):
            raise self._not_found(file_id)
        return self.root / file_id

    @staticmethod
    def _not_found(file_id: str) -> NotFoundError:
        return NotFoundError(f"File '{file_id[:100]}' not found. GET /v1/files lists the uploaded files.",
                             code="file_not_found", param="file_id")

    async def shutdown(self) -> None:
        await self.db.close()

    async def upload_file(self, request: UploadFileRequest) -> FileObject:
        size = len(request.file)
        if size > self.config.max_file_bytes:
            raise RequestTooLargeError(f"The file is {size} bytes, over this server's limit of "
                                       f"{self.config.max_file_bytes} bytes; upload a smaller file or raise "
                                       "max_file_bytes of the files provider.")
        now = int(time.time())
        expires = now + request.expires_after.seconds if request.expires_after is not None else None
        file = FileObject(id=f"file-{uuid.uuid4().hex}", bytes=size, created_at=now, filename=request.filename,
                          purpose=request.purpose, expires_at=expires)
        path = self._path(file.id)

        def write() -> None:
            tmp = path.with_suffix(".part")
            with open(tmp, "wb") as f:
                f.write(request.file)
                f.flush()
                os.fsync(f.fileno())
            tmp.rename(path)

        await asyncio.to_thread(write)  # the content is durable before the record that points at it
        await self.db.execute(FILES.insert().values(
            id=file.id, filename=file.filename, purpose=file.purpose, bytes=file.bytes, created_at=file.created_at,
            expires_at=file.expires_at))
        return file

    async def list_files(self, request: ListFilesRequest) -> FileList:
        await self._expire()
        c = FILES.c
        query = select(FILES)
        if request.purpose:
            query = query.where(c.purpose == request.purpose)
        if request.after:
            anchor = await self.db.fetch(select(c.created_at, c.id).where(c.id == request.after))
            if anchor:
                position, later = tuple_(c.created_at, c.id), tuple_(*anchor[0])
                query = query.where(position < later if request.order == "desc" else position > later)
        order = [c.created_at.desc(), c.id.desc()] if request.order == "desc" else [c.created_at, c.id]
        rows = await self.db.fetch(query.order_by(*order).limit(request.limit + 1))
        files = [_row(r) for r in rows[: request.limit]]
        return FileList(data=files, first_id=files[0].id if files else None,
                        last_id=files[-1].id if files else None, has_more=len(rows) > request.limit)

    async def get_file(self, request: FileIdRequest) -> FileObject:
        self._path(request.file_id)
        await self._expire()
        rows = await self.db.fetch(select(FILES).where(FILES.c.id == request.file_id))
        if not rows:
            raise self._not_found(request.file_id)
        return _row(rows[0])

    async def delete_file(self, request: FileIdRequest) -> DeleteResponse:
        path = self._path(request.file_id)
        if not await self.db.execute(FILES.delete().where(FILES.c.id == request.file_id)):
            raise self._not_found(request.file_id)
        await asyncio.to_thread(path.unlink, True)
        return DeleteResponse(id=request.file_id, object="file")

    async def file_content(self, request: FileIdRequest) -> bytes:
        await self.get_file(request)
        return await asyncio.to_thread(self._path(request.file_id).read_bytes)

    async def _expire(self) -> None:
        """Delete the files whose expires_at has passed (their records first, then their content)."""
        now = int(time.time())
        expired = await self.db.fetch(select(FILES.c.id).where(FILES.c.expires_at <= now))
        for (file_id,) in expired:
            if await self.db.execute(FILES.delete().where(FILES.c.id == file_id)):
                await asyncio.to_thread((self.root / file_id).unlink, True)


def _migrate(conn: Connection) -> None:
    lock_schema(conn)
    if inspect(conn).has_table("files"):
        columns = {c["name"] for c in inspect(conn).get_columns("files")}
        if "expires_at" not in columns:  # a store made before files could expire
            conn.execute(text("ALTER TABLE files ADD COLUMN expires_at BIGINT"))
    TABLES.create_all(conn)


def _row(row: Any) -> FileObject:
    return FileObject(id=row.id, filename=row.filename, purpose=row.purpose, bytes=row.bytes,
                      created_at=row.created_at, expires_at=row.expires_at)


async def create(config: LocalFSConfig, deps: dict[Api, Any]) -> LocalFSFiles:
    files = LocalFSFiles(config)
    await files._open()
    return files
