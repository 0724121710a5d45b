"""Stored chat completions (OpenAI's API) through LibraryClient and through a live server with the openai
SDK: store: true keeps a completion (streamed ones too), list filters and pages, messages, metadata
updates, delete, bad input, not-stored by default; and under load against a real `stackkit run`: 64
concurrent clients, every completion answered 200 is listed afterwards, also when the server is sent
SIGTERM mid-load."""

from __future__ import annotations

import signal
import sqlite3
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from stackkit import LibraryClient
from tests.conftest import fake_stack_config
from tests.processes import start_stackkit


def _ask(client: Any, text: str, **kw: Any) -> Any:
    return client.chat.completions.create(model="echo", messages=[{"role": "user", "content": text}], **kw)


def test_store_retrieve_update_delete(client: Any) -> None:
    made = client.chat.completions.create(model="echo", store=True, metadata={"team": "red"}, messages=[
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "two "}, {"type": "text", "text": "parts"}]}])
    got = client.chat.completions.retrieve(made.id)
    assert got.id == made.id and got.choices[0].message.content == made.choices[0].message.content
    assert got.model == "echo" and got.usage.total_tokens == made.usage.total_tokens
    assert got.metadata == {"team": "red"}
    messages = list(client.chat.completions.messages.list(made.id))
    assert [m.role for m in messages] == ["system", "user"]
    assert messages[0].content == "be brief" and messages[1].content == "two parts"
    assert [p["text"] if isinstance(p, dict) else p.text for p in messages[1].content_parts] == ["two ", "parts"]
    assert len({m.id for m in messages}) == 2
    assert client.chat.completions.update(made.id, metadata={"team": "blue"}).metadata == {"team": "blue"}
    assert client.chat.completions.retrieve(made.id).metadata == {"team": "blue"}
    assert client.chat.completions.delete(made.id).deleted is True
    with pytest.raises(openai.NotFoundError, match="store: true"):
        client.chat.completions.retrieve(made.id)


def test_only_stored_when_asked_and_streams_are_stored_whole(client: Any) -> None:
    plain = _ask(client, "not kept")
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.retrieve(plain.id)
    _ask(client, "not kept either", store=False)
    chunks = list(_ask(client, "one two three", store=True, stream=True, stream_options={"include_usage": True}))
    ids = {c.id for c in chunks}
    assert len(ids) == 1  # every chunk carries the stored completion's id
    got = client.chat.completions.retrieve(ids.pop())
    assert got.choices[0].message.content == "one two three" and got.choices[0].finish_reason == "stop"
    assert got.usage is not None and got.usage.completion_tokens == 3
    assert [c.id for c in client.chat.completions.list()] == [got.id]


def test_list_filters_and_pages(client: Any) -> None:
    made = [_ask(client, f"q{i}", store=True, metadata={"batch": "even" if i % 2 == 0 else "odd"}) for i in range(7)]
    ids = [m.id for m in made]
    first = client.chat.completions.list(limit=3)
    assert [c.id for c in first.data] == ids[:3] and first.has_more
    assert [c.id for c in client.chat.completions.list(limit=3, after=ids[2]).data] == ids[3:6]
    assert [c.id for c in client.chat.completions.list()] == ids  # the SDK's pages, fetched as needed
    assert [c.id for c in client.chat.completions.list(order="desc", limit=2).data] == ids[::-1][:2]
    assert [c.id for c in client.chat.completions.list(metadata={"batch": "odd"})] == ids[1::2]
    assert [c.id for c in client.chat.completions.list(model="echo", limit=100).data] == ids
    assert list(client.chat.completions.list(model="someone-else")) == []


@pytest.mark.parametrize(("kw", "says"), [
    ({"store": True, "metadata": {f"k{i}": "v" for i in range(17)}}, "at most 16"),
    ({"store": True, "metadata": {"k": "v" * 513}}, "at most 512"),
    ({"store": "sometimes"}, "store"),
])
def test_bad_store_options_are_400s_that_say_how_to_fix_them(client: Any, kw: dict[str, Any], says: str) -> None:
    with pytest.raises(openai.BadRequestError, match=says):
        _ask(client, "x", **kw)
    assert list(client.chat.completions.list()) == []


def test_stored_completions_survive_a_restart(tmp_path: Path) -> None:
    config = fake_stack_config(tmp_path)
    with LibraryClient(config) as client:
        made = _ask(client, "remember me", store=True)
    with LibraryClient(config) as client:
        assert client.chat.completions.retrieve(made.id).choices[0].message.content == "remember me"


def _load(base: str, clients: int, seconds: float, answered: list[str], failures: list[str]) -> None:
    """`clients` threads, each asking to store completions until `seconds` pass or the server goes away."""
    stop_at = time.monotonic() + seconds

    def run(n: int) -> None:
        with httpx.Client(base_url=base, timeout=30) as http:
            i = 0
            while time.monotonic() < stop_at:
                i += 1
                body = {"model": "echo", "store": True, "stream": i % 3 == 0,
                        "messages": [{"role": "user", "content": f"client {n} request {i}"}]}
                try:
                    reply = http.post("/chat/completions", json=body)
                except httpx.TransportError:
                    return  # the server went away: nothing was answered
                if reply.status_code != 200:
                    failures.append(reply.text)
                    return
                if body["stream"]:
                    if "data: [DONE]" not in reply.text:
                        return  # cut off mid-stream by the shutdown: not answered
                    answered.append(reply.text.split('"id":"', 1)[1].split('"', 1)[0])
                else:
                    answered.append(reply.json()["id"])

    threads = [threading.Thread(target=run, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(textwrap.dedent(f"""
        providers:
          inference: [{{provider_id: fake, provider_type: inline::fake}}]
        registered_resources:
          models: [{{model_id: echo, provider_id: fake, provider_model_id: fake-llm}}]
        storage: {{backends: {{kv: {{type: sqlite, db_path: "{tmp_path}/kv.db"}}}}, stores: {{registry: kv}}}}
        server: {{access_log: false}}
        """))
    return path


def _all_listed(base: str) -> set[str]:
    listed: set[str] = set()
    with openai.OpenAI(base_url=base, api_key="none", max_retries=0) as sdk:
        for completion in sdk.chat.completions.list(limit=100):
            listed.add(completion.id)
    return listed


def test_under_load_every_answered_completion_is_listed(tmp_path: Path) -> None:
    proc, base = start_stackkit(_config(tmp_path))
    try:
        answered: list[str] = []
        failures: list[str] = []
        _load(base, clients=64, seconds=4, answered=answered, failures=failures)
        assert failures == [] and len(answered) > 500
        assert set(answered) <= _all_listed(base)
    finally:
        proc.kill()
        proc.wait(10)


def test_sigterm_mid_load_loses_nothing_that_was_answered(tmp_path: Path) -> None:
    config = _config(tmp_path)
    proc, base = start_stackkit(config)
    answered: list[str] = []
    failures: list[str] = []
    loader = threading.Thread(target=_load, args=(base, 64, 30, answered, failures))
    loader.start()
    try:
        deadline = time.monotonic() + 20
        while len(answered) < 300 and time.monotonic() < deadline:
            time.sleep(0.01)
        # Another process locks the database (a backup, say): the writer cannot commit, so answered rows
        # pile up in the queue. SIGTERM comes, and the server has stopped serving, while the lock is still
        # held: only a shutdown that flushes the queue keeps those rows.
        locker = sqlite3.connect(tmp_path / "completions.db", isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        held_from = len(answered)
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        time.sleep(2.0)
        queued = len(answered) - held_from
        locker.execute("ROLLBACK")
        locker.close()
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        loader.join(60)
    assert len(answered) >= 300 and queued > 50  # rows were answered while only the queue held them
    restarted, base = start_stackkit(config)
    try:
        missing = set(answered) - _all_listed(base)
        assert not missing, f"{len(missing)} of {len(answered)} answered completions were not stored"
    finally:
        restarted.kill()
        restarted.wait(10)
