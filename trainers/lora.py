"""LoRA the PEFT way: adapters on a frozen base, saved with PEFT's `save_pretrained`
(adapter_config.json + adapter_model.safetensors) so that PEFT, vLLM's LoRA loader and
`hf:ADAPTER_DIR` all read them. The adapter records its base as the spec the base was
loaded from (a directory made absolute, a Hub id, a known name), so it loads anywhere
that spec does."""

from __future__ import annotations

from typing import Any

from agenthub.trainers.config import LoraConfig


def apply_lora(model: Any, lora: LoraConfig) -> Any:
    """`model` wrapped as a trainable PEFT LoRA model (adapter weights in float32, which
    PEFT keeps whatever the base's dtype, so their optimizer state is float32 too)."""
    from peft import LoraConfig as PeftLoraConfig, get_peft_model

    base = getattr(model.config, "_name_or_path", None) or None
    peft_config = PeftLoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                 target_modules=list(lora.target_modules), task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, peft_config)
    peft_model.peft_config["default"].base_model_name_or_path = base
    return peft_model
