"""`Agent`: instructions, a model and plain Python functions as tools, run over the Responses API.

Works with any client shaped like the `openai` SDK: `LibraryClient` (in-process), `openai.OpenAI` pointed at
`stackkit run`, and their async twins (use `arun`). Function schemas come from type hints (and the first
line of the docstring); the model's calls of them run here, in the caller's process, and their results go
back as `function_call_output` items until the model answers. A `Session` keeps a conversation (OpenAI's
Conversations API) so that each run continues the last::

    agent = Agent(client, model="llama3.2:3b", instructions="Be brief.", tools=[get_weather])
    chat = agent.session()
    print(agent.run("Weather in Paris?", session=chat).output_text)
    print(agent.run("And tomorrow?", session=chat).output_text)
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError, create_model

from stackkit.errors import AgentLoopError, InvalidRequestError


def _parameters(fn: Callable[..., Any]) -> type[BaseModel]:
    """A pydantic model of the function's parameters (their hints and defaults)."""
    fields: dict[str, Any] = {}
    for name, param in inspect.signature(fn).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise InvalidRequestError(f"{fn.__name__}: *args and **kwargs cannot be described to a model; name "
                                      "each parameter.", param="tools")
        annotation = Any if param.annotation is inspect.Parameter.empty else param.annotation
        fields[name] = (annotation, ... if param.default is inspect.Parameter.empty else param.default)
    return create_model(fn.__name__, **fields)


def function_tool(fn: Callable[..., Any], parameters: type[BaseModel] | None = None) -> dict[str, Any]:
    """The Responses `function` tool for a Python function: its name, docstring and typed parameters."""
    schema = (parameters or _parameters(fn)).model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    doc = inspect.getdoc(fn) or ""
    return {"type": "function", "name": fn.__name__, "description": doc.split("\n\n")[0] or None,
            "parameters": schema}


@dataclass
class Session:
    """A conversation an agent's runs continue (created on first use)."""

    client: Any
    conversation_id: str | None = None


@dataclass
class AgentResult:
    """What a run produced: the final answer's text and every response of the loop, last one last."""

    responses: list[Any] = field(default_factory=list)

    @property
    def response(self) -> Any:
        return self.responses[-1]

    @property
    def output_text(self) -> str:
        return "".join(part.text for item in self.response.output if item.type == "message"
                       for part in item.content if part.type == "output_text")


class Agent:
    """A model with instructions and Python functions as tools, looping over the Responses API."""

    def __init__(self, client: Any, model: str, instructions: str | None = None,
                 tools: list[Callable[..., Any] | dict[str, Any]] | None = None, max_turns: int = 10,
                 **settings: Any) -> None:
        self.client = client
        self.model = model
        self.instructions = instructions
        self.functions = {t.__name__: t for t in tools or [] if callable(t)}
        self.parameters = {name: _parameters(fn) for name, fn in self.functions.items()}  # built once, not per call
        self.tools = [function_tool(t, self.parameters[t.__name__]) if callable(t) else t
                      for t in tools or []]  # dicts: file_search, mcp
        self.max_turns = max_turns
        self.settings = settings

    def session(self) -> Session:
        return Session(self.client)

    def _request(self, input: Any, session: Session | None, previous: str | None) -> dict[str, Any]:
        request: dict[str, Any] = {"model": self.model, "input": input, "tools": self.tools, **self.settings}
        if self.instructions:
            request["instructions"] = self.instructions
        if session is not None:
            request["conversation"] = session.conversation_id
        elif previous is not None:
            request["previous_response_id"] = previous
        return request

    def _calls(self, response: Any) -> list[Any]:
        return [item for item in response.output if item.type == "function_call"]

    def _arguments(self, call: Any) -> tuple[Callable[..., Any], dict[str, Any]] | str:
        """The function and its arguments, or the error text the model is told instead."""
        fn = self.functions.get(call.name)
        if fn is None:
            return f"error: there is no function '{call.name}'"
        try:
            parsed = self.parameters[call.name].model_validate(json.loads(call.arguments or "{}"))
            return fn, {name: getattr(parsed, name) for name in type(parsed).model_fields}
        except (json.JSONDecodeError, ValidationError, TypeError) as exc:
            return f"error: the arguments do not fit {call.name}: {exc}"

    @staticmethod
    def _output(call: Any, result: Any) -> dict[str, Any]:
        text = result if isinstance(result, str) else json.dumps(result, default=str)
        return {"type": "function_call_output", "call_id": call.call_id, "output": text}

    def _loop(self, input: str | list[dict[str, Any]], session: Session | None) -> Generator[Any, Any, AgentResult]:
        """The run, free of I/O: yields ("create", request) and ("call", fn, arguments) and is sent the
        response or the function's result, so that `run` and `arun` drive the same steps."""
        result, pending, previous = AgentResult(), input, None
        for _ in range(self.max_turns):
            response = yield "create", self._request(pending, session, previous)
            result.responses.append(response)
            calls = self._calls(response)
            if not calls:
                return result
            outputs = []
            for call in calls:
                found = self._arguments(call)
                value = found if isinstance(found, str) else (yield "call", *found)
                outputs.append(self._output(call, value))
            pending, previous = outputs, response.id
        raise AgentLoopError(f"the model still called tools after {self.max_turns} turns; raise max_turns or "
                             "check the tools' results.")

    def run(self, input: str | list[dict[str, Any]], session: Session | None = None) -> AgentResult:
        """Run until the model answers (sync clients; functions run here, in order)."""
        if session is not None and session.conversation_id is None:
            session.conversation_id = self.client.conversations.create().id
        steps, sent = self._loop(input, session), None
        try:
            while True:
                step = steps.send(sent)
                if step[0] == "create":
                    sent = self.client.responses.create(**step[1])
                elif inspect.iscoroutinefunction(step[1]):
                    raise InvalidRequestError(f"{step[1].__name__} is async; use `await agent.arun(...)`.")
                else:
                    sent = _called(step[1], step[2])
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def arun(self, input: str | list[dict[str, Any]], session: Session | None = None) -> AgentResult:
        """`run` for async clients (`AsyncLibraryClient`, `openai.AsyncOpenAI`); functions may be async."""
        if session is not None and session.conversation_id is None:
            session.conversation_id = (await self.client.conversations.create()).id
        steps, sent = self._loop(input, session), None
        try:
            while True:
                step = steps.send(sent)
                if step[0] == "create":
                    sent = await self.client.responses.create(**step[1])
                else:
                    sent = _called(step[1], step[2])
                    if inspect.isawaitable(sent):
                        sent = await _awaited(sent)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]


def _called(fn: Callable[..., Any], arguments: dict[str, Any]) -> Any:
    """The function's result, or the error text the model is told when it raises."""
    try:
        return fn(**arguments)
    except Exception as exc:  # noqa: BLE001 - the model is told, as the Responses loop tells it of tool errors
        return f"error: {type(exc).__name__}: {exc}"


async def _awaited(value: Any) -> Any:
    try:
        return await value
    except Exception as exc:  # noqa: BLE001 - as in _called
        return f"error: {type(exc).__name__}: {exc}"
