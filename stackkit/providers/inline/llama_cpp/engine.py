"""Several sequences decoded together in one llama.cpp context, on one worker thread.

The context holds `max_sequences` sequences (llama.cpp's n_seq_max, each with n_ctx tokens of KV cache).
Each step puts into one llama_batch the next token of every decoding sequence and as much as fits of the
prompts being prefilled, runs one llama_decode, then samples each sequence that has logits with its own
sampler chain (its temperature, top_p and seed; a GBNF grammar when its output must be JSON: the token the
chain picks is checked against the grammar alone, and only when the grammar refuses it is the whole
vocabulary masked and the pick made again, as llama.cpp's own samplers do). A sequence
that finishes or whose caller left frees its slot at once; requests beyond the slots wait for one. A slot
keeps the KV cache of its last sequence, and a new request takes the free slot whose cache shares the
longest prefix with its prompt, so only the rest is prefilled (the next turn of a chat, a repeated system
prompt). Text goes back to each caller's event loop as it is decoded (UTF-8 completed across
token boundaries); the event loop never waits on llama.cpp.
"""

from __future__ import annotations

import asyncio
import codecs
import ctypes
import logging
import queue
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from stackkit.providers.utils.local_engine import END, JsonClosing, WorkerLoop, drain

log = logging.getLogger("stackkit.llama_cpp")
TOP_K = 16  # greedy constrained decoding first looks for an allowed token among the model's 16 likeliest


@dataclass
class Sequence:
    """One request: its prompt, sampling, and the channel its text goes back on."""

    prompt: list[int]
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    grammar: str | None = None  # GBNF the output must follow
    reserve: int = 0  # the last tokens of the budget, in which a grammar's output is steered to its end
    in_string: bool | None = None  # while steered: whether the output is inside a JSON string
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.get_running_loop)
    out: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    cancelled: bool = False
    generated: int = 0
    tokens: list[int] = field(default_factory=list)  # generated so far
    finish_reason: str = "length"
    # worker-thread state
    slot: int = -1
    fed: int = 0  # prompt tokens in the KV cache
    last: int = -1  # the token sampled last, fed in the next step
    logits_at: int = -1  # this step's batch index whose logits are this sequence's
    sampler: Any = None
    grammar_sampler: Any = None
    decoder: Any = None


    def texts(self) -> AsyncGenerator[str, None]:
        """Text as it is decoded; the sequence is cancelled if the consumer goes away."""
        return drain(self.out, self._cancel)

    def _cancel(self) -> None:
        self.cancelled = True


class LlamaEngine(WorkerLoop[Sequence]):
    """A loaded GGUF model and its decode thread."""

    def __init__(self, path: str, n_ctx: int, max_sequences: int, n_batch: int, n_threads: int) -> None:
        import llama_cpp as lib

        super().__init__("stackkit-llama-cpp", log)
        self.lib = lib
        lib.llama_backend_init()
        _quiet(lib)
        self.path = path
        self.model = lib.llama_model_load_from_file(path.encode(), lib.llama_model_default_params())
        if not self.model:
            raise RuntimeError(f"llama.cpp could not load {path}")
        self.vocab = lib.llama_model_get_vocab(self.model)
        params = lib.llama_context_default_params()
        params.n_ctx, params.n_seq_max = n_ctx * max_sequences, max_sequences
        params.n_batch = params.n_ubatch = n_batch
        params.n_threads = params.n_threads_batch = n_threads
        self.ctx = lib.llama_init_from_model(self.model, params)
        if not self.ctx:
            raise RuntimeError("llama.cpp could not create a context; lower n_ctx or max_sequences")
        self.n_ctx, self.n_batch = n_ctx, n_batch
        self.batch = lib.llama_batch_init(n_batch, 0, max_sequences)
        self.free = list(range(max_sequences))[::-1]  # slots from 0 up
        self.cached: dict[int, list[int]] = {}  # a free slot's tokens still in the KV cache, from position 0
        self.reused = 0  # prompt tokens not prefilled thanks to the cache
        self.active: list[Sequence] = []
        self.steps = 0
        self.max_batch_seen = 0
        raw = lib.llama_model_chat_template(self.model, None)
        self.chat_template: str | None = raw.decode() if raw else None
        self.bos, self.eos = self.token_text(lib.llama_vocab_bos(self.vocab)), self.token_text(
            lib.llama_vocab_eos(self.vocab))
        self.outbox: list[tuple[Sequence, Any]] = []  # text for callers, sent once per step
        self._candidates()
        self.thread.start()

    # ---- called from the event loop's side (thread-safe: no llama.cpp state is touched) ------------

    def tokenize(self, text: str, chat: bool) -> list[int]:
        """A chat prompt's special tokens come from its template (parsed, nothing added); a plain prompt
        gets the model's own (a BOS, for models that want one) and its text is only text."""
        data = text.encode()
        room = len(data) + 8
        buf = (self.lib.llama_token * room)()
        n = self.lib.llama_tokenize(self.vocab, data, len(data), buf, room, not chat, chat)
        return list(buf[:n])

    def token_text(self, token: int) -> str:
        return self._piece(token, special=True).decode("utf-8", "replace") if token >= 0 else ""

    def _candidates(self) -> None:
        """Token-data arrays for grammar checks: one token, and the whole vocabulary (a numpy view over it)."""
        import numpy as np

        lib = self.lib
        self.n_vocab = lib.llama_vocab_n_tokens(self.vocab)
        record = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])
        self._buffers = [(lib.llama_token_data * n)() for n in (1, TOP_K, self.n_vocab)]  # kept alive here
        self._one, self._some, self._all = (lib.llama_token_data_array(b, len(b), -1, False) for b in self._buffers)
        self._some_view, self._all_view = (np.ctypeslib.as_array(b).view(record) for b in self._buffers[1:])
        self._ids = np.arange(self.n_vocab, dtype=np.int32)
        self._json: JsonClosing | None = None  # made on first need
        self._json_scores: tuple[Any, Any] = (None, None)  # its outside and inside scores as arrays

    def parses(self, grammar: str) -> bool:
        """Whether llama.cpp accepts `grammar` (its parser logs why not; a sampler it cannot build is NULL)."""
        sampler = self.lib.llama_sampler_init_grammar(self.vocab, grammar.encode(), b"root")
        if not sampler:
            return False
        self.lib.llama_sampler_free(sampler)
        return True

    def description(self) -> str:
        """llama.cpp's name for what it loaded, e.g. "llama ?B Q4_1"."""
        buf = ctypes.create_string_buffer(256)
        n = self.lib.llama_model_desc(self.model, buf, 256)
        return buf.raw[:max(n, 0)].decode("utf-8", "replace")

    def stop(self) -> None:
        super().stop()
        self.lib.llama_batch_free(self.batch)
        self.lib.llama_free(self.ctx)
        self.lib.llama_model_free(self.model)

    # ---- the worker thread --------------------------------------------------------------------

    def _busy(self) -> bool:
        return bool(self.active)

    def _fail_all(self, error: BaseException) -> None:
        for s in list(self.active):
            self._finish(s, error)

    def _after_step(self) -> None:
        self._flush()

    def _flush(self) -> None:
        """Hand the step's text to the callers' event loops: one wake-up per loop per step, not one per token
        (a wake-up per token cost 40% of the throughput of 8 sequences on 2 cores)."""
        if not self.outbox:
            return
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Sequence, Any]]] = {}
        for s, item in self.outbox:
            by_loop.setdefault(s.loop, []).append((s, item))
        self.outbox = []
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(_deliver, items)
            except RuntimeError:  # that loop is closed: nobody is waiting
                pass

    def _admit(self) -> None:
        while self.free:
            try:
                s = self.pending.get_nowait()
            except queue.Empty:
                return
            if s.cancelled:
                continue
            try:
                s.sampler = self._sampler(s)
            except RuntimeError as exc:
                self.outbox.append((s, exc))
                continue
            self._take_slot(s)
            s.decoder = codecs.getincrementaldecoder("utf-8")("replace")
            self.active.append(s)
            self.active.sort(key=lambda a: a.slot)  # a batch in sequence order splits into the fewest ubatches

    def _take_slot(self, s: Sequence) -> None:
        """The free slot whose cached tokens share the longest prefix with the prompt; the rest of its cache is
        dropped. At least the prompt's last token is fed again: its logits start the answer."""
        def shared(slot: int) -> int:
            n = 0
            for a, b in zip(self.cached.get(slot, ()), s.prompt, strict=False):
                if a != b:
                    break
                n += 1
            return n

        best = max(self.free, key=lambda slot: (shared(slot), -slot))
        self.free.remove(best)
        keep = max(0, min(shared(best), len(s.prompt) - 1))
        self.lib.llama_memory_seq_rm(self.lib.llama_get_memory(self.ctx), best, keep, -1)
        self.cached.pop(best, None)
        s.slot, s.fed = best, keep
        self.reused += keep

    def _sampler(self, s: Sequence) -> Any:
        lib = self.lib
        chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
        if s.grammar is not None:
            s.grammar_sampler = lib.llama_sampler_init_grammar(self.vocab, s.grammar.encode(), b"root")
            if not s.grammar_sampler:  # checked before submitting; a NULL sampler would crash llama.cpp
                lib.llama_sampler_free(chain)
                raise RuntimeError("llama.cpp could not parse the output grammar")
        if s.temperature <= 0:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_greedy())
        else:
            if s.top_p < 1:
                lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_p(s.top_p, 1))
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_temp(s.temperature))
            seed = s.seed if s.seed is not None else lib.LLAMA_DEFAULT_SEED
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_dist(seed & 0xFFFFFFFF))
        return chain

    def _add(self, n: int, token: int, pos: int, slot: int, logits: bool) -> None:
        b = self.batch
        b.token[n], b.pos[n], b.n_seq_id[n], b.logits[n] = token, pos, 1, logits
        b.seq_id[n][0] = slot

    def _step(self) -> None:
        """One llama_decode: a token of each decoding sequence, then prompt tokens as room allows."""
        n = 0
        for s in self.active:
            s.logits_at = -1
            if s.fed == len(s.prompt) and s.generated > 0:
                self._add(n, s.last, s.fed + s.generated - 1, s.slot, True)
                s.logits_at, n = n, n + 1
        for s in self.active:
            if s.fed < len(s.prompt) and n < self.n_batch:
                take = min(len(s.prompt) - s.fed, self.n_batch - n)
                for i in range(take):
                    end = s.fed + i == len(s.prompt) - 1
                    self._add(n, s.prompt[s.fed + i], s.fed + i, s.slot, end)
                    if end:
                        s.logits_at = n
                    n += 1
                s.fed += take
        self.batch.n_tokens = n
        self.max_batch_seen = max(self.max_batch_seen, sum(1 for s in self.active if s.logits_at >= 0))
        if self.lib.llama_decode(self.ctx, self.batch) != 0:
            raise RuntimeError("llama_decode failed (the KV cache is full?)")
        self.steps += 1
        for s in list(self.active):
            if s.cancelled:
                self._finish(s, None)
            elif s.logits_at >= 0:
                self._sample(s)

    def _sample(self, s: Sequence) -> None:
        lib = self.lib
        token = lib.llama_sampler_sample(s.sampler, self.ctx, s.logits_at)
        if s.grammar_sampler is not None:
            token = self._within_grammar(s, token)
        if lib.llama_vocab_is_eog(self.vocab, token):
            s.finish_reason = "stop"
            self._finish(s, None)
            return
        s.generated += 1
        s.tokens.append(token)
        s.last = token
        text = s.decoder.decode(self._piece(token, special=False))
        if text:
            self.outbox.append((s, text))
        if s.generated >= s.max_tokens or len(s.prompt) + s.generated >= self.n_ctx:
            s.finish_reason = "stop" if self._grammar_complete(s) else "length"
            self._finish(s, None)

    def _grammar_complete(self, s: Sequence) -> bool:
        """Whether a grammar's output is whole (the grammar would let it end here)."""
        return s.grammar_sampler is not None and self._allows(s, self.lib.llama_vocab_eos(self.vocab))

    def _allows(self, s: Sequence, token: int) -> bool:
        """Whether the sequence's grammar allows `token` next (checked alone: cheap)."""
        one = self._one.data[0]
        one.id, one.logit, one.p = token, 0.0, 0.0
        self._one.size, self._one.selected, self._one.sorted = 1, -1, False
        self.lib.llama_sampler_apply(s.grammar_sampler, ctypes.byref(self._one))
        return bool(one.logit != float("-inf"))

    def _logits(self, s: Sequence) -> Any:
        import numpy as np

        return np.ctypeslib.as_array(self.lib.llama_get_logits_ith(self.ctx, s.logits_at), shape=(self.n_vocab,))

    def _mask_all(self, s: Sequence, logits: Any) -> None:
        """The whole vocabulary in `_all`, the tokens the grammar refuses at -inf (a few milliseconds)."""
        self._all_view["id"], self._all_view["logit"] = self._ids, logits
        self._all.size, self._all.selected, self._all.sorted = self.n_vocab, -1, False
        self.lib.llama_sampler_apply(s.grammar_sampler, ctypes.byref(self._all))

    def _within_grammar(self, s: Sequence, token: int) -> int:
        """`token` if the grammar allows it, else the chain's pick among the tokens the grammar allows; the
        grammar then advances."""
        if s.max_tokens - s.generated <= s.reserve:
            return self._closing(s)
        if not self._allows(s, token):
            logits = self._logits(s)
            token = self._best_allowed(s, logits) if s.temperature <= 0 else -1
            if token < 0:  # sampling, or none of the likeliest allowed: mask the whole vocabulary
                self._mask_all(s, logits)
                self.lib.llama_sampler_apply(s.sampler, ctypes.byref(self._all))
                token = self._all.data[self._all.selected].id
        self.lib.llama_sampler_accept(s.grammar_sampler, token)
        return int(token)

    def _closing(self, s: Sequence) -> int:
        """Near the end of the budget: of the tokens the grammar allows, the one going furthest toward
        ending the JSON from where the output stands (JsonClosing), the model's likeliest among equals."""
        import numpy as np

        if self._json is None:
            self._json = JsonClosing([self._piece(i, special=False).decode("utf-8", "replace")
                                      for i in range(self.n_vocab)])
            self._json_scores = (np.array(self._json.outside, np.float32), np.array(self._json.inside, np.float32))
        if s.in_string is None:
            s.in_string = self._json.state(s.tokens)
        self._mask_all(s, self._logits(s))
        scores = self._json_scores[1 if s.in_string else 0]
        token = int(np.argmax(self._all_view["logit"] + scores * 1e4))  # -inf stays -inf
        self.lib.llama_sampler_accept(s.grammar_sampler, token)
        s.in_string = self._json.after(s.in_string, token)
        return token

    def _best_allowed(self, s: Sequence, logits: Any) -> int:
        """Greedy: the likeliest of the TOP_K likeliest tokens the grammar allows (it is then the likeliest
        allowed at all), or -1 when it allows none of them."""
        import numpy as np

        top = np.argpartition(logits, -TOP_K)[-TOP_K:]
        top = top[np.argsort(-logits[top])]
        self._some_view["id"], self._some_view["logit"] = top, logits[top]
        self._some.size, self._some.selected, self._some.sorted = TOP_K, -1, False
        self.lib.llama_sampler_apply(s.grammar_sampler, ctypes.byref(self._some))
        allowed = np.flatnonzero(self._some_view["logit"] != -np.inf)  # the grammar keeps the order
        return int(self._some_view["id"][allowed[0]]) if len(allowed) else -1

    def _piece(self, token: int, special: bool) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = self.lib.llama_token_to_piece(self.vocab, token, buf, 64, 0, special)
        if n < 0:  # a longer piece: ask again with room for it
            buf = ctypes.create_string_buffer(-n)
            n = self.lib.llama_token_to_piece(self.vocab, token, buf, -n, 0, special)
        return buf.raw[:n]

    def _finish(self, s: Sequence, error: BaseException | None) -> None:
        if s in self.active:
            self.active.remove(s)
            # in the cache: the prompt as far as fed, then every generated token but the last (never fed)
            self.cached[s.slot] = s.prompt[:s.fed] + (s.tokens[:-1] if s.fed == len(s.prompt) else [])
            self.lib.llama_sampler_free(s.sampler)
            if s.grammar_sampler is not None:
                self.lib.llama_sampler_free(s.grammar_sampler)
            self.free.append(s.slot)
            self.free.sort(reverse=True)
        if error is not None:
            self.outbox.append((s, error))
        else:
            rest = s.decoder.decode(b"", final=True) if s.decoder is not None else ""
            if rest:
                self.outbox.append((s, rest))
            self.outbox.append((s, END))


def _deliver(items: list[tuple[Sequence, Any]]) -> None:
    for s, item in items:
        s.out.put_nowait(item)


def _quiet(lib: Any) -> None:
    """llama.cpp logs every load detail to stderr; keep warnings and errors only."""

    def log_line(level: int, text: bytes, _: Any) -> None:
        if level in (3, 4) and text:  # GGML_LOG_LEVEL_WARN and _ERROR
            log.warning("llama.cpp: %s", text.decode("utf-8", "replace").rstrip())

    callback = lib.llama_log_callback(log_line)
    _quiet.callback = callback  # type: ignore[attr-defined]  # kept alive while llama.cpp may call it
    lib.llama_log_set(callback, ctypes.c_void_p(0))
