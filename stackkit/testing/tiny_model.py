"""Build small causal LMs offline, for tests and benchmarks: random weights, a BPE tokenizer
trained with `tokenizers` on a built-in corpus, and a chat template that renders tools.

    path = build_tiny_model(tmp_path / "tiny-llama")           # ~0.1M parameters, for tests
    path = build_tiny_model(dir, hidden_size=512, layers=8)    # a "small" model for benchmarks
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

CHAT_TEMPLATE = (
    "{%- if tools %}<|system|>\nYou can call these tools:\n{%- for tool in tools %}\n{{ tool | tojson }}"
    "{%- endfor %}\nTo call one, answer <tool_call>{\"name\": ..., \"arguments\": {...}}</tool_call><|end|>\n"
    "{% endif %}"
    "{%- for m in messages %}<|{{ m.role }}|>\n"
    "{%- if m.tool_calls %}{% for c in m.tool_calls %}<tool_call>"
    "{{ {'name': c.function.name, 'arguments': c.function.arguments} | tojson }}</tool_call>{% endfor %}"
    "{%- else %}{{ m.content }}{% endif %}<|end|>\n{% endfor %}"
    "{%- if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
SPECIALS = ["<|pad|>", "<|begin|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>", "<|tool|>"]
CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "stackkit serves models from any provider behind one API.",
    "Hello there! How can I help you today?",
    "The weather in Paris is sunny and warm, with a light breeze.",
    "Vector stores keep chunks of documents with their embeddings.",
    "Call the get_weather tool with a city name to get the forecast.",
    "Numbers like 12, 345 and 6789 appear in text too.",
    '{"name": "get_weather", "arguments": {"city": "Paris"}}',
]


def build_tokenizer(vocab_size: int = 512) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS * 20, trainer=trainer)
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tok, bos_token="<|begin|>", eos_token="<|end|>", pad_token="<|pad|>")
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_model(path: str | Path, *, arch: Literal["llama", "gpt2"] = "llama", hidden_size: int = 32,
                     layers: int = 2, heads: int = 4, context: int = 256, seed: int = 0) -> Path:
    """Save a random-weight causal LM and its tokenizer to `path` (reused if already there)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    path = Path(path)
    if (path / "config.json").exists():
        return path
    tokenizer = build_tokenizer()
    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
           "pad_token_id": tokenizer.pad_token_id}
    torch.manual_seed(seed)
    model: Any
    if arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(
            vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=hidden_size * 2,
            num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=max(1, heads // 2),
            max_position_embeddings=context, **ids))
    else:
        model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=hidden_size, n_layer=layers,
                                           n_head=heads, n_positions=context, **ids))
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_tiny_classifier(path: str | Path, *, labels: tuple[str, ...] = ("BENIGN", "INJECTION", "JAILBREAK"),
                          always: str | None = None, seed: int = 0) -> Path:
    """Save a random-weight BERT sequence classifier; `always` biases it to predict that label."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    path = Path(path)
    if (path / "config.json").exists():
        return path
    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    settings: dict[str, Any] = {
        "vocab_size": len(tokenizer), "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
        "intermediate_size": 64, "max_position_embeddings": 128, "num_labels": len(labels),
        "id2label": dict(enumerate(labels)), "label2id": {label: i for i, label in enumerate(labels)},
        "pad_token_id": tokenizer.pad_token_id,
    }
    config = BertConfig(**settings)
    model = BertForSequenceClassification(config)
    if always is not None:
        with torch.no_grad():
            model.classifier.bias.zero_()
            model.classifier.bias[labels.index(always)] = 20.0
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
