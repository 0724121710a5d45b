"""Agents: OpenAI's Responses API (one call that runs a model and its tools, and keeps the conversation).

Types follow ``openai.types.responses`` field for field where this implementation supports the feature;
a request field it does not support yet is a 400 that says so, never silently ignored. Streams are SSE
with ``event: <type>`` lines (the route's framing), every event numbered from 0.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from stackkit.apis.datatypes import DeleteResponse, route


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())


# OpenAI's limits: at most 16 pairs (on the fields), keys up to 64 characters, values up to 512
Metadata = dict[Annotated[str, StringConstraints(max_length=64)], Annotated[str, StringConstraints(max_length=512)]]


class FunctionTool(_Open):
    """A function the client runs: the model's call comes back as a `function_call` output item."""

    type: Literal["function"] = "function"
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class FileSearchTool(_Open):
    """Search stackkit's vector stores: the model asks, the server searches, and the answer cites files."""

    type: Literal["file_search"] = "file_search"
    vector_store_ids: list[str] = Field(min_length=1)
    max_num_results: int = Field(default=10, ge=1, le=50)
    filters: dict[str, Any] | None = None
    ranking_options: dict[str, Any] | None = None


class ToolNames(_Open):
    tool_names: list[str] = Field(default_factory=list)


class ApprovalFilter(_Open):
    always: ToolNames | None = None
    never: ToolNames | None = None


class McpTool(_Open):
    """Tools of a remote MCP server (streamable HTTP): listed at the start of the turn, run by the server."""

    type: Literal["mcp"] = "mcp"
    server_label: str = Field(min_length=1, max_length=64)
    server_url: str | None = Field(default=None, pattern=r"^https?://", description="unset: the tool group "
                                   "registered in run.yaml whose id is server_label")
    headers: dict[str, str] | None = None
    authorization: str | None = None
    allowed_tools: list[str] | dict[str, Any] | None = None
    require_approval: Literal["always", "never"] | ApprovalFilter | None = Field(
        default=None, description="as OpenAI: unset means always; a call that needs approval ends the turn with "
        "an mcp_approval_request item, answered by an mcp_approval_response input item")

    def allowed(self) -> set[str] | None:
        if self.allowed_tools is None:
            return None
        names = self.allowed_tools if isinstance(self.allowed_tools, list) else self.allowed_tools.get("tool_names")
        return set(names or [])

    def needs_approval(self, name: str) -> bool:
        rule = self.require_approval
        if rule is None or isinstance(rule, str):
            return rule != "never"
        if rule.never is not None and name in rule.never.tool_names:
            return False
        return True  # named under `always`, or named nowhere: approval is the default

    def stored(self) -> dict[str, Any]:
        """The tool as a response shows and keeps it: no credential (authorization, header values; the caller
        masks credentials in the URL)."""
        shown = self.model_dump(exclude={"authorization"})
        if self.headers:
            shown["headers"] = {k: "<redacted>" for k in self.headers}
        return shown


Tool = Annotated[FunctionTool | FileSearchTool | McpTool, Field(discriminator="type")]


class TextFormat(_Open):
    type: Literal["text", "json_object", "json_schema"] = "text"
    name: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None
    description: str | None = None

    model_config = ConfigDict(extra="allow", populate_by_name=True, serialize_by_alias=True)


class TextConfig(_Open):
    format: TextFormat = Field(default_factory=TextFormat)


class CreateResponseRequest(BaseModel):
    """POST /v1/responses. Unknown fields are a 400 (extra="forbid")."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str
    input: str | list[dict[str, Any]] = Field(min_length=1)
    instructions: str | None = None
    previous_response_id: str | None = None
    tools: list[Tool] = Field(default_factory=list)
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] = "auto"
    parallel_tool_calls: bool = True
    max_tool_calls: int | None = Field(default=None, ge=1)
    include: list[Literal["file_search_call.results"]] = Field(default_factory=list)
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    text: TextConfig | None = None
    store: bool = True
    stream: bool = False
    metadata: Metadata = Field(default_factory=dict, max_length=16)
    user: str | None = None
    guardrails: list[str] | None = None
    conversation: str | dict[str, Any] | None = Field(default=None, description="a conversation whose items "
                                                      "are the context, and which the turn is added to")
    background: bool = False
    truncation: Literal["disabled", "auto"] = Field(default="disabled", description="auto: drop the oldest turns "
                                                    "to fit the model's context (its metadata's context_length)")




class FileCitation(_Open):
    type: Literal["file_citation"] = "file_citation"
    file_id: str
    filename: str
    index: int


class OutputText(_Open):
    type: Literal["output_text"] = "output_text"
    text: str
    annotations: list[FileCitation] = Field(default_factory=list)
    logprobs: list[Any] = Field(default_factory=list)


class RefusalPart(_Open):
    """The model's (or a guardrail's) refusal to answer, as OpenAI returns it."""

    type: Literal["refusal"] = "refusal"
    refusal: str


class OutputMessage(_Open):
    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    status: Literal["in_progress", "completed", "incomplete"] = "completed"
    content: list[OutputText | RefusalPart] = Field(default_factory=list)


class FunctionCallItem(_Open):
    id: str
    type: Literal["function_call"] = "function_call"
    call_id: str
    name: str
    arguments: str
    status: Literal["in_progress", "completed", "incomplete"] = "completed"


class FileSearchResult(_Open):
    file_id: str | None = None
    filename: str | None = None
    score: float | None = None
    text: str | None = None
    attributes: dict[str, Any] | None = None


class FileSearchCallItem(_Open):
    id: str
    type: Literal["file_search_call"] = "file_search_call"
    queries: list[str]
    status: Literal["in_progress", "searching", "completed", "incomplete", "failed"] = "completed"
    results: list[FileSearchResult] | None = None


class McpListedTool(_Open):
    name: str
    description: str | None = None
    input_schema: dict[str, Any] = Field(default_factory=dict)
    annotations: dict[str, Any] | None = None


class McpListToolsItem(_Open):
    id: str
    type: Literal["mcp_list_tools"] = "mcp_list_tools"
    server_label: str
    tools: list[McpListedTool] = Field(default_factory=list)
    error: str | None = None


class McpCallItem(_Open):
    id: str
    type: Literal["mcp_call"] = "mcp_call"
    server_label: str
    name: str
    arguments: str
    output: str | None = None
    error: str | None = None
    status: Literal["in_progress", "completed", "incomplete", "failed"] = "completed"
    approval_request_id: str | None = None


class McpApprovalRequestItem(_Open):
    """A call of an MCP tool waiting for the client's `mcp_approval_response` (the turn ends here)."""

    id: str
    type: Literal["mcp_approval_request"] = "mcp_approval_request"
    server_label: str
    name: str
    arguments: str


class InputTokensDetails(_Open):
    cached_tokens: int = 0
    cache_write_tokens: int = 0


class OutputTokensDetails(_Open):
    reasoning_tokens: int = 0


class ResponseUsage(_Open):
    input_tokens: int = 0
    input_tokens_details: InputTokensDetails = Field(default_factory=InputTokensDetails)
    output_tokens: int = 0
    output_tokens_details: OutputTokensDetails = Field(default_factory=OutputTokensDetails)
    total_tokens: int = 0


class IncompleteDetails(_Open):
    reason: Literal["max_output_tokens", "content_filter"]


class ResponseError(_Open):
    code: str
    message: str


class ConversationRef(_Open):
    """The conversation a response belongs to."""

    id: str


class ResponseObject(_Open):
    id: str
    object: Literal["response"] = "response"
    created_at: int
    status: Literal["completed", "failed", "in_progress", "incomplete", "cancelled", "queued"]
    model: str
    output: list[OutputMessage | FunctionCallItem | FileSearchCallItem | McpListToolsItem | McpCallItem
                 | McpApprovalRequestItem] = Field(default_factory=list)
    instructions: str | None = None
    previous_response_id: str | None = None
    tools: list[Tool] = Field(default_factory=list)
    tool_choice: Any = "auto"
    parallel_tool_calls: bool = True
    temperature: float = 1.0  # the request's, or OpenAI's default (which is what the model is sent)
    top_p: float = 1.0  # the request's, or OpenAI's default (the model is sent it only when the request sets it)
    presence_penalty: float = 0.0  # not offered by this API: reported as OpenAI reports an unset one
    frequency_penalty: float = 0.0
    top_logprobs: int = 0
    reasoning: dict[str, Any] | None = None
    max_output_tokens: int | None = None
    max_tool_calls: int | None = None
    text: TextConfig = Field(default_factory=TextConfig)
    truncation: Literal["disabled", "auto"] = "disabled"
    store: bool = True
    metadata: Metadata = Field(default_factory=dict)
    usage: ResponseUsage | None = None
    incomplete_details: IncompleteDetails | None = None
    error: ResponseError | None = None
    user: str | None = None
    background: bool = False
    completed_at: int | None = None
    conversation: ConversationRef | None = None
    service_tier: str = "default"
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None

    @property
    def output_text(self) -> str:
        """The text of every output message, joined (the openai SDK's convenience property)."""
        return "".join(part.text for item in self.output if isinstance(item, OutputMessage)
                       for part in item.content if isinstance(part, OutputText))


class ResponseEvent(_Open):
    """One streamed event: `type`, `sequence_number`, and the fields its type carries."""

    type: str
    sequence_number: int


class ResponseIdRequest(BaseModel):
    response_id: str


class RetrieveResponseRequest(BaseModel):
    """GET /v1/responses/{id}: the response, or (stream=true, background responses) its events again."""

    model_config = ConfigDict(extra="forbid")

    response_id: str
    stream: bool = False
    starting_after: int | None = Field(default=None, ge=-1)


class InputItemsRequest(BaseModel):
    response_id: str
    after: str | None = None
    limit: int = Field(default=20, ge=1, le=100)
    order: Literal["asc", "desc"] = "desc"


class InputText(_Open):
    type: Literal["input_text"] = "input_text"
    text: str


class MessageItem(_Open):
    """A message of a conversation or a request's input, its content as typed parts."""

    id: str
    type: Literal["message"] = "message"
    role: Literal["user", "system", "developer", "assistant"]
    status: str | None = None
    content: list[InputText | OutputText | RefusalPart | _Open]


class FunctionCallOutputItem(_Open):
    id: str
    type: Literal["function_call_output"] = "function_call_output"
    call_id: str
    output: Any
    status: str | None = None


class McpApprovalResponseItem(_Open):
    id: str
    type: Literal["mcp_approval_response"] = "mcp_approval_response"
    approval_request_id: str
    approve: bool
    reason: str | None = None


class ConversationItem(_Open):
    """Any other item, as it was added."""

    id: str
    type: str


# items as lists return them: typed where stackkit knows the type (so SDK-style attribute access works)
Item = (MessageItem | FunctionCallItem | FunctionCallOutputItem | FileSearchCallItem | McpCallItem
        | McpListToolsItem | McpApprovalRequestItem | McpApprovalResponseItem | ConversationItem)


class InputItemList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Item]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class ConversationObject(_Open):
    id: str
    object: Literal["conversation"] = "conversation"
    created_at: int
    metadata: Metadata = Field(default_factory=dict)


class CreateConversationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[dict[str, Any]] = Field(default_factory=list, max_length=20)
    metadata: Metadata = Field(default_factory=dict, max_length=16)


class ConversationIdRequest(BaseModel):
    conversation_id: str


class UpdateConversationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    conversation_id: str
    metadata: Metadata = Field(max_length=16)


class AddItemsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    conversation_id: str
    items: list[dict[str, Any]] = Field(min_length=1, max_length=20)


class ListItemsRequest(BaseModel):
    conversation_id: str
    after: str | None = None
    limit: int = Field(default=20, ge=1, le=100)
    order: Literal["asc", "desc"] = "desc"


class ItemRequest(BaseModel):
    conversation_id: str
    item_id: str


@runtime_checkable
class Agents(Protocol):
    @route("POST", "/v1/responses", sdk="responses.create", stream=ResponseEvent, framing="event")
    async def create_response(self, request: CreateResponseRequest) -> ResponseObject | AsyncIterator[ResponseEvent]:
        """Create a model response (streams events when `stream` is true)."""
        ...

    @route("GET", "/v1/responses/{response_id}", sdk="responses.retrieve", stream=ResponseEvent, framing="event")
    async def get_response(self, request: RetrieveResponseRequest) -> ResponseObject | AsyncIterator[ResponseEvent]:
        """Get a stored response; with `stream`, replay a background response's events after `starting_after`."""
        ...

    @route("POST", "/v1/responses/{response_id}/cancel", sdk="responses.cancel")
    async def cancel_response(self, request: ResponseIdRequest) -> ResponseObject:
        """Cancel a background response that is queued or in progress."""
        ...

    @route("DELETE", "/v1/responses/{response_id}", sdk="responses.delete")
    async def delete_response(self, request: ResponseIdRequest) -> DeleteResponse:
        """Delete a stored response."""
        ...

    @route("GET", "/v1/responses/{response_id}/input_items", sdk="responses.input_items.list")
    async def list_input_items(self, request: InputItemsRequest) -> InputItemList:
        """The input items of a stored response."""
        ...

    @route("POST", "/v1/conversations", sdk="conversations.create")
    async def create_conversation(self, request: CreateConversationRequest) -> ConversationObject:
        """Create a conversation, optionally with its first items."""
        ...

    @route("GET", "/v1/conversations/{conversation_id}", sdk="conversations.retrieve")
    async def get_conversation(self, request: ConversationIdRequest) -> ConversationObject:
        """Get a conversation."""
        ...

    @route("POST", "/v1/conversations/{conversation_id}", sdk="conversations.update")
    async def update_conversation(self, request: UpdateConversationRequest) -> ConversationObject:
        """Replace a conversation's metadata."""
        ...

    @route("DELETE", "/v1/conversations/{conversation_id}", sdk="conversations.delete")
    async def delete_conversation(self, request: ConversationIdRequest) -> DeleteResponse:
        """Delete a conversation and its items."""
        ...

    @route("POST", "/v1/conversations/{conversation_id}/items", sdk="conversations.items.create")
    async def add_conversation_items(self, request: AddItemsRequest) -> InputItemList:
        """Add items to a conversation."""
        ...

    @route("GET", "/v1/conversations/{conversation_id}/items", sdk="conversations.items.list")
    async def list_conversation_items(self, request: ListItemsRequest) -> InputItemList:
        """List a conversation's items."""
        ...

    @route("GET", "/v1/conversations/{conversation_id}/items/{item_id}", sdk="conversations.items.retrieve")
    async def get_conversation_item(self, request: ItemRequest) -> Item:
        """Get one item of a conversation."""
        ...

    @route("DELETE", "/v1/conversations/{conversation_id}/items/{item_id}", sdk="conversations.items.delete")
    async def delete_conversation_item(self, request: ItemRequest) -> ConversationObject:
        """Delete one item of a conversation."""
        ...
