"""What both vLLM engines (in-process and server) need and vLLM itself does not: the
trainer's weights in checkpoint naming, and log-probabilities at another temperature.
Importing it needs no vLLM, so a trainer can drive a remote server without installing it."""

from __future__ import annotations

from typing import Any

from agenthub.trainers.needs_torch import torch


def hf_weights(model: Any) -> list[tuple[str, torch.Tensor]]:
    """(name, tensor) pairs in Hugging Face checkpoint naming, as vLLM's loader reads them.

    A PEFT model gives its base weights with the active LoRA adapters merged in, computed
    out of place (W + scale * B @ A, in float32): merging into the base and unmerging again
    would leave bfloat16 base weights a rounding error off after every sync."""
    if not hasattr(model, "peft_config"):
        return list(model.state_dict().items())
    from peft.tuners.lora import LoraLayer

    base = model.get_base_model()
    deltas: dict[str, torch.Tensor] = {}
    for name, module in base.named_modules():
        if isinstance(module, LoraLayer):
            for adapter in module.active_adapters:
                if adapter in module.lora_A:
                    delta = module.get_delta_weight(adapter).detach().float()
                    key = f"{name}.weight"
                    deltas[key] = deltas[key] + delta if key in deltas else delta
    weights = []
    for name, tensor in base.state_dict().items():
        if "lora_" in name:
            continue
        name = name.replace(".base_layer.", ".")
        if name in deltas:
            tensor = (tensor.float() + deltas[name]).to(tensor.dtype)
        weights.append((name, tensor.detach()))
    return weights


def tempered_logprob(position: dict[int, float], token: int, tau: float) -> float:
    """log softmax(logits / tau)[token], from vLLM's prompt log-probabilities, which are at
    temperature 1 (`position`: token -> log-probability; the whole distribution when
    tau != 1). log_softmax is shift-invariant, so log-probabilities stand in for logits."""
    if tau == 1.0:
        return position[token]
    scaled = torch.tensor(list(position.values()), dtype=torch.float64) / tau
    return float(position[token] / tau - torch.logsumexp(scaled, 0))
