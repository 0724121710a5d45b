"""Files and vector stores on every backend (faiss, sqlite-vec, a real Chroma server), through the
openai SDK against a live server and through LibraryClient. Embeddings come from the fake provider
(hash vectors: exact text finds itself) so the mechanics are tested fast; MiniLM recall is benchmarked."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stackkit.core.config import RunConfig, parse_config
from stackkit.testing.live_server import LiveServer
from tests.chroma_server import ChromaServer
from tests.processes import start_stackkit

BACKENDS = ["faiss", "faiss-tantivy", "sqlite-vec", "chroma", "pgvector"]
KEYWORD = {"search_mode": "keyword"}
DOCS = {
    "cats.md": b"# Cats\n\nCats purr when they are happy. Kittens sleep most of the day.",
    "tax.txt": b"The quarterly tax filing deadline is in April. Late filing brings penalties.",
    "page.html": b"<html><head><style>p{}</style></head><body><h1>Rockets</h1><p>Rockets reach orbit "
                 b"with staging.</p><script>alert(1)</script></body></html>",
    "data.json": json.dumps({"planet": "Mars", "moons": ["Phobos", "Deimos"]}).encode(),
}


@pytest.fixture(scope="session")
def chroma(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with ChromaServer(tmp_path_factory.mktemp("chroma")) as server:
        yield server.url


def server_url(backend: str, request: pytest.FixtureRequest) -> str:
    """The real server a backend needs: a Chroma server, or a new PostgreSQL database with pgvector."""
    fixture = {"chroma": "chroma", "pgvector": "postgres_url"}.get(backend)
    return str(request.getfixturevalue(fixture)) if fixture else ""


def vector_config(backend: str, root: Path, url: str, embed_delay: float = 0.0) -> RunConfig:
    common = "embedding_model: embed, max_concurrent_ingestions: 2"
    vector = {
        "faiss": f"provider_type: inline::faiss\n      config: {{storage_dir: '{root}/faiss', {common}}}",
        "faiss-tantivy": f"provider_type: inline::faiss\n      config: {{storage_dir: '{root}/faiss', {common}, "
                         "keyword_index: tantivy}",
        "sqlite-vec": f"provider_type: inline::sqlite-vec\n      config: {{db_path: '{root}/vec.db', {common}}}",
        "chroma": f"provider_type: remote::chroma\n      config: {{url: '{url}', storage_dir: "
                  f"'{root}/chroma', {common}}}",
        "pgvector": f"provider_type: remote::pgvector\n      config: {{url: '{url}', {common}}}",
    }[backend]
    text = f"""
providers:
  inference:
    - {{provider_id: fake, provider_type: inline::fake, config: {{response_delay_s: {embed_delay}}}}}
  files:
    - provider_id: fs
      provider_type: inline::localfs
      config: {{storage_dir: '{root}/files', max_file_bytes: 100000}}
  vector_io:
    - provider_id: vec
      {vector}
registered_resources:
  models: [{{model_id: embed, provider_id: fake, provider_model_id: fake-embed, model_type: embedding}}]
storage: {{backends: {{kv: {{type: sqlite, db_path: '{root}/kv.db'}}}}, stores: {{registry: kv}}}}
"""
    return parse_config(text, env={})


def wait_done(client: Any, store_id: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        store = client.vector_stores.retrieve(store_id)
        if store.file_counts.in_progress == 0:
            return store
        time.sleep(0.05)
    raise TimeoutError("ingestion did not finish")


@pytest.fixture(params=[(b, t) for b in BACKENDS for t in ("http", "library")], ids=lambda p: f"{p[0]}-{p[1]}")
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    backend, transport = request.param
    url = server_url(backend, request)
    config = vector_config(backend, tmp_path, url)
    if transport == "library":
        from stackkit import LibraryClient

        with LibraryClient(config) as library:
            yield library
        return
    import openai

    with LiveServer(config) as server, openai.OpenAI(base_url=server.base_url, api_key="none",
                                                     max_retries=0) as sdk:
        yield sdk


def upload(client: Any, name: str, content: bytes) -> Any:
    return client.files.create(file=(name, content), purpose="assistants")


def test_files_api(client: Any) -> None:
    f = upload(client, "cats.md", DOCS["cats.md"])
    assert (f.filename, f.bytes, f.purpose, f.object) == ("cats.md", len(DOCS["cats.md"]), "assistants", "file")
    assert client.files.retrieve(f.id).filename == "cats.md"
    content = client.files.content(f.id)
    if hasattr(content, "response"):  # the openai SDK's binary response
        content.response.close()
    assert content.content == DOCS["cats.md"] and content.text == DOCS["cats.md"].decode()
    assert f.id in [x.id for x in client.files.list().data]
    assert client.files.delete(f.id).deleted is True
    with pytest.raises(Exception, match="not found"):
        client.files.retrieve(f.id)
    with pytest.raises(Exception, match="over this server's limit of 100000 bytes"):
        upload(client, "big.txt", b"x" * 100_001)


def test_store_ingestion_search_and_lifecycle(client: Any) -> None:
    ids = {name: upload(client, name, body).id for name, body in DOCS.items()}
    bad = upload(client, "broken.pdf", b"%PDF-1.7 this is not really a pdf")
    store = client.vector_stores.create(name="docs", metadata={"team": "a"},
                                        file_ids=[ids["cats.md"], ids["tax.txt"]])
    client.vector_stores.files.create(store.id, file_id=ids["page.html"], attributes={"kind": "web", "year": 2024})
    client.vector_stores.files.create(store.id, file_id=ids["data.json"], attributes={"kind": "data", "year": 2021})
    failed = client.vector_stores.files.create(store.id, file_id=bad.id)
    store = wait_done(client, store.id)
    assert (store.file_counts.completed, store.file_counts.failed, store.file_counts.total) == (4, 1, 5)
    failed = client.vector_stores.files.retrieve(bad.id, vector_store_id=store.id)
    assert failed.status == "failed" and failed.last_error.code == "invalid_file"
    # each mode finds the exact chunk; keyword and hybrid rank by words
    chunk = "# Cats\n\nCats purr when they are happy. Kittens sleep most of the day."
    for mode in ("vector", "keyword", "hybrid"):
        found = client.vector_stores.search(store.id, query=chunk, max_num_results=2,
                                            extra_body={"search_mode": mode})
        assert found.data[0].filename == "cats.md", mode
    found = client.vector_stores.search(store.id, query="quarterly tax deadline penalties", extra_body=KEYWORD)
    assert found.data[0].filename == "tax.txt"
    html = client.vector_stores.files.content(ids["page.html"], vector_store_id=store.id)
    assert html.data[0].text == "Rockets\nRockets reach orbit with staging."
    # attribute filters
    web = client.vector_stores.search(store.id, query="orbit Mars", extra_body=KEYWORD,
                                      filters={"type": "eq", "key": "kind", "value": "web"})
    assert [r.filename for r in web.data] == ["page.html"]
    recent = client.vector_stores.search(store.id, query="orbit Mars Phobos", extra_body=KEYWORD, filters={
        "type": "and", "filters": [{"type": "gte", "key": "year", "value": 2020},
                                   {"type": "nin", "key": "kind", "value": ["web"]}]})
    assert [r.filename for r in recent.data] == ["data.json"]
    # update, file attributes, delete
    assert client.vector_stores.update(store.id, name="renamed").name == "renamed"
    client.vector_stores.files.update(ids["data.json"], vector_store_id=store.id, attributes={"kind": "web"})
    web = client.vector_stores.search(store.id, query="Mars", extra_body=KEYWORD,
                                      filters={"type": "eq", "key": "kind", "value": "web"})
    assert [r.filename for r in web.data] == ["data.json"]
    client.vector_stores.files.delete(ids["tax.txt"], vector_store_id=store.id)
    gone = client.vector_stores.search(store.id, query="quarterly tax deadline penalties", extra_body=KEYWORD)
    assert "tax.txt" not in [r.filename for r in gone.data]
    assert store.id in [s.id for s in client.vector_stores.list().data]
    assert client.vector_stores.delete(store.id).deleted is True
    with pytest.raises(Exception, match="not found"):
        client.vector_stores.retrieve(store.id)


def test_file_batches(client: Any) -> None:
    ids = [upload(client, f"note{i}.txt", f"note number {i} about topic{i}".encode()).id for i in range(6)]
    store = client.vector_stores.create(name="batch")
    batch = client.vector_stores.file_batches.create(store.id, file_ids=ids, attributes={"src": "batch"})
    assert batch.file_counts.total == 6
    wait_done(client, store.id)
    batch = client.vector_stores.file_batches.retrieve(batch.id, vector_store_id=store.id)
    assert batch.status == "completed" and batch.file_counts.completed == 6
    listed = client.vector_stores.file_batches.list_files(batch.id, vector_store_id=store.id)
    assert sorted(f.id for f in listed.data) == sorted(ids)
    hit = client.vector_stores.search(store.id, query="topic4", extra_body=KEYWORD)
    assert hit.data[0].attributes["src"] == "batch" and hit.data[0].file_id == ids[4]


def test_unknown_file_and_bad_chunking(client: Any) -> None:
    store = client.vector_stores.create(name="x")
    with pytest.raises(Exception, match="File 'file-nope' not found"):
        client.vector_stores.files.create(store.id, file_id="file-nope")
    f = upload(client, "a.txt", b"hello")
    with pytest.raises(Exception, match="chunk_overlap_tokens"):
        client.vector_stores.files.create(store.id, file_id=f.id, chunking_strategy={
            "type": "static", "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 150}})


# ---- durability ------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_search_survives_restart(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    import openai

    url = server_url(backend, request)
    config = vector_config(backend, tmp_path, url)
    query: dict[str, Any] = {"query": "quarterly tax deadline", "extra_body": {"search_mode": "hybrid"}}
    with LiveServer(config) as server, openai.OpenAI(base_url=server.base_url, api_key="none") as sdk:
        ids = [upload(sdk, name, body).id for name, body in DOCS.items()]
        store = sdk.vector_stores.create(name="kept", file_ids=ids)
        wait_done(sdk, store.id)
        before = [(r.file_id, round(r.score, 6)) for r in sdk.vector_stores.search(store.id, **query).data]
    with LiveServer(config) as server, openai.OpenAI(base_url=server.base_url, api_key="none") as sdk:
        after = [(r.file_id, round(r.score, 6)) for r in sdk.vector_stores.search(store.id, **query).data]
        assert sdk.vector_stores.retrieve(store.id).file_counts.completed == 4
    assert after == before and before


@pytest.mark.parametrize("backend", ["faiss", "faiss-tantivy", "sqlite-vec", "pgvector"])
def test_kill_during_batch_ingestion_loses_nothing(backend: str, tmp_path: Path, request: pytest.FixtureRequest
                                                   ) -> None:
    """kill -9 the server mid-batch, restart: every `completed` file is fully searchable, and files
    completed before the batch are intact; interrupted files are ingested again."""
    import os
    import signal

    import openai

    config_path = tmp_path / "run.yaml"
    text = vector_config(backend, tmp_path, server_url(backend, request), embed_delay=0.05).model_dump(
        mode="json", exclude_defaults=True)
    import yaml

    config_path.write_text(yaml.safe_dump(text))

    proc, base = start_stackkit(config_path)
    try:
        sdk = openai.OpenAI(base_url=base, api_key="none", max_retries=0)
        first = upload(sdk, "first.txt", b"alpha bravo charlie first document")
        store = sdk.vector_stores.create(name="crash", file_ids=[first.id])
        wait_done(sdk, store.id)
        words = [f"token{i}x" for i in range(40)]
        ids = [upload(sdk, f"f{i}.txt", " ".join([words[i]] * 300).encode()).id for i in range(40)]
        sdk.vector_stores.file_batches.create(store.id, file_ids=ids)
        time.sleep(0.6)
        counts = sdk.vector_stores.retrieve(store.id).file_counts
        assert 0 < counts.in_progress, "the batch finished before the kill; slow the embeddings down"
        sdk.close()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    proc, base = start_stackkit(config_path)
    try:
        with openai.OpenAI(base_url=base, api_key="none", max_retries=0) as sdk:
            files = {f.id: f.status for f in sdk.vector_stores.files.list(store.id, limit=100).data}
            for file_id, status in files.items():  # right after the restart: completed means searchable
                if status == "completed" and file_id in ids:
                    word = words[ids.index(file_id)]
                    hit = sdk.vector_stores.search(store.id, query=word, extra_body=KEYWORD)
                    assert hit.data and hit.data[0].file_id == file_id
                if status == "completed":  # and its vectors: each chunk's own text finds it, scoring 1.0
                    for part in sdk.vector_stores.files.content(file_id, vector_store_id=store.id).data:
                        hit = sdk.vector_stores.search(store.id, query=part.text or "",
                                                       extra_body={"search_mode": "vector"})
                        assert hit.data[0].file_id == file_id and hit.data[0].score == pytest.approx(1.0, abs=1e-5)
            assert files[first.id] == "completed"
            wait_done(sdk, store.id, timeout=60)  # the interrupted files are ingested again
            final = sdk.vector_stores.retrieve(store.id).file_counts
            failed = sdk.vector_stores.files.list(store.id, limit=100, filter="failed").data
            errors = [f.last_error for f in failed]
            assert final.completed == 41 and final.failed == 0, errors
            hit = sdk.vector_stores.search(store.id, query="alpha bravo", extra_body=KEYWORD)
            assert hit.data[0].file_id == first.id
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
