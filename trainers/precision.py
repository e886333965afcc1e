"""Weight precision: which dtype the weights live in, and an optimizer whose state stays
float32 when they do not.

`dtype: bfloat16` keeps the model's weights in bfloat16 (half the memory of float32 for
the weights, and rollouts and forward/backward run in bfloat16). Trainable bfloat16
parameters are updated through float32 master copies that the optimizer owns, with
float32 Adam moments (`MasterWeightAdamW`): an update far smaller than a bfloat16 weight's
resolution (lr 1e-6 on a weight of 1.0, ~8e-3 apart) would otherwise round away. LoRA
adapters are float32 in any case (PEFT keeps them so), so LoRA on a bfloat16 base gets
plain AdamW with float32 state. `auto` is bfloat16 on a GPU that supports it, else float32.
"""

from __future__ import annotations

from typing import Any, Iterable

from agenthub.trainers.needs_torch import torch


def weights_dtype(name: str, device: torch.device) -> torch.dtype:
    """The dtype for a config's `dtype` ("auto", "float32", "bfloat16") on `device`."""
    if name == "bfloat16":
        return torch.bfloat16
    if name == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


class MasterWeightAdamW(torch.optim.AdamW):
    """AdamW over float32 copies of low-precision parameters.

    Backward fills the model parameters' gradients as usual; `step` casts them onto the
    float32 masters, steps there, and copies the masters back into the model.
    `zero_grad` clears both. `state_dict` carries the masters, so a resumed run continues
    from the exact float32 values, not from their bfloat16 rounding."""

    def __init__(self, params: Iterable[torch.nn.Parameter], **kwargs: Any):
        self.model_params = list(params)
        masters = [p.detach().to(torch.float32, copy=True).requires_grad_(True) for p in self.model_params]
        super().__init__(masters, **kwargs)

    def _pairs(self) -> list[tuple[torch.nn.Parameter, torch.Tensor]]:
        return list(zip(self.model_params, self.param_groups[0]["params"]))

    def zero_grad(self, set_to_none: bool = True) -> None:
        super().zero_grad(set_to_none)
        for p in self.model_params:
            p.grad = None

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        for p, master in self._pairs():
            master.grad = None if p.grad is None else p.grad.to(torch.float32)
        loss = super().step(closure)
        for p, master in self._pairs():
            p.copy_(master)
        return loss

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "master_params": [m.detach().clone() for _, m in self._pairs()]}

    @torch.no_grad()
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        masters = state.pop("master_params", None)
        super().load_state_dict(state)
        if masters is not None:
            for (p, master), saved in zip(self._pairs(), masters):
                master.copy_(saved)
                p.copy_(saved)


def make_optimizer(params: Iterable[torch.nn.Parameter], **kwargs: Any) -> torch.optim.Optimizer:
    """AdamW on the trainable `params` (keyword arguments as AdamW's): plain when they are
    all float32, over float32 master copies when any is not."""
    trainable = [p for p in params if p.requires_grad]
    if all(p.dtype == torch.float32 for p in trainable):
        return torch.optim.AdamW(trainable, **kwargs)
    return MasterWeightAdamW(trainable, **kwargs)
