"""One block of ordinary openai-SDK code, run unchanged against OpenAI(base_url=...) on a live server and
against LibraryClient; plus the async client, stream lifecycle and the background loop."""

from __future__ import annotations

import asyncio
import gc
import time
from pathlib import Path
from typing import Any

import openai
import pytest

from stackkit import AsyncLibraryClient, LibraryClient
from stackkit.apis.datatypes import Api
from stackkit.testing.live_server import LiveServer
from tests.conftest import fake_stack_config


def ordinary_sdk_code(client: Any) -> None:
    """Written for the openai SDK, with nothing stackkit-specific."""
    ids = [m.id for m in client.models.list()]
    assert "echo" in ids and "embedder" in ids

    made = [client.vector_stores.create(name=f"store-{i}") for i in range(3)]
    in_order = [s.id for s in sorted(made, key=lambda s: (s.created_at, s.id))]
    first = client.vector_stores.list(limit=2, order="asc")
    assert len(first.data) == 2 and first.has_next_page()
    assert [s.id for s in first.get_next_page().data] == in_order[2:]
    assert [s.id for s in client.vector_stores.list(limit=1, order="asc")] == in_order  # pages automatically

    uploaded = client.files.create(file=("notes.txt", b"cats purr when happy"), purpose="assistants",
                                   expires_after={"anchor": "created_at", "seconds": 7200})
    assert uploaded.expires_at == uploaded.created_at + 7200
    assert uploaded.id in [f.id for f in client.files.list()]
    content = client.files.content(uploaded.id)
    assert content.content == b"cats purr when happy" and content.text == "cats purr when happy"

    store = client.vector_stores.create(name="docs", file_ids=[uploaded.id])
    deadline = time.monotonic() + 10
    while client.vector_stores.retrieve(store.id).file_counts.completed < 1:
        assert time.monotonic() < deadline, "ingestion did not finish"
        time.sleep(0.05)
    assert [f.id for f in client.vector_stores.files.list(vector_store_id=store.id)] == [uploaded.id]
    results = client.vector_stores.search(store.id, query="cats")
    hits = list(results)
    assert hits and hits[0].file_id == uploaded.id and hits[0].content[0].text
    assert results.search_query == ["cats"]

    try:
        client.models.retrieve("no-such-model")
    except openai.NotFoundError as exc:
        assert exc.status_code == 404 and "no-such-model" in exc.message
    else:
        raise AssertionError("expected openai.NotFoundError")
    try:
        client.chat.completions.create(model="echo", messages=[])
    except openai.BadRequestError as exc:
        assert exc.status_code == 400 and exc.param == "messages"
    else:
        raise AssertionError("expected openai.BadRequestError")
    for hostile in ("files.db", "file-nope", "file-0000%2F..%2F..%2Fx"):
        try:
            client.files.retrieve(hostile)
        except openai.NotFoundError as exc:
            assert exc.status_code == 404
        else:
            raise AssertionError("expected openai.NotFoundError")


def test_the_same_sdk_code_over_http(tmp_path: Path) -> None:
    with LiveServer(fake_stack_config(tmp_path)) as server, \
            openai.OpenAI(base_url=server.base_url, api_key="none", max_retries=0, timeout=10) as sdk:
        ordinary_sdk_code(sdk)


def test_the_same_sdk_code_in_process(tmp_path: Path) -> None:
    with LibraryClient(fake_stack_config(tmp_path)) as client:
        ordinary_sdk_code(client)


async def test_async_client_pages_and_errors(tmp_path: Path) -> None:
    async with AsyncLibraryClient(fake_stack_config(tmp_path)) as client:
        assert "echo" in [m.id async for m in client.models.list()]
        page = await client.models.list()
        assert "echo" in [m.id for m in page.data]
        for i in range(3):
            await client.vector_stores.create(name=f"s{i}")
        assert len([s async for s in client.vector_stores.list(limit=1)]) == 3
        with pytest.raises(openai.NotFoundError):
            await client.models.retrieve("nope")


def test_an_unread_stream_is_cancelled_when_dropped_or_closed(tmp_path: Path) -> None:
    with LibraryClient(fake_stack_config(tmp_path, chunk_delay=0.05)) as client:
        fake = client.stack.providers[0].impl
        words = " ".join(["word"] * 200)
        stream = client.chat.completions.create(model="echo", messages=[{"role": "user", "content": words}],
                                                stream=True)
        next(stream)
        stream.close()
        dropped = client.chat.completions.create(model="echo", messages=[{"role": "user", "content": words}],
                                                 stream=True)
        next(dropped)
        del dropped
        gc.collect()
        deadline = time.monotonic() + 5
        while fake.cancelled < 2:
            assert time.monotonic() < deadline, f"streams still generating (cancelled={fake.cancelled})"
            time.sleep(0.02)


def test_ctrl_c_mid_stream_stops_it_cleanly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Ctrl-C while iterating a stream (a notebook's stop button, a terminal chat) raises KeyboardInterrupt
    there, cancels the generation, and leaves the stream closable and the client usable."""
    import _thread
    import threading

    with LibraryClient(fake_stack_config(tmp_path, chunk_delay=0.05)) as client:
        fake = client.stack.providers[0].impl
        stream = client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "w " * 200}],
                                                stream=True)
        threading.Timer(0.3, _thread.interrupt_main).start()
        seen = 0
        with pytest.raises(KeyboardInterrupt):
            for _ in stream:
                seen += 1
        stream.close()
        assert 0 < seen < 100 and fake.cancelled == 1
        again = client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "still ok"}])
        assert again.choices[0].message.content == "still ok"
    assert "already running" not in caplog.text and "error occurred" not in caplog.text


def test_background_work_runs_between_calls(tmp_path: Path) -> None:
    """Ingestion goes on while the caller does something else (the loop runs in its own thread)."""
    with LibraryClient(fake_stack_config(tmp_path)) as client:
        client.wait_ready(timeout=10)
        uploaded = client.files.create(file=("a.txt", b"alpha beta gamma"), purpose="assistants")
        store = client.vector_stores.create(name="bg", file_ids=[uploaded.id])
        time.sleep(1.0)  # no calls: a loop driven only by calls would not ingest now
        assert client.vector_stores.retrieve(store.id).file_counts.completed == 1


async def test_library_client_works_inside_a_running_loop(tmp_path: Path) -> None:
    with LibraryClient(fake_stack_config(tmp_path)) as client:
        out = client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "hi there"}])
        assert out.choices[0].message.content == "hi there"
        await asyncio.sleep(0)


async def test_localfs_rejects_ids_that_are_not_file_ids(tmp_path: Path) -> None:
    from stackkit.apis.files import FileIdRequest
    from stackkit.errors import NotFoundError
    from stackkit.providers.inline.localfs import LocalFSConfig, create

    (tmp_path / "secret").write_text("top secret")
    files = await create(LocalFSConfig(storage_dir=str(tmp_path / "files")), {})
    try:
        for hostile in ("../secret", "..", "files.db", "/etc/passwd", "file-" + "0" * 31 + "/"):
            with pytest.raises(NotFoundError):
                await files.file_content(FileIdRequest(file_id=hostile))
            with pytest.raises(NotFoundError):
                await files.delete_file(FileIdRequest(file_id=hostile))
        assert (tmp_path / "secret").exists() and (tmp_path / "files" / "files.db").exists()
    finally:
        await files.shutdown()


def test_files_expire(tmp_path: Path) -> None:
    with LibraryClient(fake_stack_config(tmp_path)) as client:
        kept = client.files.create(file=("a.txt", b"a"), purpose="assistants")
        doomed = client.files.create(file=("b.txt", b"b"), purpose="assistants",
                                     expires_after={"anchor": "created_at", "seconds": 3600})
        assert doomed.expires_at == doomed.created_at + 3600
        with pytest.raises(openai.BadRequestError):
            client.files.create(file=("c.txt", b"c"), purpose="assistants", expires_after={"seconds": 5})
        files = client.stack.impls[Api.files]
        from stackkit.providers.inline.localfs import FILES

        client._call(files.db.execute(FILES.update().where(FILES.c.id == doomed.id).values(expires_at=1)))
        assert [f.id for f in client.files.list()] == [kept.id]
        with pytest.raises(openai.NotFoundError):
            client.files.content(doomed.id)
        assert not (files.root / doomed.id).exists()
