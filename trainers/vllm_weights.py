"""What both vLLM engines (in-process and server) need and vLLM itself does not: the
trainer's weights in checkpoint naming, and log-probabilities at another temperature.
Importing it needs no vLLM, so a trainer can drive a remote server without installing it."""

from __future__ import annotations

from typing import Any

import torch


def hf_weights(model: Any) -> list[tuple[str, torch.Tensor]]:
    """(name, tensor) pairs in Hugging Face checkpoint naming, as vLLM's loader reads them.
    A PEFT model gives its base weights with the adapters merged in."""
    if not hasattr(model, "merge_adapter"):
        return list(model.state_dict().items())
    model.merge_adapter()
    try:
        return [(name.replace(".base_layer.", "."), tensor.detach().clone())
                for name, tensor in model.get_base_model().state_dict().items() if "lora_" not in name]
    finally:
        model.unmerge_adapter()


def tempered_logprob(position: dict[int, float], token: int, tau: float) -> float:
    """log softmax(logits / tau)[token], from vLLM's prompt log-probabilities, which are at
    temperature 1 (`position`: token -> log-probability; the whole distribution when
    tau != 1). log_softmax is shift-invariant, so log-probabilities stand in for logits."""
    if tau == 1.0:
        return position[token]
    scaled = torch.tensor(list(position.values()), dtype=torch.float64) / tau
    return float(position[token] / tau - torch.logsumexp(scaled, 0))
