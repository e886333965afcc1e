"""The policy-gradient loss on action tokens, and how token losses become one number.

Per token (PPO's clipped surrogate with separate low/high clip, as in DAPO):

    ratio = exp(logp - logp_old)
    loss  = max(-A * ratio, -A * clip(ratio, 1 - clip_low, 1 + clip_high))
            * w_tis                                    (truncated importance sampling)
            + kl_coef * k3(logp, logp_ref)             (optional, to a frozen reference)

`logp_old` is the trainer's log-probability before this step's updates; when the rollout
engine is a different implementation (vLLM), its log-probabilities differ slightly, and
w_tis = min(exp(logp_old - logp_rollout), cap) corrects for that mismatch.

Aggregation (token losses -> scalar), always over the whole step's batch, so gradient
accumulation over micro-batches equals one big batch:
- token-mean: sum / number of action tokens (long answers weigh more per sequence);
- seq-mean-token-sum-norm: sum / (sequences x a constant length), Dr.GRPO's unbiased
  normalisation (no per-sequence length division).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from agenthub.trainers.needs_torch import torch

Aggregation = Literal["token-mean", "seq-mean-token-sum-norm"]


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 estimator of KL(policy || reference), per token: always >= 0."""
    log_ratio = ref_logp - logp
    return torch.exp(log_ratio) - log_ratio - 1


def tis_weights(old_logp: torch.Tensor, rollout_logp: torch.Tensor, cap: float) -> torch.Tensor:
    return torch.exp(old_logp - rollout_logp).clamp(max=cap).detach()


@dataclass
class TokenLosses:
    loss: torch.Tensor  # per token
    clipped: torch.Tensor  # per token, 1.0 where the clipped branch was taken
    kl: torch.Tensor | None  # per token k3 to the reference


def clipped_policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, *,
                        clip_low: float, clip_high: float, weights: torch.Tensor | None = None,
                        ref_logp: torch.Tensor | None = None, kl_coef: float = 0.0) -> TokenLosses:
    ratio = torch.exp(logp - old_logp)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1 - clip_low, 1 + clip_high)
    loss = torch.maximum(unclipped, clipped)
    if weights is not None:
        loss = loss * weights
    kl = None
    if ref_logp is not None:
        kl = k3_kl(logp, ref_logp)
        loss = loss + kl_coef * kl
    return TokenLosses(loss, (clipped > unclipped).float(), kl)


def aggregation_denominator(aggregation: Aggregation, n_tokens: int, n_sequences: int, norm_length: int) -> float:
    """What the summed token losses of the whole batch are divided by."""
    if aggregation == "token-mean":
        return float(max(1, n_tokens))
    if aggregation == "seq-mean-token-sum-norm":
        return float(max(1, n_sequences) * norm_length)
    raise ValueError(f"unknown aggregation {aggregation!r} (token-mean, seq-mean-token-sum-norm)")
