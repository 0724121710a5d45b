"""Constrained decoding for inline::transformers: the JSON a request asks for, enforced token by token.

`response_format` json_schema / json_object and `tool_choice` required / a named tool become a JSON schema;
llguidance (https://github.com/guidance-ai/llguidance) compiles it against the model's tokenizer and, at
each decode step, masks every token that would leave the grammar. So even a 135M model returns JSON that
validates, and a forced tool call is always a real call of an offered tool with schema-valid arguments.

Why llguidance: its wheel has no dependencies (xgrammar pulls in triton, ~300 MB, on Linux), it computes a
mask in ~50 µs on a 128k vocabulary with wide JSON-schema coverage (llama.cpp, vLLM and SGLang use it), and
each sequence of a batch gets its own matcher. outlines-core builds a full automaton per schema up front
(slow for large schemas); lm-format-enforcer is pure Python and slower per token.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any

from stackkit.errors import InvalidRequestError, MissingPackageError
from stackkit.providers.utils.local_engine import JsonClosing

COMPACT = {"whitespace_flexible": False}  # no runs of spaces or newlines for a small model to get lost in


class Grammars:
    """Matchers for one model's tokenizer (its llguidance view is built once, on first use: ~0.7 s)."""

    def __init__(self, hf_tokenizer: Any, vocab_size: int) -> None:
        self.hf_tokenizer = hf_tokenizer
        self.vocab_size = vocab_size
        self._tokenizer: Any = None
        self._lock = threading.Lock()
        self._closing: Any = None

    def closing(self) -> tuple[JsonClosing, Any, Any]:
        """The vocabulary's JsonClosing and its outside and inside scores as tensors (made once, from token
        texts as the tokenizer stores them, where JSON's quotes, brackets and backslashes are themselves)."""
        import torch

        with self._lock:
            if self._closing is None:
                pieces = self.hf_tokenizer.convert_ids_to_tokens(list(range(len(self.hf_tokenizer))))
                json = JsonClosing([p or "" for p in pieces][: self.vocab_size])
                self._closing = (json, torch.tensor(json.outside), torch.tensor(json.inside))
        return self._closing  # type: ignore[no-any-return]

    def _llg(self) -> Any:
        try:
            with warnings.catch_warnings():  # llguidance.torch uses torch.jit.script, which torch now deprecates
                warnings.simplefilter("ignore", DeprecationWarning)
                import llguidance
                import llguidance.hf
                import llguidance.torch
        except ImportError as exc:
            raise MissingPackageError("llguidance", "transformers") from exc
        with self._lock:
            if self._tokenizer is None:
                self._tokenizer = llguidance.hf.from_tokenizer(self.hf_tokenizer, n_vocab=self.vocab_size)
        return llguidance

    def matcher(self, schema: dict[str, Any], param: str) -> Any:
        """A fresh matcher for `schema` (a 400 naming `param` when the schema cannot be compiled)."""
        llguidance = self._llg()
        try:
            grammar = llguidance.LLMatcher.grammar_from_json_schema(schema, defaults=COMPACT)
        except (ValueError, TypeError, RuntimeError) as exc:
            raise InvalidRequestError(f"the JSON schema cannot be enforced: {exc}; fix the schema.",
                                      param=param) from None
        matcher = llguidance.LLMatcher(self._tokenizer, grammar)
        if matcher.is_error():
            raise InvalidRequestError(f"the JSON schema cannot be enforced: {matcher.get_error()}; fix the schema.",
                                      param=param)
        return matcher
