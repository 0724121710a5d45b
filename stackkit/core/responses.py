"""The Responses engine: one model turn as OpenAI's stream of events, over the Inference router.

The streamed event sequence is the source of truth; a non-streaming call drains it. Every turn goes
through the Inference router, so routing, guardrails and every provider apply. A turn ends at the model's
answer or at its function calls (the client runs them and answers with `function_call_output` items in
the next request, naming this response as `previous_response_id`).

State lives in the stack's SQL store (sqlite, or PostgreSQL shared by replicas): each stored response keeps
its full context (the items that led to it plus its output), so a turn reads its whole history in one
query however long the chain, and the row is written before the terminal event is sent.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any

from sqlalchemy import Column, Connection, Integer, MetaData, String, Table, Text, select

from stackkit.apis.agents import (
    CreateResponseRequest,
    FileSearchCallItem,
    FileSearchTool,
    FunctionCallItem,
    IncompleteDetails,
    InputItemList,
    InputItemsRequest,
    McpApprovalRequestItem,
    McpCallItem,
    McpListToolsItem,
    McpTool,
    ResponseError,
    ResponseEvent,
    ResponseIdRequest,
    ResponseObject,
    ResponseUsage,
    RetrieveResponseRequest,
)
from stackkit.apis.datatypes import DeleteResponse
from stackkit.apis.inference import ChatCompletionChunk, ChatCompletionRequest, Inference
from stackkit.apis.models import GetModelRequest, Models
from stackkit.apis.vector_io import VectorIO
from stackkit.core.background import EVENTS, TERMINAL, BackgroundRuns
from stackkit.core.background import TABLES as BACKGROUND_TABLES
from stackkit.core.conversations import TABLES as CONVERSATION_TABLES
from stackkit.core.conversations import ConversationsAPI, item_page
from stackkit.core.message_events import MessageEvents
from stackkit.core.sql import SqlStore
from stackkit.core.streams import Stream, aclose
from stackkit.core.tool_runtime import ToolRuntimeService
from stackkit.core.tools import (
    FILE_SEARCH,
    McpSessions,
    call_mcp_tool,
    check_server_tools,
    reusable_listings,
    run_approved_calls,
    run_file_search,
    shown_tool,
)
from stackkit.core.turn_context import (
    MAX_TOOL_CALLS,
    Events,
    TurnTools,
    add_usage,
    input_items,
    new_id,
    to_messages,
    truncate,
    turn_tools,
)
from stackkit.errors import InvalidRequestError, NotFoundError, StackkitError

TABLES = MetaData()
RESPONSES = Table("responses", TABLES, Column("id", String, primary_key=True),
                  Column("created_at", Integer, nullable=False), Column("body", Text, nullable=False),
                  Column("input_items", Text, nullable=False), Column("context", Text, nullable=False))


async def _done(item: McpCallItem) -> McpCallItem:
    return item


class ResponsesService(ConversationsAPI):
    """The Agents API: Responses over the Inference router, and Conversations, in the stack's SQL store.
    Call `open()` before use."""

    def __init__(self, inference: Inference, db: SqlStore, vector_io: VectorIO | None = None,
                 tool_runtime: ToolRuntimeService | None = None, models: Models | None = None) -> None:
        self.inference = inference
        self.models = models
        self.tool_runtime = tool_runtime or ToolRuntimeService([], McpSessions())
        self.vector_io = vector_io
        self.db = db
        self.background = BackgroundRuns(db, RESPONSES)
        self.live: dict[str, tuple[CreateResponseRequest, int, list[Any]]] = {}  # stored responses being made
        self.mcp = self.tool_runtime.sessions

    async def open(self) -> None:
        """Create the tables, and fail the background runs a stopped process left behind."""
        for tables in (TABLES, CONVERSATION_TABLES, BACKGROUND_TABLES):
            await self.db.create(tables)
        await self.background.open()

    async def shutdown(self) -> None:
        await self.background.shutdown()
        await self.mcp.close()
        await self.db.close()

    # ---- reading and writing state ----------------------------------------------------------------

    async def _row(self, response_id: str) -> tuple[str, str, str]:
        rows = await self.db.fetch(select(RESPONSES.c.body, RESPONSES.c.input_items, RESPONSES.c.context)
                                   .where(RESPONSES.c.id == response_id))
        if not rows:
            raise NotFoundError(f"Response '{response_id}' not found: it was not stored (store: false) or was "
                                "deleted. Check the id, or send the context as input instead.",
                                code="response_not_found", param="response_id")
        return (rows[0][0], rows[0][1], rows[0][2])

    async def _store(self, response: ResponseObject, items: list[dict[str, Any]], context: list[Any]) -> None:
        await self.db.put(RESPONSES, {
            "id": response.id, "created_at": response.created_at, "body": response.model_dump_json(),
            "input_items": json.dumps(items), "context": json.dumps(context)}, ["id"])

    # ---- the API ------------------------------------------------------------------------------

    async def create_response(self, request: CreateResponseRequest) -> ResponseObject | AsyncIterator[ResponseEvent]:
        if any(isinstance(t, McpTool) and t.server_url is None for t in request.tools):  # named tool groups
            request = request.model_copy(update={"tools": [self.tool_runtime.resolve(t) if isinstance(t, McpTool)
                                                           else t for t in request.tools]})
        self._check(request)
        history: list[dict[str, Any]] = []
        reuse: dict[str, McpListToolsItem] = {}
        if request.previous_response_id:
            previous, _, stored_context = await self._row(request.previous_response_id)  # one query, any depth
            history = json.loads(stored_context)
            reuse = reusable_listings(request, previous, history)
        conversation = self._conversation_id(request)
        if conversation is not None:
            history = await self.conversation_items(conversation)
        items = input_items(request)
        context = [*history, *items]
        # the model is called before the first event, so an unknown model or a blocked input is an HTTP error
        tools = await turn_tools(request, self.mcp, reuse)
        tools.approved = await run_approved_calls(request, items, history, self.mcp)
        model_context = [*context, *(a.model_dump() for a in tools.approved)]
        if request.truncation == "auto":
            model_context = await self._truncated(request, model_context, len(items) + len(tools.approved))
        messages = to_messages(model_context, request.instructions)
        stream = await self.inference.chat_completion(self._chat_request(request, messages, tools))
        response_id, created = new_id("resp"), int(time.time())
        output: list[Any] = []
        turn = self._turn(request, items, context, list(messages), stream, conversation, tools, response_id, created,
                          output)
        if request.store and not request.background:  # GET answers while it runs, from what is done so far
            self.live[response_id] = (request, created, output)
            turn = self._while_live(response_id, turn)
        events = Stream(turn, lambda: aclose(stream))
        if request.background:
            return await self._start_background(request, items, context, events, response_id, created)
        if request.stream:
            return events
        final: ResponseObject | None = None
        try:
            async for event in events:
                if event.type in ("response.completed", "response.incomplete", "response.failed"):
                    final = ResponseObject.model_validate(event.model_extra["response"])  # type: ignore[index]
        finally:
            await events.aclose()
        assert final is not None
        return final

    async def _truncated(self, request: CreateResponseRequest, context: list[dict[str, Any]], keep: int
                         ) -> list[dict[str, Any]]:
        window = None
        if self.models is not None:
            metadata = (await self.models.get_model(GetModelRequest(model_id=request.model))).metadata or {}
            window = metadata.get("context_length") or metadata.get("max_model_len")
        if not window:
            raise InvalidRequestError(f"truncation auto needs the context length of '{request.model}'; set "
                                      "metadata.context_length on the model in run.yaml, or leave truncation out.",
                                      param="truncation")
        reserved = request.max_output_tokens or min(4096, int(window) // 4)
        budget = int(window) - reserved - len(request.instructions or "") // 3
        return truncate(context, keep, budget)

    async def _while_live(self, response_id: str, events: AsyncIterator[ResponseEvent]
                          ) -> AsyncIterator[ResponseEvent]:
        try:
            async for event in events:
                if event.type in TERMINAL:  # stored by now: GET reads it from storage
                    self.live.pop(response_id, None)
                yield event
        finally:
            self.live.pop(response_id, None)

    async def _start_background(self, request: CreateResponseRequest, items: list[dict[str, Any]],
                                context: list[dict[str, Any]], events: Stream[ResponseEvent], response_id: str,
                                created: int) -> ResponseObject | AsyncIterator[ResponseEvent]:
        queued = self._response(request, response_id, created, "queued", [])
        await self._store(queued, items, context)
        await self.background.register(response_id)

        async def store_stopped(response: ResponseObject) -> None:
            await self._store(response, items, [*context, *(o.model_dump() for o in response.output)])

        run = self.background.start(queued, events, store_stopped)
        return Stream(run.follow(-1)) if request.stream else queued  # dropping the stream stops nothing

    @staticmethod
    def _conversation_id(request: CreateResponseRequest) -> str | None:
        if request.conversation is None:
            return None
        if request.previous_response_id is not None:
            raise InvalidRequestError("conversation and previous_response_id cannot be used together; send one.",
                                      param="conversation")
        ident = request.conversation if isinstance(request.conversation, str) else request.conversation.get("id")
        if not isinstance(ident, str) or not ident:
            raise InvalidRequestError("conversation must be a conversation id or {\"id\": ...}; pass its id.",
                                      param="conversation")
        return ident

    def _check(self, request: CreateResponseRequest) -> None:
        check_server_tools(request.tools, self.vector_io)
        if request.background and not request.store:
            raise InvalidRequestError("background responses are stored (that is how you fetch them later); "
                                      "set store to true or leave background out.", param="background")
        if sum(isinstance(t, FileSearchTool) for t in request.tools) > 1:
            raise InvalidRequestError("Give one file_search tool; list every store in its vector_store_ids.",
                                      param="tools")
        if request.text is not None and request.text.format.type == "json_schema" and not request.text.format.schema_:
            raise InvalidRequestError("text.format json_schema needs a `schema`; add it.", param="text.format.schema")

    def _chat_request(self, request: CreateResponseRequest, messages: list[dict[str, Any]], tools: TurnTools
                      ) -> ChatCompletionRequest:
        body: dict[str, Any] = {"model": request.model, "messages": messages, "stream": True,
                                "stream_options": {"include_usage": True}}
        body["temperature"] = 1.0 if request.temperature is None else request.temperature  # OpenAI's default
        if request.top_p is not None:
            body["top_p"] = request.top_p
        if request.max_output_tokens is not None:
            body["max_tokens"] = request.max_output_tokens
        if tools.functions:
            body["tools"] = tools.functions
            body["tool_choice"] = tools.chat_choice
            body["parallel_tool_calls"] = request.parallel_tool_calls
        fmt = request.text.format if request.text is not None else None
        if fmt is not None and fmt.type == "json_object":
            body["response_format"] = {"type": "json_object"}
        elif fmt is not None and fmt.type == "json_schema":
            body["response_format"] = {"type": "json_schema", "json_schema": {
                "name": fmt.name or "output", "schema": fmt.schema_, "strict": fmt.strict}}
        if request.guardrails:
            body["guardrails"] = request.guardrails
        return ChatCompletionRequest.model_validate(body)

    def _response(self, request: CreateResponseRequest, response_id: str, created: int, status: str,
                  output: list[Any], **extra: Any) -> ResponseObject:
        conversation = self._conversation_id(request)
        return ResponseObject(
            id=response_id, created_at=created, status=status, model=request.model, output=output,  # type: ignore[arg-type]
            instructions=request.instructions, previous_response_id=request.previous_response_id,
            tools=[shown_tool(t) if isinstance(t, McpTool) else t for t in request.tools],
            tool_choice=request.tool_choice, parallel_tool_calls=request.parallel_tool_calls,
            temperature=1.0 if request.temperature is None else request.temperature,
            top_p=1.0 if request.top_p is None else request.top_p, max_output_tokens=request.max_output_tokens,
            max_tool_calls=request.max_tool_calls, conversation={"id": conversation} if conversation else None,
            text=request.text or {}, truncation=request.truncation, store=request.store, metadata=request.metadata,
            user=request.user, background=request.background, **extra)

    async def _turn(self, request: CreateResponseRequest, items: list[dict[str, Any]], context: list[dict[str, Any]],
                    messages: list[dict[str, Any]], stream: Any, conversation: str | None, tools: TurnTools,
                    response_id: str, created: int, output: list[Any]) -> AsyncIterator[ResponseEvent]:
        event = Events()
        if request.background:
            queued = self._response(request, response_id, created, "queued", [])
            yield event("response.created", response=queued)
            yield event("response.queued", response=queued)
        else:
            yield event("response.created", response=self._response(request, response_id, created, "in_progress",
                                                                    []))
        yield event("response.in_progress", response=self._response(request, response_id, created, "in_progress", []))
        citations: list[dict[str, Any]] = []
        finish, usage, steps = None, ResponseUsage(), 0
        for listing in tools.listings:  # the MCP servers' tools, as listed before the model was called
            index = len(output)
            output.append(listing)
            yield event("response.output_item.added", output_index=index, item={**listing.model_dump(), "tools": []})
            yield event("response.mcp_list_tools.in_progress", item_id=listing.id, output_index=index)
            yield event("response.mcp_list_tools.failed" if listing.error else "response.mcp_list_tools.completed",
                        item_id=listing.id, output_index=index)
            yield event("response.output_item.done", output_index=index, item=listing.model_dump())
        for approved in tools.approved:  # calls the client approved, run before the model was called
            async for ev in self._mcp_call_events(event, output, approved, _done(approved)):
                if not isinstance(ev, str):  # the model reads it from the context instead
                    yield ev
        try:
            while True:  # model step; server-side tool calls; again, until an answer or a client function call
                server_calls: list[FunctionCallItem] = []
                async for ev in self._output_events(stream, output, event, server_calls, citations, tools):
                    if isinstance(ev, tuple):
                        finish, step_usage = ev
                        usage = add_usage(usage, step_usage)
                    else:
                        yield ev
                steps += len(server_calls)
                if not server_calls or finish == "length":
                    break
                if steps > (request.max_tool_calls or MAX_TOOL_CALLS):
                    finish = "length"
                    break
                async for ev in self._run_server_tools(request, server_calls, output, messages, citations, event,
                                                       tools):
                    yield ev
                if tools.awaiting_approval:
                    break
                if tools.chat_choice != "none":  # a forced call was made: the model may now answer
                    tools.chat_choice = "auto"
                stream = await self.inference.chat_completion(self._chat_request(request, messages, tools))
        except StackkitError as exc:  # the upstream failed mid-stream
            failed = self._response(request, response_id, created, "failed", output,
                                    error=ResponseError(code=exc.code or exc.error_type, message=exc.message))
            if request.store:
                await self._store(failed, items, context)
            yield event("response.failed", response=failed)
            return
        status = "incomplete" if finish in ("length", "content_filter") else "completed"
        details = IncompleteDetails(reason="max_output_tokens" if finish == "length" else "content_filter") \
            if status == "incomplete" else None
        if "file_search_call.results" not in request.include:
            for item in output:
                if isinstance(item, FileSearchCallItem):
                    item.results = None
        final = self._response(request, response_id, created, status, output, usage=usage,
                               incomplete_details=details,
                               completed_at=int(time.time()) if status == "completed" else None)
        if request.store:  # written before the terminal event: nothing is acknowledged that was not stored
            await self._store(final, items, [*context, *(o.model_dump() for o in output)])
        if conversation is not None:
            await self.append_items(conversation, [*items, *(o.model_dump() for o in output)])
        yield event(f"response.{status}", response=final)

    async def _run_server_tools(self, request: CreateResponseRequest, calls: list[FunctionCallItem],
                                output: list[Any], messages: list[dict[str, Any]], citations: list[dict[str, Any]],
                                event: Events, tools: TurnTools) -> AsyncIterator[ResponseEvent]:
        """Run the model's calls of server-side tools: their events and items, and their results for the model."""
        messages.append({"role": "assistant", "content": None, "tool_calls": [
            {"id": c.call_id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in calls]})
        for call in calls:
            if call.name in tools.refused():  # the model called a tool allowed_tools leaves out: it is told
                allowed = ", ".join(sorted(tools.allowed or ()))
                messages.append({"role": "tool", "tool_call_id": call.call_id, "content": f"Not run: '{call.name}' "
                                 f"is not allowed in this turn; the tools you may call are: {allowed}."})
                continue
            if call.name == FILE_SEARCH:
                assert tools.file_search is not None
                run = self._file_search_events(request, event, output, call, tools.file_search, citations)
            elif tools.mcp[call.name].needs_approval(call.name):  # asked, not run: the client answers next time
                server = tools.mcp[call.name]
                ask = McpApprovalRequestItem(id=new_id("mcpr"), server_label=server.server_label, name=call.name,
                                             arguments=call.arguments)
                tools.awaiting_approval = True
                yield event("response.output_item.added", output_index=len(output), item=ask.model_dump())
                output.append(ask)
                yield event("response.output_item.done", output_index=len(output) - 1, item=ask.model_dump())
                continue
            else:
                server = tools.mcp[call.name]
                pending = McpCallItem(id=call.id, server_label=server.server_label, name=call.name,
                                      arguments=call.arguments, status="in_progress")
                run = self._mcp_call_events(event, output, pending, call_mcp_tool(server, call.name, call.arguments,
                                                                                   self.mcp))
            async for ev in run:
                if isinstance(ev, str):  # what the model reads back
                    messages.append({"role": "tool", "tool_call_id": call.call_id, "content": ev})
                else:
                    yield ev

    async def _file_search_events(self, request: CreateResponseRequest, event: Events, output: list[Any],
                                  call: FunctionCallItem, tool: FileSearchTool, citations: list[dict[str, Any]]
                                  ) -> AsyncIterator[Any]:
        """A file search's events; also yields, as a str, the passages the model reads."""
        assert self.vector_io is not None
        index, pending = len(output), FileSearchCallItem(id=new_id("fs"), queries=[], status="in_progress")
        yield event("response.output_item.added", output_index=index, item=pending.model_dump())
        yield event("response.file_search_call.in_progress", item_id=pending.id, output_index=index)
        yield event("response.file_search_call.searching", item_id=pending.id, output_index=index)
        item, text, found = await run_file_search(tool, call.arguments, self.vector_io)
        item.id = pending.id
        citations += [c for c in found if c["file_id"] not in {x["file_id"] for x in citations}]
        output.append(item)
        yield text
        yield event("response.file_search_call.completed", item_id=item.id, output_index=index)
        yield event("response.output_item.done", output_index=index, item=item.model_dump(
            exclude={"results"} if "file_search_call.results" not in request.include else set()))

    @staticmethod
    async def _mcp_call_events(event: Events, output: list[Any], pending: McpCallItem,
                               result: Awaitable[McpCallItem]) -> AsyncIterator[Any]:
        """An MCP call's events around `result`; also yields, as a str, the text the model reads."""
        index = len(output)
        yield event("response.output_item.added", output_index=index, item={
            **pending.model_dump(exclude={"output", "error"}), "arguments": "", "status": "in_progress"})
        yield event("response.mcp_call.in_progress", item_id=pending.id, output_index=index)
        yield event("response.mcp_call_arguments.done", item_id=pending.id, output_index=index,
                    arguments=pending.arguments)
        item = await result
        item.id = pending.id
        output.append(item)
        yield f"error: {item.error}" if item.error is not None else (item.output or "")
        yield event("response.mcp_call.failed" if item.error else "response.mcp_call.completed", item_id=item.id,
                    output_index=index)
        yield event("response.output_item.done", output_index=index, item=item.model_dump())

    async def _output_events(self, stream: Any, output: list[Any], event: Events, server_calls: list[FunctionCallItem],
                             citations: list[dict[str, Any]], tools: TurnTools) -> AsyncIterator[Any]:
        """Events for a chat stream's text and tool calls, appending the finished items to `output` (calls of
        server-side tools go to `server_calls` instead); the last thing yielded is (finish_reason, usage)."""
        messages = MessageEvents(output, event)
        calls: dict[int, FunctionCallItem] = {}
        hidden = tools.server_names | tools.refused()
        finish, usage = None, ResponseUsage()
        async for chunk in stream:
            assert isinstance(chunk, ChatCompletionChunk)
            if chunk.usage is not None:
                usage = ResponseUsage(input_tokens=chunk.usage.prompt_tokens,
                                      output_tokens=chunk.usage.completion_tokens,
                                      total_tokens=chunk.usage.total_tokens)
            for choice in chunk.choices[:1]:
                delta = choice.delta
                for ev in [*(messages.refusal(delta.refusal) if delta.refusal else []),
                           *(messages.text(delta.content) if delta.content else [])]:
                    yield ev
                for call in delta.tool_calls or []:
                    for ev in messages.close():
                        yield ev
                    index = len(output) + call.index
                    if call.index not in calls:
                        fn = call.function
                        calls[call.index] = FunctionCallItem(id=new_id("fc"), call_id=call.id or new_id("call"),
                                                             name=fn.name if fn and fn.name else "", arguments="",
                                                             status="in_progress")
                        if calls[call.index].name not in hidden:
                            yield event("response.output_item.added", output_index=index,
                                        item=calls[call.index].model_dump())
                    if call.function is not None and call.function.arguments:
                        calls[call.index].arguments += call.function.arguments
                        if calls[call.index].name not in hidden:
                            yield event("response.function_call_arguments.delta", item_id=calls[call.index].id,
                                        output_index=index, delta=call.function.arguments)
                if choice.finish_reason is not None:
                    finish = choice.finish_reason
        for ev in messages.close(citations):
            yield ev
        for item in calls.values():
            if item.name in hidden:
                server_calls.append(item)
                continue
            item.status = "completed"
            index = len(output)
            output.append(item)
            yield event("response.function_call_arguments.done", item_id=item.id, output_index=index,
                        arguments=item.arguments, name=item.name)
            yield event("response.output_item.done", output_index=index, item=item.model_dump())
        yield finish, usage

    async def get_response(self, request: RetrieveResponseRequest
                           ) -> ResponseObject | AsyncIterator[ResponseEvent]:
        run = self.background.runs.get(request.response_id)
        if not request.stream:
            if request.starting_after is not None:
                raise InvalidRequestError("starting_after picks where a replayed stream starts; add stream=true.",
                                          param="starting_after")
            if run is not None:
                return run.snapshot
            if request.response_id in self.live:
                made, created, output = self.live[request.response_id]
                return self._response(made, request.response_id, created, "in_progress", list(output))
            return ResponseObject.model_validate_json((await self._row(request.response_id))[0])
        after = -1 if request.starting_after is None else request.starting_after
        if run is not None:
            return Stream(run.follow(after))
        response = ResponseObject.model_validate_json((await self._row(request.response_id))[0])
        if not response.background:
            raise InvalidRequestError("Only background responses can be streamed again (their events are kept); "
                                      "this one was created without background: true; use GET without stream.",
                                      param="stream")
        return Stream(self.background.replay(request.response_id, after))

    async def cancel_response(self, request: ResponseIdRequest) -> ResponseObject:
        cancelled = await self.background.cancel(request.response_id)
        if cancelled is not None:
            return cancelled
        response = ResponseObject.model_validate_json((await self._row(request.response_id))[0])
        if not response.background:
            raise InvalidRequestError("Only background responses can be cancelled; this one was created without "
                                      "background: true (close its stream to stop it).", param="response_id")
        return response  # already finished: cancelling again changes nothing

    async def delete_response(self, request: ResponseIdRequest) -> DeleteResponse:
        await self._row(request.response_id)
        await self.background.cancel(request.response_id)

        def delete(conn: Connection) -> None:
            conn.execute(RESPONSES.delete().where(RESPONSES.c.id == request.response_id))
            conn.execute(EVENTS.delete().where(EVENTS.c.response_id == request.response_id))

        await self.db.run(delete)
        return DeleteResponse(id=request.response_id, object="response")

    async def list_input_items(self, request: InputItemsRequest) -> InputItemList:
        items: list[dict[str, Any]] = json.loads((await self._row(request.response_id))[1])
        return item_page(items, request.order, request.after, request.limit)
