"""The training loop: SFT warm-start (optional), then GRPO / RLOO / Dr.GRPO on a task suite.

Read `train` top to bottom; it is the whole algorithm. One RL step:

1. pick `tasks_per_step` train tasks and play each `group_size` times with the current
   policy through the core rollout runner (concurrent episodes, one batched forward
   pass per round of turns), keeping the sampled token ids and log-probabilities;
2. score each group with the configured reward module (per-turn rewards);
3. turn rewards into per-turn advantages (trajectory or turn level), drop groups whose
   advantages are all zero (they carry no signal) and count them;
4. lay each rollout out as one token sequence with its loss mask (sampled tokens only)
   and per-token advantage, and take clipped policy-gradient steps on them;
5. log `metrics.jsonl`, evaluate and checkpoint when due.

Nothing that is not the policy's doing may teach it, and nothing non-finite may reach
the weights:
- a rollout that ended in `error` or `timeout` (an env crash, a hung container) is taken
  out of its group before scoring, so it is neither trained on nor part of the baseline;
  a group left with fewer than two rollouts is dropped; they are counted
  (`rollouts_failed`, `groups_dropped`), and `rollout.max_failed_steps` consecutive
  steps in which most episodes failed stop the run with one line;
- a rollout with a non-finite reward is taken out the same way (`rewards_nonfinite`), a
  group with a non-finite advantage is dropped (`groups_nonfinite`), a sequence with a
  non-finite sampling log-probability too (`logprobs_nonfinite`);
- an update whose loss or gradient norm is not finite is skipped before it touches the
  weights (`updates_nonfinite`), and a checkpoint is never written from non-finite weights.
The LR schedule runs on RL steps, not on a planned update count (see `schedule`).

With `rollout.max_staleness` = k >= 1, part 1 overlaps the others: a background producer
plays the rollouts of steps n+1..n+k while step n trains (`async_rollouts`), from its own
copy of the weights, which takes the trainer's weights after each update without
stopping episodes in flight (their next turns use the new weights). Every turn records
the policy version (RL steps taken) that sampled it; before scoring, a step drops the
rollouts with a turn more than k versions behind its weights (`samples_stale_dropped`)
and logs `staleness_mean` / `staleness_max`; the loss's ratio (or, with `loss.tis_cap`,
its truncated importance weight) is against the behaviour log-probabilities. k = 0 is
the strictly alternating loop above, unchanged.

Under torchrun (`trainers.distributed`) N processes share each step: each plays a block
of whole groups, every rank then holds the whole step, and DDP sums the gradients of
the ranks' shares of each minibatch, so a step equals the one-process step; rank 0
alone writes the run directory.

A run directory holds config.yaml, metrics.jsonl, rollouts/, checkpoints/, model/ (the
final model, a Hugging Face directory), sft/ (the model after SFT), eval/<mode>/ and
report.html.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import random
import resource
import time
import zlib
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
from agenthub.trainers.needs_torch import torch
import yaml

from agenthub.errors import AgentHubError
from agenthub.evaluation import evaluate
from agenthub.factory import make
from agenthub.progress import progress_bar
from agenthub.runner import Episode, run_episodes
from agenthub.suites import Task, get_suite, load_suite
from agenthub.trainers import checkpoint as ckpt
from agenthub.trainers.async_rollouts import OverlappedRollouts, VersionedEngine, fresh_groups
from agenthub.trainers.advantages import is_zero_variance, trajectory_advantages, turn_advantages
from agenthub.trainers.batch import Sequence, action_logprobs, collate, trajectory_sequences
from agenthub.trainers.config import TrainConfig, to_dict
from agenthub.trainers import distributed
from agenthub.trainers.engine import Engine, HFEngine
from agenthub.trainers.lora import apply_lora
from agenthub.trainers.losses import aggregation_denominator, clipped_policy_loss, k3_kl, tis_weights
from agenthub.trainers.policy import PolicyAgent
from agenthub.trainers.precision import make_optimizer, weights_dtype
from agenthub.trainers.schedule import StepSchedule
from agenthub.trainers.sft import demonstration_sequences, demonstrations, train_sft
from agenthub.trainers.tracking import MetricsLog
from agenthub.types import Trajectory, write_trajectories

FAILED_STOP_REASONS = ("error", "timeout")  # the infrastructure failed, not the policy


def train(cfg: TrainConfig, out: str | Path, *, resume: bool = False, progress: bool = True,
          ray: str | None = None) -> dict[str, Any]:
    """Run the whole recipe; return the final evaluation results by mode. `ray`: a Ray
    address (or "local") to play the envs on Ray actors; the model stays here."""
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not resume and (out / "metrics.jsonl").exists():
        raise AgentHubError(f"{out} already holds a run: pass --resume to continue it, or choose another --out")
    distributed.barrier()  # under torchrun: every rank has looked before rank 0 writes
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    get_suite(cfg.suite)  # an unknown suite fails here, before any work
    seed_everything(cfg.seed)
    device = distributed.device()  # under torchrun: this rank's GPU
    autocast = _autocast(cfg.dtype, device)
    log = MetricsLog(out / "metrics.jsonl", [r for r in cfg.report_to if r != "tensorboard" or cfg.tensorboard],
                     to_dict(cfg)) if distributed.is_main() else MetricsLog(Path(os.devnull))  # rank 0 logs
    model, tokenizer = load_policy(cfg, device)

    # --- SFT warm-start ------------------------------------------------------------------
    sft_dir = out / "sft"
    if cfg.sft is not None and (cfg.sft.tasks or cfg.sft.data):
        if resume and (sft_dir / "config.json").exists():
            model, tokenizer = ckpt.load_model(sft_dir, device, weights_dtype(cfg.dtype, device))
        else:
            from agenthub.trainers.chat import ChatFormat
            demos = demonstrations(cfg.sft, cfg.suite, progress=progress)
            if not demos:
                raise AgentHubError("SFT found no successful demonstrations")
            sequences = demonstration_sequences(demos, ChatFormat(tokenizer), cfg.sft.max_length,
                                                cfg.sft.context_weight, cfg.rollout.history)
            with autocast:
                train_sft(model, tokenizer, sequences, cfg.sft, seed=cfg.seed, device=device, log=log.write,
                          progress=progress)
            if distributed.is_main():  # every rank holds the same weights: one copy
                ckpt.save_model(model, tokenizer, sft_dir, policy_of(cfg))

    # --- RL --------------------------------------------------------------------------------
    if cfg.steps > 0:
        model = rl(cfg, out, model, tokenizer, device, autocast, log, resume=resume, progress=progress, ray=ray)
    if not distributed.is_main():  # rank 0 alone saves the final model, evaluates and reports
        log.close()
        return {}
    model = ckpt.save_final(model, tokenizer, out, merge=cfg.lora.merge if cfg.lora is not None else True,
                            policy=policy_of(cfg))
    results = {}
    if cfg.eval is not None:
        engine = HFEngine(model, tokenizer.eos_token_id, tokenizer.pad_token_id)
        results = run_eval(cfg, engine, tokenizer, out / "eval", progress=progress, ray=ray)
        log.write({"phase": "eval", **{f"eval/{m}/success": r["success_rate"] for m, r in results.items()}})
    log.close()
    from agenthub.trainers.report import write_train_report
    write_train_report(out)
    return results


def rl(cfg: TrainConfig, out: Path, model: Any, tokenizer: Any, device: torch.device,
       autocast: contextlib.AbstractContextManager, log: MetricsLog, *, resume: bool, progress: bool,
       ray: str | None = None) -> Any:
    """The GRPO / RLOO / Dr.GRPO steps; returns the trained model.

    Raises AgentHubError when `rollout.max_failed_steps` consecutive steps had most of
    their episodes fail, or when the weights are found non-finite at a checkpoint."""
    from agenthub.rewards import from_config
    from agenthub.trainers.answer_scorer import HFAnswerScorer

    if cfg.lora is not None:
        model = apply_lora(model, cfg.lora)
    if cfg.gradient_checkpointing:  # non-reentrant: works with a frozen (LoRA) base
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    reference = None
    if cfg.loss.kl_coef > 0 and cfg.lora is None:
        reference = copy.deepcopy(model).eval().requires_grad_(False)
    optimizer = make_optimizer(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay,
                               betas=cfg.optim.betas)
    scheduler = StepSchedule(optimizer, cfg.optim.schedule, cfg.optim.warmup_steps, cfg.steps)
    start = 0
    latest = ckpt.latest_checkpoint(out) if resume else None
    if latest is not None:
        state = ckpt.load_trainer_state(latest)
        ckpt.load_checkpoint_weights(model, latest)
        optimizer.load_state_dict(state["optimizer"])
        ckpt.set_rng_state(state["rng"])
        start = state["step"]
        scheduler.at(start)  # the schedule's clock is the step count itself
    distributed.wrap(model)  # under torchrun: DDP exchanges the updates' gradients

    reward_fn = from_config(cfg.reward, scorer=HFAnswerScorer(model, tokenizer))
    tasks = load_suite(cfg.suite, "train")
    if cfg.rollout.task_range is not None:
        tasks = tasks[slice(*cfg.rollout.task_range)]
    if not tasks:
        raise AgentHubError(f"suite {cfg.suite!r} has no train tasks"
                            + (f" in rollout.task_range {list(cfg.rollout.task_range)}" if cfg.rollout.task_range
                               else ""))

    with contextlib.ExitStack() as stack:
        engine = make_engine(cfg, model, tokenizer, autocast)
        if hasattr(engine, "close"):
            stack.callback(engine.close)
        if cfg.rollout.max_staleness:  # overlapped rollouts: one engine call at a time, versioned weights
            engine = VersionedEngine(engine, version=start)
        agent = PolicyAgent(engine, tokenizer, mode=cfg.rollout.mode, temperature=cfg.rollout.temperature,
                            max_new_tokens=cfg.rollout.max_new_tokens, max_context=cfg.rollout.max_context,
                            check_tokens=cfg.check_tokens, name="policy", history=cfg.rollout.history,
                            tool_parser=cfg.rollout.tool_parser)
        make_env = make
        if ray:
            from agenthub.ray_runner import RayEnvPool
            make_env = stack.enter_context(RayEnvPool(ray, size=cfg.rollout.concurrency)).make
        overlap = None if not cfg.rollout.max_staleness else stack.enter_context(OverlappedRollouts(
            lambda s: play_step(cfg, tasks, s, agent, make_env), engine, agent, start + 1, cfg.steps,
            cfg.rollout.max_staleness))
        advance = stack.enter_context(progress_bar(progress, "RL", cfg.steps))
        for _ in range(start):
            advance("RL (resumed)")
        failing_steps = 0  # consecutive steps in which most episodes failed
        for step in range(start + 1, cfg.steps + 1):
            t0 = time.perf_counter()
            # 1. rollouts: G samples of each task, every episode through the core runner
            model.eval()
            if overlap is not None:  # played in the background while earlier steps trained
                played = overlap.take(step)
                trajectories, rollout_s, step_tokens = played.trajectories, played.seconds, played.tokens
                overlap_metrics = {"rollout_wait": time.perf_counter() - t0}
            else:
                tokens_before = agent.generated_tokens
                trajectories = play_step(cfg, tasks, step, agent, make_env)
                rollout_s = time.perf_counter() - t0
                step_tokens, overlap_metrics = agent.generated_tokens - tokens_before, {}
            # 2-3. rewards per turn, advantages per turn; failed, non-finite and zero-variance out
            groups = [trajectories[i:i + cfg.rollout.group_size]
                      for i in range(0, len(trajectories), cfg.rollout.group_size)]
            if overlap is not None:  # the bound the loss relies on: nothing more than k versions old
                groups, staleness = fresh_groups(groups, step, cfg.rollout.max_staleness)
                overlap_metrics.update(staleness)
            scored = score_groups(cfg, reward_fn, groups)
            # under torchrun every rank takes the whole step from here on, in task order
            trajectories, groups, scored, step_tokens = distributed.gather((trajectories, groups, scored, step_tokens))
            sequences = scored.sequences
            if distributed.is_main():
                write_trajectories(out / "rollouts" / f"step-{step:06d}.jsonl", trajectories)
            # 4. policy-gradient updates
            t1 = time.perf_counter()
            if hasattr(engine, "sleep"):  # vLLM on a GPU: free its memory for the update
                engine.sleep()
            model.train()
            update = policy_update(cfg, model, reference, optimizer, scheduler, sequences, step, autocast, device)
            model.eval()
            engine.load_weights(model)
            # 5. metrics, evaluation, checkpoint
            metrics = {
                "phase": "rl", "step": step,
                # null (NaN) when no group kept two rollouts
                "reward_mean": float(np.mean(scored.returns)) if scored.returns else math.nan,
                "reward_std": float(np.std(scored.returns)) if scored.returns else math.nan,
                "success_rate": float(np.mean([t.success for t in trajectories])),
                "mean_turns": float(np.mean([len(t.turns) for t in trajectories])),
                "context_overflows": sum(t.stop_reason == "context_overflow" for t in trajectories),
                **scored.counts(len(groups)),
                "sequences": len(sequences),
                "generation_tokens_per_s": step_tokens / max(rollout_s, 1e-9), **overlap_metrics,
                "rollout_time": rollout_s, "update_time": time.perf_counter() - t1,
                "lr": scheduler.get_last_lr()[0], "peak_memory_gb": peak_memory_gb(device),
                **update, **_mean_dicts(scored.reward_metrics),
            }
            if cfg.check_tokens:
                metrics["token_mismatches"] = agent.token_mismatches
            if (cfg.eval is not None and cfg.eval.every and step % cfg.eval.every == 0 and step < cfg.steps
                    and distributed.is_main()):
                results = run_eval(cfg, engine, tokenizer, out / "eval" / f"step-{step:06d}", progress=False,
                                   ray=ray)
                metrics.update({f"eval/{m}/success": r["success_rate"] for m, r in results.items()})
            metrics["step_time"] = time.perf_counter() - t0
            log.write(metrics)
            failing_steps = failing_steps + 1 if 2 * scored.rollouts_failed > len(trajectories) else 0
            if cfg.rollout.max_failed_steps and failing_steps >= cfg.rollout.max_failed_steps:
                raise AgentHubError(failure_stop_line(step, failing_steps, trajectories))
            if (cfg.save_every and step % cfg.save_every == 0) or step == cfg.steps:
                check_finite_weights(model, step)
                ckpt.save_checkpoint(out, step, model, tokenizer, optimizer, scheduler,
                                     {"config": to_dict(cfg)}, keep=cfg.keep_checkpoints, policy=policy_of(cfg))
            advance(f"RL reward {metrics['reward_mean']:.2f} "
                    f"success {metrics['success_rate']:.2f} peak memory {metrics['peak_memory_gb']:.2f} GB")
    return model


def policy_of(cfg: TrainConfig) -> dict[str, Any]:
    """What a saved model records of how its rollouts were played (`ckpt.POLICY_SETTINGS`),
    so that `hf:DIR` prompts it as training did."""
    return {k: getattr(cfg.rollout, k) for k in ckpt.POLICY_SETTINGS}


def step_tasks(tasks: list[Task], seed: int, step: int, tasks_per_step: int) -> list[Task]:
    """The train tasks of one RL step: a function of (seed, step) alone, so a resumed run
    plays the same tasks as an uninterrupted one."""
    return random.Random(f"{seed}:{step}").sample(tasks, min(tasks_per_step, len(tasks)))


def play_step(cfg: TrainConfig, tasks: list[Task], step: int, agent: PolicyAgent, make_env: Any) -> list[Trajectory]:
    """Step `step`'s rollouts: G samples of each of its tasks, group by group, sampled
    with per-request seeds that depend on (seed, step) alone."""
    chosen = step_tasks(tasks, cfg.seed, step, cfg.rollout.tasks_per_step)
    # under torchrun, this rank's block of whole groups (`distributed.shard`)
    episodes = [Episode(t.env_id, t.seed, k, t.kwargs) for t in distributed.shard(chosen)
                for k in range(cfg.rollout.group_size)]
    agent.seed = zlib.crc32(f"{cfg.seed}:{step}".encode())
    return run_episodes(episodes, agent, concurrency=cfg.rollout.concurrency, timeout=cfg.rollout.timeout,
                        make_env=make_env)


def make_engine(cfg: TrainConfig, model: Any, tokenizer: Any, autocast: contextlib.AbstractContextManager) -> Any:
    """The rollout engine: transformers on the live model, or vLLM fed its weights (in this
    process, or a `vllm serve` elsewhere that the weights are pushed to)."""
    if cfg.rollout.engine == "vllm-server":
        if not cfg.rollout.server:
            raise AgentHubError("rollout.engine=vllm-server needs rollout.server=URL of a running `vllm serve`")
        from agenthub.trainers.vllm_server import VLLMServerEngine
        engine = VLLMServerEngine(cfg.rollout.server, tokenizer.eos_token_id, weights_dir=cfg.rollout.weights_dir)
        engine.load_weights(model)  # the server may hold other weights than the run's starting point
        return engine
    if cfg.rollout.engine == "vllm":
        try:
            from agenthub.trainers.vllm_engine import VLLMEngine
        except ImportError as e:
            raise AgentHubError(str(e)) from e
        return VLLMEngine.from_model(model, tokenizer, seed=cfg.seed, max_model_len=cfg.rollout.max_context)
    return HFEngine(model, tokenizer.eos_token_id, tokenizer.pad_token_id, autocast=autocast)


def advantages_of(cfg: TrainConfig, rewards: list[list[float]]) -> list[list[float]]:
    a = cfg.algorithm
    if a.turn_level:
        return turn_advantages(rewards, a.estimator, a.pooling, a.gamma)
    return trajectory_advantages(rewards, a.estimator)


@dataclass
class StepScores:
    """What one step's groups give the update, and what was left out of it and why."""

    sequences: list[Sequence] = field(default_factory=list)
    returns: list[float] = field(default_factory=list)  # total reward of each scored rollout
    reward_metrics: list[dict[str, float]] = field(default_factory=list)
    rollouts_failed: int = 0  # stop reason error/timeout: out of the loss and the baseline
    rewards_nonfinite: int = 0  # rollouts taken out for a NaN/inf reward
    groups_dropped: int = 0  # groups left with fewer than two rollouts
    groups_nonfinite: int = 0  # groups whose advantages were not finite
    zero_variance: int = 0  # groups whose advantages were all zero
    logprobs_nonfinite: int = 0  # sequences with a NaN/inf sampling log-probability

    def counts(self, n_groups: int) -> dict[str, float]:
        """The per-step metrics of what was left out."""
        return {"rollouts_failed": self.rollouts_failed, "rewards_nonfinite": self.rewards_nonfinite,
                "groups_dropped": self.groups_dropped, "groups_nonfinite": self.groups_nonfinite,
                "logprobs_nonfinite": self.logprobs_nonfinite,
                "zero_variance_share": self.zero_variance / max(1, n_groups)}


def score_groups(cfg: TrainConfig, reward_fn: Any, groups: list[list[Trajectory]]) -> StepScores:
    """Rewards, advantages and training sequences of one step's groups (G rollouts of a task
    each). Failed rollouts and rollouts with non-finite rewards leave their group before it
    is scored, so the baseline is the other rollouts'; the group is re-scored without them
    (a reward module may use group statistics)."""
    out = StepScores()
    for group in groups:
        kept = [t for t in group if t.stop_reason not in FAILED_STOP_REASONS]
        out.rollouts_failed += len(group) - len(kept)
        rewards: list[list[float]] = []
        while len(kept) >= 2:
            rewards = reward_fn(kept)
            finite = [i for i, r in enumerate(rewards) if all(math.isfinite(x) for x in r)]
            if len(finite) == len(kept):
                break
            out.rewards_nonfinite += len(kept) - len(finite)
            kept = [kept[i] for i in finite]
        if len(kept) < 2:
            out.groups_dropped += 1
            continue
        out.reward_metrics.append(dict(reward_fn.metrics))
        out.returns += [sum(r) for r in rewards]
        advantages = advantages_of(cfg, rewards)
        if not all(math.isfinite(a) for per_turn in advantages for a in per_turn):
            out.groups_nonfinite += 1  # finite rewards can still overflow a mean or a std
            continue
        if is_zero_variance(advantages):
            out.zero_variance += 1
            continue
        for trajectory, advantage in zip(kept, advantages):
            sequences = trajectory_sequences(trajectory, advantage)
            if not all(math.isfinite(x) for s in sequences for x in s.rollout_logprobs):
                out.logprobs_nonfinite += 1
                continue
            out.sequences += sequences
    return out


def failure_stop_line(step: int, failing_steps: int, trajectories: list[Trajectory]) -> str:
    """The one line a run stops with when rollouts keep failing: how many, and the first error."""
    failed = [t for t in trajectories if t.stop_reason in FAILED_STOP_REASONS]
    first = next((t.error.strip().splitlines()[0] for t in failed if t.error and t.error.strip()), "no message")
    return (f"stopped at RL step {step}: most episodes failed (error/timeout) in {failing_steps} consecutive "
            f"steps ({len(failed)} of {len(trajectories)} in the last; first: {first}); fix the environment, "
            "or raise rollout.max_failed_steps (0 never stops)")


def check_finite_weights(model: Any, step: int) -> None:
    """Raises AgentHubError if any trainable parameter is NaN/inf, so no checkpoint holds one."""
    for name, parameter in model.named_parameters():
        if parameter.requires_grad and not bool(torch.isfinite(parameter).all()):
            raise AgentHubError(f"parameter {name} is not finite after RL step {step}; no checkpoint written")


def minibatch_split(order: list[int], minibatches: int) -> list[list[int]]:
    """`order` cut into min(minibatches, len(order)) contiguous minibatches whose sizes
    differ by at most one (5 into 4: 2, 1, 1, 1), so a step takes the updates it says."""
    k = min(minibatches, len(order))
    size, extra = divmod(len(order), k) if k else (0, 0)
    parts, begin = [], 0
    for i in range(k):
        end = begin + size + (i < extra)
        parts.append(order[begin:end])
        begin = end
    return parts


# token-weighted diagnostics of the update, logged as sum over tokens / tokens
TOKEN_STATS = ("entropy", "kl", "ratio", "clip_fraction", "tis_weight")


def policy_update(cfg: TrainConfig, model: Any, reference: Any, optimizer: Any, scheduler: StepSchedule,
                  sequences: list[Sequence], step: int, autocast: contextlib.AbstractContextManager,
                  device: torch.device) -> dict[str, float]:
    """`epochs` x `minibatches` optimizer steps on this step's sequences, each accumulated
    over micro-batches and normalised over its whole minibatch.

    The LR of update j of the k this step takes is the schedule's at `step - 1 + j / k`;
    afterwards the schedule reads `step`, updates or not. An update whose loss or gradient
    norm is not finite is skipped (counted in `updates_nonfinite`) and leaves the weights
    and optimizer state as they were. Entropy, KL, ratio, clip fraction and TIS weight are
    means over all action tokens the applied updates saw, whatever `micro_batch` is."""
    L, temperature = cfg.loss, cfg.rollout.temperature if cfg.rollout.temperature > 0 else 1.0
    if not sequences:
        scheduler.at(step)
        return {"loss": 0.0, "action_tokens": 0, "updates": 0, "updates_nonfinite": 0}
    pad = _pad_id(model)
    # under torchrun each rank computes a block and every rank gets all, in order
    old_logprobs = distributed.gather(_old_logprobs(model, distributed.shard(sequences), L.micro_batch, temperature,
                                                    pad, autocast, device)) if L.tis_cap is not None else None
    rng = random.Random(f"{cfg.seed}:update:{step}")
    # grad_clip 0 turns clipping off (as in transformers' Trainer); as a max norm it would zero every gradient
    max_norm = cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else math.inf
    token_sums = dict.fromkeys(TOKEN_STATS, 0.0)
    n_stat_tokens, losses, grad_norms, skipped = 0, [], [], 0
    n_minibatches = min(L.minibatches, len(sequences))
    n_updates = L.epochs * n_minibatches
    for epoch in range(L.epochs):
        order = list(range(len(sequences)))
        rng.shuffle(order)
        for index, minibatch in enumerate(minibatch_split(order, L.minibatches)):
            scheduler.at(step - 1 + (epoch * n_minibatches + index) / n_updates)
            n_tokens = sum(sequences[i].loss_tokens for i in minibatch)
            denominator = aggregation_denominator(L.aggregation, n_tokens, len(minibatch), L.norm_length)
            optimizer.zero_grad(set_to_none=True)
            sums, seen, minibatch_loss, finite = dict.fromkeys(TOKEN_STATS, 0.0), 0, 0.0, True
            # share: 1 on one process; under torchrun this rank's part (see distributed.micro_batches)
            for micro, share in distributed.micro_batches(model, minibatch, L.micro_batch):
                batch = collate([sequences[i] for i in micro], pad, device)
                with autocast:
                    logp, entropy = distributed.logprobs(model, batch, temperature)
                    ref_logp = None
                    if reference is not None:
                        with torch.no_grad():
                            ref_logp, _ = action_logprobs(reference, batch, temperature)
                    elif L.kl_coef > 0:  # LoRA: the base model is the reference
                        with torch.no_grad(), model.disable_adapter():
                            ref_logp, _ = action_logprobs(model, batch, temperature)
                old = batch.rollout_logprobs
                weights = None
                if old_logprobs is not None:
                    trainer_old = torch.cat([old_logprobs[i] for i in micro]).to(device)
                    weights = tis_weights(trainer_old, old, L.tis_cap)
                    old = trainer_old
                token = clipped_policy_loss(logp, old, batch.advantages, clip_low=L.clip_low, clip_high=L.clip_high,
                                            weights=weights, ref_logp=ref_logp, kl_coef=L.kl_coef)
                total = token.loss.sum()
                if not distributed.all_true(bool(torch.isfinite(total))):
                    finite = False  # the gradients so far are dropped with the whole minibatch
                    break
                (total * share / denominator).backward()
                if not share:  # a rank's padding pass: in the gradient exchange, not in the statistics
                    continue
                with torch.no_grad():
                    minibatch_loss += total.item() / denominator
                    kl = token.kl if token.kl is not None else k3_kl(logp, old)
                    for key, values in (("entropy", entropy), ("kl", kl), ("ratio", torch.exp(logp - old)),
                                        ("clip_fraction", token.clipped), ("tis_weight", weights)):
                        if values is not None:
                            sums[key] += values.float().sum().item()
                    seen += batch.n_tokens
            sums, seen, minibatch_loss = distributed.gather((sums, seen, minibatch_loss))  # all ranks' share
            if finite:
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
                finite = bool(torch.isfinite(grad_norm))
            if not finite:
                optimizer.zero_grad(set_to_none=True)
                skipped += 1
                continue
            optimizer.step()
            grad_norms.append(float(grad_norm))
            losses.append(minibatch_loss)
            n_stat_tokens += seen
            for key in TOKEN_STATS:
                token_sums[key] += sums[key]
    scheduler.at(step)
    result: dict[str, float] = {"updates": len(losses), "updates_nonfinite": skipped,
                                "action_tokens": sum(s.loss_tokens for s in sequences)}
    if losses:
        result.update(loss=float(np.mean(losses)), grad_norm=float(np.mean(grad_norms)))
    if n_stat_tokens:
        result.update({k: token_sums[k] / n_stat_tokens for k in TOKEN_STATS
                       if k != "tis_weight" or old_logprobs is not None})
    return result


@torch.no_grad()
def _old_logprobs(model: Any, sequences: list[Sequence], micro_batch: int, temperature: float, pad: int,
                  autocast: contextlib.AbstractContextManager, device: torch.device) -> list[torch.Tensor]:
    """The trainer's own log-probabilities before this step's updates (for TIS)."""
    model.eval()
    out = []
    for start in range(0, len(sequences), micro_batch):
        chunk = sequences[start:start + micro_batch]
        batch = collate(chunk, pad, device)
        with autocast:
            logp, _ = action_logprobs(model, batch, temperature)
        out += list(logp.float().cpu().split([int(batch.rows.eq(i).sum()) for i in range(len(chunk))]))
    model.train()
    return out


def run_eval(cfg: TrainConfig, engine: Engine, tokenizer: Any, out: Path, *, progress: bool,
             ray: str | None = None) -> dict[str, Any]:
    """Greedy evaluation on the suite's eval split, once per configured mode."""
    assert cfg.eval is not None
    results = {}
    for mode in cfg.eval.modes:
        agent = PolicyAgent(engine, tokenizer, mode=mode, temperature=0.0, max_new_tokens=cfg.rollout.max_new_tokens,
                            max_context=cfg.rollout.max_context, name=f"policy ({mode})",
                            history=cfg.rollout.history, tool_parser=cfg.rollout.tool_parser)
        results[mode] = evaluate(f"{cfg.suite}:{cfg.eval.split}", agent, out / mode, episodes=cfg.eval.episodes,
                                 concurrency=cfg.eval.concurrency, timeout=cfg.rollout.timeout, progress=progress,
                                 ray=ray)
    return results


# --- setup helpers ---------------------------------------------------------------------------

def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_policy(cfg: TrainConfig, device: torch.device) -> tuple[Any, Any]:
    """The starting model; created from scratch first when `init` is set and it is missing."""
    path = Path(cfg.model)
    if cfg.init is not None and not (path / "config.json").exists() and distributed.is_main():
        from agenthub.trainers.model_init import corpus_from_envs, init_model
        init_model(path, cfg.init, corpus_from_envs([get_suite(cfg.suite).env_id]), seed=cfg.seed)
    distributed.barrier()  # under torchrun the other ranks load what rank 0 made
    model, tokenizer = ckpt.load_model(cfg.model, device, weights_dtype(cfg.dtype, device))
    if cfg.gradient_checkpointing:  # for SFT too (RL enables it again on a model SFT reloaded)
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model, tokenizer


def peak_memory_gb(device: torch.device) -> float:
    """The run's peak memory so far: allocated GPU memory on CUDA (what limits batch
    and model size there), else the process's peak resident set."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def _autocast(dtype: str, device: torch.device) -> contextlib.AbstractContextManager:
    bf16 = dtype == "bfloat16" or (dtype == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported())
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def _pad_id(model: Any) -> int:
    config = model.config
    return config.pad_token_id if config.pad_token_id is not None else config.eos_token_id


def _mean_dicts(dicts: list[dict[str, float]]) -> dict[str, float]:
    keys = {k for d in dicts for k in d}
    return {k: float(np.mean([d[k] for d in dicts if k in d])) for k in sorted(keys)}


def iter_metrics(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)

