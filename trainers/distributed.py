"""Data-parallel training on N processes through torch.distributed (DDP).

    torchrun --standalone --nproc_per_node 8 -m agenthub train CONFIG --out DIR

torchrun starts N copies of the trainer and sets WORLD_SIZE, RANK and LOCAL_RANK;
`session` joins them into one process group (NCCL on GPUs, one GPU per LOCAL_RANK;
gloo on CPUs). Without torchrun (WORLD_SIZE unset or 1) every function here is the
identity and the trainer runs exactly as on one process.

How an RL step is shared (see `grpo.rl`):
- every rank picks the same tasks (a function of seed and step) and plays a contiguous
  block of whole groups (`shard`), so a group's baseline never needs another rank;
- each rank scores its own groups, then `gather` hands every rank the step's whole
  result in the order one process would have produced it (rank-major = task order), so
  every rank sees the same sequences, metrics and stop decisions;
- `policy_update` cuts the same minibatches on every rank; each rank runs the forward and
  backward of its share of each minibatch (`micro_batches`), through
  `DistributedDataParallel` (`wrap`, `logprobs`), which averages the gradients across
  ranks; each rank's loss is scaled by the world size over the whole minibatch's
  denominator, so the summed gradient is exactly the one-process gradient;
- ranks with fewer micro-batches than others run a zero-weight one, since DDP needs
  every rank in every gradient exchange; a non-finite loss anywhere skips the update on
  all ranks (`all_true`).

SFT is shared the same way: every rank holds all demonstrations and fits its share of
each batch (`sft.train_sft`).

Weights, optimizer state and RNG state are identical on every rank (the same seed, the
same averaged gradients; DDP broadcasts rank 0's weights when it wraps the model; the
rollouts' sampling is seeded per request, not by the global RNG), so rank 0 alone writes
checkpoints, in the one-process format, and every rank restores them: a run saved at one
world size resumes at any other. Rank 0 alone writes metrics (the step's totals; times,
memory and overlap staleness are rank 0's own), rollouts (the whole step, one file),
model/, evaluations (the others wait) and the report.

Not on several processes: the vLLM engines (`check_supported` refuses them).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
from dataclasses import dataclass
from typing import Any, Iterator, TypeVar

from agenthub.trainers.needs_torch import torch

from agenthub.errors import AgentHubError
from agenthub.trainers.batch import Batch, action_logprobs

T = TypeVar("T")

# rank 0 evaluates between steps while the others wait in the next step's gather; NCCL's
# default 10 minutes would kill a run whose evaluation takes longer
TIMEOUT = datetime.timedelta(hours=2)


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0


def world() -> World:
    """This process's place in the process group (rank 0 of 1 outside torchrun)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return World()
    return World(torch.distributed.get_rank(), torch.distributed.get_world_size(),
                 int(os.environ.get("LOCAL_RANK", "0")))


def is_main() -> bool:
    """True on the one process that writes the run directory (rank 0)."""
    return world().rank == 0


@contextlib.contextmanager
def session() -> Iterator[World]:
    """The process group of a torchrun launch (WORLD_SIZE > 1), torn down on exit; outside
    torchrun, or when a group already exists, nothing happens.

    Raises AgentHubError when the group cannot be formed (torch built without
    distributed support, fewer GPUs than local ranks, an unreachable MASTER_ADDR)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1 or (torch.distributed.is_available() and torch.distributed.is_initialized()):
        yield world()
        return
    if not torch.distributed.is_available():
        raise AgentHubError("WORLD_SIZE > 1 but this torch has no torch.distributed")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    if cuda:
        if local_rank >= torch.cuda.device_count():
            raise AgentHubError(f"local rank {local_rank} has no GPU ({torch.cuda.device_count()} visible): "
                                "start at most one process per GPU (--nproc_per_node)")
        torch.cuda.set_device(local_rank)
    try:
        torch.distributed.init_process_group("nccl" if cuda else "gloo", timeout=TIMEOUT)
    except (RuntimeError, ValueError) as e:
        raise AgentHubError(f"could not join the torch.distributed process group: {' '.join(str(e).split())}") from e
    try:
        yield world()
    finally:
        torch.distributed.destroy_process_group()


def device() -> torch.device:
    """Where this process trains: its own GPU (cuda:LOCAL_RANK) under torchrun, the GPU on
    one process, else the CPU."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    w = world()
    return torch.device("cuda", w.local_rank) if w.size > 1 else torch.device("cuda")


def check_supported(cfg: Any) -> None:
    """Raises AgentHubError for what does not run on several processes: the vLLM engines
    (each rank would start, or push weights to, its own copy of the same engine)."""
    w = world()
    if w.size > 1 and cfg.rollout.engine != "hf":
        raise AgentHubError(f"rollout.engine {cfg.rollout.engine} runs with one trainer process, not {w.size}: "
                            "use rollout.engine=hf with torchrun, or train on one process")


def barrier() -> None:
    """Wait for every rank (e.g. until rank 0 has written what the others read)."""
    if world().size > 1:
        torch.distributed.barrier()


def shard(items: list[T]) -> list[T]:
    """This rank's contiguous block of `items` (block sizes differ by at most one; a
    rank gets none when there are fewer items than ranks). Concatenated in rank order,
    the blocks are `items`, which is what `gather` relies on to restore their order."""
    w = world()
    return items[len(items) * w.rank // w.size:len(items) * (w.rank + 1) // w.size]


def gather(value: T) -> T:
    """Every rank's `value` merged, on every rank: lists concatenated in rank order,
    numbers summed, dicts merged key by key (values summed), tuples and dataclasses
    field by field. The identity on one process.

    Raises TypeError for a value of another kind."""
    w = world()
    if w.size == 1:
        return value
    values: list[Any] = [None] * w.size
    torch.distributed.all_gather_object(values, value)
    return _merge(values)


def _merge(values: list[Any]) -> Any:
    first = values[0]
    if isinstance(first, list):
        return [item for v in values for item in v]
    if isinstance(first, (int, float)) and not isinstance(first, bool):
        return sum(values)
    if isinstance(first, dict):
        return {k: _merge([v[k] for v in values if k in v]) for k in dict.fromkeys(k for v in values for k in v)}
    if isinstance(first, tuple):
        return tuple(_merge(list(column)) for column in zip(*values))
    if dataclasses.is_dataclass(first) and not isinstance(first, type):
        return type(first)(**{f.name: _merge([getattr(v, f.name) for v in values])
                              for f in dataclasses.fields(first) if f.init})
    raise TypeError(f"cannot merge values of type {type(first).__name__} across ranks")


def all_true(flag: bool) -> bool:
    """True when `flag` is true on every rank (a collective: every rank must call it)."""
    if world().size == 1:
        return flag
    t = torch.tensor([int(flag)], device=device())
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MIN)
    return bool(t.item())


# --- the model under DistributedDataParallel -------------------------------------------------

class _ActionLogprobs(torch.nn.Module):
    """The policy with `action_logprobs` as its forward, so DDP's forward (which arms the
    gradient exchange) runs the same vocabulary projection at action tokens only."""

    def __init__(self, policy: Any):
        super().__init__()
        self.policy = policy

    def forward(self, batch: Batch, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
        return action_logprobs(self.policy, batch, temperature)


# the DDP wrapper of each wrapped policy; the policy itself stays what the rest of the
# trainer holds (generation, checkpoints and LoRA calls use it directly). A wrapper refers
# to its policy, so an entry lives until `release` (or the process) ends it.
_wrappers: dict[Any, Any] = {}


def wrap(model: Any) -> None:
    """Put `model` under DistributedDataParallel for `logprobs` and `micro_batches`
    (a collective: every rank calls it, and rank 0's weights are copied to all ranks).
    Nothing happens on one process."""
    w = world()
    if w.size == 1 or model in _wrappers:
        return
    ids = [w.local_rank] if next(model.parameters()).device.type == "cuda" else None
    # no buffer broadcast each forward: the policy's buffers (rotary tables) are constants;
    # gradients as views of DDP's buckets: no second copy of them
    _wrappers[model] = torch.nn.parallel.DistributedDataParallel(_ActionLogprobs(model), device_ids=ids,
                                                                 forward_sync_buffers=False,
                                                                 gradient_as_bucket_view=True)


def release(model: Any) -> None:
    """Drop `model`'s DDP wrapper (and its gradient buckets), e.g. after SFT, before RL
    wraps the LoRA model; nothing happens for a model that has none."""
    _wrappers.pop(model, None)


def logprobs(model: Any, batch: Batch, temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """`action_logprobs`, through the DDP wrapper when `model` has one (so its backward
    exchanges gradients)."""
    wrapper = _wrappers.get(model)
    return wrapper(batch, temperature) if wrapper is not None else action_logprobs(model, batch, temperature)


def micro_batches(model: Any, minibatch: list[int], size: int) -> Iterator[tuple[list[int], float]]:
    """(micro-batch, loss weight) pairs of this rank's share of `minibatch` (indices of
    sequences every rank holds), `size` sequences at most each.

    On one process: `minibatch` cut in order, weight 1. Under DDP: rank r's share is
    minibatch[r::N] with weight N (DDP averages the ranks' gradients; times N they sum
    to the one-process gradient); every rank yields as many pairs as the busiest one,
    padding with a zero-weight micro-batch, and gradients are exchanged only in the
    backward of the last pair (DDP's `no_sync` for the others)."""
    wrapper, w = _wrappers.get(model), world()
    if wrapper is None:
        for start in range(0, len(minibatch), size):
            yield minibatch[start:start + size], 1.0
        return
    mine = minibatch[w.rank::w.size]
    parts = [(mine[start:start + size], float(w.size)) for start in range(0, len(mine), size)]
    largest_share = -(-len(minibatch) // w.size)  # rank 0's
    busiest = -(-largest_share // size)
    parts += [(minibatch[:1], 0.0)] * (busiest - len(parts))
    for index, part in enumerate(parts):
        with wrapper.no_sync() if index < len(parts) - 1 else contextlib.nullcontext():
            yield part
