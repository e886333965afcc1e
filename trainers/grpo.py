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

A run directory holds config.yaml, metrics.jsonl, rollouts/, checkpoints/, model/ (the
final model, a Hugging Face directory), sft/ (the model after SFT), eval/<mode>/ and
report.html.
"""

from __future__ import annotations

import contextlib
import copy
import json
import random
import resource
import time
import zlib
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import yaml

from agenthub.errors import AgentHubError
from agenthub.evaluation import evaluate
from agenthub.registry import make
from agenthub.runner import Episode, run_episodes
from agenthub.suites import Task, get_suite, load_suite
from agenthub.trainers import checkpoint as ckpt
from agenthub.trainers.advantages import is_zero_variance, trajectory_advantages, turn_advantages
from agenthub.trainers.batch import Sequence, action_logprobs, collate, trajectory_sequence
from agenthub.trainers.config import TrainConfig, to_dict
from agenthub.trainers.engine import Engine, HFEngine
from agenthub.trainers.losses import aggregation_denominator, clipped_policy_loss, k3_kl, tis_weights
from agenthub.trainers.policy import PolicyAgent
from agenthub.trainers.progress import progress_bar
from agenthub.trainers.sft import demonstration_sequences, demonstrations, train_sft
from agenthub.types import write_trajectories


def train(cfg: TrainConfig, out: str | Path, *, resume: bool = False, progress: bool = True,
          ray: str | None = None) -> dict[str, Any]:
    """Run the whole recipe; return the final evaluation results by mode. `ray`: a Ray
    address (or "local") to play the envs on Ray actors; the model stays here."""
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not resume and (out / "metrics.jsonl").exists():
        raise AgentHubError(f"{out} already holds a run: pass --resume to continue it, or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    get_suite(cfg.suite)  # an unknown suite fails here, before any work
    seed_everything(cfg.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    autocast = _autocast(cfg.dtype, device)
    log = MetricsLog(out / "metrics.jsonl", tensorboard=cfg.tensorboard)
    model, tokenizer = load_policy(cfg, device)

    # --- SFT warm-start ------------------------------------------------------------------
    sft_dir = out / "sft"
    if cfg.sft is not None and (cfg.sft.tasks or cfg.sft.data):
        if resume and (sft_dir / "config.json").exists():
            model, tokenizer = ckpt.load_model(sft_dir, device)
        else:
            from agenthub.trainers.chat import ChatFormat
            demos = demonstrations(cfg.sft, cfg.suite, progress=progress)
            if not demos:
                raise AgentHubError("SFT found no successful demonstrations")
            sequences = demonstration_sequences(demos, ChatFormat(tokenizer), cfg.sft.max_length,
                                                cfg.sft.context_weight)
            with autocast:
                train_sft(model, tokenizer, sequences, cfg.sft, seed=cfg.seed, device=device, log=log.write,
                          progress=progress)
            ckpt.save_model(model, tokenizer, sft_dir)

    # --- RL --------------------------------------------------------------------------------
    if cfg.steps > 0:
        model = rl(cfg, out, model, tokenizer, device, autocast, log, resume=resume, progress=progress, ray=ray)
    ckpt.save_model(model, tokenizer, out / "model")
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
    """The GRPO / RLOO / Dr.GRPO steps; returns the trained model."""
    from transformers import get_scheduler

    from agenthub.rewards import HFAnswerScorer, from_config

    if cfg.lora is not None:
        from peft import LoraConfig, get_peft_model
        model = get_peft_model(model, LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha,
                                                 lora_dropout=cfg.lora.dropout,
                                                 target_modules=cfg.lora.target_modules))
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    reference = None
    if cfg.loss.kl_coef > 0 and cfg.lora is None:
        reference = copy.deepcopy(model).eval().requires_grad_(False)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.optim.lr,
                                  weight_decay=cfg.optim.weight_decay, betas=cfg.optim.betas)
    updates_per_step = cfg.loss.epochs * cfg.loss.minibatches
    scheduler = get_scheduler("constant_with_warmup" if cfg.optim.schedule == "constant" else cfg.optim.schedule,
                              optimizer, num_warmup_steps=cfg.optim.warmup_steps,
                              num_training_steps=cfg.steps * updates_per_step)
    start = 0
    latest = ckpt.latest_checkpoint(out) if resume else None
    if latest is not None:
        state = ckpt.load_trainer_state(latest)
        if "lora" in state:
            from peft import set_peft_model_state_dict
            set_peft_model_state_dict(model, state["lora"])
        else:
            from safetensors.torch import load_file
            model.load_state_dict(load_file(latest / "model.safetensors"), strict=False)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        ckpt.set_rng_state(state["rng"])
        start = state["step"]

    reward_fn = from_config(cfg.reward, scorer=HFAnswerScorer(model, tokenizer))
    tasks = load_suite(cfg.suite, "train")
    if not tasks:
        raise AgentHubError(f"suite {cfg.suite!r} has no train tasks")

    with contextlib.ExitStack() as stack:
        engine = make_engine(cfg, model, tokenizer, autocast)
        if hasattr(engine, "close"):
            stack.callback(engine.close)
        agent = PolicyAgent(engine, tokenizer, mode=cfg.rollout.mode, temperature=cfg.rollout.temperature,
                            max_new_tokens=cfg.rollout.max_new_tokens, max_context=cfg.rollout.max_context,
                            check_tokens=cfg.check_tokens, name="policy")
        make_env = make
        if ray:
            from agenthub.ray_runner import RayEnvPool
            make_env = stack.enter_context(RayEnvPool(ray, size=cfg.rollout.concurrency)).make
        advance = stack.enter_context(progress_bar(progress, "RL", cfg.steps))
        for _ in range(start):
            advance("RL (resumed)")
        for step in range(start + 1, cfg.steps + 1):
            t0 = time.perf_counter()
            # 1. rollouts: G samples of each task, every episode through the core runner
            chosen = step_tasks(tasks, cfg.seed, step, cfg.rollout.tasks_per_step)
            episodes = [Episode(t.env_id, t.seed, k, t.kwargs) for t in chosen for k in range(cfg.rollout.group_size)]
            agent.seed = zlib.crc32(f"{cfg.seed}:{step}".encode())
            tokens_before = agent.generated_tokens
            model.eval()
            trajectories = run_episodes(episodes, agent, concurrency=cfg.rollout.concurrency,
                                        timeout=cfg.rollout.timeout, make_env=make_env)
            rollout_s = time.perf_counter() - t0
            # 2-3. rewards per turn, advantages per turn, zero-variance groups dropped
            groups = [trajectories[i:i + cfg.rollout.group_size]
                      for i in range(0, len(trajectories), cfg.rollout.group_size)]
            sequences, reward_metrics, zero_variance, returns = [], [], 0, []
            for group in groups:
                rewards = reward_fn(group)
                reward_metrics.append(dict(reward_fn.metrics))
                returns += [sum(r) for r in rewards]
                advantages = advantages_of(cfg, rewards)
                if is_zero_variance(advantages):
                    zero_variance += 1
                    continue
                sequences += [s for t, a in zip(group, advantages) if (s := trajectory_sequence(t, a))]
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
                "reward_mean": float(np.mean(returns)), "reward_std": float(np.std(returns)),
                "success_rate": float(np.mean([t.success for t in trajectories])),
                "mean_turns": float(np.mean([len(t.turns) for t in trajectories])),
                "errors": sum(t.stop_reason in ("error", "timeout") for t in trajectories),
                "context_overflows": sum(t.stop_reason == "context_overflow" for t in trajectories),
                "zero_variance_share": zero_variance / len(groups),
                "sequences": len(sequences),
                "generation_tokens_per_s": (agent.generated_tokens - tokens_before) / max(rollout_s, 1e-9),
                "rollout_time": rollout_s, "update_time": time.perf_counter() - t1,
                "lr": scheduler.get_last_lr()[0], "peak_memory_gb": peak_memory_gb(device),
                **update, **_mean_dicts(reward_metrics),
            }
            if cfg.check_tokens:
                metrics["token_mismatches"] = agent.token_mismatches
            if cfg.eval is not None and cfg.eval.every and step % cfg.eval.every == 0 and step < cfg.steps:
                results = run_eval(cfg, engine, tokenizer, out / "eval" / f"step-{step:06d}", progress=False,
                                   ray=ray)
                metrics.update({f"eval/{m}/success": r["success_rate"] for m, r in results.items()})
            metrics["step_time"] = time.perf_counter() - t0
            log.write(metrics)
            if (cfg.save_every and step % cfg.save_every == 0) or step == cfg.steps:
                ckpt.save_checkpoint(out, step, model, tokenizer, optimizer, scheduler,
                                     {"config": to_dict(cfg)}, keep=cfg.keep_checkpoints)
            advance(f"RL reward {metrics['reward_mean']:.2f} success {metrics['success_rate']:.2f}")
    if cfg.lora is not None:
        model = model.merge_and_unload()
    return model


def step_tasks(tasks: list[Task], seed: int, step: int, tasks_per_step: int) -> list[Task]:
    """The train tasks of one RL step: a function of (seed, step) alone, so a resumed run
    plays the same tasks as an uninterrupted one."""
    return random.Random(f"{seed}:{step}").sample(tasks, min(tasks_per_step, len(tasks)))


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


def policy_update(cfg: TrainConfig, model: Any, reference: Any, optimizer: Any, scheduler: Any,
                  sequences: list[Sequence], step: int, autocast: contextlib.AbstractContextManager,
                  device: torch.device) -> dict[str, float]:
    """`epochs` x `minibatches` optimizer steps on this step's sequences, each accumulated
    over micro-batches and normalised over its whole minibatch."""
    L, temperature = cfg.loss, cfg.rollout.temperature if cfg.rollout.temperature > 0 else 1.0
    stats: dict[str, list[float]] = {k: [] for k in ("loss", "kl", "entropy", "clip_fraction", "grad_norm",
                                                    "tis_weight", "ratio")}
    if not sequences:
        return {"loss": 0.0, "action_tokens": 0}
    pad = _pad_id(model)
    old_logprobs = _old_logprobs(model, sequences, L.micro_batch, temperature, pad, autocast, device) \
        if L.tis_cap is not None else None
    rng = random.Random(f"{cfg.seed}:update:{step}")
    for _ in range(L.epochs):
        order = list(range(len(sequences)))
        rng.shuffle(order)
        size = -(-len(order) // L.minibatches)
        for mb_start in range(0, len(order), size):
            minibatch = order[mb_start:mb_start + size]
            n_tokens = sum(sum(sequences[i].mask) for i in minibatch)
            denominator = aggregation_denominator(L.aggregation, n_tokens, len(minibatch), L.norm_length)
            optimizer.zero_grad(set_to_none=True)
            minibatch_loss = 0.0
            for mc_start in range(0, len(minibatch), L.micro_batch):
                micro = minibatch[mc_start:mc_start + L.micro_batch]
                batch = collate([sequences[i] for i in micro], pad, device)
                with autocast:
                    logp, entropy = action_logprobs(model, batch, temperature)
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
                    stats["tis_weight"].append(float(weights.mean()))
                token = clipped_policy_loss(logp, old, batch.advantages, clip_low=L.clip_low, clip_high=L.clip_high,
                                            weights=weights, ref_logp=ref_logp, kl_coef=L.kl_coef)
                (token.loss.sum() / denominator).backward()
                with torch.no_grad():
                    minibatch_loss += token.loss.sum().item() / denominator
                    stats["entropy"].append(entropy.mean().item())
                    stats["clip_fraction"].append(token.clipped.mean().item())
                    stats["ratio"].append(torch.exp(logp - old).mean().item())
                    kl = token.kl if token.kl is not None else k3_kl(logp, old)
                    stats["kl"].append(kl.mean().item())
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            stats["grad_norm"].append(float(grad_norm))
            stats["loss"].append(minibatch_loss)
            optimizer.step()
            scheduler.step()
    result = {k: float(np.mean(v)) for k, v in stats.items() if v}
    result["action_tokens"] = sum(sum(s.mask) for s in sequences)
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
                            max_context=cfg.rollout.max_context, name=f"policy ({mode})")
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
    if not (path / "config.json").exists():
        if cfg.init is None:
            raise AgentHubError(f"no model at {cfg.model!r}: create one with `agenthub model init {cfg.model}` "
                                "or set `init: tiny` in the config")
        from agenthub.trainers.model_init import corpus_from_envs, init_model
        init_model(path, cfg.init, corpus_from_envs([get_suite(cfg.suite).env_id]), seed=cfg.seed)
    return ckpt.load_model(path, device)


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


class MetricsLog:
    """metrics.jsonl (one JSON object per line, appended and flushed) and TensorBoard."""

    def __init__(self, path: Path, tensorboard: bool):
        self.file = open(path, "a", encoding="utf-8")
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.writer = SummaryWriter(str(path.parent / "tensorboard"))
            except ImportError:
                pass

    def write(self, metrics: dict[str, Any]) -> None:
        self.file.write(json.dumps({"time": time.time(), **metrics}) + "\n")
        self.file.flush()
        if self.writer is not None:
            step = metrics.get("step", metrics.get("sft_step", 0))
            for k, v in metrics.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    self.writer.add_scalar(f"{metrics.get('phase', 'rl')}/{k}", v, step)

    def close(self) -> None:
        self.file.close()
        if self.writer is not None:
            self.writer.close()


def iter_metrics(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)

