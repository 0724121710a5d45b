"""Stored chat completions: rows in a SQL table (sqlite or PostgreSQL), written off the request path.

A completion created with ``store: true`` is put on a bounded queue and answered; one writer task commits
what the queue holds in batches (one transaction each). A full queue makes the next storing request wait
(back-pressure), never drops a row; a failed commit is logged and retried until it succeeds. Reads first
wait for the writes queued before them, so a client reads what it just created. Shutdown flushes the
queue; only a process killed outright (SIGKILL, power loss) can lose the rows still queued, at most one
batch interval's worth.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import JSON, BigInteger, Column, Index, Integer, MetaData, String, Table, Text, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import SQLAlchemyError

from stackkit.apis.datatypes import Metadata
from stackkit.apis.inference import (
    ChatCompletion,
    ChatCompletionChoice,
    ChatCompletionChunk,
    ChatCompletionMessage,
    ChatCompletionRequest,
    FunctionCall,
    ToolCall,
    content_text,
)
from stackkit.apis.stored_completions import (
    CompletionIdRequest,
    ListStoredCompletionsRequest,
    ListStoredMessagesRequest,
    StoredCompletion,
    StoredCompletionDeleted,
    StoredCompletionList,
    StoredMessage,
    StoredMessageList,
    UpdateStoredCompletionRequest,
)
from stackkit.core.sql import SqlStore
from stackkit.core.streams import Stream, aclose
from stackkit.errors import InvalidRequestError, NotFoundError

log = logging.getLogger("stackkit.stored_completions")
TABLES = MetaData()
COMPLETIONS = Table(
    "stored_completions", TABLES,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("id", String, nullable=False, unique=True), Column("model", String, nullable=False),
    Column("completion", Text, nullable=False), Column("messages", Text, nullable=False),
    Column("metadata", JSON().with_variant(JSONB, "postgresql"), nullable=False),
    Index("stored_completions_model", "model", "seq"),
    sqlite_autoincrement=True)
_BATCH = 256


class _StoreOptions(BaseModel):
    store: bool | None = None
    metadata: Metadata | None = None


def store_options(request: ChatCompletionRequest) -> tuple[bool, dict[str, str]]:
    """Whether the request asks to be stored, and its metadata (both taken off what goes upstream)."""
    extra = request.model_extra if request.model_extra is not None else {}
    if "store" not in extra and "metadata" not in extra:
        return False, {}
    try:
        options = _StoreOptions(store=extra.pop("store", None), metadata=extra.pop("metadata", None))
    except ValidationError as exc:
        problem = exc.errors()[0]
        raise InvalidRequestError(f"{'.'.join(map(str, problem['loc']))}: {problem['msg']}. Send store as true or "
                                  "false, and metadata as up to 16 string pairs (keys up to 64 characters, values up "
                                  "to 512).", param=str(problem["loc"][0])) from None
    return bool(options.store), options.metadata or {}


def new_completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def whole(chunks: list[ChatCompletionChunk], model: str) -> ChatCompletion:
    """The completion a finished stream amounts to (text, refusals and tool calls merged per choice)."""
    choices: dict[int, dict[str, Any]] = {}
    usage = None
    for chunk in chunks:
        usage = chunk.usage or usage
        for c in chunk.choices:
            slot = choices.setdefault(c.index, {"content": "", "refusal": "", "calls": {}, "finish": None})
            slot["content"] += c.delta.content or ""
            slot["refusal"] += c.delta.refusal or ""
            slot["finish"] = c.finish_reason or slot["finish"]
            for d in c.delta.tool_calls or []:
                call = slot["calls"].setdefault(d.index, {"id": "", "name": "", "arguments": ""})
                call["id"] = d.id or call["id"]
                if d.function is not None:
                    call["name"] += d.function.name or ""
                    call["arguments"] += d.function.arguments or ""
    return ChatCompletion(id=chunks[0].id, created=chunks[0].created, model=model, usage=usage, choices=[
        ChatCompletionChoice(index=i, finish_reason=slot["finish"], message=ChatCompletionMessage(
            content=slot["content"] or None, refusal=slot["refusal"] or None,
            tool_calls=[ToolCall(id=c["id"], function=FunctionCall(name=c["name"], arguments=c["arguments"]))
                        for _, c in sorted(slot["calls"].items())] or None))
        for i, slot in sorted(choices.items())])


def stored_stream(stream: AsyncIterator[ChatCompletionChunk], request: ChatCompletionRequest, model: str,
                  metadata: dict[str, str], store: CompletionStore) -> Stream[ChatCompletionChunk]:
    """`stream` under a stored completion's id; once it has finished, the completion is stored (before
    the stream's end reaches the client, so a client that saw the end can read it back)."""
    completion_id = new_completion_id()

    async def relay() -> AsyncIterator[ChatCompletionChunk]:
        seen: list[ChatCompletionChunk] = []
        async for chunk in stream:
            chunk.id = completion_id
            seen.append(chunk)
            yield chunk
        if seen:
            await store.record(request, whole(seen, model), metadata)

    return Stream(relay(), lambda: aclose(stream))


def _stored_messages(request: ChatCompletionRequest, completion_id: str) -> list[dict[str, Any]]:
    """The input messages as OpenAI lists them: an id each, text content, and the parts of a multi-part one."""
    out = []
    for i, message in enumerate(request.messages):
        data = message.model_dump(mode="json", exclude_none=True)
        content = data.get("content")
        if isinstance(content, list):
            data["content_parts"] = content
            data["content"] = content_text(message.content)  # type: ignore[union-attr]
        out.append({"id": f"{completion_id}-{i}", **data})
    return out


class CompletionStore:
    """The StoredCompletions API, and `record()`, which the inference router calls for ``store: true``."""

    def __init__(self, db: SqlStore, queue_size: int = 1024) -> None:
        self.db = db
        self.queue_size = queue_size
        self._queue: asyncio.Queue[dict[str, Any]] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._progress: asyncio.Condition | None = None
        self._enqueued = 0
        self._written = 0

    async def open(self) -> None:
        await self.db.create(TABLES)

    async def record(self, request: ChatCompletionRequest, completion: ChatCompletion,
                     metadata: dict[str, str]) -> None:
        """Queue `completion` (and the messages that asked for it) for storing; waits while the queue is full."""
        if self._queue is None:
            self._queue, self._progress = asyncio.Queue(self.queue_size), asyncio.Condition()
            self._writer = asyncio.get_running_loop().create_task(self._write_forever(), name="stored-completions")
        row = {"id": completion.id, "model": completion.model, "completion": completion.model_dump_json(),
               "messages": json.dumps(_stored_messages(request, completion.id)), "metadata": metadata}
        await self._queue.put(row)
        self._enqueued += 1

    def queue_depth(self) -> float:
        return float(self._queue.qsize()) if self._queue is not None else 0.0

    async def _write_forever(self) -> None:
        assert self._queue is not None and self._progress is not None
        while True:
            batch = [await self._queue.get()]
            while len(batch) < _BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            delay = 0.05
            while True:
                try:
                    await self.db.execute(COMPLETIONS.insert(), batch)
                    break
                except SQLAlchemyError as exc:
                    log.error("could not store %d chat completions (%s); retrying in %.2f s", len(batch), exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
            self._written += len(batch)
            async with self._progress:
                self._progress.notify_all()

    async def _caught_up(self) -> None:
        """Wait until every row queued before this call is committed (read-your-writes)."""
        if self._progress is None:
            return
        target = self._enqueued
        async with self._progress:
            await self._progress.wait_for(lambda: self._written >= target)

    async def shutdown(self, timeout_s: float = 30.0) -> None:
        """Flush the queue, then stop the writer and close the store."""
        if self._writer is None:
            await self.db.close()
            return
        try:
            await asyncio.wait_for(self._caught_up(), timeout_s)
        except TimeoutError:
            log.critical("%d stored chat completions could not be written before shutdown",
                         self._enqueued - self._written)
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer
        await self.db.close()

    # ---- the API ----------------------------------------------------------------------------

    async def _row(self, completion_id: str) -> tuple[int, str, str, dict[str, str]]:
        await self._caught_up()
        c = COMPLETIONS.c
        rows = await self.db.fetch(select(c.seq, c.completion, c.messages, c.metadata).where(c.id == completion_id))
        if not rows:
            raise NotFoundError(f"Chat completion '{completion_id}' not found; only completions created with "
                                "store: true are kept (GET /v1/chat/completions lists them).",
                                code="completion_not_found", param="completion_id")
        seq, completion, messages, metadata = rows[0]
        return seq, completion, messages, metadata

    @staticmethod
    def _view(completion: str, metadata: dict[str, str]) -> StoredCompletion:
        return StoredCompletion.model_validate({**json.loads(completion), "metadata": metadata})

    async def list_stored_completions(self, request: ListStoredCompletionsRequest) -> StoredCompletionList:
        await self._caught_up()
        c = COMPLETIONS.c
        query = select(c.completion, c.metadata)
        if request.model is not None:
            query = query.where(c.model == request.model)
        for key, value in (request.metadata or {}).items():
            query = query.where(c.metadata[key].as_string() == value)
        if request.after is not None:
            seq = (await self._row(request.after))[0]
            query = query.where(c.seq > seq if request.order == "asc" else c.seq < seq)
        order = c.seq.asc() if request.order == "asc" else c.seq.desc()
        rows = await self.db.fetch(query.order_by(order).limit(request.limit + 1))
        page = [self._view(*r) for r in rows[:request.limit]]
        return StoredCompletionList(data=page, first_id=page[0].id if page else None,
                                    last_id=page[-1].id if page else None, has_more=len(rows) > request.limit)

    async def get_stored_completion(self, request: CompletionIdRequest) -> StoredCompletion:
        _, completion, _, metadata = await self._row(request.completion_id)
        return self._view(completion, metadata)

    async def list_stored_messages(self, request: ListStoredMessagesRequest) -> StoredMessageList:
        messages = [StoredMessage.model_validate(m) for m in json.loads((await self._row(request.completion_id))[2])]
        if request.order == "desc":
            messages.reverse()
        ids = [m.id for m in messages]
        if request.after is not None:
            messages = messages[ids.index(request.after) + 1:] if request.after in ids else []
        page = messages[:request.limit]
        return StoredMessageList(data=page, first_id=page[0].id if page else None,
                                 last_id=page[-1].id if page else None, has_more=len(messages) > len(page))

    async def update_stored_completion(self, request: UpdateStoredCompletionRequest) -> StoredCompletion:
        _, completion, _, _ = await self._row(request.completion_id)
        metadata = request.metadata or {}
        await self.db.execute(COMPLETIONS.update().where(COMPLETIONS.c.id == request.completion_id)
                              .values(metadata=metadata))
        return self._view(completion, metadata)

    async def delete_stored_completion(self, request: CompletionIdRequest) -> StoredCompletionDeleted:
        await self._row(request.completion_id)
        await self.db.execute(COMPLETIONS.delete().where(COMPLETIONS.c.id == request.completion_id))
        return StoredCompletionDeleted(id=request.completion_id)

