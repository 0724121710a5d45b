"""Inference: chat completions, completions and embeddings in OpenAI's wire format.

Field names and shapes follow OpenAI's API so the official `openai` SDK parses our
responses unchanged. Requests accept extra fields (the SDK's ``extra_body``); they
are passed on to providers that understand them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, field_validator, model_serializer

from stackkit.apis.datatypes import route


class _Open(BaseModel):
    """Wire types accept and keep fields we do not model (newer OpenAI fields, provider extras)."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())


# ---- messages -------------------------------------------------------------------------------


class TextPart(_Open):
    type: Literal["text"] = "text"
    text: str


class ImageURL(_Open):
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(_Open):
    type: Literal["image_url"] = "image_url"
    image_url: ImageURL


class RefusalPart(_Open):
    type: Literal["refusal"] = "refusal"
    refusal: str


class FileData(_Open):
    file_id: str | None = None
    file_data: str | None = None
    filename: str | None = None


class FilePart(_Open):
    """A file (PDF and others) given inline or by id, passed on to providers that read files."""

    type: Literal["file"] = "file"
    file: FileData


class InputAudio(_Open):
    data: str
    format: str


class AudioPart(_Open):
    type: Literal["input_audio"] = "input_audio"
    input_audio: InputAudio


ContentPart = Annotated[TextPart | ImagePart | RefusalPart | FilePart | AudioPart, Field(discriminator="type")]
Content = str | list[ContentPart]


class FunctionCall(_Open):
    name: str
    arguments: str


class ToolCall(_Open):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class SystemMessage(_Open):
    role: Literal["system"] = "system"
    content: Content
    name: str | None = None


class DeveloperMessage(_Open):
    role: Literal["developer"] = "developer"
    content: Content
    name: str | None = None


class UserMessage(_Open):
    role: Literal["user"] = "user"
    content: Content
    name: str | None = None


class AssistantMessage(_Open):
    role: Literal["assistant"] = "assistant"
    content: Content | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    refusal: str | None = None


class ToolMessage(_Open):
    role: Literal["tool"] = "tool"
    content: Content
    tool_call_id: str


Message = Annotated[
    SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage,
    Field(discriminator="role"),
]


def content_text(content: Content | None) -> str:
    """The plain text of a message's content (text parts joined)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(p.text for p in content if isinstance(p, TextPart))


# ---- tools and formats ----------------------------------------------------------------------


class FunctionDefinition(_Open):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Open):
    type: Literal["function"] = "function"
    function: FunctionDefinition


class NamedToolChoiceFunction(_Open):
    name: str


class NamedToolChoice(_Open):
    type: Literal["function"] = "function"
    function: NamedToolChoiceFunction


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class JSONSchemaFormat(_Open):
    name: str
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None

    model_config = ConfigDict(extra="allow", populate_by_name=True, serialize_by_alias=True)


class ResponseFormatText(_Open):
    type: Literal["text"] = "text"


class ResponseFormatJSONObject(_Open):
    type: Literal["json_object"] = "json_object"


class ResponseFormatJSONSchema(_Open):
    type: Literal["json_schema"] = "json_schema"
    json_schema: JSONSchemaFormat


ResponseFormat = Annotated[
    ResponseFormatText | ResponseFormatJSONObject | ResponseFormatJSONSchema,
    Field(discriminator="type"),
]


class StreamOptions(_Open):
    include_usage: bool | None = None


# ---- chat completions -----------------------------------------------------------------------


class ChatCompletionRequest(_Open):
    model: str
    messages: list[Message] = Field(min_length=1)
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    n: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    user: str | None = None

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


class Usage(_Open):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class TopLogprob(_Open):
    token: str
    logprob: float
    bytes: list[int] | None = None


class TokenLogprob(_Open):
    token: str
    logprob: float
    bytes: list[int] | None = None
    top_logprobs: list[TopLogprob] = Field(default_factory=list)


class ChoiceLogprobs(_Open):
    content: list[TokenLogprob] | None = None
    refusal: list[TokenLogprob] | None = None


FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]


class ChatCompletionMessage(_Open):
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None


class ChatCompletionChoice(_Open):
    index: int = 0
    message: ChatCompletionMessage
    finish_reason: FinishReason | None = None
    logprobs: ChoiceLogprobs | None = None


class ChatCompletion(_Open):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatCompletionChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


class _Delta(_Open):
    """Stream deltas leave out what they do not carry, as OpenAI's do: a client that merges deltas
    (the openai SDK's stream helper) must not see ``"type": null`` overwrite a tool call's type."""

    @model_serializer(mode="wrap")
    def _omit_nulls(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}


class ToolCallDeltaFunction(_Delta):
    name: str | None = None
    arguments: str | None = None


class ToolCallDelta(_Delta):
    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: ToolCallDeltaFunction | None = None


class ChoiceDelta(_Delta):
    role: Literal["assistant"] | None = None
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class ChatCompletionChunkChoice(_Open):
    index: int = 0
    delta: ChoiceDelta
    finish_reason: FinishReason | None = None
    logprobs: ChoiceLogprobs | None = None


class ChatCompletionChunk(_Open):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatCompletionChunkChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None

    @model_serializer(mode="wrap")
    def _omit_null_extras(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for key in ("usage", "system_fingerprint"):
            if data.get(key, 0) is None:
                del data[key]
        return data


# ---- completions ----------------------------------------------------------------------------

Prompt = str | list[str] | list[int] | list[list[int]]


class CompletionRequest(_Open):
    model: str
    prompt: Prompt
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    n: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    echo: bool | None = None
    logprobs: int | None = Field(default=None, ge=0, le=5)
    best_of: int | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None
    suffix: str | None = None
    user: str | None = None


class CompletionLogprobs(_Open):
    tokens: list[str] | None = None
    token_logprobs: list[float | None] | None = None
    top_logprobs: list[dict[str, float] | None] | None = None
    text_offset: list[int] | None = None


class CompletionChoice(_Open):
    index: int = 0
    text: str
    finish_reason: Literal["stop", "length", "content_filter"] | None = None
    logprobs: CompletionLogprobs | None = None


class Completion(_Open):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


# ---- embeddings -----------------------------------------------------------------------------


class EmbeddingRequest(_Open):
    model: str
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None

    @field_validator("input")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        items = [value] if isinstance(value, str) else value
        if not items:
            raise ValueError("input must not be an empty list")
        if any(isinstance(i, str) and not i for i in items) or any(isinstance(i, list) and not i for i in items):
            raise ValueError("input must not contain empty strings or empty token lists (as on OpenAI)")
        return value

    def texts(self) -> list[str]:
        """The inputs as strings; token-id inputs need a provider that reads them."""
        if isinstance(self.input, str):
            return [self.input]
        return [x for x in self.input if isinstance(x, str)]


class Embedding(_Open):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingUsage(_Open):
    prompt_tokens: int = 0
    total_tokens: int = 0


class EmbeddingResponse(_Open):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage = Field(default_factory=EmbeddingUsage)


class ProviderModel(BaseModel):
    """A model a provider reports it can serve (from its upstream's model list)."""

    model_config = ConfigDict(protected_namespaces=())

    provider_model_id: str
    model_type: Literal["llm", "embedding"] = "llm"
    metadata: dict[str, Any] = Field(default_factory=dict)


# ---- the API --------------------------------------------------------------------------------


@runtime_checkable
class Inference(Protocol):
    @route("POST", "/v1/chat/completions", sdk="chat.completions.create", stream=ChatCompletionChunk, key="model")
    async def chat_completion(
        self, request: ChatCompletionRequest
    ) -> ChatCompletion | AsyncIterator[ChatCompletionChunk]:
        """Create a model response for a chat conversation (streams when `stream` is true)."""
        ...

    @route("POST", "/v1/completions", sdk="completions.create", stream=Completion, key="model")
    async def completion(self, request: CompletionRequest) -> Completion | AsyncIterator[Completion]:
        """Complete a prompt (legacy completions; streams when `stream` is true)."""
        ...

    @route("POST", "/v1/embeddings", sdk="embeddings.create", key="model")
    async def embeddings(self, request: EmbeddingRequest) -> EmbeddingResponse:
        """Embed text inputs as vectors (float lists or base64)."""
        ...

    async def list_provider_models(self) -> list[ProviderModel] | None:
        """The models the provider can serve, or None when it cannot tell (not a route)."""
        ...
