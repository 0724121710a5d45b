"""Guardrails: shields run around everything that produces text (chat completions and completions).

**A floor.** The operator gives a model its shields (``guardrails:`` on the model in run.yaml, or at
registration). They apply to every name of the same upstream model (each registered id, ``provider/model``
and the upstream id a provider listed); a request may add shields with ``guardrails``
(``extra_body={"guardrails": [...]}``), never remove them.

**Input:** an error-level violation is a 400 naming the shield and its categories; a redacting shield's
redacted text is sent on instead. **Output:** an error-level violation replaces the text with the shield's
message and sets ``finish_reason: "content_filter"`` (in a stream the message comes as the choice's
``refusal`` delta, as OpenAI sends refusals); redaction replaces the text.

**Streams never leak.** Each choice's text is held back until the shields' verdict on it is final: it is
checked in windows of about ``check_chars`` new characters, and only a prefix that ends at a word boundary
at least ``holdback`` characters before the end is sent, and only when its redaction agrees with the
redaction of the whole window (so an e-mail address or phone number split across chunks is judged whole).
Each window is checked alone, not with the conversation, so checking costs time linear in the answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel

from stackkit.apis.inference import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionChunkChoice,
    ChatCompletionRequest,
    ChoiceDelta,
    Completion,
    CompletionChoice,
    CompletionRequest,
    UserMessage,
)
from stackkit.apis.safety import RunShieldRequest, RunShieldResponse, SafetyViolation, ViolationLevel
from stackkit.core.streams import Stream, aclose
from stackkit.errors import InvalidRequestError

C = TypeVar("C", ChatCompletionChunk, Completion)


class ShieldRunner(Protocol):
    """What guardrails need of the Safety API: running a shield."""

    async def run_shield(self, request: RunShieldRequest) -> RunShieldResponse: ...

WITHHELD = "The response was withheld by a content filter."


class GuardrailViolation(InvalidRequestError):
    """A shield blocked a request's input (a 400 with code ``guardrail_violation``)."""

    def __init__(self, shield_id: str, violation: SafetyViolation, param: str = "messages") -> None:
        categories = violation.metadata.get("categories") or []
        detail = f" (categories: {', '.join(map(str, categories))})" if categories else ""
        super().__init__(f"Blocked by guardrail '{shield_id}': {violation.user_message or 'unsafe input'}{detail}",
                         param=param, code="guardrail_violation")
        self.violation = violation


def requested_shields(floor: tuple[str, ...], request: BaseModel) -> list[str]:
    """The floor plus the shields the request adds (its ``guardrails`` field is removed from what goes
    upstream)."""
    extra = request.model_extra if request.model_extra is not None else {}
    named = extra.pop("guardrails", None)
    if named is None:
        return list(floor)
    if not isinstance(named, list) or not all(isinstance(s, str) for s in named):
        raise InvalidRequestError('guardrails must be a list of shield ids, e.g. ["pii"].', param="guardrails")
    return [*floor, *(s for s in dict.fromkeys(named) if s not in floor)]


def _word_cut(text: str, limit: int, hard_after: int) -> int:
    """The largest cut <= limit that ends just after white space (0 if none); past `hard_after`
    characters with no white space at all, `limit` itself."""
    if limit <= 0:
        return 0
    for i in range(limit, 0, -1):
        if text[i - 1].isspace():
            return i
    return limit if limit >= hard_after else 0


@dataclass
class _Held:
    """One choice's text that has not been sent yet."""

    text: str = ""
    blocked: bool = False
    template: Any = None  # the choice's last chunk, to build a closing one from


@dataclass(frozen=True)
class _ChunkText(Generic[C]):
    """How to read and replace the text of a streamed choice of one chunk type."""

    read: Callable[[Any], str | None]
    replace: Callable[[Any, str, str | None], Any]
    has_more: Callable[[Any], bool]  # the choice carries more than text (a role, tool calls)
    fresh: Callable[[Any, str, str | None], Any]  # a choice like this one carrying only text
    refuse: Callable[[Any, str], Any]  # the choice ended by a block, carrying the shield's message if it can


def _chat_replace(choice: ChatCompletionChunkChoice, text: str, finish: str | None) -> ChatCompletionChunkChoice:
    content = text if text or choice.delta.content == "" else None
    return choice.model_copy(update={"delta": choice.delta.model_copy(update={"content": content}),
                                     "finish_reason": finish})


CHAT_CHUNKS: _ChunkText[ChatCompletionChunk] = _ChunkText(
    read=lambda c: c.delta.content, replace=_chat_replace,
    has_more=lambda c: bool(c.delta.role or c.delta.tool_calls or c.delta.refusal),
    fresh=lambda c, text, finish: ChatCompletionChunkChoice(index=c.index, delta=ChoiceDelta(content=text),
                                                            finish_reason=finish),
    refuse=lambda c, message: ChatCompletionChunkChoice(index=c.index, delta=ChoiceDelta(refusal=message),
                                                        finish_reason="content_filter"))
COMPLETION_CHUNKS: _ChunkText[Completion] = _ChunkText(
    read=lambda c: c.text, replace=lambda c, text, finish: c.model_copy(update={"text": text, "finish_reason": finish}),
    has_more=lambda c: False,
    fresh=lambda c, text, finish: CompletionChoice(index=c.index, text=text, finish_reason=finish),
    refuse=lambda c, message: CompletionChoice(index=c.index, text="", finish_reason="content_filter"))


class Guardrails:
    """Runs shields over inputs, outputs and streams for the inference router."""

    def __init__(self, safety: ShieldRunner, check_chars: int = 200, holdback: int = 48) -> None:
        self.safety = safety
        self.check_chars = check_chars
        self.holdback = holdback

    async def _run(self, shield_id: str, messages: list[Any]) -> SafetyViolation | None:
        result = await self.safety.run_shield(RunShieldRequest(shield_id=shield_id, messages=messages))
        violation = result.violation
        if violation is None or violation.violation_level is ViolationLevel.info:
            return None
        return violation

    # ---- input --------------------------------------------------------------------------------

    async def _check_texts(self, shields: list[str], texts: list[str], param: str) -> list[str]:
        """The texts as the shields let them through (redacted), or a GuardrailViolation."""
        for shield_id in shields:
            violation = await self._run(shield_id, [UserMessage(content=t) for t in texts])
            if violation is None:
                continue
            redacted = violation.metadata.get("redacted_messages")
            if violation.violation_level is ViolationLevel.warn and redacted and len(redacted) == len(texts):
                texts = [str(t) for t in redacted]
                continue
            raise GuardrailViolation(shield_id, violation, param)
        return texts

    async def check_chat_input(self, shields: list[str], request: ChatCompletionRequest) -> ChatCompletionRequest:
        for shield_id in shields:
            violation = await self._run(shield_id, request.messages)
            if violation is None:
                continue
            redacted = violation.metadata.get("redacted_messages")
            if violation.violation_level is ViolationLevel.warn and redacted:
                messages = [m.model_copy(update={"content": text}) if m.content is not None else m
                            for m, text in zip(request.messages, redacted, strict=True)]
                request = request.model_copy(update={"messages": messages})
                continue
            raise GuardrailViolation(shield_id, violation)
        return request

    async def check_completion_input(self, shields: list[str], request: CompletionRequest) -> CompletionRequest:
        prompt = request.prompt
        if isinstance(prompt, str):
            return request.model_copy(update={"prompt": (await self._check_texts(shields, [prompt], "prompt"))[0]})
        if prompt and all(isinstance(p, str) for p in prompt):
            return request.model_copy(update={"prompt": await self._check_texts(shields, list(prompt), "prompt")})  # type: ignore[arg-type]
        raise InvalidRequestError("This model has guardrails, which read text: send the prompt as text, not token "
                                  "ids.", param="prompt")

    # ---- output -------------------------------------------------------------------------------

    async def check_text(self, shields: list[str], text: str) -> tuple[str, str | None]:
        """The text to show and None, or "" and the message of the shield that blocked it."""
        for shield_id in shields:
            violation = await self._run(shield_id, [AssistantMessage(content=text)])
            if violation is None:
                continue
            redacted = violation.metadata.get("redacted_messages")
            if violation.violation_level is ViolationLevel.warn and redacted:
                text = str(redacted[-1])
                continue
            return "", violation.user_message or WITHHELD
        return text, None

    async def check_chat_output(self, shields: list[str], result: ChatCompletion) -> ChatCompletion:
        for choice in result.choices:
            if not choice.message.content:
                continue
            text, blocked = await self.check_text(shields, choice.message.content)
            choice.message.content = blocked or text
            if blocked:
                choice.message.tool_calls = None
                choice.finish_reason = "content_filter"
        return result

    async def check_completion_output(self, shields: list[str], result: Completion) -> Completion:
        for choice in result.choices:
            text, blocked = await self.check_text(shields, choice.text)
            choice.text = blocked or text
            if blocked:
                choice.finish_reason = "content_filter"
        return result

    # ---- streams ------------------------------------------------------------------------------

    async def _release(self, shields: list[str], held: _Held, final: bool) -> tuple[str, str | None]:
        """Text of `held` whose verdict is final (removed from it), and the block message if blocked."""
        window = held.text
        if not window:
            return "", None
        shown, blocked = await self.check_text(shields, window)
        if blocked is not None or final:
            held.text = ""
            return shown, blocked
        cut = _word_cut(window, len(window) - self.holdback, 4 * (self.check_chars + self.holdback))
        for _ in range(4):
            if cut <= 0:
                return "", None
            head, blocked = await self.check_text(shields, window[:cut])
            if blocked is not None:
                held.text = ""
                return "", blocked
            if shown.startswith(head):  # nothing that spans the cut changes how the head is shown
                held.text = window[cut:]
                return head, None
            cut = _word_cut(window, cut - 1, cut)
        return "", None

    def guard_chat_stream(self, shields: list[str], stream: AsyncIterator[ChatCompletionChunk]
                          ) -> Stream[ChatCompletionChunk]:
        return Stream(self._guard(shields, stream, CHAT_CHUNKS), lambda: aclose(stream))

    def guard_completion_stream(self, shields: list[str], stream: AsyncIterator[Completion]) -> Stream[Completion]:
        return Stream(self._guard(shields, stream, COMPLETION_CHUNKS), lambda: aclose(stream))

    async def _guard(self, shields: list[str], stream: AsyncIterator[C], kind: _ChunkText[C]) -> AsyncIterator[C]:
        held: dict[int, _Held] = {}
        last: C | None = None
        async for chunk in stream:
            last = chunk
            choices = []
            for choice in chunk.choices:
                state = held.setdefault(choice.index, _Held())
                if state.blocked:
                    continue
                state.text += kind.read(choice) or ""
                state.template = choice
                # text is released before a choice ends and before tool calls (they follow the text)
                final = choice.finish_reason is not None or (kind.has_more(choice) and bool(state.text))
                text, blocked = "", None
                if final or len(state.text) >= self.check_chars + self.holdback:
                    text, blocked = await self._release(shields, state, final)
                if blocked is not None:
                    state.blocked = True
                    choices.append(kind.refuse(choice, blocked))
                elif text or final or kind.has_more(choice):
                    choices.append(kind.replace(choice, text, choice.finish_reason))
            if choices or not chunk.choices:
                yield chunk.model_copy(update={"choices": choices})
            if held and all(s.blocked for s in held.values()):
                return  # every choice was filtered: stop generating
        if last is None:
            return
        for state in held.values():  # a stream that ended without finishing a choice
            if state.text and not state.blocked:
                text, blocked = await self._release(shields, state, True)
                choice = kind.refuse(state.template, blocked) if blocked else kind.fresh(state.template, text, None)
                yield last.model_copy(update={"choices": [choice], "usage": None})
