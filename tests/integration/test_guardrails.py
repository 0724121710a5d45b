"""Guardrails as a floor, streams that never leak, shield params, and per-request keys over a stream.

The leak tests split answers at every character position (as a real tokenizer splits words), with the
real pii shield, through both transports.
"""

from __future__ import annotations

import itertools
import json
import textwrap
from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import pytest

from stackkit import LibraryClient
from stackkit.apis.inference import ChatCompletionChunk, ChatCompletionChunkChoice, ChoiceDelta
from stackkit.apis.safety import RunShieldRequest, RunShieldResponse
from stackkit.core.config import RunConfig, parse_config
from stackkit.core.guardrails import Guardrails
from stackkit.providers.inline.pii import PIIConfig, PIISafety, find_pii, redact
from stackkit.testing.live_server import LiveServer
from tests import echo_upstream
from tests.echo_upstream import EchoUpstream

LEAK = "sure: write to bob@example.com or call +1 415 555 0100 today, thanks"
STACK = """
providers:
  inference:
    - provider_id: fake
      provider_type: inline::fake
      config:
        stream_chunk_chars: {chunk}
        replies:
          - {{when: "please leak", reply: "{leak}"}}
  safety:
    - {{provider_id: pii, provider_type: inline::pii}}
registered_resources:
  models:
    - {{model_id: open, provider_id: fake, provider_model_id: fake-open}}
    - {{model_id: guarded, provider_id: fake, provider_model_id: fake-guarded, guardrails: [pii]}}
    - {{model_id: redacted, provider_id: fake, provider_model_id: fake-redacted, guardrails: [pii-redact]}}
  shields:
    - {{shield_id: pii, provider_id: pii}}
    - {{shield_id: pii-redact, provider_id: pii, params: {{action: redact}}}}
storage: {{backends: {{m: {{type: memory}}}}, stores: {{registry: m}}}}
safety: {{stream_check_chars: 8, stream_holdback_chars: 24}}
"""


def stack_config(chunk: int = 3) -> RunConfig:
    return parse_config(textwrap.dedent(STACK.format(chunk=chunk, leak=LEAK)), env={})


@pytest.fixture(params=["library", "http"])
def client(request: pytest.FixtureRequest) -> Iterator[Any]:
    config = stack_config()
    if request.param == "library":
        with LibraryClient(config) as library:
            yield library
        return
    with LiveServer(config) as server, openai.OpenAI(base_url=server.base_url, api_key="none", max_retries=0) as sdk:
        yield sdk


def ask(client: Any, text: str, model: str, **kw: Any) -> Any:
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}], **kw)


def streamed_text(chunks: Any) -> tuple[str, list[str | None]]:
    chunks = list(chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, [c.choices[0].finish_reason for c in chunks if c.choices]


# ---- the floor --------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["guarded", "fake/fake-guarded"])
def test_request_cannot_remove_the_models_shields(client: Any, model: str) -> None:
    extras: list[dict[str, Any] | None] = [None, {"guardrails": []}, {"guardrails": ["pii-redact"]}]
    for extra in extras:
        with pytest.raises(Exception, match="Blocked by guardrail 'pii'"):
            ask(client, "mail me at a@b.io", model, extra_body=extra)


def test_completions_keep_the_floor(client: Any) -> None:
    with pytest.raises(Exception, match="Blocked by guardrail 'pii'"):
        client.completions.create(model="guarded", prompt="mail me at a@b.io", extra_body={"guardrails": []})
    out = client.completions.create(model="redacted", prompt="please leak it")
    assert out.choices[0].text == redact(LEAK, find_pii(LEAK))
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model="redacted", prompt="please leak it", stream=True) if c.choices)
    assert streamed == redact(LEAK, find_pii(LEAK))


def test_an_alias_registered_later_inherits_the_floor(client: Any) -> None:
    if isinstance(client, LibraryClient):
        client.models.register(model_id="alias", provider_id="fake", provider_model_id="fake-guarded",
                               metadata={"guardrails": []})
    else:
        client.post("/models", body={"model_id": "alias", "provider_id": "fake", "provider_model_id": "fake-guarded",
                                     "metadata": {"guardrails": []}}, cast_to=object)
    with pytest.raises(Exception, match="Blocked by guardrail 'pii'"):
        ask(client, "mail me at a@b.io", "alias")
    assert ask(client, "mail me at a@b.io", "open").choices[0].message.content == "mail me at a@b.io"


def test_requests_may_add_shields(client: Any) -> None:
    with pytest.raises(Exception, match="Blocked by guardrail 'pii'"):
        ask(client, "mail me at a@b.io", "open", extra_body={"guardrails": ["pii"]})


def test_shield_params_reach_the_provider(client: Any) -> None:
    out = ask(client, "please leak it", "redacted")
    assert out.choices[0].message.content == redact(LEAK, find_pii(LEAK))
    assert out.model == "redacted"


# ---- streams never leak -------------------------------------------------------------------------


def test_redacting_stream_split_mid_word(client: Any) -> None:
    text, finishes = streamed_text(ask(client, "please leak it", "redacted", stream=True))
    assert text == redact(LEAK, find_pii(LEAK))
    assert finishes[-1] == "stop"


def test_blocking_stream_sends_no_part_of_the_address(client: Any) -> None:
    text, finishes = streamed_text(ask(client, "please leak it", "guarded", stream=True))
    assert "bob" not in text and "@" not in text and "415" not in text
    assert finishes[-1] == "content_filter"


class _PII:
    """The real pii shield, counting how much text it was sent."""

    def __init__(self, action: str) -> None:
        self.shield = PIISafety(PIIConfig(action=action))  # type: ignore[arg-type]
        self.chars = 0

    async def run_shield(self, request: RunShieldRequest) -> RunShieldResponse:
        self.chars += sum(len(str(m.content)) for m in request.messages)
        return await self.shield.run_shield(request)


def _chunks(pieces: list[list[str]]) -> AsyncIterator[ChatCompletionChunk]:
    async def gen() -> AsyncIterator[ChatCompletionChunk]:
        for step in pieces:
            yield ChatCompletionChunk(id="c", created=0, model="m", choices=[
                ChatCompletionChunkChoice(index=i, delta=ChoiceDelta(content=p)) for i, p in enumerate(step) if p])
        yield ChatCompletionChunk(id="c", created=0, model="m", choices=[
            ChatCompletionChunkChoice(index=i, delta=ChoiceDelta(), finish_reason="stop") for i in range(2)])
    return gen()


async def _run(guard: Guardrails, pieces: list[list[str]]
               ) -> tuple[dict[int, str], dict[int, str | None], list[str]]:
    texts: dict[int, str] = {0: "", 1: ""}
    finish: dict[int, str | None] = {}
    sent: list[str] = []  # what the client had seen of choice 0 after each chunk
    async for chunk in guard.guard_chat_stream(["pii"], _chunks(pieces)):
        for c in chunk.choices:
            texts[c.index] += c.delta.content or ""
            if c.index == 0:
                sent.append(texts[0])
            finish[c.index] = c.finish_reason or finish.get(c.index)
    return texts, finish, sent


@pytest.mark.parametrize("action", ["redact", "block"])
async def test_every_split_of_two_choices(action: str) -> None:
    """Choice 0 carries the leak, choice 1 is clean; the leak is split at every position and sizes 1-7."""
    clean = "nothing personal in this answer at all, only words and more words"
    expected = redact(LEAK, find_pii(LEAK))
    for size in range(1, 8):
        for offset in range(size):
            cuts = [0, *range(offset or size, len(LEAK), size), len(LEAK)]
            parts = [LEAK[a:b] for a, b in itertools.pairwise(cuts)]
            other = [clean[i * 5:(i + 1) * 5] for i in range(len(parts))]
            shield = _PII(action)
            steps = [list(p) for p in zip(parts, other, strict=True)]
            texts, finish, sent = await _run(Guardrails(shield, 8, 24), steps)
            if action == "redact":
                assert texts[0] == expected, (size, offset)
                assert all(expected.startswith(s) for s in sent), (size, offset)
            else:
                assert "bob" not in texts[0] and "@exa" not in texts[0] and "415" not in texts[0], (size, offset)
                assert finish[0] == "content_filter"
            assert texts[1].startswith(clean[:20]) and finish[1] == "stop"


async def test_checking_is_linear_in_the_answer() -> None:
    words = " ".join(f"word{i}" for i in range(2000))  # 17 KB
    shield = _PII("block")
    pieces = [[words[i:i + 4]] for i in range(0, len(words), 4)]
    texts, _, _ = await _run(Guardrails(shield, 200, 48), pieces)
    assert texts[0] == words
    assert shield.chars < 4 * len(words)  # a quadratic re-check would send ~ len²/400 ≈ 750x


# ---- per-request keys stay in effect for the whole stream ------------------------------------------


def test_provider_keys_reach_a_shield_checking_a_stream() -> None:
    with EchoUpstream() as url:
        config = parse_config(textwrap.dedent(f"""
            providers:
              inference:
                - {{provider_id: up, provider_type: remote::openai, config: {{base_url: "{url}", api_key: ""}}}}
              safety:
                - {{provider_id: mod, provider_type: remote::openai-moderation, config: {{base_url: "{url}"}}}}
            registered_resources:
              models: [{{model_id: m, provider_id: up, provider_model_id: gpt-x, guardrails: [mod]}}]
              shields: [{{shield_id: mod, provider_id: mod}}]
            storage: {{backends: {{m: {{type: memory}}}}, stores: {{registry: m}}}}
            safety: {{stream_check_chars: 8}}
            """), env={})
        header = {"X-Stackkit-Provider-Data": json.dumps({"openai_api_key": "sk-user"})}
        with LiveServer(config) as server, openai.OpenAI(base_url=server.base_url, api_key="none") as sdk:
            _check_keys(sdk, header)
        with LibraryClient(config) as library:
            _check_keys(library, header)


def _check_keys(client: Any, header: dict[str, str]) -> None:
    echo_upstream.SEEN_AUTH.clear()
    text, _ = streamed_text(client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}], stream=True, extra_headers=header))
    assert text == "Bearer sk-user"
    assert len(echo_upstream.SEEN_AUTH) >= 2 and set(echo_upstream.SEEN_AUTH) == {"Bearer sk-user"}


def test_a_blocked_answer_is_a_refusal(client: Any) -> None:
    """Chat streams carry the shield's message as the choice's refusal; Responses end the message with a
    refusal content part (streamed as response.refusal.* events), and no blocked text is ever shown."""
    from tests.integration.test_responses import as_sdk

    chunks = list(ask(client, "please leak it", "open", stream=True, extra_body={"guardrails": ["pii"]}))
    refusals = [c.choices[0].delta.refusal for c in chunks if c.choices and c.choices[0].delta.refusal]
    assert refusals and "personal data" in refusals[-1] and chunks[-1].choices[0].finish_reason == "content_filter"
    out = client.responses.create(model="open", input="please leak it", extra_body={"guardrails": ["pii"]})
    as_sdk(out)
    parts = out.output[-1].content
    assert parts[-1].type == "refusal" and "personal data" in parts[-1].refusal
    assert out.status == "incomplete" and out.incomplete_details.reason == "content_filter"
    events = [as_sdk(e) for e in client.responses.create(model="open", input="please leak it", stream=True,
                                                           extra_body={"guardrails": ["pii"]})]
    kinds = [e.type for e in events]
    assert "response.refusal.delta" in kinds and "response.refusal.done" in kinds
    assert kinds.index("response.refusal.done") < kinds.index("response.output_item.done")
    shown = "".join(getattr(e, "delta", "") for e in events if e.type == "response.output_text.delta")
    assert "bob" not in shown and "415" not in shown and kinds[-1] == "response.incomplete"
