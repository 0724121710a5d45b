"""What local model providers share: chat templating, tool-call parsing, and assembling
OpenAI-shaped responses (whole or streamed) from a generation's text pieces."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from stackkit.apis.inference import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChoice,
    ChatCompletionChunk,
    ChatCompletionChunkChoice,
    ChatCompletionMessage,
    ChatCompletionRequest,
    ChoiceDelta,
    ChoiceLogprobs,
    Completion,
    CompletionChoice,
    CompletionRequest,
    FunctionCall,
    NamedToolChoice,
    ToolCall,
    ToolCallDelta,
    ToolCallDeltaFunction,
    ToolMessage,
    Usage,
    content_text,
)
from stackkit.core.streams import Stream
from stackkit.errors import InvalidRequestError

_TOOL_CALL = re.compile(r"<tool_call>\s*(\{.*?\})\s*</tool_call>", re.DOTALL)


def template_messages(request: ChatCompletionRequest) -> list[dict[str, Any]]:
    """The request's messages as the dicts Hugging Face chat templates expect."""
    out: list[dict[str, Any]] = []
    for m in request.messages:
        role = "system" if m.role == "developer" else m.role
        item: dict[str, Any] = {"role": role, "content": content_text(m.content)}
        if isinstance(m, AssistantMessage) and m.tool_calls:
            item["tool_calls"] = [{"id": c.id, "type": "function", "function": {
                "name": c.function.name, "arguments": _loads(c.function.arguments)}} for c in m.tool_calls]
        if isinstance(m, ToolMessage):
            item["tool_call_id"] = m.tool_call_id
        out.append(item)
    return out


def _loads(arguments: str) -> Any:
    try:
        return json.loads(arguments or "{}")
    except json.JSONDecodeError:
        return arguments


TOOLS_FALLBACK = (
    "You can call these functions:\n{tools}\n\nTo call one, answer with only\n"
    '<tool_call>{{"name": <function name>, "arguments": <arguments as JSON>}}</tool_call>\n'
    "and nothing else. Otherwise answer normally.")


def _apply(tokenizer: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
    try:
        return str(tokenizer.apply_chat_template(messages, tools=tools, add_generation_prompt=True, tokenize=False))
    except Exception as exc:  # template errors: the caller's messages do not fit it
        raise InvalidRequestError(f"The model's chat template rejected these messages: {exc}; fix the "
                                  "message order or roles",
                                  param="messages") from exc


def render_prompt(tokenizer: Any, request: ChatCompletionRequest) -> str:
    """The chat prompt. Tools go through the template; a template that renders no tools (SmolLM2's, for
    one) gets them as a system message in the Hermes `<tool_call>` format that parse_tool_calls reads."""
    if not getattr(tokenizer, "chat_template", None):
        raise InvalidRequestError(
            "This model's tokenizer has no chat template; use /v1/completions, or set chat_template in the "
            "provider config.", param="messages")
    messages = template_messages(request)
    wrapped = _wrapped(request) if request.tool_choice != "none" else None
    text = _apply(tokenizer, messages, wrapped)
    if wrapped is None or text != _apply(tokenizer, messages, None):
        return text
    described = TOOLS_FALLBACK.format(tools=_listed(wrapped))
    if messages and messages[0]["role"] == "system":
        messages = [{**messages[0], "content": f"{messages[0]['content']}\n\n{described}"}, *messages[1:]]
    else:
        messages = [{"role": "system", "content": described}, *messages]
    return _apply(tokenizer, messages, None)


def _wrapped(request: ChatCompletionRequest) -> list[dict[str, Any]] | None:
    """The request's tools as chat templates take them (None without tools)."""
    return [{"type": "function", "function": t.function.model_dump(exclude_none=True)}
            for t in request.tools or []] or None


def _listed(wrapped: list[dict[str, Any]]) -> str:
    return "\n".join(json.dumps(t["function"]) for t in wrapped)


TOOLS_DECISION = ("You can call these functions:\n{tools}\n\nShould one of them be called to answer the user's "
                  "message? Answer yes or no.")


async def chosen_tool_use(tokenizer: Any, request: ChatCompletionRequest,
                          complete: Callable[[ChatCompletionRequest], Awaitable[Any]]) -> ChatCompletionRequest:
    """`tool_choice: auto` on a model whose chat template renders no tools (SmolLM2's): such a model, given
    the fallback prompt, answers in text whatever it is asked. So it is first asked, in a one-word answer
    its grammar limits to yes or no, whether one of the functions should be called; yes makes the call
    required (a grammar then makes it a real call of an offered function), no leaves it to answer in text.
    After a tool result it is not asked again: it answers, and an agent loop ends."""
    if not request.tools or request.tool_choice not in (None, "auto") or request.messages[-1].role == "tool":
        return request
    messages, wrapped = template_messages(request), _wrapped(request)
    if _apply(tokenizer, messages, wrapped) != _apply(tokenizer, messages, None):
        return request  # the template shows the model its tools: it decides in its own format
    assert wrapped is not None
    described = TOOLS_DECISION.format(tools=_listed(wrapped))
    history = [m.model_dump(exclude_none=True) for m in request.messages if m.role not in ("system", "developer")]
    yes_or_no = {"name": "decision", "schema": {"enum": ["yes", "no"]}}
    decision = ChatCompletionRequest.model_validate({
        "model": request.model, "temperature": 0, "max_tokens": 8,
        "messages": [{"role": "system", "content": described}, *history],
        "response_format": {"type": "json_schema", "json_schema": yes_or_no}})
    answer = await complete(decision)
    if json.loads(answer.choices[0].message.content or '"no"') == "yes":
        return request.model_copy(update={"tool_choice": "required"})
    return request


def parse_tool_calls(text: str, tool_names: set[str]) -> tuple[str, list[ToolCall]]:
    """Tool calls in a generation: ``<tool_call>{...}</tool_call>`` blocks (Hermes/Qwen style), or the
    whole output as one ``{"name": ..., "arguments"|"parameters": {...}}`` object (Llama 3 style)."""
    candidates = [m.group(1) for m in _TOOL_CALL.finditer(text)]
    rest = _TOOL_CALL.sub("", text).strip() if candidates else text
    if not candidates and text.strip().startswith("{"):
        candidates, rest = [text.strip()], ""
    calls = []
    for raw in candidates:
        try:
            data = json.loads(raw)
        except json.JSONDecodeError:
            return text, []
        name = data.get("name") if isinstance(data, dict) else None
        if name not in tool_names:
            return text, []
        arguments = data.get("arguments", data.get("parameters", {}))
        calls.append(ToolCall(id=f"call_{uuid.uuid4().hex[:24]}", function=FunctionCall(
            name=name, arguments=arguments if isinstance(arguments, str) else json.dumps(arguments))))
    return rest, calls


# ---- assembling responses from a local generation ---------------------------------------------


class TextGeneration(Protocol):
    """A running generation as text pieces (a local engine's output, after stop strings)."""

    prompt_tokens: int

    def pieces(self) -> AsyncIterator[str]: ...

    async def text(self) -> str:
        """The whole output (may be cheaper than joining pieces)."""
        ...

    @property
    def finish_reason(self) -> str: ...

    @property
    def completion_tokens(self) -> int: ...

    async def close(self) -> None:
        """Stop generating and release the engine's slot (the consumer is gone)."""
        ...


def usage_of(gen: TextGeneration) -> Usage:
    return Usage(prompt_tokens=gen.prompt_tokens, completion_tokens=gen.completion_tokens,
                 total_tokens=gen.prompt_tokens + gen.completion_tokens)


def tool_names(request: ChatCompletionRequest) -> set[str]:
    return {t.function.name for t in request.tools or []} if request.tool_choice != "none" else set()


def _message(text: str, tools: set[str], finish: str) -> tuple[ChatCompletionMessage, str]:
    if tools:
        rest, calls = parse_tool_calls(text, tools)
        if calls:
            return ChatCompletionMessage(content=rest or None, tool_calls=calls), "tool_calls"
    return ChatCompletionMessage(content=text), finish


def _logprobs(gen: TextGeneration, request: ChatCompletionRequest) -> ChoiceLogprobs | None:
    """The token logprobs a generation recorded since this was last asked, when the request asked for them
    (generations of engines that record them have `take_logprobs()`; check_sampling refuses the rest)."""
    if not request.logprobs:
        return None
    take = getattr(gen, "take_logprobs", None)
    return ChoiceLogprobs(content=take() if take is not None else [])


async def chat_response(gen: TextGeneration, request: ChatCompletionRequest) -> ChatCompletion:
    text = await gen.text()
    message, finish = _message(text, tool_names(request), gen.finish_reason)
    choice = ChatCompletionChoice(message=message, finish_reason=finish, logprobs=_logprobs(gen, request))  # type: ignore[arg-type]
    return ChatCompletion(id=f"chatcmpl-{uuid.uuid4().hex}", created=int(time.time()), model=request.model,
                          usage=usage_of(gen), choices=[choice])


def chat_chunks(gen: TextGeneration, request: ChatCompletionRequest) -> Stream[ChatCompletionChunk]:
    """The generation as chunks; closing the stream (read or not) stops the generation."""
    return Stream(choice_chunks(gen, request), gen.close)


async def choice_chunks(gen: TextGeneration, request: ChatCompletionRequest) -> AsyncIterator[ChatCompletionChunk]:
    """One generation's chunks (one choice of a streamed chat completion)."""
    ident, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def chunk(delta: ChoiceDelta, finish: str | None = None, logprobs: Any = None) -> ChatCompletionChunk:
        return ChatCompletionChunk(id=ident, created=created, model=request.model, choices=[
            ChatCompletionChunkChoice(delta=delta, finish_reason=finish, logprobs=logprobs)])  # type: ignore[arg-type]

    yield chunk(ChoiceDelta(role="assistant", content=""))
    tools = tool_names(request)
    if tools:  # tool calls are only known once the whole output is in
        text = "".join([piece async for piece in gen.pieces()])
        message, finish = _message(text, tools, gen.finish_reason)
        if message.content:
            yield chunk(ChoiceDelta(content=message.content), logprobs=_logprobs(gen, request))
        for i, call in enumerate(message.tool_calls or []):
            yield chunk(ChoiceDelta(tool_calls=[ToolCallDelta(
                index=i, id=call.id, type="function",
                function=ToolCallDeltaFunction(name=call.function.name, arguments=call.function.arguments))]))
    else:
        async for piece in gen.pieces():
            yield chunk(ChoiceDelta(content=piece), logprobs=_logprobs(gen, request))
        finish = gen.finish_reason
    yield chunk(ChoiceDelta(), finish)
    if request.stream_options and request.stream_options.include_usage:
        yield ChatCompletionChunk(id=ident, created=created, model=request.model, choices=[], usage=usage_of(gen))


async def completion_response(gen: TextGeneration, request: CompletionRequest) -> Completion:
    text = await gen.text()
    prefix = request.prompt if request.echo and isinstance(request.prompt, str) else ""
    return Completion(id=f"cmpl-{uuid.uuid4().hex}", created=int(time.time()), model=request.model,
                      usage=usage_of(gen),
                      choices=[CompletionChoice(text=prefix + text, finish_reason=gen.finish_reason)])  # type: ignore[arg-type]


def completion_chunks(gen: TextGeneration, request: CompletionRequest) -> Stream[Completion]:
    return Stream(_completion_chunks(gen, request), gen.close)


async def _completion_chunks(gen: TextGeneration, request: CompletionRequest) -> AsyncIterator[Completion]:
    ident, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
    async for piece in gen.pieces():
        yield Completion(id=ident, created=created, model=request.model, choices=[CompletionChoice(text=piece)])
    yield Completion(id=ident, created=created, model=request.model,
                     usage=usage_of(gen) if request.stream_options else None,
                     choices=[CompletionChoice(text="", finish_reason=gen.finish_reason)])  # type: ignore[arg-type]


def check_sampling(request: ChatCompletionRequest | CompletionRequest, provider: str,
                   constrains: bool = False, choices: bool = False, logprobs: bool = False) -> None:
    """Reject what local generation does not do, instead of answering as if it had (`constrains`: the
    provider enforces forced tool calls and JSON output itself; `choices`: it answers n > 1 on chat;
    `logprobs`: it returns chat logprobs)."""
    chat = isinstance(request, ChatCompletionRequest)
    if getattr(request, "n", None) not in (None, 1) and not (choices and chat):
        raise InvalidRequestError(f"{provider} generates one choice per {'request' if chat else 'completion'}; "
                                  "set n=1" + (" or use /v1/chat/completions." if choices else "."), param="n")
    if request.logprobs and not (logprobs and chat):
        raise InvalidRequestError(f"{provider} does not return logprobs here; remove them" +
                                  (", or ask /v1/chat/completions." if logprobs else
                                   ", or use inline::transformers, which does."), param="logprobs")
    for name in ("presence_penalty", "frequency_penalty", "logit_bias"):
        if getattr(request, name, None):
            raise InvalidRequestError(f"{provider} does not apply {name}; remove it.", param=name)
    if not isinstance(request, ChatCompletionRequest) or constrains:
        return
    if request.tool_choice == "required" or isinstance(request.tool_choice, NamedToolChoice):
        raise InvalidRequestError(f"{provider} cannot force a tool call (it does not constrain decoding); use "
                                  "tool_choice 'auto' or a provider that can.", param="tool_choice")
    if request.response_format is not None and request.response_format.type != "text":
        raise InvalidRequestError(f"{provider} cannot guarantee {request.response_format.type} output (it does "
                                  "not constrain decoding); ask for JSON in the prompt, or use a provider that "
                                  "can.", param="response_format")


async def until_stop(texts: AsyncIterator[str], stops: list[str], on_stop: Callable[[], None]
                     ) -> AsyncIterator[str]:
    """`texts` as they come, cut at the first stop string; text that may still turn out to begin one is held
    back until it cannot. `on_stop()` when a stop string ended the output."""
    text, sent = "", 0
    hold = max((len(s) for s in stops), default=1) - 1
    async for piece in texts:
        text += piece
        cut = min((i for i in (text.find(s, sent) for s in stops) if i >= 0), default=-1)
        if cut >= 0:
            on_stop()
            if cut > sent:
                yield text[sent:cut]
            return
        if len(text) - hold > sent:
            yield text[sent:len(text) - hold]
            sent = len(text) - hold
    if len(text) > sent:
        yield text[sent:]


def stops_of(stop: str | list[str] | None) -> list[str]:
    return [] if stop is None else [s for s in ([stop] if isinstance(stop, str) else stop) if s]


# ---- constrained output: the JSON schema a request's output must follow ---------------------------


def request_schema(request: ChatCompletionRequest, budget: int, keys_by_pattern: bool = False
                   ) -> dict[str, Any] | None:
    """The JSON schema a chat request's output must follow (None when it is free text), fitted to the `budget`
    of tokens it may generate (see `fitted`). `keys_by_pattern`: the engine enforces patternProperties
    (llguidance does, llama.cpp's converter drops them), so json_object's keys are bounded too."""
    tools = request.tools or []
    choice = request.tool_choice
    if tools and (choice == "required" or isinstance(choice, NamedToolChoice)):
        named = choice.function.name if isinstance(choice, NamedToolChoice) else None
        chosen = [t for t in tools if named is None or t.function.name == named]
        if not chosen:
            raise InvalidRequestError(f"tool_choice names '{named}', which is not among the tools; name one of "
                                      "them.", param="tool_choice")
        calls = [{"type": "object", "additionalProperties": False, "required": ["name", "arguments"],
                  "properties": {"name": {"const": t.function.name},
                                 "arguments": closed(t.function.parameters or {"type": "object"})}} for t in chosen]
        return fitted(calls[0] if len(calls) == 1 else {"anyOf": calls}, budget)
    fmt = request.response_format
    if fmt is None or fmt.type == "text":
        return None
    schema = fmt.json_schema.schema_ if fmt.type == "json_schema" else None  # type: ignore[union-attr]
    if not schema or schema == {"type": "object"}:  # any object: each string up to a quarter of the budget
        return _cap_strings(ANY_OBJECT_SHORT_KEYS if keys_by_pattern else ANY_OBJECT,  # type: ignore[no-any-return]
                            max(16, budget * CHARS_PER_TOKEN // 4))
    return fitted(closed(schema, declared_only=True), budget)


MAX_DEPTH = 5  # json_object mode: objects and arrays nest at most this deep


def _any_json(depth: int) -> dict[str, Any]:
    """A JSON object of any shape (json_object mode) nested at most `depth` deep, written out so that its
    strings can be bounded like a schema's (a small model otherwise nests {"a":{"a":{... until max_tokens)."""
    defs: dict[str, Any] = {}
    for level in range(depth + 1):
        inner = [{"type": "array", "items": {"$ref": f"#/$defs/any{level - 1}"}},
                 {"type": "object", "additionalProperties": {"$ref": f"#/$defs/any{level - 1}"}}] if level else []
        defs[f"any{level}"] = {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"},
                                         {"type": "null"}, *inner]}  # not "value": llama.cpp's converter uses it
    return {"$defs": defs, "type": "object", "additionalProperties": {"$ref": f"#/$defs/any{depth - 1}"}}


ANY_OBJECT = _any_json(MAX_DEPTH)
SHORT_KEY = '^[^"\\\\]{0,40}$'


def _keys_bounded(node: Any) -> Any:
    """Every open object's keys at most 40 characters (a small model can loop inside a key as in a value)."""
    if isinstance(node, list):
        return [_keys_bounded(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _keys_bounded(v) for k, v in node.items()}
    if isinstance(node.get("additionalProperties"), dict) and "properties" not in node:
        out["patternProperties"], out["additionalProperties"] = {SHORT_KEY: out["additionalProperties"]}, False
    return out


ANY_OBJECT_SHORT_KEYS = _keys_bounded(ANY_OBJECT)
CHARS_PER_TOKEN = 2  # what a small model repeating itself gets ("kami, kami, ..."); prose gets about 4
ITEMS_GUESS = 4  # how many items an unbounded array is counted as when dividing the budget
TOKENS_PER_PROPERTY = 5  # a key, its quotes, colon and comma


def fitted(schema: dict[str, Any], budget: int) -> dict[str, Any]:
    """`schema` with a maxLength on every string it leaves unbounded, sized so that all of them together fit in
    what the token budget leaves after the JSON's own structure. A small model under a grammar can repeat
    itself inside a string until max_tokens runs out, and then the answer is no JSON at all; bounded, it is
    complete JSON (at worst a string cut short) for any budget with room for the structure. Strings the
    schema bounds, enumerates or patterns are left alone."""
    slots = _string_slots(schema)
    if not slots:
        return schema
    structure = 4 + TOKENS_PER_PROPERTY * json.dumps(schema).count('"type"')
    cap = max(8, (budget - structure) * CHARS_PER_TOKEN * 3 // 4 // slots)
    return _cap_strings(schema, cap)  # type: ignore[no-any-return]


def _open_string(node: dict[str, Any]) -> bool:
    return node.get("type") == "string" and not any(k in node for k in ("maxLength", "enum", "const", "pattern",
                                                                         "format"))


def _string_slots(node: Any) -> int:
    if isinstance(node, list):
        return sum(_string_slots(n) for n in node)
    if not isinstance(node, dict):
        return 0
    if _open_string(node):
        return 1
    inner = sum(_string_slots(v) for k, v in node.items() if k not in ("enum", "const", "default", "examples"))
    if node.get("type") == "array" or "items" in node:
        return inner * min(int(node.get("maxItems", ITEMS_GUESS)), ITEMS_GUESS)
    return inner


def _cap_strings(node: Any, cap: int) -> Any:
    if isinstance(node, list):
        return [_cap_strings(n, cap) for n in node]
    if not isinstance(node, dict):
        return node
    if _open_string(node):
        return {**node, "maxLength": cap}
    return {k: v if k in ("enum", "const", "default", "examples") else _cap_strings(v, cap) for k, v in node.items()}


def closed(schema: Any, declared_only: bool = False) -> Any:
    """A schema with objects closed where it leaves them open (as OpenAI's strict mode, and xgrammar's
    strict_mode, do): the output has the properties the schema declares, not invented extra ones a small
    model can go on adding. A tool's bare {"type": "object"} (a function without parameters) is closed too;
    with `declared_only`, only objects that declare properties are."""
    if isinstance(schema, list):
        return [closed(s, declared_only) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: closed(v, declared_only) if k in ("items", "anyOf", "oneOf", "allOf", "prefixItems") else v
           for k, v in schema.items()}
    for defs in ("$defs", "definitions"):
        if isinstance(schema.get(defs), dict):
            out[defs] = {k: closed(v, declared_only) for k, v in schema[defs].items()}
    if isinstance(schema.get("properties"), dict):
        out["properties"] = {k: closed(v, declared_only) for k, v in schema["properties"].items()}
    if isinstance(schema.get("properties"), dict) or (schema.get("type") == "object" and not declared_only):
        out.setdefault("additionalProperties", False)
    return out


def schema_param(request: ChatCompletionRequest) -> str:
    return "tools" if request.tools and request.tool_choice not in (None, "auto", "none") else "response_format"
