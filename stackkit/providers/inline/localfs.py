"""inline::localfs — OpenAI's Files API on the local disk.

Content lives in files under `storage_dir` (written to a temporary name, then renamed, so a crash
never leaves a half file behind a record); metadata lives in a sqlite table (WAL) beside them.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from pydantic import Field

from stackkit.apis.datatypes import Api, DeleteResponse, ProviderConfigBase
from stackkit.apis.files import FileIdRequest, FileList, FileObject, ListFilesRequest, UploadFileRequest
from stackkit.errors import NotFoundError, RequestTooLargeError


class LocalFSConfig(ProviderConfigBase):
    storage_dir: str = Field(description="where file content and the metadata database live")
    max_file_bytes: int = Field(default=512 * 1024 * 1024, ge=1)

    @classmethod
    def sample_run_config(cls, **kwargs: Any) -> dict[str, Any]:
        return {"storage_dir": "${env.STACKKIT_STATE_DIR:=~/.stackkit/starter}/files"}


class LocalFSFiles:
    def __init__(self, config: LocalFSConfig) -> None:
        self.config = config
        self.root = Path(config.storage_dir).expanduser()
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.root / "files.db", check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS files (id TEXT PRIMARY KEY, filename TEXT NOT NULL, "
                         "purpose TEXT NOT NULL, bytes INTEGER NOT NULL, created_at INTEGER NOT NULL)")

    def _sql(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _path(self, file_id: str) -> Path:
        return self.root / file_id

    async def shutdown(self) -> None:
        with self._lock:
            self._db.close()

    async def upload_file(self, request: UploadFileRequest) -> FileObject:
        size = len(request.file)
        if size > self.config.max_file_bytes:
            raise RequestTooLargeError(f"The file is {size} bytes, over this server's limit of "
                                       f"{self.config.max_file_bytes} bytes (max_file_bytes of the files provider).")
        file = FileObject(id=f"file-{uuid.uuid4().hex}", bytes=size, created_at=int(time.time()),
                          filename=request.filename, purpose=request.purpose)

        def write() -> None:
            tmp = self._path(file.id + ".part")
            with open(tmp, "wb") as f:
                f.write(request.file)
                f.flush()
                os.fsync(f.fileno())
            tmp.rename(self._path(file.id))
            self._sql("INSERT INTO files VALUES (?, ?, ?, ?, ?)",
                      (file.id, file.filename, file.purpose, file.bytes, file.created_at))

        await asyncio.to_thread(write)
        return file

    async def list_files(self, request: ListFilesRequest) -> FileList:
        order = "DESC" if request.order == "desc" else "ASC"
        where, args = ["1=1"], []
        if request.purpose:
            where.append("purpose = ?")
            args.append(request.purpose)
        if request.after:
            anchor = self._sql("SELECT created_at, id FROM files WHERE id = ?", (request.after,))
            if anchor:
                op = "<" if order == "DESC" else ">"
                where.append(f"(created_at, id) {op} (?, ?)")
                args += list(anchor[0])
        rows = await asyncio.to_thread(
            self._sql, f"SELECT id, filename, purpose, bytes, created_at FROM files WHERE {' AND '.join(where)} "
            f"ORDER BY created_at {order}, id {order} LIMIT ?", (*args, request.limit + 1))
        files = [_row(r) for r in rows[: request.limit]]
        return FileList(data=files, first_id=files[0].id if files else None,
                        last_id=files[-1].id if files else None, has_more=len(rows) > request.limit)

    async def get_file(self, request: FileIdRequest) -> FileObject:
        rows = self._sql("SELECT id, filename, purpose, bytes, created_at FROM files WHERE id = ?",
                         (request.file_id,))
        if not rows:
            raise NotFoundError(f"File '{request.file_id}' not found. GET /v1/files lists the uploaded files.",
                                code="file_not_found")
        return _row(rows[0])

    async def delete_file(self, request: FileIdRequest) -> DeleteResponse:
        await self.get_file(request)
        self._sql("DELETE FROM files WHERE id = ?", (request.file_id,))
        self._path(request.file_id).unlink(missing_ok=True)
        return DeleteResponse(id=request.file_id, object="file")

    async def file_content(self, request: FileIdRequest) -> bytes:
        await self.get_file(request)
        return await asyncio.to_thread(self._path(request.file_id).read_bytes)


def _row(row: tuple[Any, ...]) -> FileObject:
    return FileObject(id=row[0], filename=row[1], purpose=row[2], bytes=row[3], created_at=row[4])


async def create(config: LocalFSConfig, deps: dict[Api, Any]) -> LocalFSFiles:
    return LocalFSFiles(config)
