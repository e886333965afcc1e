"""Rollout engines: batched generation and scoring on token ids, behind a small interface.

An engine knows nothing about chats or envs. It takes prompts as token ids and gives
back sampled ids with their log-probabilities (`generate`), or the log-probabilities of
given continuations (`score`, for choice mode), and it can take new weights from the
trainer (`load_weights`). `HFEngine` runs the trainer's own transformers model (or, for
overlapped rollouts, its own copy of it: `use_private_copy`); a vLLM engine drops in
behind the same three methods.

Sampling is reproducible per request: each request carries a seed and draws from its
own generator, so what an episode samples does not depend on which other episodes
happened to share its batch.

`HFEngine` keeps the keys and values of recent sequences (`PrefixStore`): an episode's
next prompt is its previous prompt plus the sampled turn plus the env's reply, so only
the new tokens are computed, not the whole history again (vLLM's prefix caching does
the same).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import inspect
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

from agenthub.trainers.needs_torch import torch


@dataclass
class Generation:
    token_ids: list[int]  # sampled ids, ending with end-of-turn unless cut by max_new_tokens
    logprobs: list[float]  # their log-probabilities under the sampling distribution
    finished: bool  # ended with end-of-turn


class Engine(Protocol):
    """What the policy calls. An engine may also set `continuous = True`: it takes calls
    from many threads at once and batches them itself at every decoding step (vLLM), so
    `PolicyAgent` sends each turn as it comes instead of gathering batches."""

    eos_token_id: int

    def generate(self, prompts: list[list[int]], seeds: list[int], *, max_new_tokens: int,
                 temperature: float) -> list[Generation]:
        """Sample one continuation per prompt, up to and including end-of-turn.
        `temperature` 0 is greedy (log-probabilities are then those at temperature 1)."""
        ...

    def score(self, prompts: list[list[int]], candidates: list[list[list[int]]], *,
              temperature: float) -> list[list[list[float]]]:
        """Per prompt, per candidate continuation, the log-probability of each of its tokens."""
        ...

    def load_weights(self, model: Any) -> None:
        """Take the trainer's current weights."""
        ...


def logprob_temperature(temperature: float) -> float:
    return temperature if temperature > 0 else 1.0


KeyValues = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values [kv_heads, length, head_dim]


class PrefixStore:
    """Keys/values of recently computed token sequences, most recent last, at most `capacity`."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.entries: OrderedDict[tuple[int, ...], KeyValues] = OrderedDict()

    def longest_prefix(self, prompt: list[int]) -> tuple[int, KeyValues | None]:
        """The longest stored proper prefix of `prompt` and its keys/values, or (0, None)."""
        for length in sorted({len(k) for k in self.entries if len(k) < len(prompt)}, reverse=True):
            key = tuple(prompt[:length])
            if key in self.entries:
                self.entries.move_to_end(key)
                return length, self.entries[key]
        return 0, None

    def put(self, ids: list[int], kv: KeyValues) -> None:
        self.entries[tuple(ids)] = kv
        while len(self.entries) > self.capacity:
            self.entries.popitem(last=False)

    def clear(self) -> None:
        self.entries.clear()


class HFEngine:
    """The engine for a transformers causal LM (KV-cached, left-padded batches)."""

    def __init__(self, model: Any, eos_token_id: int, pad_token_id: int, max_batch_tokens: int = 65536,
                 autocast: contextlib.AbstractContextManager | None = None, prefix_capacity: int = 256):
        self.model = model
        self.autocast = autocast or contextlib.nullcontext()  # e.g. bf16 on a GPU
        self.eos_token_id, self.pad_token_id = eos_token_id, pad_token_id
        self.max_batch_tokens = max_batch_tokens  # bounds the KV cache of one scoring pass
        self.prefixes = PrefixStore(prefix_capacity)
        self.private = False  # True: samples from its own copy of the weights (use_private_copy)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def load_weights(self, model: Any) -> None:
        if self.private:  # copied between two calls, so no generation sees half-updated weights
            with torch.no_grad():
                for mine, theirs in zip(self._tensors(self.model), self._tensors(model), strict=True):
                    mine.copy_(theirs)
        else:
            self.model = model  # the trainer's live model: nothing to copy,
        self.prefixes.clear()  # but keys/values computed with the old weights are stale

    def use_private_copy(self) -> None:
        """Generate from a frozen copy of the current weights from now on, so the trainer
        can update its model while this engine samples in another thread; `load_weights`
        then copies the trainer's weights into it. Costs one more copy of the weights."""
        self.model = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.private = True

    @staticmethod
    def _tensors(model: Any) -> list[torch.Tensor]:
        return [*model.parameters(), *model.buffers()]

    def _left_padded(self, prompts: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, p in enumerate(prompts):
            ids[i, width - len(p):] = torch.tensor(p)
            mask[i, width - len(p):] = 1
        return ids.to(self.device), mask.to(self.device)

    def _prefill(self, prompts: list[list[int]]) -> tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run the prompts, reusing stored prefixes; return the cache, the last position's
        logits, the attention mask and each row's next position.

        Row layout: [padding | stored prefix | padding | new tokens]; the mask hides the
        padding, and positions count real tokens only."""
        hits = [self.prefixes.longest_prefix(p) for p in prompts]
        ids, new_mask = self._left_padded([p[n:] for p, (n, _) in zip(prompts, hits)])
        past = max(n for n, _ in hits)
        past_mask = torch.zeros((len(prompts), past), dtype=torch.long, device=self.device)
        cache = None
        if past:
            from transformers import DynamicCache
            cache = DynamicCache()
            template = next(kv for _, kv in hits if kv is not None)
            for layer, (k0, v0) in enumerate(template):
                keys = k0.new_zeros((len(prompts), k0.shape[0], past, k0.shape[2]))
                values = v0.new_zeros((len(prompts), v0.shape[0], past, v0.shape[2]))
                for row, (n, kv) in enumerate(hits):
                    if kv is not None:
                        keys[row, :, past - n:], values[row, :, past - n:] = kv[layer]
                cache.update(keys, values, layer)
            for row, (n, _) in enumerate(hits):
                past_mask[row, past - n:] = 1
        offsets = torch.tensor([n for n, _ in hits], device=self.device)[:, None]
        positions = offsets + (new_mask.cumsum(-1) - 1).clamp(min=0)
        mask = torch.cat([past_mask, new_mask], dim=1)
        out, cache = forward_cached(self.model, cache, input_ids=ids, attention_mask=mask, position_ids=positions)
        return cache, out.logits[:, -1].float(), mask, positions[:, -1] + 1

    def _remember(self, cache: Any, mask: torch.Tensor, sequences: list[list[int]]) -> None:
        """Store each row's keys/values for `sequences[row]` (its first real positions)."""
        for row, ids in enumerate(sequences):
            where = mask[row].nonzero()[:len(ids), 0]
            self.prefixes.put(ids, [(layer.keys[row][:, where].clone(), layer.values[row][:, where].clone())
                                    for layer in cache.layers])

    def generate(self, prompts: list[list[int]], seeds: list[int], *, max_new_tokens: int,
                 temperature: float) -> list[Generation]:
        with torch.no_grad(), self.autocast:
            return self._generate(prompts, seeds, max_new_tokens, temperature)

    def _generate(self, prompts: list[list[int]], seeds: list[int], max_new_tokens: int,
                  temperature: float) -> list[Generation]:
        generators = [torch.Generator().manual_seed(s) for s in seeds]
        cache, logits, mask, next_pos = self._prefill(prompts)
        tau = logprob_temperature(temperature)
        batch = len(prompts)
        tokens: list[list[int]] = [[] for _ in range(batch)]
        logprobs: list[list[float]] = [[] for _ in range(batch)]
        done = [False] * batch
        for _ in range(max_new_tokens):
            logp = torch.log_softmax(logits / tau, dim=-1).cpu()
            if temperature > 0:
                chosen = [int(torch.multinomial(logp[i].exp(), 1, generator=generators[i])) for i in range(batch)]
            else:
                chosen = logp.argmax(-1).tolist()
            for i, tok in enumerate(chosen):
                if not done[i]:
                    tokens[i].append(tok)
                    logprobs[i].append(float(logp[i, tok]))
                    done[i] = tok == self.eos_token_id
            if all(done):
                break
            step = torch.tensor(chosen, device=self.device)[:, None]
            mask = torch.cat([mask, mask.new_ones((batch, 1))], dim=1)
            out, cache = forward_cached(self.model, cache, input_ids=step, attention_mask=mask,
                                        position_ids=next_pos[:, None])
            logits, next_pos = out.logits[:, -1].float(), next_pos + 1
        # every sampled token but the last has been fed back, so its keys/values exist
        self._remember(cache, mask, [p + t[:-1] for p, t in zip(prompts, tokens)])
        return [Generation(t, lp, bool(t) and t[-1] == self.eos_token_id) for t, lp in zip(tokens, logprobs)]

    def score(self, prompts: list[list[int]], candidates: list[list[list[int]]], *,
              temperature: float) -> list[list[list[float]]]:
        with torch.no_grad(), self.autocast:
            return self._score(prompts, candidates, temperature)

    def _score(self, prompts: list[list[int]], candidates: list[list[list[int]]],
               temperature: float) -> list[list[list[float]]]:
        results: list[list[list[float]]] = [[] for _ in prompts]
        for chunk in self._chunks(prompts, candidates):
            for index, scored in zip(chunk, self._score_chunk([prompts[i] for i in chunk],
                                                              [candidates[i] for i in chunk], temperature)):
                results[index] = scored
        return results

    def _chunks(self, prompts: list[list[int]], candidates: list[list[list[int]]]) -> list[list[int]]:
        """Group requests so that one chunk's cache (prompt length x candidates) stays bounded."""
        chunks: list[list[int]] = [[]]
        load = 0
        for i, (p, cands) in enumerate(zip(prompts, candidates)):
            cost = len(p) * max(1, len(cands))
            if chunks[-1] and load + cost > self.max_batch_tokens:
                chunks.append([])
                load = 0
            chunks[-1].append(i)
            load += cost
        return chunks

    def _score_chunk(self, prompts: list[list[int]], candidates: list[list[list[int]]],
                     temperature: float) -> list[list[list[float]]]:
        """Prefill each prompt once, then run all its candidates against a copy of its cache."""
        cache, last_logits, mask, next_pos = self._prefill(prompts)
        self._remember(cache, mask, prompts)
        rows = [i for i, cands in enumerate(candidates) for _ in cands]
        flat = [c for cands in candidates for c in cands]
        if not flat:
            return [[] for _ in prompts]
        tau = logprob_temperature(temperature)
        width = max(len(c) for c in flat)
        cand_ids = torch.full((len(flat), width), self.pad_token_id, dtype=torch.long, device=self.device)
        for j, c in enumerate(flat):
            cand_ids[j, :len(c)] = torch.tensor(c)
        index = torch.tensor(rows, device=self.device)
        cache.batch_select_indices(index)
        cand_mask = torch.cat([mask[index], torch.ones_like(cand_ids)], dim=1)  # right padding is never attended
        positions = next_pos[index][:, None] + torch.arange(width, device=self.device)[None]
        out, _ = forward_cached(self.model, cache, input_ids=cand_ids, attention_mask=cand_mask,
                                position_ids=positions)
        logits = torch.cat([last_logits[index][:, None], out.logits[:, :-1].float()], dim=1)
        logp = torch.log_softmax(logits / tau, dim=-1).gather(-1, cand_ids[..., None])[..., 0].cpu()
        scored: list[list[list[float]]] = [[] for _ in prompts]
        for j, (row, c) in enumerate(zip(rows, flat)):
            scored[row].append(logp[j, :len(c)].tolist())
        return scored


def forward_cached(model: Any, cache: Any, **inputs: Any) -> tuple[Any, Any]:
    """`model(**inputs)` reading and extending the KV `cache`: (its output, the cache).

    transformers 5.x names the argument and the output field `cache` and warns on every
    call that passes `past_key_values`; the floor, 4.56, knows only `past_key_values`.
    A PEFT model forwards keyword arguments to its base model, whose name is used."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    name = _cache_argument(type(base))
    out = model(**inputs, **{name: cache}, use_cache=True)
    return out, getattr(out, name)


@functools.lru_cache(maxsize=None)
def _cache_argument(model_class: type) -> str:
    return "cache" if "cache" in inspect.signature(model_class.forward).parameters else "past_key_values"
