"""Shared fixtures: stack configs built on the fake providers, and both transports."""

from __future__ import annotations

import os
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stackkit.core.config import RunConfig, parse_config
from tests.databases import new_database, postgres_server, redis_server

pytest_plugins = ["pytester"]

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a model hub; models are built or packaged
# the suite never writes to the user's ~/.stackkit: every default state directory is under a temporary one
os.environ["STACKKIT_HOME"] = tempfile.mkdtemp(prefix="stackkit-tests-")

FAKE_STACK = """
version: 2
distro_name: test
providers:
  inference:
    - provider_id: fake
      provider_type: inline::fake
      config:
        chunk_delay_s: {chunk_delay}
  safety:
    - provider_id: words
      provider_type: inline::fake
  vector_io:
    - provider_id: mem
      provider_type: inline::fake
      config: {{embedding_model: embedder}}
  files:
    - provider_id: disk
      provider_type: inline::localfs
      config: {{storage_dir: "{files_dir}"}}
storage:
  backends:
    kv: {{type: sqlite, db_path: "{db_path}"}}
  stores:
    registry: kv
registered_resources:
  models:
    - model_id: echo
      provider_model_id: fake-llm
    - model_id: embedder
      provider_model_id: fake-embed
      model_type: embedding
  shields:
    - shield_id: no-forbidden
server:
  limits:
    max_request_bytes: 65536
  cors:
    allow_origins: ["http://app.example"]
safety:
  default_shield_id: no-forbidden
"""


def fake_stack_config(tmp_path: Path, chunk_delay: float = 0.0) -> RunConfig:
    text = FAKE_STACK.format(db_path=tmp_path / "kv.db", chunk_delay=chunk_delay, files_dir=tmp_path / "files")
    return parse_config(textwrap.dedent(text), source=str(tmp_path / "run.yaml"), env={})


@pytest.fixture
def fake_config(tmp_path: Path) -> RunConfig:
    return fake_stack_config(tmp_path)


@pytest.fixture(params=["library", "http"])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """The same tests through LibraryClient and through a live server with the openai SDK."""
    config = fake_stack_config(tmp_path)
    if request.param == "library":
        from stackkit import LibraryClient

        with LibraryClient(config) as library:
            yield library
        return
    import openai

    from stackkit.testing.live_server import LiveServer

    with LiveServer(config) as server, openai.OpenAI(base_url=server.base_url, api_key="none",
                                                     max_retries=0, timeout=10) as sdk:
        yield sdk


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """One real PostgreSQL (with pgvector) for the session, on 127.0.0.1."""
    with postgres_server() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> str:
    """A new empty database of that server for one test."""
    return new_database(postgres_admin_url)


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A real redis-server for one test, on 127.0.0.1."""
    with redis_server() as url:
        yield url
