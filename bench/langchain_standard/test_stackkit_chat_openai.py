"""LangChain's standard chat-model integration suite (langchain-tests) for `ChatOpenAI` pointed at stackkit's
default local model (SmolLM2-135M-Instruct), served by a live `stackkit run` in this process. A measurement,
not part of CI (a 135M model answers some questions wrongly); run it and count:

    pip install langchain-tests==1.1.9
    STACKKIT_LC_ENGINE=transformers .venv/bin/python -m pytest -q -p no:cacheprovider -p no:recording \
      -o addopts="" -o asyncio_default_test_loop_scope=session -o asyncio_default_fixture_loop_scope=session \
      -W ignore --tb=line bench/langchain_standard          (or STACKKIT_LC_ENGINE=llama-cpp)

(`-p no:recording`: langchain-tests brings pytest-recording, whose --record-mode clashes with stackkit's
pytest plugin; the session loop scope: langchain-openai caches one async HTTP client per process, which a
per-test event loop closes under it. Uninstall langchain-tests afterwards: it also installs pytest-socket.)
"""

from __future__ import annotations

import os
import textwrap

import pytest
from langchain_openai import ChatOpenAI
from langchain_tests.integration_tests import ChatModelIntegrationTests

from stackkit.core.config import parse_config
from stackkit.testing.live_server import LiveServer

ENGINE = os.environ.get("STACKKIT_LC_ENGINE", "transformers")
MODEL = "smollm2-135m-instruct"
_server = LiveServer(parse_config(textwrap.dedent(f"""
    providers:
      inference: [{{provider_id: local, provider_type: inline::{ENGINE}, config: {{model: {MODEL}}}}}]
    registered_resources: {{models: [{{model_id: {MODEL}, provider_id: local}}]}}
    storage: {{backends: {{m: {{type: memory}}}}, stores: {{registry: m}}}}
    """), env={}), start_timeout_s=300).start()


@pytest.fixture(scope="module", autouse=True)
def _stop_server_after_the_suite():  # type: ignore[no-untyped-def]
    yield
    _server.stop()  # here, not at exit: by then Python refuses the worker threads the shutdown uses


class TestStackkitChatOpenAI(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[ChatOpenAI]:
        return ChatOpenAI

    @property
    def chat_model_params(self) -> dict[str, object]:
        return {"model": MODEL, "base_url": _server.base_url, "api_key": "none", "temperature": 0,
                "max_tokens": 256, "timeout": 120, "max_retries": 0, "stream_usage": True}

    @property
    def has_tool_calling(self) -> bool:
        return True

    @property
    def has_structured_output(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def supports_image_inputs(self) -> bool:
        return False
