"""Guardrails: shields run around chat completions.

A request names shields with ``guardrails`` (``extra_body={"guardrails": [...]}`` in the openai
SDK); a model registered with ``guardrails`` in run.yaml gets them by default. Input: an
error-level violation is a 400 naming the shield and categories; a redacting shield's redacted
messages are sent on instead. Output: an error-level violation replaces the content with the
shield's message and sets ``finish_reason: "content_filter"``; redaction replaces the text. Streams
are checked every ``check_chars`` of new text and at the end, holding unchecked text back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from stackkit.apis.inference import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionChunkChoice,
    ChatCompletionRequest,
    ChoiceDelta,
)
from stackkit.apis.safety import RunShieldRequest, SafetyViolation, ViolationLevel
from stackkit.errors import InvalidRequestError


class GuardrailViolation(InvalidRequestError):
    def __init__(self, shield_id: str, violation: SafetyViolation) -> None:
        categories = violation.metadata.get("categories") or []
        detail = f" (categories: {', '.join(map(str, categories))})" if categories else ""
        super().__init__(f"Blocked by guardrail '{shield_id}': {violation.user_message or 'unsafe input'}{detail}",
                         param="messages", code="guardrail_violation")
        self.violation = violation


class Guardrails:
    def __init__(self, safety: Any, check_chars: int = 200) -> None:
        self.safety = safety
        self.check_chars = check_chars

    @staticmethod
    def requested(request: ChatCompletionRequest, model_metadata: dict[str, Any]) -> list[str]:
        """The shields for this request (and the `guardrails` field removed from what goes upstream)."""
        extra = request.model_extra or {}
        named = extra.pop("guardrails", None)
        if named is None:
            named = model_metadata.get("guardrails") or []
        if not isinstance(named, list) or not all(isinstance(s, str) for s in named):
            raise InvalidRequestError("guardrails must be a list of shield ids.", param="guardrails")
        return named

    async def _run(self, shield_id: str, messages: list[Any]) -> SafetyViolation | None:
        result = await self.safety.run_shield(RunShieldRequest.model_validate(
            {"shield_id": shield_id, "messages": messages}))
        violation: SafetyViolation | None = result.violation
        return violation

    async def check_input(self, shields: list[str], request: ChatCompletionRequest) -> ChatCompletionRequest:
        for shield_id in shields:
            violation = await self._run(shield_id, request.messages)
            if violation is None or violation.violation_level is ViolationLevel.info:
                continue
            redacted = violation.metadata.get("redacted_messages")
            if violation.violation_level is ViolationLevel.warn and redacted:
                messages = [m.model_copy(update={"content": text}) if m.content is not None else m
                            for m, text in zip(request.messages, redacted, strict=True)]
                request = request.model_copy(update={"messages": messages})
                continue
            raise GuardrailViolation(shield_id, violation)
        return request

    async def _check_text(self, shields: list[str], request: ChatCompletionRequest, text: str
                          ) -> tuple[str, bool]:
        """The text to show, and whether it was blocked."""
        for shield_id in shields:
            reply = AssistantMessage(content=text)
            violation = await self._run(shield_id, [*request.messages, reply])
            if violation is None or violation.violation_level is ViolationLevel.info:
                continue
            redacted = violation.metadata.get("redacted_messages")
            if violation.violation_level is ViolationLevel.warn and redacted:
                text = redacted[-1]
                continue
            return violation.user_message or "The response was withheld by a content filter.", True
        return text, False

    async def check_output(self, shields: list[str], request: ChatCompletionRequest, result: ChatCompletion
                           ) -> ChatCompletion:
        for choice in result.choices:
            if not choice.message.content:
                continue
            text, blocked = await self._check_text(shields, request, choice.message.content)
            choice.message.content = text
            if blocked:
                choice.message.tool_calls = None
                choice.finish_reason = "content_filter"
        return result

    async def guard_stream(self, shields: list[str], request: ChatCompletionRequest,
                           stream: AsyncIterator[ChatCompletionChunk]) -> AsyncIterator[ChatCompletionChunk]:
        text, checked_source, shown, pending = "", "", "", 0  # all text; what was checked; what was sent
        last: ChatCompletionChunk | None = None
        try:
            async for chunk in stream:
                last = chunk
                delta = chunk.choices[0].delta.content if chunk.choices else None
                finishing = bool(chunk.choices and chunk.choices[0].finish_reason)
                if delta:
                    text, pending = text + delta, pending + len(delta)
                    if pending < self.check_chars and not finishing:
                        continue  # held back until checked
                if text != checked_source:
                    checked, blocked = await self._check_text(shields, request, text)
                    if blocked:
                        yield _with_content(chunk, "", "content_filter")
                        return
                    new, shown, checked_source, pending = checked[len(shown):], checked, text, 0
                    yield _with_content(chunk, new, chunk.choices[0].finish_reason if delta else None)
                    if delta:
                        continue
                if not delta:
                    yield chunk
        finally:
            closer = getattr(stream, "aclose", None)
            if closer is not None:
                await closer()
        if last is not None and text != checked_source:  # a stream that ended without a finish chunk
            checked, blocked = await self._check_text(shields, request, text)
            yield _with_content(last, "" if blocked else checked[len(shown):], "content_filter" if blocked else None)


def _with_content(chunk: ChatCompletionChunk, content: str, finish: str | None) -> ChatCompletionChunk:
    index = chunk.choices[0].index if chunk.choices else 0
    return chunk.model_copy(update={"usage": None, "choices": [
        ChatCompletionChunkChoice(index=index, delta=ChoiceDelta(content=content), finish_reason=finish)]})  # type: ignore[arg-type]
