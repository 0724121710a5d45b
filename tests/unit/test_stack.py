"""Routing, persistence, background model listing and protocol compliance, on a real Stack."""

from __future__ import annotations

import asyncio
import textwrap
import time
from pathlib import Path

import pytest

from stackkit.apis.datatypes import Api, EmptyRequest
from stackkit.apis.inference import ChatCompletionRequest, EmbeddingRequest
from stackkit.apis.models import GetModelRequest, RegisterModelRequest
from stackkit.core.config import RunConfig, parse_config
from stackkit.core.stack import Stack
from stackkit.errors import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    ProtocolComplianceError,
    ProviderUnavailableError,
)


def chat(model: str, text: str = "hello world") -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"model": model, "messages": [{"role": "user", "content": text}]})


async def test_routes_by_registered_id(fake_config: RunConfig) -> None:
    stack = await Stack.create(fake_config)
    try:
        result = await stack.impls[Api.inference].chat_completion(chat("echo"))
        assert result.model == "echo"  # the model as the client named it
        assert result.choices[0].message.content == "hello world"
    finally:
        await stack.shutdown()


async def test_routes_by_provider_slash_model(fake_config: RunConfig) -> None:
    stack = await Stack.create(fake_config)
    try:
        result = await stack.impls[Api.inference].chat_completion(chat("fake/some-upstream-model"))
        assert result.model == "fake/some-upstream-model"
    finally:
        await stack.shutdown()


async def test_unknown_model_error_lists_known_models(fake_config: RunConfig) -> None:
    stack = await Stack.create(fake_config)
    try:
        with pytest.raises(NotFoundError) as err:
            await stack.impls[Api.inference].chat_completion(chat("gpt-9"))
        assert err.value.status_code == 404
        assert str(err.value) == (
            "Model 'gpt-9' not found. Known models: echo, embedder. Register it (registered_resources.models "
            "in run.yaml or the register endpoint), or name it as 'provider_id/model_id' with a configured "
            "provider (fake)."
        )
    finally:
        await stack.shutdown()


async def test_embedding_model_refused_for_chat(fake_config: RunConfig) -> None:
    stack = await Stack.create(fake_config)
    try:
        with pytest.raises(InvalidRequestError, match="'embedder' is a embedding model; this endpoint needs a llm"):
            await stack.impls[Api.inference].chat_completion(chat("embedder"))
        emb = await stack.impls[Api.inference].embeddings(EmbeddingRequest(model="embedder", input="x"))
        assert len(emb.data[0].embedding) == 16
    finally:
        await stack.shutdown()


async def test_registered_models_survive_restart_on_one_sqlite_file(tmp_path: Path) -> None:
    from tests.conftest import fake_stack_config

    first = await Stack.create(fake_stack_config(tmp_path))
    await first.impls[Api.models].register_model(
        RegisterModelRequest(model_id="runtime-model", provider_model_id="up-1", metadata={"n": 1}))
    await first.shutdown()

    second = await Stack.create(fake_stack_config(tmp_path))
    try:
        model = await second.impls[Api.models].get_model(GetModelRequest(model_id="runtime-model"))
        assert (model.provider_id, model.provider_model_id, model.metadata) == ("fake", "up-1", {"n": 1})
        result = await second.impls[Api.inference].chat_completion(chat("runtime-model"))
        assert result.model == "runtime-model"
        await second.impls[Api.models].unregister_model(GetModelRequest(model_id="runtime-model"))
    finally:
        await second.shutdown()
    third = await Stack.create(fake_stack_config(tmp_path))
    try:
        with pytest.raises(NotFoundError):
            await third.impls[Api.models].get_model(GetModelRequest(model_id="runtime-model"))
    finally:
        await third.shutdown()


async def test_register_conflict(fake_config: RunConfig) -> None:
    stack = await Stack.create(fake_config)
    try:
        models = stack.impls[Api.models]
        await models.register_model(RegisterModelRequest(model_id="m", provider_model_id="a"))
        with pytest.raises(ConflictError, match="'m' is already registered"):
            await models.register_model(RegisterModelRequest(model_id="m", provider_model_id="b"))
        with pytest.raises(NotFoundError, match="Provider 'nope' is not configured"):
            await models.register_model(RegisterModelRequest(model_id="n", provider_id="nope"))
    finally:
        await stack.shutdown()


async def test_provider_models_listed_in_background(fake_config: RunConfig) -> None:
    stack = await Stack.create(fake_config)
    try:
        stack.start()
        await stack.wait_refreshed()
        ids = [m.id for m in (await stack.impls[Api.models].list_models(EmptyRequest())).data]
        # fake-llm and fake-embed are already registered as echo/embedder, so they are not listed twice
        assert ids == ["echo", "embedder"]
    finally:
        await stack.shutdown()


def _config(text: str, tmp_path: Path) -> RunConfig:
    return parse_config(textwrap.dedent(text), source=str(tmp_path / "run.yaml"), env={})


async def test_slow_model_listing_never_blocks_start(tmp_path: Path) -> None:
    config = _config("""
        providers:
          inference:
            - provider_id: slow
              module: tests.providers.third_party
              provider_type: test::slow-lister
              config: {models: [listed-model]}
        storage: {backends: {m: {type: memory}}, stores: {registry: m}}
        model_refresh_timeout: 0.2
        """, tmp_path)
    started = time.perf_counter()
    stack = await Stack.create(config)
    stack.start()
    assert time.perf_counter() - started < 1.0
    try:
        result = await stack.impls[Api.inference].chat_completion(chat("slow/listed-model"))
        assert result.choices[0].message.content == "hello world"
        await asyncio.wait_for(stack.wait_refreshed(), 2.0)  # the listing timed out and was skipped
        assert (await stack.impls[Api.models].list_models(EmptyRequest())).data == []
    finally:
        await stack.shutdown()


async def test_listed_bare_id_routes_to_its_only_provider(tmp_path: Path) -> None:
    config = _config("""
        providers:
          inference:
            - {provider_id: a, provider_type: inline::fake, config: {models: [only-in-a]}}
            - {provider_id: b, provider_type: inline::fake, config: {models: [only-in-b]}}
        storage: {backends: {m: {type: memory}}, stores: {registry: m}}
        """, tmp_path)
    stack = await Stack.create(config)
    try:
        stack.start()
        await stack.wait_refreshed()
        assert stack.tables[Api.inference].get("only-in-b").provider_id == "b"
        with pytest.raises(NotFoundError):  # fake-embed is listed by both: ambiguous
            stack.tables[Api.inference].get("fake-embed")
    finally:
        await stack.shutdown()


async def test_compliance_check_rejects_incomplete_provider(tmp_path: Path) -> None:
    config = _config("""
        providers:
          inference:
            - provider_id: half
              module: tests.providers.third_party
              provider_type: test::incomplete
        """, tmp_path)
    with pytest.raises(ProtocolComplianceError) as err:
        await Stack.create(config)
    assert str(err.value) == (
        "provider 'half' (test::incomplete, inference) does not implement the inference API: missing or not "
        "async: completion, embeddings, list_provider_models. Implement them on HalfDone."
    )


async def test_no_inference_provider_is_a_503(tmp_path: Path) -> None:
    stack = await Stack.create(_config("storage: {backends: {m: {type: memory}}, stores: {registry: m}}\n", tmp_path))
    try:
        with pytest.raises(ProviderUnavailableError) as err:
            await stack.impls[Api.inference].chat_completion(chat("anything"))
        assert err.value.status_code == 503
    finally:
        await stack.shutdown()


async def test_resource_for_disabled_provider_is_a_config_error(tmp_path: Path) -> None:
    from stackkit.errors import ConfigError

    config = _config("""
        providers:
          inference:
            - {provider_id: fake, provider_type: inline::fake}
        registered_resources:
          models:
            - {model_id: m, provider_id: openai}
        storage: {backends: {m: {type: memory}}, stores: {registry: m}}
        """, tmp_path)
    with pytest.raises(ConfigError, match=r"run.yaml:7: registered_resources.models\[0\].provider_id: provider "
                                          "'openai' is not configured for inference"):
        await Stack.create(config)
