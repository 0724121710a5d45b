"""inline::vllm needs CUDA: these tests run on a GPU machine with vllm installed, and skip elsewhere."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from stackkit.core.config import parse_config

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("inline::vllm needs a CUDA GPU; none here", allow_module_level=True)
pytest.importorskip("vllm", reason="inline::vllm needs `pip install 'stackkit[vllm]'`")


def test_vllm_chat_and_stream(tmp_path: Path) -> None:
    from stackkit import LibraryClient
    from stackkit.testing.tiny_model import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny-llama")
    config = parse_config(textwrap.dedent(f"""
        providers:
          inference:
            - {{provider_id: v, provider_type: inline::vllm, config: {{model: "{model}", gpu_memory_utilization: 0.3}}}}
        registered_resources: {{models: [{{model_id: m, provider_id: v, provider_model_id: tiny-llama}}]}}
        storage: {{backends: {{m: {{type: memory}}}}, stores: {{registry: m}}}}
        """), env={})
    with LibraryClient(config) as client:
        whole = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}],
                                               max_tokens=8, temperature=0)
        assert whole.usage.completion_tokens <= 8
        text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=8, temperature=0, stream=True)
            if c.choices)
        assert text == whole.choices[0].message.content
