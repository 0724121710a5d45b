"""Stored chat completions (OpenAI's API): a chat completion created with ``store: true`` (and optional
``metadata``) is kept, then listed, read with its input messages, re-labelled and deleted."""

from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from stackkit.apis.datatypes import Metadata, route
from stackkit.apis.inference import ChatCompletion


class StoredCompletion(ChatCompletion):
    """A stored chat completion: the completion as it was answered, plus its metadata."""

    metadata: dict[str, str] = Field(default_factory=dict)


class ListStoredCompletionsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    metadata: Metadata | None = None
    after: str | None = None
    limit: int = Field(default=20, ge=1, le=100)
    order: Literal["asc", "desc"] = "asc"


class StoredCompletionList(BaseModel):
    object: Literal["list"] = "list"
    data: list[StoredCompletion]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class CompletionIdRequest(BaseModel):
    completion_id: str


class ListStoredMessagesRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    completion_id: str
    after: str | None = None
    limit: int = Field(default=20, ge=1, le=100)
    order: Literal["asc", "desc"] = "asc"


class StoredMessage(BaseModel):
    """One input message of a stored completion, with the id OpenAI gives it."""

    model_config = ConfigDict(extra="allow")

    id: str
    role: str
    content: str | None = None
    content_parts: list[dict[str, Any]] | None = None


class StoredMessageList(BaseModel):
    object: Literal["list"] = "list"
    data: list[StoredMessage]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class UpdateStoredCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    completion_id: str
    metadata: Metadata | None = Field(description="replaces the metadata; null clears it")


class StoredCompletionDeleted(BaseModel):
    id: str
    object: Literal["chat.completion.deleted"] = "chat.completion.deleted"
    deleted: bool = True


@runtime_checkable
class StoredCompletions(Protocol):
    @route("GET", "/v1/chat/completions", sdk="chat.completions.list")
    async def list_stored_completions(self, request: ListStoredCompletionsRequest) -> StoredCompletionList:
        """Stored chat completions, by creation time; filter by model and metadata."""
        ...

    @route("GET", "/v1/chat/completions/{completion_id}", sdk="chat.completions.retrieve")
    async def get_stored_completion(self, request: CompletionIdRequest) -> StoredCompletion:
        """One stored chat completion."""
        ...

    @route("GET", "/v1/chat/completions/{completion_id}/messages", sdk="chat.completions.messages.list")
    async def list_stored_messages(self, request: ListStoredMessagesRequest) -> StoredMessageList:
        """The input messages of a stored chat completion."""
        ...

    @route("POST", "/v1/chat/completions/{completion_id}", sdk="chat.completions.update")
    async def update_stored_completion(self, request: UpdateStoredCompletionRequest) -> StoredCompletion:
        """Replace a stored chat completion's metadata."""
        ...

    @route("DELETE", "/v1/chat/completions/{completion_id}", sdk="chat.completions.delete")
    async def delete_stored_completion(self, request: CompletionIdRequest) -> StoredCompletionDeleted:
        """Delete a stored chat completion."""
        ...
