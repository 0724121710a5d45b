"""Two `stackkit run` replicas (real subprocesses) on one real PostgreSQL and one real Redis, through the
openai SDK: a model registered, a file uploaded (on a shared directory), a response, a conversation, a
stored completion and a pgvector vector store made through one are usable through the other at once,
deletes are seen too, each team's resources stay its own across replicas, and one quota of N requests/min
holds for both together.
The registry runs on PostgreSQL and, in the second case, on Redis."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.processes import ROOT, start_stackkit

KEYS = {"alice": "sk-alice-0123456789abcdef", "bob": "sk-bob-0123456789abcdef00"}
TEAMS = {"alice": "red", "bob": "blue"}
QUOTA = 40  # requests per minute per principal, for both replicas together


def _config(path: Path, postgres_url: str, redis_url: str, registry: str) -> Path:
    keys = ", ".join(f"{{principal: {p}, key: {k}, attributes: {{team: {TEAMS[p]}}}}}" for p, k in KEYS.items())
    path.write_text(textwrap.dedent(f"""
        version: 2
        distro_name: replicas
        providers:
          inference: [{{provider_id: fake, provider_type: inline::fake}}]
          files:
            - {{provider_id: disk, provider_type: inline::localfs,
                config: {{storage_dir: "{path.parent}/shared-files", metadata_url: "{postgres_url}"}}}}
          vector_io:
            - {{provider_id: pg, provider_type: remote::pgvector, config: {{url: "{postgres_url}",
                embedding_model: embedder}}}}
        registered_resources:
          models: [{{model_id: echo, provider_id: fake, provider_model_id: fake-llm}},
                   {{model_id: embedder, provider_id: fake, provider_model_id: fake-embed, model_type: embedding}}]
        storage:
          backends:
            pg: {{type: postgres, url: "{postgres_url}"}}
            cache: {{type: redis, url: "{redis_url}"}}
          stores: {{registry: {registry}, sql: pg}}
        server: {{auth: {{api_keys: [{keys}], stored_keys: true}}}}
        quotas: {{redis_url: "{redis_url}", rules: [{{requests_per_minute: {QUOTA}}}]}}
        """))
    return path


@pytest.fixture(params=["pg", "cache"], ids=["registry-on-postgres", "registry-on-redis"])
def replicas(request: pytest.FixtureRequest, tmp_path: Path, postgres_url: str,
             redis_url: str) -> Iterator[tuple[str, str]]:
    config = _config(tmp_path / "run.yaml", postgres_url, redis_url, request.param)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        bases = []
        for _ in range(2):
            proc, base = start_stackkit(config, timeout_s=30)
            procs.append(proc)
            bases.append(base)
        yield bases[0], bases[1]
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(15)


def _sdk(base: str, who: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base, api_key=KEYS[who], max_retries=0)


def _chat(sdk: Any, model: str = "echo", **kw: Any) -> Any:
    return sdk.chat.completions.create(model=model, messages=[{"role": "user", "content": "hello there"}], **kw)


def test_what_one_replica_makes_the_other_serves_at_once(replicas: tuple[str, str]) -> None:
    one, two = _sdk(replicas[0], "alice"), _sdk(replicas[1], "alice")
    bob_two = _sdk(replicas[1], "bob")

    registered = httpx.post(f"{replicas[0]}/models", headers={"Authorization": f"Bearer {KEYS['alice']}"},
                            json={"model_id": "runtime-echo", "provider_id": "fake", "provider_model_id": "fake-llm"})
    assert registered.status_code == 200, registered.text
    assert _chat(two, "runtime-echo").choices[0].message.content == "hello there"
    assert "runtime-echo" in {m.id for m in two.models.list()}

    upload = one.files.create(file=("notes.txt", b"the shared word is heliotrope"), purpose="assistants")
    assert two.files.retrieve(upload.id).filename == "notes.txt"
    assert two.files.content(upload.id).read() == b"the shared word is heliotrope"
    assert upload.id in {f.id for f in two.files.list()}

    first = one.responses.create(model="echo", input="remember me")
    assert two.responses.retrieve(first.id).output_text == first.output_text
    follow = two.responses.create(model="echo", input="and again", previous_response_id=first.id)
    assert follow.previous_response_id == first.id and follow.output_text == "and again"

    conversation = one.conversations.create(metadata={"topic": "replicas"})
    two.conversations.items.create(conversation.id, items=[{"type": "message", "role": "user", "content": "hi"}])
    one.responses.create(model="echo", input="from one", conversation=conversation.id)
    items: Any = two.conversations.items.list(conversation.id, order="asc").data
    texts = [i.content[0].text for i in items]
    assert texts == ["hi", "from one", "from one"]  # the user turn, then the echo

    stored = _chat(one, store=True, metadata={"run": "replicas"})
    assert two.chat.completions.retrieve(stored.id).id == stored.id

    store = one.vector_stores.create(name="shared", file_ids=[upload.id])
    _wait_ingested(two, store.id)
    found = two.vector_stores.search(store.id, query="heliotrope", extra_body={"search_mode": "keyword"})
    assert [r.file_id for r in found.data] == [upload.id]
    later = two.files.create(file=("later.txt", b"a note about tangerines"), purpose="assistants")
    two.vector_stores.files.create(store.id, file_id=later.id)
    _wait_ingested(one, store.id)
    found = one.vector_stores.search(store.id, query="a note about tangerines", extra_body={"search_mode": "vector"})
    assert found.data[0].file_id == later.id and found.data[0].score == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(openai.NotFoundError):
        bob_two.vector_stores.search(store.id, query="heliotrope")

    for missing in (lambda: bob_two.files.retrieve(upload.id), lambda: bob_two.responses.retrieve(first.id),
                    lambda: bob_two.conversations.retrieve(conversation.id)):
        with pytest.raises(openai.NotFoundError):  # another team's, on the replica that did not make it
            missing()

    two.vector_stores.delete(store.id)
    with pytest.raises(openai.NotFoundError):
        one.vector_stores.retrieve(store.id)
    two.files.delete(upload.id)
    with pytest.raises(openai.NotFoundError):
        one.files.retrieve(upload.id)
    two.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        one.responses.retrieve(first.id)
    assert httpx.delete(f"{replicas[1]}/models/runtime-echo",
                        headers={"Authorization": f"Bearer {KEYS['alice']}"}).status_code == 200
    with pytest.raises(openai.NotFoundError):
        _chat(one, "runtime-echo")


def test_a_key_made_with_the_cli_works_on_every_replica(replicas: tuple[str, str], tmp_path: Path) -> None:
    made = subprocess.run([sys.executable, "-m", "stackkit.cli.main", "keys", "create", str(tmp_path / "run.yaml"),
                           "--principal", "carol", "--attribute", "team=red"], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert made.returncode == 0, made.stderr
    key = made.stdout.splitlines()[-1]
    for base in replicas:
        with openai.OpenAI(base_url=base, api_key=key, max_retries=0) as carol:
            assert _chat(carol).choices[0].message.content == "hello there"
    response = _sdk(replicas[0], "alice").responses.create(model="echo", input="team red")
    with openai.OpenAI(base_url=replicas[1], api_key=key, max_retries=0) as carol:
        assert carol.responses.retrieve(response.id).id == response.id  # carol is on alice's team


def _wait_ingested(sdk: openai.OpenAI, store_id: str) -> None:
    deadline = time.monotonic() + 30
    while sdk.vector_stores.retrieve(store_id).file_counts.in_progress:
        assert time.monotonic() < deadline, "ingestion did not finish"
        time.sleep(0.05)


def test_one_quota_holds_across_both_replicas(replicas: tuple[str, str]) -> None:
    sdks = [_sdk(replicas[0], "bob"), _sdk(replicas[1], "bob")]
    answered = refused = 0
    for i in range(QUOTA + 10):
        try:
            _chat(sdks[i % 2])
            answered += 1
        except openai.RateLimitError:
            refused += 1
    assert (answered, refused) == (QUOTA, 10)


def test_replicas_started_together_on_an_empty_database_all_come_up(tmp_path: Path, postgres_url: str,
                                                                    redis_url: str) -> None:
    """Each creates the tables that do not exist yet: at the same moment, on a fresh database."""
    import concurrent.futures

    config = _config(tmp_path / "run.yaml", postgres_url, redis_url, "pg")
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(start_stackkit, config, 60) for _ in range(4)]
        concurrent.futures.wait(futures)
    started = [f.result() for f in futures if f.exception() is None]
    try:
        assert len(started) == 4, [str(f.exception()) for f in futures if f.exception() is not None]
        for _, base in started:
            assert _chat(_sdk(base, "alice")).choices[0].message.content == "hello there"
    finally:
        for proc, _ in started:
            proc.terminate()
            proc.wait(15)
