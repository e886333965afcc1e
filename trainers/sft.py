"""SFT warm-start: imitate demonstrations before RL (the SFT-then-RL recipe).

Demonstrations are trajectories, usually the oracle's on train tasks; only successful
ones are kept. Each is encoded with the same layout rollouts have (`ChatFormat.
conversation`: the model's own chat template, the prefix-preserving layout where that
template does not render incrementally, message text always as literal text) and the
loss is the mean negative log-likelihood of assistant tokens only, the same mask RL
uses, so SFT teaches exactly the tokens RL will later adjust.

A model made from scratch cannot read yet. `context_weight` > 0 adds a language-model
loss on the environment's tokens too (weighted, default off): predicting observations,
which repeat the names of rooms and objects, teaches the model to copy from its
context, which it needs to name the right object in a command.

With a history window (`rollout.history`, see `trainers.history`) each demonstrated step
is its own example, laid out as the policy will see that step.
"""

from __future__ import annotations

import random
import time
from typing import Any, Callable

from agenthub.trainers.needs_torch import torch

from agenthub.agents.oracle import OracleAgent
from agenthub.factory import make
from agenthub.progress import progress_bar
from agenthub.runner import Episode, run_episodes
from agenthub.suites import Task, load_suite
from agenthub.trainers.batch import Sequence, collate
from agenthub.trainers.chat import ChatFormat
from agenthub.trainers import distributed
from agenthub.trainers.config import SFTConfig
from agenthub.trainers.history import check_history, window
from agenthub.trainers.precision import make_optimizer
from agenthub.types import Message, Trajectory, read_trajectories


def demonstrations(cfg: SFTConfig, suite: str, concurrency: int = 4, progress: bool = True,
                   tasks: list[Task] | None = None) -> list[Trajectory]:
    """Successful trajectories: from `cfg.data`, or the oracle playing `tasks` (by
    default the suite's first `cfg.tasks` train tasks)."""
    if cfg.data:
        trajectories = read_trajectories(cfg.data)
    else:
        tasks = load_suite(suite, "train", limit=cfg.tasks) if tasks is None else tasks
        trajectories = run_episodes([Episode(t.env_id, t.seed, 0, t.kwargs) for t in tasks], OracleAgent(),
                                    concurrency=concurrency, progress="oracle demonstrations" if progress else None)
    return [t for t in trajectories if t.success]


def demonstration_sequences(trajectories: list[Trajectory], chat: ChatFormat, max_length: int,
                            context_weight: float = 0.0, history: int | None = None) -> list[Sequence]:
    """Token sequences of the demonstrations. SFT is policy gradient with advantage 1 on
    the demonstrated tokens, so a sequence's `advantages` are its per-token loss weights:
    1 on assistant tokens and `context_weight` on the rest (which then join the loss).

    `history` None: one sequence per demonstration, the whole chat. `history=K`: one per
    demonstrated step, that step's history-window prompt (`trainers.history.window`, what
    the policy sees when it acts) followed by the demonstrated answer."""
    history = check_history(history)
    tools_of: dict[str, Any] = {}
    sequences = []
    for t in trajectories:
        if t.env_id not in tools_of:
            env = make(t.env_id)
            tools_of[t.env_id] = env.tools
            env.close()
        tools, messages = tools_of[t.env_id], t.messages()
        if history is None:
            examples = [chat.conversation(messages, tools)]
        else:
            examples = [_step(chat, window(messages[:i], history), m, tools)
                        for i, m in enumerate(messages) if m.get("role") == "assistant"]
        for ids, mask in examples:
            ids, mask = ids[:max_length], mask[:max_length]
            if any(mask):
                weights = [1.0 if m else context_weight for m in mask]
                learned = mask if context_weight == 0 else [1] * len(ids)
                sequences.append(Sequence(ids, learned, weights, [0.0] * len(ids)))
    return sequences


def _step(chat: ChatFormat, context: list[Message], answer: Message,
          tools: list[Any] | None) -> tuple[list[int], list[int]]:
    """(ids, loss mask) of one step: the prompt as the policy encodes it, then the answer."""
    prompt, ids = chat.prompt(context, tools), chat.answer(context, answer, tools)
    return prompt + ids, [0] * len(prompt) + [1] * len(ids)


def train_sft(model: Any, tokenizer: Any, sequences: list[Sequence], cfg: SFTConfig, *, seed: int = 0,
              device: torch.device | str = "cpu", log: Callable[[dict[str, Any]], None] = lambda m: None,
              progress: bool = True) -> None:
    """Fit `model` to the sequences' assistant tokens; `log` gets one metrics dict per step.
    Under torchrun every rank holds all sequences and fits its share of each batch
    (`trainers.distributed`), normalised by the whole batch's weight: one step equals the
    one-process step."""
    from transformers import get_scheduler

    rng = random.Random(seed)
    steps_per_epoch = -(-len(sequences) // cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    optimizer = make_optimizer(model.parameters(), lr=cfg.lr)  # float32 state for bfloat16 weights
    scheduler = get_scheduler(_schedule_name(cfg.schedule), optimizer, num_warmup_steps=cfg.warmup_steps,
                              num_training_steps=total)
    model.train()
    distributed.wrap(model)  # under torchrun each rank fits its share of every batch
    step = 0
    with progress_bar(progress, "SFT", total) as advance:
        for epoch in range(cfg.epochs):
            for indices in length_bucketed_batches([len(s.ids) for s in sequences], cfg.batch_size, rng):
                t0 = time.perf_counter()
                (mine, share), = distributed.micro_batches(model, indices, len(indices))  # one process: all
                batch = collate([sequences[i] for i in mine], tokenizer.pad_token_id, device)
                logp, _ = distributed.logprobs(model, batch)
                weight = distributed.gather(float(batch.advantages.sum()) if share else 0.0)  # the whole batch's
                loss = -(batch.advantages * logp).sum() / weight
                optimizer.zero_grad(set_to_none=True)
                (loss * share).backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                scheduler.step()
                step += 1
                loss_value, tokens = distributed.gather((loss.item() if share else 0.0, batch.n_tokens if share else 0))
                log({"phase": "sft", "sft_step": step, "epoch": epoch, "loss": loss_value,
                     "grad_norm": float(grad_norm), "lr": scheduler.get_last_lr()[0], "tokens": tokens,
                     "step_time": time.perf_counter() - t0})
                advance(f"SFT loss {loss_value:.3f}")
    distributed.release(model)
    model.eval()


def length_bucketed_batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of similar-length sequences (sorted within windows of 8 batches),
    so little compute goes to padding."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = 8 * batch_size
    order = [i for w in range(0, len(order), window) for i in sorted(order[w:w + window], key=lengths.__getitem__)]
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def _schedule_name(schedule: str) -> str:
    return "constant_with_warmup" if schedule == "constant" else schedule

