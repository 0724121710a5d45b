"""One source of truth for vector stores: stores declared in run.yaml exist, a store whose data is gone
never breaks the listing, and a store whose creation failed is not left behind."""

from __future__ import annotations

import shutil
from pathlib import Path

import openai
import pytest

from stackkit import LibraryClient
from stackkit.core.config import RunConfig, parse_config
from stackkit.errors import ConfigError
from tests.integration.test_vector_stores import vector_config


def with_declared(root: Path, declared: str) -> RunConfig:
    text = vector_config("faiss", root, "").model_dump(mode="json", exclude_defaults=True)
    text["registered_resources"]["vector_stores"] = [{"vector_store_id": declared, "provider_id": "vec"}]
    return RunConfig.model_validate(text)


def test_a_declared_store_is_created_at_start(tmp_path: Path) -> None:
    for _ in range(2):  # created once, found the second time
        with LibraryClient(with_declared(tmp_path, "handbook")) as client:
            assert [s.id for s in client.vector_stores.list()] == ["handbook"]
            client.vector_io.insert(vector_store_id="handbook", chunks=[{"content": "holidays are in August"}])
            assert client.vector_stores.search("handbook", query="holidays").data


def test_a_store_declared_for_another_provider_is_a_config_error(tmp_path: Path) -> None:
    with LibraryClient(vector_config("faiss", tmp_path, "")) as client:
        made = client.vector_stores.create(name="x").id
    config = with_declared(tmp_path, made).model_dump(mode="json", exclude_defaults=True)
    config["providers"]["vector_io"].append({"provider_id": "vec2", "provider_type": "inline::faiss",
                                             "config": {"storage_dir": str(tmp_path / "faiss2"),
                                                        "embedding_model": "embed"}})
    config["registered_resources"]["vector_stores"][0]["provider_id"] = "vec2"
    with pytest.raises(ConfigError, match="exists in 'vec'"):
        LibraryClient(parse_config_dict(config))


def parse_config_dict(data: dict[str, object]) -> RunConfig:
    import yaml

    return parse_config(yaml.safe_dump(data), env={})


def test_a_store_whose_data_is_gone_never_breaks_the_list(tmp_path: Path) -> None:
    with LibraryClient(vector_config("faiss", tmp_path, "")) as client:
        client.vector_stores.create(name="doomed")
    shutil.rmtree(tmp_path / "faiss")  # the provider's data is gone; the registry still names the store
    with LibraryClient(vector_config("faiss", tmp_path, "")) as client:
        assert list(client.vector_stores.list()) == []
        kept = client.vector_stores.create(name="new")
        assert [s.id for s in client.vector_stores.list()] == [kept.id]


def test_a_failed_creation_leaves_no_store(tmp_path: Path) -> None:
    with LibraryClient(vector_config("faiss", tmp_path, "")) as client:
        with pytest.raises(openai.NotFoundError, match="file-nope"):
            client.vector_stores.create(name="bad", file_ids=["file-nope"])
        assert list(client.vector_stores.list()) == []
    with LibraryClient(vector_config("faiss", tmp_path, "")) as client:
        assert list(client.vector_stores.list()) == []
