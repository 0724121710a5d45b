"""n > 1 for local engines: one generation per choice (decoded together in the engine's batch), answered
as one chat completion with a choice each, whole or streamed."""

from __future__ import annotations

import asyncio
from typing import Any

from stackkit.apis.inference import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, Usage
from stackkit.core.streams import Stream
from stackkit.providers.utils.local_chat import TextGeneration, chat_chunks, chat_response, choice_chunks


def _usage(gens: list[TextGeneration]) -> Usage:
    """The prompt counted once (as OpenAI counts it), the completions summed."""
    completion = sum(g.completion_tokens for g in gens)
    return Usage(prompt_tokens=gens[0].prompt_tokens, completion_tokens=completion,
                 total_tokens=gens[0].prompt_tokens + completion)


async def chat_choices(gens: list[TextGeneration], request: ChatCompletionRequest) -> ChatCompletion:
    if len(gens) == 1:
        return await chat_response(gens[0], request)
    answers = await asyncio.gather(*(chat_response(g, request) for g in gens))
    choices = [a.choices[0].model_copy(update={"index": i}) for i, a in enumerate(answers)]
    return answers[0].model_copy(update={"choices": choices, "usage": _usage(gens)})


def chat_choice_chunks(gens: list[TextGeneration], request: ChatCompletionRequest) -> Stream[ChatCompletionChunk]:
    """Every choice's chunks as they come, each under its index; closing the stream stops every generation."""
    if len(gens) == 1:
        return chat_chunks(gens[0], request)

    async def close() -> None:
        await asyncio.gather(*(g.close() for g in gens))

    return Stream(_merged(gens, request), close)


async def _merged(gens: list[TextGeneration], request: ChatCompletionRequest) -> Any:
    alone = request.model_copy(update={"stream_options": None})  # usage comes once, for all choices
    queue: asyncio.Queue[Any] = asyncio.Queue()

    async def pump(index: int, gen: TextGeneration) -> None:
        try:
            async for chunk in choice_chunks(gen, alone):
                for choice in chunk.choices:
                    choice.index = index
                await queue.put(chunk)
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, who raises it
            await queue.put(exc)
        finally:
            await queue.put(None)

    tasks = [asyncio.create_task(pump(i, g)) for i, g in enumerate(gens)]
    ident = None
    try:
        ended = 0
        while ended < len(gens):
            item = await queue.get()
            if item is None:
                ended += 1
            elif isinstance(item, BaseException):
                raise item
            else:
                ident = ident or item.id
                yield item.model_copy(update={"id": ident})
        if request.stream_options and request.stream_options.include_usage:
            yield ChatCompletionChunk(id=ident or "", created=0, model=request.model, choices=[], usage=_usage(gens))
    finally:
        for task in tasks:
            task.cancel()
