"""IGPO's answer scorer on a transformers causal LM (`agenthub.rewards.info_gain.AnswerScorer`).

The context goes through the tokenizer's chat template with a generation prompt (the
trainer's `ChatFormat`, so message text stays literal text), the answer follows, and
batched forward passes read the answer tokens' log-probabilities.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agenthub.errors import AgentHubError
from agenthub.trainers.chat import ChatFormat
from agenthub.types import Message


class HFAnswerScorer:
    """AnswerScorer over a transformers causal LM and its tokenizer (with a chat template).

    Contexts longer than `max_length` lose their oldest tokens. The model is put in eval
    mode for the call and given back in the mode it was in.
    """

    def __init__(self, model: Any, tokenizer: Any, *, batch_size: int = 8, max_length: int | None = None):
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size
        self.chat = ChatFormat(tokenizer)
        self.max_length = max_length or getattr(model.config, "max_position_embeddings", 2048)

    @classmethod
    def from_pretrained(cls, path: str | Path, **kwargs: Any) -> HFAnswerScorer:
        """A scorer over any model spec (for re-scoring saved trajectories; see
        agenthub.trainers.model_sources)."""
        from agenthub.trainers.model_sources import load_model

        return cls(*load_model(path, "cpu"), **kwargs)

    def answer_logprob(self, contexts: list[list[Message]], answers: list[str]) -> list[tuple[float, int]]:
        import torch

        results: list[tuple[float, int]] = []
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                for start in range(0, len(contexts), self.batch_size):
                    results += self._batch(contexts[start:start + self.batch_size],
                                           answers[start:start + self.batch_size])
        finally:
            self.model.train(was_training)
        return results

    def _batch(self, contexts: list[list[Message]], answers: list[str]) -> list[tuple[float, int]]:
        import torch

        rows = []
        for context, answer in zip(contexts, answers):
            # the context's text and the answer are encoded as literal text: a control-token
            # string an env echoed cannot forge a turn in what the policy is asked about
            prompt_ids = self.chat.prompt(context, None)
            answer_ids = self.chat.assistant_text(answer)
            if not answer_ids:
                raise AgentHubError(f"the answer {answer!r} encodes to no tokens")
            prompt_ids = prompt_ids[-max(1, self.max_length - len(answer_ids)):]
            rows.append((prompt_ids, answer_ids))
        width = max(len(p) + len(a) for p, a in rows)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, (prompt_ids, answer_ids) in enumerate(rows):
            sequence = prompt_ids + answer_ids
            ids[r, :len(sequence)] = torch.tensor(sequence)
            mask[r, :len(sequence)] = 1
        device = next(self.model.parameters()).device
        logits = self.model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
        out = []
        for r, (prompt_ids, answer_ids) in enumerate(rows):
            positions = torch.arange(len(prompt_ids) - 1, len(prompt_ids) + len(answer_ids) - 1, device=device)
            logprobs = torch.log_softmax(logits[r, positions], dim=-1)
            picked = logprobs.gather(1, torch.tensor(answer_ids, device=device)[:, None])
            out.append((float(picked.mean()), len(answer_ids)))
        return out
