"""inline::fake — a deterministic inference provider for tests and examples.

It echoes the last user message, word by word when streaming. Tool calls happen when
``tool_choice`` requires one or the user text names a tool. Embeddings are stable hashes.
Magic words in the last user message make it misbehave on purpose: ``FAIL_NOW`` raises an
upstream error, ``FAIL_MIDSTREAM`` fails after the first chunk.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel, Field

from stackkit.apis.datatypes import Api, ProviderConfigBase
from stackkit.apis.inference import (
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
    Embedding,
    EmbeddingRequest,
    EmbeddingResponse,
    EmbeddingUsage,
    FunctionCall,
    NamedToolChoice,
    ProviderModel,
    ToolCall,
    ToolCallDelta,
    ToolCallDeltaFunction,
    ToolMessage,
    Usage,
    UserMessage,
    content_text,
)
from stackkit.errors import UpstreamError


class ScriptedReply(BaseModel):
    when: str = Field(description="reply like this when the last user message contains this text")
    reply: str


class FakeInferenceConfig(ProviderConfigBase):
    models: list[str] = Field(default_factory=lambda: ["fake-llm"], description="LLM ids the provider lists")
    embedding_models: list[str] = Field(default_factory=lambda: ["fake-embed"])
    embedding_dimension: int = Field(default=16, ge=1)
    chunk_delay_s: float = Field(default=0.0, ge=0, description="pause between streamed chunks")
    response_delay_s: float = Field(default=0.0, ge=0, description="pause before answering")
    replies: list[ScriptedReply] = Field(default_factory=list, description="scripted answers, first match wins")
    stream_chunk_chars: int | None = Field(default=None, ge=1, description="stream pieces of this many characters "
                                           "(as a real tokenizer splits words) instead of words")

    @classmethod
    def sample_run_config(cls, **kwargs: Any) -> dict[str, Any]:
        return {"models": ["fake-llm"], "embedding_models": ["fake-embed"]}


def fake_embedding(text: str, dimension: int) -> list[float]:
    """A unit vector derived from the text's hash: equal texts, equal vectors."""
    raw = b""
    counter = 0
    while len(raw) < dimension * 4:
        raw += hashlib.sha256(f"{counter}:{text}".encode()).digest()
        counter += 1
    values = [(b / 255.0) - 0.5 for b in raw[: dimension * 4 : 4]]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def _words(text: str) -> list[str]:
    return text.split()


class FakeInference:
    def __init__(self, config: FakeInferenceConfig) -> None:
        self.config = config
        self.calls = 0
        self.cancelled = 0  # streams the consumer abandoned

    async def list_provider_models(self) -> list[ProviderModel]:
        return [ProviderModel(provider_model_id=m) for m in self.config.models] + [
            ProviderModel(provider_model_id=m, model_type="embedding",
                          metadata={"embedding_dimension": self.config.embedding_dimension})
            for m in self.config.embedding_models
        ]

    def _reply(self, request: ChatCompletionRequest) -> tuple[str, str, list[ToolCall] | None]:
        last = request.messages[-1]
        if isinstance(last, ToolMessage):  # answer from the tool's result, as a model would
            return f"From the tools: {content_text(last.content)[:200]}", "stop", None
        users = [m for m in request.messages if isinstance(m, UserMessage)]
        text = content_text(users[-1].content) if users else ""
        if "FAIL_NOW" in text:
            raise UpstreamError("fake upstream failure (FAIL_NOW in the prompt)")
        tool_calls = self._tool_calls(request, text)
        if tool_calls:
            return "", "tool_calls", tool_calls
        for scripted in self.config.replies:
            if scripted.when in text:
                return scripted.reply, "stop", None
        if request.response_format is not None and request.response_format.type != "text":
            return json.dumps({"echo": text}), "stop", None
        words = _words(text)
        limit = request.max_completion_tokens or request.max_tokens
        finish = "stop"
        if limit is not None and len(words) > limit:
            words, finish = words[:limit], "length"
        reply = " ".join(words)
        for stop in request.stop_list():
            if stop and stop in reply:
                reply, finish = reply[: reply.index(stop)], "stop"
        return reply, finish, None

    def _tool_calls(self, request: ChatCompletionRequest, text: str) -> list[ToolCall] | None:
        if not request.tools or request.tool_choice == "none":
            return None
        choice = request.tool_choice
        if isinstance(choice, NamedToolChoice):
            chosen = [t for t in request.tools if t.function.name == choice.function.name]
        else:
            chosen = [t for t in request.tools if t.function.name in text]
            if not chosen and choice == "required":
                chosen = request.tools[:1]
        calls = []
        for i, tool in enumerate(chosen):
            props = list(((tool.function.parameters or {}).get("properties") or {}).keys())
            args = {props[0]: text} if props else {}
            calls.append(ToolCall(id=f"call_{i}_{tool.function.name}",
                                  function=FunctionCall(name=tool.function.name, arguments=json.dumps(args))))
        return calls or None

    @staticmethod
    def _usage(request: ChatCompletionRequest, reply: str) -> Usage:
        prompt = sum(len(_words(content_text(m.content))) for m in request.messages)
        completion = len(_words(reply))
        return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)

    async def chat_completion(
        self, request: ChatCompletionRequest
    ) -> ChatCompletion | AsyncIterator[ChatCompletionChunk]:
        self.calls += 1
        if self.config.response_delay_s:
            await asyncio.sleep(self.config.response_delay_s)
        reply, finish, tool_calls = self._reply(request)
        if request.stream:
            return self._stream(request, reply, finish, tool_calls)
        message = ChatCompletionMessage(content=None if tool_calls else reply, tool_calls=tool_calls)
        return ChatCompletion(
            id=f"chatcmpl-fake-{self.calls}", created=int(time.time()), model=request.model,
            choices=[ChatCompletionChoice(message=message, finish_reason=finish)],  # type: ignore[arg-type]
            usage=self._usage(request, reply),
        )

    async def _stream(
        self, request: ChatCompletionRequest, reply: str, finish: str, tool_calls: list[ToolCall] | None
    ) -> AsyncIterator[ChatCompletionChunk]:
        ident, created = f"chatcmpl-fake-{self.calls}", int(time.time())

        def chunk(delta: ChoiceDelta, finish_reason: str | None = None) -> ChatCompletionChunk:
            return ChatCompletionChunk(id=ident, created=created, model=request.model, choices=[
                ChatCompletionChunkChoice(delta=delta, finish_reason=finish_reason)  # type: ignore[arg-type]
            ])

        try:
            yield chunk(ChoiceDelta(role="assistant", content=""))
            for piece in self._pieces(reply):
                if self.config.chunk_delay_s:
                    await asyncio.sleep(self.config.chunk_delay_s)
                if "FAIL_MIDSTREAM" in piece:
                    raise UpstreamError("fake upstream failed mid-stream (FAIL_MIDSTREAM in the prompt)")
                yield chunk(ChoiceDelta(content=piece))
            for i, call in enumerate(tool_calls or []):
                yield chunk(ChoiceDelta(tool_calls=[ToolCallDelta(
                    index=i, id=call.id, type="function",
                    function=ToolCallDeltaFunction(name=call.function.name, arguments=call.function.arguments),
                )]))
            yield chunk(ChoiceDelta(), finish)
            if request.stream_options and request.stream_options.include_usage:
                yield ChatCompletionChunk(id=ident, created=created, model=request.model, choices=[],
                                          usage=self._usage(request, reply))
        except (asyncio.CancelledError, GeneratorExit):
            self.cancelled += 1
            raise

    def _pieces(self, reply: str) -> list[str]:
        step = self.config.stream_chunk_chars
        if step:
            return [reply[i:i + step] for i in range(0, len(reply), step)]
        words = reply.split(" ") if reply else []
        return [w if i == 0 else " " + w for i, w in enumerate(words)]

    async def completion(self, request: CompletionRequest) -> Completion | AsyncIterator[Completion]:
        self.calls += 1
        prompt = request.prompt if isinstance(request.prompt, str) else " ".join(map(str, request.prompt))
        if "FAIL_NOW" in prompt:
            raise UpstreamError("fake upstream failure (FAIL_NOW in the prompt)")
        scripted = next((r.reply for r in self.config.replies if r.when in prompt), None)
        words = _words(scripted or prompt)
        words = words[: request.max_tokens] if request.max_tokens else words
        text = scripted if scripted is not None and len(words) == len(_words(scripted)) else " ".join(words)
        usage = Usage(prompt_tokens=len(_words(prompt)), completion_tokens=len(words),
                      total_tokens=len(_words(prompt)) + len(words))
        made = Completion(id=f"cmpl-fake-{self.calls}", created=int(time.time()), model=request.model,
                          choices=[CompletionChoice(text=text, finish_reason="stop")], usage=usage)
        if not request.stream:
            return made

        async def stream() -> AsyncIterator[Completion]:
            for piece in self._pieces(text):
                yield made.model_copy(update={"choices": [CompletionChoice(text=piece)], "usage": None})
            yield made.model_copy(update={"choices": [CompletionChoice(text="", finish_reason="stop")],
                                          "usage": usage if request.stream_options else None})

        return stream()

    async def embeddings(self, request: EmbeddingRequest) -> EmbeddingResponse:
        self.calls += 1
        if self.config.response_delay_s:
            await asyncio.sleep(self.config.response_delay_s)
        dimension = request.dimensions or self.config.embedding_dimension
        data = []
        for i, text in enumerate(request.texts()):
            vector = fake_embedding(text, dimension)
            if request.encoding_format == "base64":
                data.append(Embedding(index=i, embedding=base64.b64encode(struct.pack(f"<{dimension}f", *vector))
                                      .decode()))
            else:
                data.append(Embedding(index=i, embedding=vector))
        tokens = sum(len(_words(t)) for t in request.texts())
        return EmbeddingResponse(data=data, model=request.model,
                                 usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens))


async def create(config: FakeInferenceConfig, deps: dict[Api, Any]) -> FakeInference:
    return FakeInference(config)
