"""Conversations (OpenAI's Conversations API): durable lists of items that Responses turns read as their
context and append to. Items live in the stack's SQL store, one row each, read back in one query."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import Column, Connection, Integer, MetaData, String, Table, Text, func, select
from sqlalchemy.exc import IntegrityError

from stackkit.apis.agents import (
    AddItemsRequest,
    ConversationIdRequest,
    ConversationObject,
    CreateConversationRequest,
    InputItemList,
    Item,
    ItemRequest,
    ListItemsRequest,
    UpdateConversationRequest,
)
from stackkit.apis.datatypes import DeleteResponse
from stackkit.core.sql import SqlStore
from stackkit.errors import NotFoundError

_ITEM: TypeAdapter[Item] = TypeAdapter(Item)
TABLES = MetaData()
CONVERSATIONS = Table("conversations", TABLES, Column("id", String, primary_key=True),
                      Column("created_at", Integer, nullable=False), Column("metadata", Text, nullable=False))
ITEMS = Table("conversation_items", TABLES, Column("conversation_id", String, primary_key=True),
              Column("seq", Integer, primary_key=True, autoincrement=False), Column("item_id", String, nullable=False),
              Column("body", Text, nullable=False))


def stored_item(item: dict[str, Any]) -> dict[str, Any]:
    """An item as a conversation keeps it (messages carry a status, as OpenAI's do)."""
    kept = {"id": item.get("id") or f"msg_{uuid.uuid4().hex}", **item}
    if kept.get("type", "message") == "message":
        kept.setdefault("type", "message")
        kept.setdefault("status", "completed")
        if isinstance(kept.get("content"), str):
            part = "output_text" if kept.get("role") == "assistant" else "input_text"
            kept["content"] = [{"type": part, "text": kept["content"]}]
    return kept


def item_page(items: list[dict[str, Any]], order: str, after: str | None, limit: int) -> InputItemList:
    """A page of items (oldest first in `items`) as OpenAI lists them: by order, after an id, up to limit."""
    if order == "desc":
        items = items[::-1]
    ids = [i["id"] for i in items]
    if after in ids:
        items = items[ids.index(after) + 1:]
    page = items[:limit]
    return InputItemList(data=page, first_id=page[0]["id"] if page else None,  # type: ignore[arg-type]
                         last_id=page[-1]["id"] if page else None, has_more=len(items) > len(page))


class ConversationsAPI:
    """The Conversations half of the Agents API (mixed into the Responses service, which shares its store)."""

    db: SqlStore

    async def _conversation(self, conversation_id: str) -> ConversationObject:
        c = CONVERSATIONS.c
        rows = await self.db.fetch(select(c.created_at, c.metadata).where(c.id == conversation_id))
        if not rows:
            raise NotFoundError(f"Conversation '{conversation_id}' not found; create it with POST /v1/conversations.",
                                code="conversation_not_found", param="conversation_id")
        return ConversationObject(id=conversation_id, created_at=rows[0][0], metadata=json.loads(rows[0][1]))

    async def conversation_items(self, conversation_id: str) -> list[dict[str, Any]]:
        """Every item, oldest first (the context of a turn in this conversation)."""
        await self._conversation(conversation_id)
        rows = await self.db.fetch(select(ITEMS.c.body).where(ITEMS.c.conversation_id == conversation_id)
                                   .order_by(ITEMS.c.seq))
        return [json.loads(r[0]) for r in rows]

    async def append_items(self, conversation_id: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        kept = [stored_item(i) for i in items]
        last_seq = select(func.coalesce(func.max(ITEMS.c.seq), 0)).where(ITEMS.c.conversation_id == conversation_id)

        def append(conn: Connection) -> None:
            last = conn.execute(last_seq).scalar_one()
            conn.execute(ITEMS.insert(), [{"conversation_id": conversation_id, "seq": last + 1 + i,
                                           "item_id": item["id"], "body": json.dumps(item)}
                                          for i, item in enumerate(kept)])

        for attempt in range(5):  # two replicas appending at once both read the same last seq: one retries
            try:
                await self.db.run(append)
                break
            except IntegrityError:
                if attempt == 4:
                    raise
        return kept

    async def create_conversation(self, request: CreateConversationRequest) -> ConversationObject:
        conversation = ConversationObject(id=f"conv_{uuid.uuid4().hex}", created_at=int(time.time()),
                                          metadata=request.metadata)
        await self.db.execute(CONVERSATIONS.insert().values(
            id=conversation.id, created_at=conversation.created_at, metadata=json.dumps(conversation.metadata)))
        if request.items:
            await self.append_items(conversation.id, request.items)
        return conversation

    async def get_conversation(self, request: ConversationIdRequest) -> ConversationObject:
        return await self._conversation(request.conversation_id)

    async def update_conversation(self, request: UpdateConversationRequest) -> ConversationObject:
        await self._conversation(request.conversation_id)
        await self.db.execute(CONVERSATIONS.update().where(CONVERSATIONS.c.id == request.conversation_id)
                              .values(metadata=json.dumps(request.metadata)))
        return await self._conversation(request.conversation_id)

    async def delete_conversation(self, request: ConversationIdRequest) -> DeleteResponse:
        await self._conversation(request.conversation_id)

        def delete(conn: Connection) -> None:
            conn.execute(ITEMS.delete().where(ITEMS.c.conversation_id == request.conversation_id))
            conn.execute(CONVERSATIONS.delete().where(CONVERSATIONS.c.id == request.conversation_id))

        await self.db.run(delete)
        return DeleteResponse(id=request.conversation_id, object="conversation.deleted")

    async def add_conversation_items(self, request: AddItemsRequest) -> InputItemList:
        await self._conversation(request.conversation_id)
        kept = await self.append_items(request.conversation_id, request.items)
        return InputItemList(data=kept, first_id=kept[0]["id"], last_id=kept[-1]["id"], has_more=False)

    async def list_conversation_items(self, request: ListItemsRequest) -> InputItemList:
        items = await self.conversation_items(request.conversation_id)
        return item_page(items, request.order, request.after, request.limit)

    def _item(self, request: ItemRequest) -> Any:
        return (ITEMS.c.conversation_id == request.conversation_id) & (ITEMS.c.item_id == request.item_id)

    async def get_conversation_item(self, request: ItemRequest) -> Item:
        await self._conversation(request.conversation_id)
        rows = await self.db.fetch(select(ITEMS.c.body).where(self._item(request)))
        if not rows:
            raise NotFoundError(f"Item '{request.item_id}' is not in conversation '{request.conversation_id}'; list "
                                "its items with GET .../items.", code="item_not_found", param="item_id")
        return _ITEM.validate_python(json.loads(rows[0][0]))

    async def delete_conversation_item(self, request: ItemRequest) -> ConversationObject:
        await self.get_conversation_item(request)
        await self.db.execute(ITEMS.delete().where(self._item(request)))
        return await self._conversation(request.conversation_id)
