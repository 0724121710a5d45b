"""The events of the assistant message a Responses turn streams: its text part, then, when a guardrail
blocks the answer, a refusal part carrying the shield's message (as OpenAI streams refusals)."""

from __future__ import annotations

from typing import Any

from stackkit.apis.agents import FileCitation, OutputMessage, OutputText, RefusalPart, ResponseEvent
from stackkit.core.turn_context import Events, new_id


class MessageEvents:
    """Builds one output message from text and refusal deltas, giving the events for each in order."""

    def __init__(self, output: list[Any], event: Events) -> None:
        self.output = output  # the response's output so far: the message goes at its end when it closes
        self.event = event
        self.message: OutputMessage | None = None

    def _ids(self, message: OutputMessage) -> dict[str, Any]:
        return {"item_id": message.id, "output_index": len(self.output), "content_index": len(message.content) - 1}

    def _open(self) -> list[ResponseEvent]:
        if self.message is not None:
            return []
        self.message = OutputMessage(id=new_id("msg"), status="in_progress")
        return [self.event("response.output_item.added", output_index=len(self.output),
                           item=self.message.model_dump())]

    def _add_part(self, part: OutputText | RefusalPart) -> list[ResponseEvent]:
        assert self.message is not None
        done = self._part_done(self.message) if self.message.content else []
        self.message.content.append(part)
        return [*done, self.event("response.content_part.added", **self._ids(self.message), part=part.model_dump())]

    def _part_done(self, message: OutputMessage) -> list[ResponseEvent]:
        part, ids = message.content[-1], self._ids(message)
        first = self.event("response.refusal.done", **ids, refusal=part.refusal) if isinstance(part, RefusalPart) \
            else self.event("response.output_text.done", **ids, text=part.text, logprobs=[])
        return [first, self.event("response.content_part.done", **ids, part=part.model_dump())]

    @property
    def refused(self) -> bool:
        return self.message is not None and bool(self.message.content) and \
            isinstance(self.message.content[-1], RefusalPart)

    def text(self, delta: str) -> list[ResponseEvent]:
        if self.refused:  # nothing follows a refusal
            return []
        events = self._open()
        assert self.message is not None
        if not self.message.content:
            events += self._add_part(OutputText(text=""))
        part = self.message.content[-1]
        assert isinstance(part, OutputText)
        part.text += delta
        return [*events, self.event("response.output_text.delta", **self._ids(self.message), delta=delta,
                                    logprobs=[])]

    def refusal(self, delta: str) -> list[ResponseEvent]:
        events = self._open()
        if not self.refused:
            events += self._add_part(RefusalPart(refusal=""))
        assert self.message is not None
        part = self.message.content[-1]
        assert isinstance(part, RefusalPart)
        part.refusal += delta
        return [*events, self.event("response.refusal.delta", **self._ids(self.message), delta=delta)]

    def close(self, citations: list[dict[str, Any]] | None = None) -> list[ResponseEvent]:
        """End the message (if one was started) and append it to the output."""
        message, self.message = self.message, None
        if message is None:
            return []
        first = message.content[0]
        if citations and isinstance(first, OutputText):
            first.annotations = [FileCitation(**{**c, "index": len(first.text)}) for c in citations]
        events = self._part_done(message)
        index = len(self.output)
        message.status = "completed"
        self.output.append(message)
        return [*events, self.event("response.output_item.done", output_index=index, item=message.model_dump())]
