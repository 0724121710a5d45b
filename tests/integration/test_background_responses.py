"""Background responses through LibraryClient and the openai SDK against a live server: they run on
after the caller's stream is dropped, can be polled, resumed from any sequence number, cancelled, and
survive a restart honestly (a run killed mid-way is `failed`, a finished one replays the same events)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from stackkit import LibraryClient
from stackkit.testing.live_server import LiveServer
from tests.conftest import fake_stack_config
from tests.integration.test_responses import as_sdk
from tests.processes import start_stackkit

LONG = " ".join(f"word{i}" for i in range(60))  # 60 chunks of 0.05 s: three seconds of streaming


@pytest.fixture(params=["library", "http"])
def slow(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    config = fake_stack_config(tmp_path, chunk_delay=0.05)
    if request.param == "library":
        with LibraryClient(config) as library:
            yield library
        return
    with LiveServer(config) as server, openai.OpenAI(base_url=server.base_url, api_key="none", max_retries=0,
                                                     timeout=20) as sdk:
        yield sdk


def wait_status(client: Any, response_id: str, statuses: tuple[str, ...], timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = client.responses.retrieve(response_id)
        if got.status in statuses:
            return got
        time.sleep(0.05)
    raise AssertionError(f"{response_id} never reached {statuses}; last {got.status}")


def test_background_runs_and_is_polled(slow: Any) -> None:
    made = slow.responses.create(model="echo", input="one two three", background=True)
    as_sdk(made)
    assert made.status == "queued" and made.background is True and made.output == []
    done = wait_status(slow, made.id, ("completed",))
    as_sdk(done)
    assert done.output[0].content[0].text == "one two three" and done.background is True


def test_a_dropped_stream_resumes_where_it_stopped(slow: Any) -> None:
    stream = slow.responses.create(model="echo", input=LONG, background=True, stream=True)
    seen = []
    for event in stream:
        seen.append(as_sdk(event))
        if len(seen) == 8:
            break
    stream.close()  # the caller goes away; the run does not
    response_id = seen[0].response.id
    assert [e.type for e in seen[:3]] == ["response.created", "response.queued", "response.in_progress"]
    last = seen[-1].sequence_number
    rest = [as_sdk(e) for e in slow.responses.retrieve(response_id, stream=True, starting_after=last)]
    events = seen + rest
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[-1].type == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == LONG
    again = [as_sdk(e) for e in slow.responses.retrieve(response_id, stream=True, starting_after=5)]
    assert [e.model_dump() for e in again] == [e.model_dump() for e in events[6:]]  # replayed from the log


def test_cancel_stops_the_run(slow: Any) -> None:
    made = slow.responses.create(model="echo", input=LONG, background=True)
    wait_status(slow, made.id, ("in_progress",))
    time.sleep(0.3)
    cancelled = slow.responses.cancel(made.id)
    as_sdk(cancelled)
    assert cancelled.status == "cancelled"
    time.sleep(0.3)
    kept = slow.responses.retrieve(made.id)
    assert kept.status == "cancelled"
    text = kept.output[0].content[0].text if kept.output else ""
    assert len(text) < len(LONG)  # it stopped: the rest was never generated
    assert slow.responses.cancel(made.id).status == "cancelled"  # again: nothing changes
    events = list(slow.responses.retrieve(made.id, stream=True))
    assert events and all(e.type not in ("response.completed", "response.failed") for e in events)


def test_bad_background_requests_are_400s(slow: Any) -> None:
    plain = slow.responses.create(model="echo", input="not background")
    for call in (lambda: slow.responses.cancel(plain.id),
                 lambda: list(slow.responses.retrieve(plain.id, stream=True)),
                 lambda: slow.responses.create(model="echo", input="x", background=True, store=False),
                 lambda: slow.responses.retrieve(plain.id, starting_after=2)):
        with pytest.raises(openai.BadRequestError):
            call()
    with pytest.raises(openai.NotFoundError):
        slow.responses.cancel("resp_nope")


def test_restart_fails_the_interrupted_and_replays_the_finished(tmp_path: Path) -> None:
    config = fake_stack_config(tmp_path, chunk_delay=0.05).model_dump(mode="json", exclude_defaults=True)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    proc, base = start_stackkit(path)
    try:
        with openai.OpenAI(base_url=base, api_key="none", max_retries=0, timeout=20) as sdk:
            finished = sdk.responses.create(model="echo", input="short one", background=True)
            wait_status(sdk, finished.id, ("completed",))
            before = [e.model_dump() for e in sdk.responses.retrieve(finished.id, stream=True)]
            running = sdk.responses.create(model="echo", input=LONG, background=True)
            wait_status(sdk, running.id, ("in_progress",))
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    proc, base = start_stackkit(path)
    try:
        with openai.OpenAI(base_url=base, api_key="none", max_retries=0, timeout=20) as sdk:
            assert [e.model_dump() for e in sdk.responses.retrieve(finished.id, stream=True)] == before
            failed = sdk.responses.retrieve(running.id)
            assert failed.status == "failed" and failed.error is not None and "stopped" in failed.error.message
            events = list(sdk.responses.retrieve(running.id, stream=True))
            assert [e.type for e in events] == ["response.failed"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)


def test_a_stored_response_can_be_read_while_it_streams(slow: Any) -> None:
    stream = slow.responses.create(model="echo", input=LONG, stream=True)
    events = []
    for event in stream:
        events.append(event)
        if event.type == "response.output_text.delta" and len(events) > 10:
            break
    response_id = events[0].response.id
    during = slow.responses.retrieve(response_id)
    assert during.status == "in_progress" and during.background is False
    rest = list(stream)  # the stream goes on; reading it mid-way changed nothing
    assert rest[-1].type == "response.completed"
    assert slow.responses.retrieve(response_id).output[0].content[0].text == LONG


def test_metadata_has_openais_limits(slow: Any) -> None:
    for metadata in ({"k" * 65: "v"}, {"k": "v" * 513}, {f"k{i}": "v" for i in range(17)}):
        with pytest.raises(openai.BadRequestError) as err:
            slow.responses.create(model="echo", input="x", metadata=metadata)
        assert (err.value.param or "").startswith("metadata")
