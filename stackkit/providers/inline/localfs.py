"""inline::localfs — OpenAI's Files API on the local disk.

Content lives in files under `storage_dir` (written to a temporary name, then renamed, so a crash
never leaves a half file behind a record); metadata lives in a sqlite table (WAL) beside them.
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

from pydantic import Field

from stackkit.apis.datatypes import Api, DeleteResponse, ProviderConfigBase
from stackkit.apis.files import FileIdRequest, FileList, FileObject, ListFilesRequest, UploadFileRequest
from stackkit.core.sqlite import SqliteDB
from stackkit.errors import NotFoundError, RequestTooLargeError


class LocalFSConfig(ProviderConfigBase):
    storage_dir: str = Field(description="where file content and the metadata database live")
    max_file_bytes: int = Field(default=512 * 1024 * 1024, ge=1)

    @classmethod
    def sample_run_config(cls, **kwargs: Any) -> dict[str, Any]:
        return {"storage_dir": "${env.STACKKIT_HOME:=~/.stackkit}/starter/files"}


_FILE_ID = re.compile(r"file-[0-9a-f]{32}")
_COLUMNS = "id, filename, purpose, bytes, created_at, expires_at"


class LocalFSFiles:
    """OpenAI's Files API over a directory: content in files named by id, records in sqlite."""

    def __init__(self, config: LocalFSConfig) -> None:
        self.config = config
        self.root = Path(config.storage_dir).expanduser()
        self.root.mkdir(parents=True, exist_ok=True)
        self.db = SqliteDB(self.root / "files.db", synchronous="FULL")
        self.db.run_sync(_migrate)

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

        def write(conn: sqlite3.Connection) -> None:
            tmp = path.with_suffix(".part")
            with open(tmp, "wb") as f:
                f.write(request.file)
                f.flush()
                os.fsync(f.fileno())
            tmp.rename(path)
            conn.execute(f"INSERT INTO files ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                         (file.id, file.filename, file.purpose, file.bytes, file.created_at, file.expires_at))

        await self.db.run(write)
        return file

    async def list_files(self, request: ListFilesRequest) -> FileList:
        await self._expire()
        order = "DESC" if request.order == "desc" else "ASC"

        def query(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            where, args = ["1=1"], []
            if request.purpose:
                where.append("purpose = ?")
                args.append(request.purpose)
            if request.after:
                anchor = conn.execute("SELECT created_at, id FROM files WHERE id = ?", (request.after,)).fetchall()
                if anchor:
                    where.append(f"(created_at, id) {'<' if order == 'DESC' else '>'} (?, ?)")
                    args += list(anchor[0])
            sql = (f"SELECT {_COLUMNS} FROM files WHERE {' AND '.join(where)} "
                   f"ORDER BY created_at {order}, id {order} LIMIT ?")
            return conn.execute(sql, (*args, request.limit + 1)).fetchall()

        rows = await self.db.run(query)
        files = [_row(r) for r in rows[: request.limit]]
        return FileList(data=files, first_id=files[0].id if files else None,
                        last_id=files[-1].id if files else None, has_more=len(rows) > request.limit)

    async def get_file(self, request: FileIdRequest) -> FileObject:
        self._path(request.file_id)
        await self._expire()
        rows = await self.db.execute(f"SELECT {_COLUMNS} FROM files WHERE id = ?", (request.file_id,))
        if not rows:
            raise self._not_found(request.file_id)
        return _row(rows[0])

    async def delete_file(self, request: FileIdRequest) -> DeleteResponse:
        path = self._path(request.file_id)

        def delete(conn: sqlite3.Connection) -> int:
            gone = conn.execute("DELETE FROM files WHERE id = ?", (request.file_id,)).rowcount
            path.unlink(missing_ok=True)
            return int(gone)

        if not await self.db.run(delete):
            raise self._not_found(request.file_id)
        return DeleteResponse(id=request.file_id, object="file")

    async def file_content(self, request: FileIdRequest) -> bytes:
        await self.get_file(request)
        return await asyncio.to_thread(self._path(request.file_id).read_bytes)

    async def _expire(self) -> None:
        """Delete the files whose expires_at has passed (their content first, then their records)."""
        def expire(conn: sqlite3.Connection) -> None:
            now = int(time.time())
            for (file_id,) in conn.execute("SELECT id FROM files WHERE expires_at <= ?", (now,)).fetchall():
                (self.root / file_id).unlink(missing_ok=True)
                conn.execute("DELETE FROM files WHERE id = ?", (file_id,))

        await self.db.run(expire)


def _migrate(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS files (id TEXT PRIMARY KEY, filename TEXT NOT NULL, "
                 "purpose TEXT NOT NULL, bytes INTEGER NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER)")
    columns = {row[1] for row in conn.execute("PRAGMA table_info(files)")}
    if "expires_at" not in columns:  # a store made before files could expire
        conn.execute("ALTER TABLE files ADD COLUMN expires_at INTEGER")
    # expiry runs before reads: an index keeps it a lookup of the files that can expire, not a table scan
    conn.execute("CREATE INDEX IF NOT EXISTS files_expiry ON files (expires_at) WHERE expires_at IS NOT NULL")


def _row(row: tuple[Any, ...]) -> FileObject:
    return FileObject(id=row[0], filename=row[1], purpose=row[2], bytes=row[3], created_at=row[4], expires_at=row[5])


async def create(config: LocalFSConfig, deps: dict[Api, Any]) -> LocalFSFiles:
    return LocalFSFiles(config)
