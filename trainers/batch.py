"""From trajectories to training tensors, and the policy's log-probabilities on them.

A rollout is one token sequence, laid out exactly as it was sampled: each turn's
`prompt_token_ids` (what the env contributed, plus template tokens) followed by its
sampled `token_ids`; a history-window rollout (`trainers.history`) is one such sequence
per turn, each turn's whole prompt and its sampled ids. The loss mask is 1 on sampled
tokens only, so environment tokens get exactly zero gradient; each action token carries
its turn's advantage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agenthub.trainers.needs_torch import torch

from agenthub.trainers.history import WINDOW
from agenthub.types import Trajectory


@dataclass
class Sequence:
    ids: list[int]
    mask: list[int]  # 1 on tokens the policy produced (the loss mask)
    advantages: list[float]  # per token; 0 where mask is 0
    rollout_logprobs: list[float]  # per token; 0 where mask is 0

    @property
    def loss_tokens(self) -> int:
        """Tokens the loss sees: masked tokens after the first (which nothing predicts),
        the count `collate` gathers, so a token-mean divides by what it sums."""
        return sum(self.mask[1:])


def trajectory_sequences(trajectory: Trajectory, turn_advantages: list[float]) -> list[Sequence]:
    """The rollout's token sequences, laid out exactly as sampled: one for a whole-chat
    rollout (each turn's prompt extends the last), one per turn for a history-window
    rollout (`history.WINDOW` turns carry their whole prompt). Empty if some turn has no
    token ids (an episode that errored before its policy produced tokens).

    Raises ValueError when `turn_advantages` does not have one value per turn (a reward
    module's bug: zip would otherwise silently leave the last turns untrained)."""
    sequences: list[Sequence] = []
    for turn, advantage in zip(trajectory.turns, turn_advantages, strict=True):
        if turn.token_ids is None or turn.prompt_token_ids is None or turn.logprobs is None:
            return []
        if not sequences or turn.token_layout == WINDOW:
            sequences.append(Sequence([], [], [], []))
        seq = sequences[-1]
        n_prompt, n_action = len(turn.prompt_token_ids), len(turn.token_ids)
        seq.ids += turn.prompt_token_ids + turn.token_ids
        seq.mask += [0] * n_prompt + [1] * n_action
        seq.advantages += [0.0] * n_prompt + [advantage] * n_action
        seq.rollout_logprobs += [0.0] * n_prompt + list(turn.logprobs)
    return [s for s in sequences if s.ids and any(s.mask)]


def trajectory_sequence(trajectory: Trajectory, turn_advantages: list[float]) -> Sequence | None:
    """The token sequence of a whole-chat rollout (`trajectory_sequences`'s one), or None
    if it has none. Raises ValueError for a history-window rollout, which has several."""
    sequences = trajectory_sequences(trajectory, turn_advantages)
    if len(sequences) > 1:
        raise ValueError("a history-window rollout has one sequence per turn: use trajectory_sequences")
    return sequences[0] if sequences else None


@dataclass
class Batch:
    input_ids: torch.Tensor  # [B, L], right-padded
    attention_mask: torch.Tensor  # [B, L]
    rows: torch.Tensor  # [N] batch row of each action token
    positions: torch.Tensor  # [N] its position in the row
    targets: torch.Tensor  # [N] its id
    advantages: torch.Tensor  # [N]
    rollout_logprobs: torch.Tensor  # [N]

    @property
    def n_tokens(self) -> int:
        return int(self.targets.numel())


def collate(sequences: list[Sequence], pad_id: int, device: torch.device | str = "cpu") -> Batch:
    width = max(len(s.ids) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(sequences), width), dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.bool)
    adv = torch.zeros((len(sequences), width))
    old = torch.zeros((len(sequences), width))
    for i, s in enumerate(sequences):
        n = len(s.ids)
        ids[i, :n] = torch.tensor(s.ids)
        attention[i, :n] = 1
        mask[i, :n] = torch.tensor(s.mask, dtype=torch.bool)
        adv[i, :n] = torch.tensor(s.advantages)
        old[i, :n] = torch.tensor(s.rollout_logprobs)
    mask[:, 0] = False  # the first token has nothing before it to predict it
    rows, positions = mask.nonzero(as_tuple=True)
    return Batch(ids.to(device), attention.to(device), rows.to(device), positions.to(device),
                 ids[rows, positions].to(device), adv[rows, positions].to(device), old[rows, positions].to(device))


def causal_lm_parts(model: Any) -> tuple[Any, Any]:
    """(decoder, lm_head) of a transformers causal LM, through a peft wrapper if any."""
    core = model.get_base_model() if hasattr(model, "get_base_model") else model
    return core.model, core.lm_head


def action_logprobs(model: Any, batch: Batch, temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(log-probability, entropy) of each action token under `model` at `temperature`.

    The vocabulary projection runs only at action positions, not over the whole
    sequence: most tokens of a multi-turn rollout are the environment's.
    """
    decoder, head = causal_lm_parts(model)
    hidden = decoder(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state
    logits = head(hidden[batch.rows, batch.positions - 1]).float() / temperature
    logp_all = torch.log_softmax(logits, dim=-1)
    logp = logp_all.gather(-1, batch.targets[:, None])[:, 0]
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp, entropy
