"""What fits on one GPU for training: memory computed from parameter, gradient, optimizer
and activation sizes (computed, not measured), for Qwen2.5-0.5B / 1.5B / 7B shapes,
full fine-tuning and LoRA, float32 or bfloat16 weights, with and without gradient
checkpointing.

    python bench/memory.py [--gpu-gb 80] [--lora-r 8] [--json out.json]

Per parameter (what agenthub's trainer allocates, trainers/precision.py):
- full fine-tune, float32: weights 4 + gradients 4 + AdamW moments 8 = 16 bytes;
- full fine-tune, bfloat16: weights 2 + gradients 2 + float32 master copy 4 + moments 8
  = 16 bytes (the saving is in activations and speed, not in optimizer state);
- LoRA: the frozen base 2 (bf16) or 4 (fp32) bytes; the adapters (float32) 16 bytes each.
A KL reference model (loss.kl_coef > 0, full fine-tune only) adds one more copy of the
weights. Per token of a micro-batch, activations kept for backward: without checkpointing,
each layer's inputs to its matmuls, norms and activation function (flash/SDPA attention
keeps no seq x seq scores); with checkpointing only each layer's input, plus one layer
recomputed at a time; and the float32 logits, their log-softmax and its gradient over the
whole vocabulary (3 x V x 4 bytes, large for a 152k vocabulary). The table gives the
largest micro-batch in tokens (sequences x length) that fits after a 10% reserve for the
allocator and CUDA context. The rollout engine is not counted: vLLM sleeps during
updates (trainers/vllm_engine.py), and its KV cache is sized separately.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

GIB = 2**30


@dataclass(frozen=True)
class Shape:
    name: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    tied: bool

    @property
    def kv_dim(self) -> int:
        return self.hidden // self.heads * self.kv_heads

    def parameters(self) -> int:
        h, kv, i = self.hidden, self.kv_dim, self.intermediate
        attention = h * h * 2 + h * kv * 2 + h + kv * 2  # q, o; k, v; q/k/v biases (Qwen2)
        layer = attention + 3 * h * i + 2 * h  # gate, up, down; two RMSNorms
        embeddings = self.vocab * h * (1 if self.tied else 2)
        return self.layers * layer + embeddings + h

    def lora_parameters(self, r: int) -> int:
        """LoRA on q, k, v, o (agenthub's default target modules): r x (in + out) each."""
        h, kv = self.hidden, self.kv_dim
        return self.layers * r * ((h + h) * 2 + (h + kv) * 2)

    def activation_bytes_per_token(self, checkpointing: bool, bytes_per_value: int) -> float:
        h, kv, i = self.hidden, self.kv_dim, self.intermediate
        # saved per layer: 2 norm inputs + 2 norm outputs, q/k/v, attention output, the
        # MLP's gate, up, act(gate) and their product
        per_layer = (4 * h + h + 2 * kv + h + 4 * i) * bytes_per_value
        layers = self.layers * h * bytes_per_value + per_layer if checkpointing else self.layers * per_layer
        logits = 3 * self.vocab * 4
        return layers + logits


# Qwen2.5 (Instruct) configs, as published on the Hugging Face Hub
SHAPES = [
    Shape("0.5B (Qwen2.5-0.5B)", 896, 24, 14, 2, 4864, 151936, True),
    Shape("1.5B (Qwen2.5-1.5B)", 1536, 28, 12, 2, 8960, 151936, True),
    Shape("7B (Qwen2.5-7B)", 3584, 28, 28, 4, 18944, 152064, False),
]


def plan(shape: Shape, method: str, dtype: str, checkpointing: bool, gpu_gb: float, lora_r: int,
         kl: bool = False) -> dict[str, object]:
    """One row: state memory (GiB), activations per 1k tokens (GiB) and the largest
    micro-batch (tokens) that fits in `gpu_gb` (0 when the states alone do not)."""
    n = shape.parameters()
    weight_bytes = 2 if dtype == "bfloat16" else 4
    if method == "full":
        states = n * 16 + (n * weight_bytes if kl else 0)
    else:
        states = n * weight_bytes + shape.lora_parameters(lora_r) * 16
    per_token = shape.activation_bytes_per_token(checkpointing, weight_bytes)
    budget = gpu_gb * GIB * 0.9 - states
    return {"model": shape.name, "parameters_b": round(n / 1e9, 2), "method": method, "dtype": dtype,
            "checkpointing": checkpointing, "states_gib": round(states / GIB, 1),
            "activations_gib_per_1k_tokens": round(per_token * 1000 / GIB, 2),
            "max_tokens_per_micro_batch": max(0, int(budget // per_token))}


def table(gpu_gb: float = 80, lora_r: int = 8) -> list[dict[str, object]]:
    rows = []
    for shape in SHAPES:
        for method, dtype in (("full", "float32"), ("full", "bfloat16"), ("lora", "bfloat16")):
            for checkpointing in (False, True):
                rows.append(plan(shape, method, dtype, checkpointing, gpu_gb, lora_r))
    return rows


def markdown(rows: list[dict[str, object]], gpu_gb: float) -> str:
    lines = [f"| model | method | weights | grad. ckpt | weights+grads+optimizer | activations per 1k tokens "
             f"| largest micro-batch on {gpu_gb:g} GB |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        fits = f"{r['max_tokens_per_micro_batch']:,} tokens" if r["max_tokens_per_micro_batch"] else "does not fit"
        method = "full FT" if r["method"] == "full" else "LoRA"
        lines.append(f"| {r['model']} | {method} | {r['dtype']} | {'yes' if r['checkpointing'] else 'no'} "
                     f"| {r['states_gib']} GiB | {r['activations_gib_per_1k_tokens']} GiB | {fits} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gpu-gb", type=float, default=80)
    parser.add_argument("--lora-r", type=int, default=8)
    parser.add_argument("--json", default=None, help="also write the rows as JSON here")
    args = parser.parse_args()
    rows = table(args.gpu_gb, args.lora_r)
    print(f"Computed, not measured: training memory on one {args.gpu_gb:g} GB GPU (see bench/memory.py)\n")
    print(markdown(rows, args.gpu_gb))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
