"""Rollout engines: batched generation and scoring on token ids, behind a small interface.

An engine knows nothing about chats or envs. It takes prompts as token ids and gives
back sampled ids with their log-probabilities (`generate`), or the log-probabilities of
given continuations (`score`, for choice mode), and it can take new weights from the
trainer (`load_weights`). `HFEngine` runs the trainer's own transformers model; a vLLM
engine drops in behind the same three methods.

Sampling is reproducible per request: each request carries a seed and draws from its
own generator, so what an episode samples does not depend on which other episodes
happened to share its batch.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Protocol

import torch


@dataclass
class Generation:
    token_ids: list[int]  # sampled ids, ending with end-of-turn unless cut by max_new_tokens
    logprobs: list[float]  # their log-probabilities under the sampling distribution
    finished: bool  # ended with end-of-turn


class Engine(Protocol):
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


class HFEngine:
    """The engine for a transformers causal LM (KV-cached, left-padded batches)."""

    def __init__(self, model: Any, eos_token_id: int, pad_token_id: int, max_batch_tokens: int = 65536,
                 autocast: contextlib.AbstractContextManager | None = None):
        self.model = model
        self.autocast = autocast or contextlib.nullcontext()  # e.g. bf16 on a GPU
        self.eos_token_id, self.pad_token_id = eos_token_id, pad_token_id
        self.max_batch_tokens = max_batch_tokens  # bounds the KV cache of one scoring pass

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def load_weights(self, model: Any) -> None:
        self.model = model  # the trainer's live model: nothing to copy

    def _left_padded(self, prompts: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, p in enumerate(prompts):
            ids[i, width - len(p):] = torch.tensor(p)
            mask[i, width - len(p):] = 1
        return ids.to(self.device), mask.to(self.device)

    def _prefill(self, prompts: list[list[int]]) -> tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run the prompts; return the cache, the last position's logits, mask and next positions."""
        ids, mask = self._left_padded(prompts)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
        return out.past_key_values, out.logits[:, -1].float(), mask, positions[:, -1] + 1

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
            out = self.model(input_ids=step, attention_mask=mask, position_ids=next_pos[:, None],
                             past_key_values=cache, use_cache=True)
            cache, logits, next_pos = out.past_key_values, out.logits[:, -1].float(), next_pos + 1
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
        out = self.model(input_ids=cand_ids, attention_mask=cand_mask, position_ids=positions,
                         past_key_values=cache, use_cache=True)
        logits = torch.cat([last_logits[index][:, None], out.logits[:, :-1].float()], dim=1)
        logp = torch.log_softmax(logits / tau, dim=-1).gather(-1, cand_ids[..., None])[..., 0].cpu()
        scored: list[list[list[float]]] = [[] for _ in prompts]
        for j, (row, c) in enumerate(zip(rows, flat)):
            scored[row].append(logp[j, :len(c)].tolist())
        return scored
