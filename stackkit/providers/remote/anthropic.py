"""remote::anthropic — Anthropic's Messages API behind OpenAI's chat completions.

Translates: system/developer messages to ``system``; tool calls to ``tool_use`` blocks and tool
messages to ``tool_result`` blocks (consecutive same-role turns merged, as the API requires);
tools and tool_choice; stop sequences; stream events (message_start, content_block_*,
message_delta) to ``chat.completion.chunk``; stop reasons and usage.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from pydantic import Field

from stackkit.apis.datatypes import Api
from stackkit.apis.inference import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChoice,
    ChatCompletionChunk,
    ChatCompletionChunkChoice,
    ChatCompletionMessage,
    ChatCompletionRequest,
    ChoiceDelta,
    Completion,
    CompletionChoice,
    CompletionRequest,
    Content,
    DeveloperMessage,
    EmbeddingRequest,
    EmbeddingResponse,
    FunctionCall,
    ImagePart,
    NamedToolChoice,
    ProviderModel,
    SystemMessage,
    TextPart,
    ToolCall,
    ToolCallDelta,
    ToolCallDeltaFunction,
    ToolMessage,
    Usage,
    content_text,
)
from stackkit.core.streams import Stream
from stackkit.errors import InvalidRequestError, UpstreamError
from stackkit.providers.utils.http_provider import HTTPProvider, HTTPProviderConfig

FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
          "pause_turn": "stop", "refusal": "content_filter"}
STREAM_ERRORS = {"overloaded_error": 529, "rate_limit_error": 429, "invalid_request_error": 400,
                 "authentication_error": 401, "permission_error": 403, "not_found_error": 404}


class AnthropicConfig(HTTPProviderConfig):
    base_url: str = "https://api.anthropic.com/v1"
    anthropic_version: str = "2023-06-01"
    default_max_tokens: int = Field(default=4096, ge=1, description="max_tokens when the request sets none")

    @classmethod
    def sample_run_config(cls, **kwargs: Any) -> dict[str, Any]:
        return {"api_key": "${env.ANTHROPIC_API_KEY:=}"}


# ---- requests -------------------------------------------------------------------------------


def _blocks(content: Content | None) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, TextPart):
            blocks.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            url = part.image_url.url
            if url.startswith("data:"):
                media_type, _, data = url[5:].partition(";base64,")
                blocks.append({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}})
            else:
                blocks.append({"type": "image", "source": {"type": "url", "url": url}})
    return blocks


def _append(messages: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"].extend(blocks)
    else:
        messages.append({"role": role, "content": blocks})


def _tool_choice(request: ChatCompletionRequest) -> dict[str, Any] | None:
    choice = request.tool_choice
    if choice is None and request.parallel_tool_calls is None:
        return None
    if isinstance(choice, NamedToolChoice):
        out: dict[str, Any] = {"type": "tool", "name": choice.function.name}
    else:
        out = {"type": {"required": "any", "none": "none"}.get(choice or "auto", "auto")}
    if request.parallel_tool_calls is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out


_NOT_ON_ANTHROPIC = ("logprobs", "top_logprobs", "logit_bias", "presence_penalty", "frequency_penalty", "seed")


def _check_supported(request: ChatCompletionRequest) -> None:
    if request.n not in (None, 1):
        raise InvalidRequestError("remote::anthropic returns one choice per request; set n=1.", param="n")
    for name in _NOT_ON_ANTHROPIC:
        if getattr(request, name) not in (None, False):
            raise InvalidRequestError(f"Anthropic's Messages API has no '{name}'; remove it for this model.",
                                      param=name)


def _tool_arguments(call: ToolCall) -> Any:
    try:
        return json.loads(call.function.arguments or "{}")
    except json.JSONDecodeError as exc:
        raise InvalidRequestError(f"The arguments of tool call '{call.id}' are not valid JSON ({exc}); send them "
                                  "as the model produced them.", param="messages") from None


def to_messages_request(request: ChatCompletionRequest, config: AnthropicConfig) -> dict[str, Any]:
    _check_supported(request)
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    for m in request.messages:
        if isinstance(m, (SystemMessage, DeveloperMessage)):
            system.append(content_text(m.content))
        elif isinstance(m, ToolMessage):
            _append(messages, "user", [{"type": "tool_result", "tool_use_id": m.tool_call_id,
                                        "content": content_text(m.content)}])
        elif isinstance(m, AssistantMessage):
            blocks = _blocks(m.content)
            for call in m.tool_calls or []:
                blocks.append({"type": "tool_use", "id": call.id, "name": call.function.name,
                               "input": _tool_arguments(call)})
            _append(messages, "assistant", blocks)
        else:
            _append(messages, "user", _blocks(m.content))
    if request.response_format is not None and request.response_format.type != "text":
        schema = getattr(request.response_format, "json_schema", None)
        wanted = f" matching this JSON schema: {json.dumps(schema.schema_)}" if schema and schema.schema_ else ""
        system.append(f"Respond with a single JSON object{wanted}, and nothing else.")
    body: dict[str, Any] = {
        "model": request.model,
        "messages": messages,
        "max_tokens": request.max_completion_tokens or request.max_tokens or config.default_max_tokens,
    }
    if system:
        body["system"] = "\n\n".join(system)
    if request.temperature is not None:
        body["temperature"] = min(request.temperature, 1.0)  # Anthropic's range is 0..1
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop:
        body["stop_sequences"] = request.stop_list()
    if request.stream:
        body["stream"] = True
    if request.tools:
        body["tools"] = [{"name": t.function.name, "description": t.function.description or "",
                          "input_schema": t.function.parameters or {"type": "object", "properties": {}}}
                         for t in request.tools]
    choice = _tool_choice(request)
    if choice is not None and request.tools:
        body["tool_choice"] = choice
    if request.user:
        body["metadata"] = {"user_id": request.user}
    return body


# ---- responses ------------------------------------------------------------------------------


def _usage(usage: dict[str, Any]) -> Usage:
    prompt = int(usage.get("input_tokens") or 0) + int(usage.get("cache_read_input_tokens") or 0) + int(
        usage.get("cache_creation_input_tokens") or 0)
    completion = int(usage.get("output_tokens") or 0)
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


def from_message(msg: dict[str, Any]) -> ChatCompletion:
    texts, calls = [], []
    for block in msg.get("content", []):
        if block.get("type") == "text":
            texts.append(block.get("text", ""))
        elif block.get("type") == "tool_use":
            calls.append(ToolCall(id=block["id"], function=FunctionCall(
                name=block["name"], arguments=json.dumps(block.get("input") or {}))))
    message = ChatCompletionMessage(content="".join(texts) if texts or not calls else None, tool_calls=calls or None)
    return ChatCompletion(
        id=msg.get("id", ""), created=int(time.time()), model=msg.get("model", ""),
        choices=[ChatCompletionChoice(message=message,
                                      finish_reason=FINISH.get(msg.get("stop_reason") or "", "stop"))],  # type: ignore[arg-type]
        usage=_usage(msg.get("usage") or {}),
    )


class _StreamState:
    """Turns Anthropic stream events into chat.completion.chunk objects."""

    def __init__(self, include_usage: bool) -> None:
        self.include_usage = include_usage
        self.id, self.model, self.created = "", "", int(time.time())
        self.usage: dict[str, Any] = {}
        self.tool_index: dict[int, int] = {}  # Anthropic block index -> OpenAI tool call index

    def chunk(self, delta: ChoiceDelta | None, finish: str | None = None, usage: Usage | None = None
              ) -> ChatCompletionChunk:
        choices = [] if delta is None else [ChatCompletionChunkChoice(delta=delta, finish_reason=finish)]  # type: ignore[arg-type]
        return ChatCompletionChunk(id=self.id, created=self.created, model=self.model, choices=choices, usage=usage)

    def on_event(self, event: dict[str, Any]) -> list[ChatCompletionChunk]:
        kind = event.get("type")
        if kind == "message_start":
            msg = event.get("message") or {}
            self.id, self.model = msg.get("id", ""), msg.get("model", "")
            self.usage.update(msg.get("usage") or {})
            return [self.chunk(ChoiceDelta(role="assistant", content=""))]
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = self.tool_index[event["index"]] = len(self.tool_index)
                return [self.chunk(ChoiceDelta(tool_calls=[ToolCallDelta(
                    index=index, id=block.get("id"), type="function",
                    function=ToolCallDeltaFunction(name=block.get("name"), arguments=""))]))]
            if block.get("type") == "text" and block.get("text"):
                return [self.chunk(ChoiceDelta(content=block["text"]))]
            return []
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta":
                return [self.chunk(ChoiceDelta(content=delta.get("text", "")))]
            if delta.get("type") == "input_json_delta" and event.get("index") in self.tool_index:
                return [self.chunk(ChoiceDelta(tool_calls=[ToolCallDelta(
                    index=self.tool_index[event["index"]],
                    function=ToolCallDeltaFunction(arguments=delta.get("partial_json", "")))]))]
            return []
        if kind == "message_delta":
            self.usage.update(event.get("usage") or {})
            reason = (event.get("delta") or {}).get("stop_reason")
            return [self.chunk(ChoiceDelta(), FINISH.get(reason or "", "stop"))] if reason else []
        if kind == "message_stop" and self.include_usage:
            return [self.chunk(None, usage=_usage(self.usage))]
        return []


class AnthropicInference(HTTPProvider):
    label = "remote::anthropic"
    api_key_env = "ANTHROPIC_API_KEY"
    provider_data_key = "anthropic_api_key"

    def __init__(self, config: AnthropicConfig) -> None:
        self.anthropic = config
        super().__init__(config)
        self.client.headers["anthropic-version"] = config.anthropic_version

    def _auth_headers(self, key: str) -> dict[str, str]:
        return {"x-api-key": key}

    async def chat_completion(
        self, request: ChatCompletionRequest
    ) -> ChatCompletion | AsyncIterator[ChatCompletionChunk]:
        self._check_model(request.model)
        body = orjson.dumps(to_messages_request(request, self.anthropic))
        if not request.stream:
            raw = await self._post("messages", body)
            try:
                return from_message(orjson.loads(raw))
            except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError) as exc:
                raise UpstreamError(f"remote::anthropic: the upstream's answer is not a Messages API message "
                                    f"({type(exc).__name__}: {str(exc)[:200]}): {raw[:200]!r}. Check "
                                    "base_url and any proxy in between."
                                    ) from None
        lines = await self._post_stream("messages", body)
        include_usage = bool(request.stream_options and request.stream_options.include_usage)
        return Stream(self._events(lines, _StreamState(include_usage)), lines.aclose)

    async def _events(self, lines: AsyncIterator[str], state: _StreamState) -> AsyncIterator[ChatCompletionChunk]:
        async for data in lines:
            event = orjson.loads(data)
            if event.get("type") == "error":
                error = event.get("error") or {}
                status = STREAM_ERRORS.get(error.get("type", ""), 502)
                raise self._status_error(status, orjson.dumps({"error": error}))
            for chunk in state.on_event(event):
                yield chunk

    async def completion(self, request: CompletionRequest) -> Completion | AsyncIterator[Completion]:
        if not isinstance(request.prompt, str):
            raise InvalidRequestError("remote::anthropic takes a single string prompt for completions; send "
                                      "`prompt` as a string.",
                                      param="prompt")
        chat = ChatCompletionRequest.model_validate({
            "model": request.model, "messages": [{"role": "user", "content": request.prompt}],
            **request.model_dump(include={"max_tokens", "temperature", "top_p", "stop", "stream", "stream_options"},
                                 exclude_none=True)})
        result = await self.chat_completion(chat)
        if isinstance(result, ChatCompletion):
            choice = result.choices[0]
            finish = "length" if choice.finish_reason == "length" else "stop"
            return Completion(id=result.id, created=result.created, model=result.model, usage=result.usage,
                              choices=[CompletionChoice(text=choice.message.content or "", finish_reason=finish)])
        return Stream(self._completion_chunks(result), result.aclose)  # type: ignore[attr-defined]

    @staticmethod
    async def _completion_chunks(chunks: AsyncIterator[ChatCompletionChunk]) -> AsyncIterator[Completion]:
        async for c in chunks:
            text = c.choices[0].delta.content or "" if c.choices else ""
            finish = c.choices[0].finish_reason if c.choices else None
            yield Completion(id=c.id, created=c.created, model=c.model, usage=c.usage, choices=[
                CompletionChoice(text=text, finish_reason="length" if finish == "length" else finish and "stop")])

    async def embeddings(self, request: EmbeddingRequest) -> EmbeddingResponse:
        raise InvalidRequestError("Anthropic offers no embeddings API; register your embedding model with "
                                  "another provider.", param="model")

    async def list_provider_models(self) -> list[ProviderModel] | None:
        listed = await self._get_json("models?limit=1000")
        ids = [m["id"] for m in listed.get("data", []) if isinstance(m, dict) and isinstance(m.get("id"), str)]
        return [ProviderModel(provider_model_id=i) for i in self._allowed(ids)]


async def create(config: AnthropicConfig, deps: dict[Api, Any]) -> AnthropicInference:
    return AnthropicInference(config)
