"""Continuous batching for a Hugging Face causal LM on one worker thread.

Requests that arrive together are decoded together: each decode step runs one forward pass
over every active sequence. A new request is prefilled on its own and merged into the running
batch at a step boundary (its KV cache and the batch's are left-padded to one length; padding
is masked out and position ids count only real tokens); a finished or cancelled sequence
leaves the batch at once. Tokens go back to each caller's event loop as they are sampled.
"""

from __future__ import annotations

import asyncio
import logging
import queue
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from transformers import DynamicCache

from stackkit.providers.utils.local_engine import END, WorkerLoop, drain

log = logging.getLogger("stackkit.transformers")


@dataclass
class Generation:
    """One request's sampling settings and its channel back to the caller."""

    prompt_ids: list[int]
    max_new_tokens: int
    stop_token_ids: frozenset[int]
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.get_running_loop)
    out: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    cancelled: bool = False
    generated: int = 0
    finish_reason: str = "length"
    generator: torch.Generator | None = None
    matcher: Any = None  # an llguidance matcher: only tokens that keep the output in its grammar are sampled
    bitmask: torch.Tensor | None = None
    closing: Any = None  # with a matcher: (JsonClosing, its outside and inside scores as tensors)
    reserve: int = 0  # the last tokens of the budget, in which the matcher's output is steered to its end
    history: list[int] = field(default_factory=list)  # tokens so far, with a matcher
    in_string: bool | None = None  # while steered: whether the output is inside a JSON string
    top_logprobs: int | None = None  # record each token's logprob and this many alternatives (None: no logprobs)

    def emit(self, item: Any) -> None:
        self.loop.call_soon_threadsafe(self.out.put_nowait, item)

    def tokens(self) -> AsyncGenerator[Any, None]:
        """Token ids as they are sampled (with top_logprobs: (id, logprob, [(id, logprob), ...]) tuples); the
        generation is cancelled if the consumer goes away."""
        return drain(self.out, self._cancel)

    def _cancel(self) -> None:
        self.cancelled = True


class BatchEngine(WorkerLoop[Generation]):
    """Continuous batching for one model on its own thread (see the module's docstring)."""

    def __init__(self, model: Any, max_batch_size: int) -> None:
        super().__init__("stackkit-transformers-engine", log)
        self.model = model
        self.device = model.device
        self.max_batch_size = max_batch_size
        self.steps = 0  # decode steps run (for tests and metrics)
        self.max_batch_seen = 0
        self.active: list[Generation] = []
        self.cache: DynamicCache | None = None
        self.mask: torch.Tensor | None = None  # [batch, cache length]: 1 real token, 0 padding
        self.last: torch.Tensor | None = None  # [batch, 1]: the token each row feeds next
        self.thread.start()

    def submit(self, generation: Generation) -> None:
        if generation.seed is not None:
            generation.generator = torch.Generator(device="cpu").manual_seed(generation.seed)
        super().submit(generation)

    # ---- the worker thread --------------------------------------------------------------------

    def _run(self) -> None:
        torch.set_grad_enabled(False)  # (per thread: this one)
        super()._run()

    def _busy(self) -> bool:
        return bool(self.active)

    def _fail_all(self, error: BaseException) -> None:
        for g in self.active:
            g.emit(error)
        self._reset()

    def _reset(self) -> None:
        self.active, self.cache, self.mask, self.last = [], None, None, None

    def _admit(self) -> None:
        while len(self.active) < self.max_batch_size:
            try:
                g = self.pending.get_nowait()
            except queue.Empty:
                return
            if g.cancelled:
                continue
            cache = DynamicCache()
            ids = torch.tensor([g.prompt_ids], device=self.device)
            out = self.model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True,
                             past_key_values=cache, position_ids=torch.arange(ids.shape[1], device=self.device)[None])
            token = self._sample_logged(out.logits[:, -1, :], [g])[0]
            self._merge(cache, torch.ones_like(ids), g, _id(token))
            if self._deliver(g, token):
                self._drop([len(self.active) - 1])

    def _merge(self, cache: DynamicCache, mask: torch.Tensor, g: Generation, token: int) -> None:
        """Add a prefilled sequence to the running batch (left-padding whichever is shorter)."""
        last = torch.tensor([[token]], device=self.device)
        if self.cache is None or self.mask is None or self.last is None:
            self.cache, self.mask, self.last, self.active = cache, mask, last, [g]
            return
        length = max(self.mask.shape[1], mask.shape[1])
        merged = DynamicCache()
        old_layers: list[Any] = list(self.cache.layers)  # DynamicLayer: .keys/.values [batch, heads, len, dim]
        new_layers: list[Any] = list(cache.layers)
        for i, (old, new) in enumerate(zip(old_layers, new_layers, strict=True)):
            keys = torch.cat([_left_pad(old.keys, length), _left_pad(new.keys, length)])
            values = torch.cat([_left_pad(old.values, length), _left_pad(new.values, length)])
            merged.update(keys, values, i)
        self.cache = merged
        self.mask = torch.cat([F.pad(self.mask, (length - self.mask.shape[1], 0)),
                               F.pad(mask, (length - mask.shape[1], 0))])
        self.last = torch.cat([self.last, last])
        self.active.append(g)
        self.max_batch_seen = max(self.max_batch_seen, len(self.active))

    def _step(self) -> None:
        assert self.cache is not None and self.mask is not None and self.last is not None
        self.mask = F.pad(self.mask, (0, 1), value=1)
        positions = (self.mask.sum(dim=1, keepdim=True) - 1).to(self.device)
        out = self.model(input_ids=self.last, attention_mask=self.mask, position_ids=positions,
                         past_key_values=self.cache, use_cache=True)
        self.steps += 1
        tokens = self._sample_logged(out.logits[:, -1, :], self.active)
        self.last = torch.tensor([[_id(t)] for t in tokens], device=self.device)
        done = [i for i, (g, t) in enumerate(zip(self.active, tokens, strict=True)) if self._deliver(g, t)]
        self._drop(done)

    def _deliver(self, g: Generation, sampled: Any) -> bool:
        """Send one token (with its logprobs, when asked); True when the sequence is finished (or its consumer
        left)."""
        token = _id(sampled)
        if g.cancelled:
            return True
        if token in g.stop_token_ids:
            g.finish_reason = "stop"
            g.emit(END)
            return True
        g.generated += 1
        g.emit(sampled)
        if g.closing is not None:
            g.history.append(token)
            if g.in_string is not None:
                g.in_string = g.closing[0].after(g.in_string, token)
        if g.matcher is not None and (not g.matcher.consume_token(token) or g.matcher.is_stopped()):
            g.finish_reason = "stop"  # the grammar is complete: nothing more may follow
            g.emit(END)
            return True
        if g.generated >= g.max_new_tokens:
            g.finish_reason = "length"
            g.emit(END)
            return True
        return False

    def _drop(self, rows: list[int]) -> None:
        rows += [i for i, g in enumerate(self.active) if g.cancelled and i not in rows]
        if not rows:
            return
        keep = [i for i in range(len(self.active)) if i not in set(rows)]
        if not keep:
            self._reset()
            return
        assert self.cache is not None and self.mask is not None and self.last is not None
        index = torch.tensor(keep, device=self.device)
        self.cache.batch_select_indices(index)
        self.mask, self.last = self.mask[index], self.last[index]
        self.active = [self.active[i] for i in keep]
        first = int(self.mask.any(dim=0).nonzero()[0])  # drop columns that are padding in every row
        if first:
            self.mask = self.mask[:, first:]
            layers: list[Any] = list(self.cache.layers)
            for layer in layers:
                layer.keys, layer.values = layer.keys[:, :, first:], layer.values[:, :, first:]

    @staticmethod
    def _constrain(logits: torch.Tensor, rows: list[Generation]) -> None:
        """Mask, in place, the tokens each constrained row's grammar does not allow next."""
        import llguidance.torch

        for i, g in enumerate(rows):
            if g.matcher is None:
                continue
            if g.bitmask is None:
                g.bitmask = llguidance.torch.allocate_token_bitmask(1, logits.shape[-1])
            llguidance.torch.fill_next_token_bitmask(g.matcher, g.bitmask, 0)
            llguidance.torch.apply_token_bitmask_inplace(logits[i], g.bitmask)

    @classmethod
    def _sample_logged(cls, logits: torch.Tensor, rows: list[Generation]) -> list[Any]:
        """Tokens for `rows`; for rows that asked for logprobs, (token, logprob, top) under the model's own
        distribution (before any grammar mask or temperature), as OpenAI reports them."""
        wanted = [i for i, g in enumerate(rows) if g.top_logprobs is not None]
        logprobs = torch.log_softmax(logits[wanted].float(), dim=-1) if wanted else None
        tokens: list[Any] = cls._sample(logits, rows)
        for j, i in enumerate(wanted):
            assert logprobs is not None
            k = rows[i].top_logprobs or 0
            top = logprobs[j].topk(k) if k else None
            alternatives = list(zip(top.indices.tolist(), top.values.tolist(), strict=True)) if top is not None else []
            tokens[i] = (tokens[i], float(logprobs[j, tokens[i]]), alternatives)
        return tokens

    @classmethod
    def _sample(cls, logits: torch.Tensor, rows: list[Generation]) -> list[int]:
        closing: set[int] = set()
        if any(g.matcher is not None for g in rows):
            logits = logits.float()
            cls._constrain(logits, rows)
            closing = {i for i, g in enumerate(rows) if g.closing is not None and g.max_new_tokens - g.generated
                       <= g.reserve}
            for i in closing:  # of the allowed tokens, the one going furthest toward ending the JSON
                g = rows[i]
                json, outside, inside = g.closing
                if g.in_string is None:
                    g.in_string = json.state(g.history)
                scores = inside if g.in_string else outside
                logits[i, :scores.shape[0]] += scores * 1e4
        if all(g.temperature <= 0 or i in closing for i, g in enumerate(rows)):  # greedy: one op for the batch
            return [int(t) for t in logits.argmax(dim=-1).tolist()]
        tokens = []
        for i, (row, g) in enumerate(zip(logits.float(), rows, strict=True)):
            if g.temperature <= 0 or i in closing:
                tokens.append(int(row.argmax()))
                continue
            probs = torch.softmax(row / g.temperature, dim=-1)
            if g.top_p < 1.0:
                sorted_probs, order = probs.sort(descending=True)
                cut = sorted_probs.cumsum(0) - sorted_probs > g.top_p
                sorted_probs[cut] = 0
                probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
            tokens.append(int(torch.multinomial(probs.cpu(), 1, generator=g.generator)))
        return tokens


def _id(sampled: Any) -> int:
    return int(sampled[0]) if isinstance(sampled, tuple) else int(sampled)


def _left_pad(tensor: torch.Tensor, length: int) -> torch.Tensor:
    return F.pad(tensor, (0, 0, length - tensor.shape[2], 0))
