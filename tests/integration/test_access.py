"""Per-resource access control, through the openai SDK against a live server with API keys and through
LibraryClient principals: a user cannot read, list, search, use or delete another team's vector store, file,
response, conversation or stored completion, and the 404 they get is the one a resource that does not exist
gets; a teammate can; policies (forbid deletes by non-owners, an admin who sees everything) decide first;
list pages stay full."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import openai
import pytest

from stackkit import LibraryClient, Principal
from stackkit.core.config import RunConfig, parse_config
from stackkit.testing.live_server import LiveServer

KEYS = {"alice": "sk-alice-0123456789abcdef", "bob": "sk-bob-0123456789abcdef00", "carol": "sk-carol-0123456789abcdef",
        "admin": "sk-admin-0123456789abcdef"}
TEAMS = {"alice": "red", "bob": "blue", "carol": "red", "admin": "ops"}


def _config(tmp_path: Path, policy: str = "") -> RunConfig:
    keys = ", ".join(f"{{principal: {p}, key: {k}, attributes: {{team: {TEAMS[p]}}}}}" for p, k in KEYS.items())
    return parse_config(textwrap.dedent(f"""
        providers:
          inference: [{{provider_id: fake, provider_type: inline::fake}}]
          vector_io:
            - {{provider_id: faiss, provider_type: inline::faiss,
                config: {{storage_dir: "{tmp_path}/faiss", embedding_model: embedder}}}}
          files: [{{provider_id: disk, provider_type: inline::localfs, config: {{storage_dir: "{tmp_path}/files"}}}}]
        registered_resources:
          models:
            - {{model_id: echo, provider_id: fake, provider_model_id: fake-llm}}
            - {{model_id: embedder, provider_id: fake, provider_model_id: fake-embed, model_type: embedding}}
        storage: {{backends: {{kv: {{type: sqlite, db_path: "{tmp_path}/kv.db"}}}}, stores: {{registry: kv}}}}
        server: {{auth: {{api_keys: [{keys}]}}}}
        {policy}
        """), source=str(tmp_path / "run.yaml"), env={})


def _sdk(server: LiveServer, who: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=KEYS[who], max_retries=0)


def _make_things(client: Any) -> dict[str, Any]:
    store = client.vector_stores.create(name="alice's store")
    upload = client.files.create(file=("notes.txt", b"the secret word is heliotrope"), purpose="assistants")
    client.vector_stores.files.create(store.id, file_id=upload.id)
    response = client.responses.create(model="echo", input="a private question")
    conversation = client.conversations.create(metadata={"topic": "private"})
    completion = client.chat.completions.create(model="echo", store=True,
                                                messages=[{"role": "user", "content": "private chat"}])
    return {"store": store.id, "file": upload.id, "response": response.id, "conversation": conversation.id,
            "completion": completion.id}


def _reads(client: Any, ids: dict[str, Any]) -> dict[str, Any]:
    """Each way of reaching another's resources, as a callable."""
    return {
        "get store": lambda: client.vector_stores.retrieve(ids["store"]),
        "search store": lambda: client.vector_stores.search(ids["store"], query="secret"),
        "store files": lambda: client.vector_stores.files.list(ids["store"]),
        "delete store": lambda: client.vector_stores.delete(ids["store"]),
        "get file": lambda: client.files.retrieve(ids["file"]),
        "file content": lambda: client.files.content(ids["file"]),
        "delete file": lambda: client.files.delete(ids["file"]),
        "get response": lambda: client.responses.retrieve(ids["response"]),
        "input items": lambda: client.responses.input_items.list(ids["response"]),
        "delete response": lambda: client.responses.delete(ids["response"]),
        "continue response": lambda: client.responses.create(model="echo", input="and?",
                                                              previous_response_id=ids["response"]),
        "get conversation": lambda: client.conversations.retrieve(ids["conversation"]),
        "conversation items": lambda: client.conversations.items.list(ids["conversation"]),
        "use conversation": lambda: client.responses.create(model="echo", input="hi", conversation=ids["conversation"]),
        "file_search on it": lambda: client.responses.create(model="echo", input="file_search it", tools=[
            {"type": "file_search", "vector_store_ids": [ids["store"]]}]),
        "attach their file": lambda: client.vector_stores.files.create(
            client.vector_stores.create(name="mine").id, file_id=ids["file"]),
        "get completion": lambda: client.chat.completions.retrieve(ids["completion"]),
        "completion messages": lambda: client.chat.completions.messages.list(ids["completion"]),
        "delete completion": lambda: client.chat.completions.delete(ids["completion"]),
    }


def _missing_ids(ids: dict[str, str]) -> dict[str, str]:
    return {k: v[:-6] + "abcdef" for k, v in ids.items()}  # same shape, names nothing


def test_another_team_gets_what_a_missing_resource_gets(tmp_path: Path) -> None:
    with LiveServer(_config(tmp_path)) as server, _sdk(server, "alice") as alice, _sdk(server, "bob") as bob, \
            _sdk(server, "carol") as carol:
        ids = _make_things(alice)
        missing = _missing_ids(ids)
        theirs, nothing = _reads(bob, ids), _reads(bob, missing)
        for name, call in theirs.items():
            with pytest.raises(openai.NotFoundError) as denied:
                call()
            with pytest.raises(openai.NotFoundError) as absent:
                nothing[name]()
            said: Any = denied.value.body
            real = next(v for v in ids.values() if v in said["message"])
            fake = missing[next(k for k, v in ids.items() if v == real)]
            expected: Any = absent.value.body
            assert said == {**expected, "message": expected["message"].replace(fake, real)}, name
            assert not any(v in said["message"] for v in ids.values() if v != real), name  # no other ids leak
        assert ids["store"] not in [s.id for s in bob.vector_stores.list()]
        assert ids["file"] not in [f.id for f in bob.files.list()]
        assert ids["completion"] not in [c.id for c in bob.chat.completions.list()]
        # nothing of alice's was touched by bob's deletes, and her teammate reaches all of it
        for name, call in _reads(carol, ids).items():
            if not name.startswith(("delete", "attach")):
                call()
        assert alice.vector_stores.retrieve(ids["store"]).name == "alice's store"
        assert ids["store"] in [s.id for s in carol.vector_stores.list()]


def test_policies_decide_first(tmp_path: Path) -> None:
    policy = """access_policy:
          - {permit: {principal: admin}, description: operators reach everything}
          - {forbid: {actions: [delete]}, when: [user is not owner], description: only owners delete}"""
    with LiveServer(_config(tmp_path, policy)) as server, _sdk(server, "alice") as alice, \
            _sdk(server, "carol") as carol, _sdk(server, "admin") as admin:
        ids = _make_things(alice)
        carol.vector_stores.retrieve(ids["store"])  # her team reads it (the default rule)
        with pytest.raises(openai.NotFoundError):
            carol.vector_stores.delete(ids["store"])  # but only the owner deletes
        assert admin.files.retrieve(ids["file"]).filename == "notes.txt"
        assert ids["store"] in [s.id for s in admin.vector_stores.list()]
        assert alice.vector_stores.delete(ids["store"]).deleted


def test_list_pages_stay_full(tmp_path: Path) -> None:
    with LiveServer(_config(tmp_path)) as server, _sdk(server, "alice") as alice, _sdk(server, "bob") as bob:
        mine = []
        for i in range(5):
            alice.vector_stores.create(name=f"a{i}")
            mine.append(bob.vector_stores.create(name=f"b{i}").id)
        page = bob.vector_stores.list(limit=2)
        assert len(page.data) == 2 and page.has_more
        assert sorted(s.id for s in bob.vector_stores.list(limit=2)) == sorted(mine)  # every page, only his


def test_library_client_principals_are_kept_apart(tmp_path: Path) -> None:
    config = _config(tmp_path)
    with LibraryClient(config, principal=Principal("alice", {"team": "red"})) as alice:
        ids = _make_things(alice)
    with LibraryClient(config, principal=Principal("bob", {"team": "blue"})) as bob:
        with pytest.raises(openai.NotFoundError):
            bob.vector_stores.retrieve(ids["store"])
        with pytest.raises(openai.NotFoundError):
            bob.responses.create(model="echo", input="x", previous_response_id=ids["response"])
        assert ids["file"] not in [f.id for f in bob.files.list()]
    with LibraryClient(config, principal=Principal("carol", {"team": "red"})) as carol:
        assert carol.vector_stores.retrieve(ids["store"]).id == ids["store"]
