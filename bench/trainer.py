"""GRPO step time: agenthub's trainer vs TRL's `GRPOTrainer`, same model, prompts and reward.

    pip install -e '.[train,bench]'
    .venv/bin/python bench/trainer.py [--steps 10] [--prompts 4] [--generations 8] [--max-new-tokens 8]
        [--lr 1e-4] [--size tiny] [--sft-tasks 128] [--model SPEC] [--lora] [--update-all] [--threads N]
        [--json OUT.json]

Why: to know what our trainer's step costs next to the reference implementation most
people would otherwise use. TRL's GRPOTrainer is single-turn (prompt -> completion ->
reward), so both run a task either can: the lamp corridor with one room
(`bench/lamp-1room-v0`, one turn, 4 doors). TRL's prompts are the env's first observation
(chat messages) for exactly the seeds our trainer samples, in the same order, and its
reward steps a fresh env reset with that seed with the completion, as our runner does.
Both: free generation at temperature 1, `--generations` samples of `--prompts` prompts per
step, one optimizer step on all of them (one forward/backward, no accumulation), the same
clip range (0.2/0.28), token-mean loss, group z-scored advantages, no KL, constant lr,
CPU fp32, the same seed.

`--model SPEC` benches a given model instead, e.g. the real pretrained
`smollm2-135m-instruct` (any model spec; `agenthub.trainers.model_sources` resolves it to
one local directory both sides load), as it is (no warm start). `--lora` trains a LoRA
adapter on both sides (PEFT, rank `--lora-r`, alpha 2r, on q/k/v/o projections: our
`lora:` config, TRL's `peft_config`) instead of every weight.

Without `--model`, the model is a from-scratch `--size` model made once; both sides load it
from the same directory. It is first SFT-warm-started (`--sft-tasks` oracle demonstrations, our SFT):
a random model never says a valid command, every reward is 0, and our trainer skips the
update of all-zero groups (they carry no signal) while TRL still backpropagates them, so
the comparison would be generation alone vs generation + update. `--sft-tasks 0` runs the
raw model anyway; the "trained seq" column shows what each side updated on. A pretrained
model used as it is (`--model`) never says a valid command in 8 tokens either:
`--update-all` makes our trainer update on all-zero groups too (a zero loss, the full
forward/backward and optimizer step TRL does), so both sides pay for an update.

Each side runs in its own process (`--side ours|trl`), so peak RSS is its own. Figures
are medians over the steps after the first (warm-up): step time, generation time and
tokens/s (ours: the rollout, env steps included; TRL: its `generate` call), plus the
sum of all step times and the side's process wall time (imports, loading, setup). Figures,
not assertions: compare runs on the same machine only. Each side's 1-minute load average
at its end is printed: on a shared machine it moves them more than anything here (with
other work on the cores, two torch threads can be ten times slower than one; `--threads 1`
is the robust choice there).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no hub is reachable: never try it
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import agenthub  # noqa: E402

ENV_ID, SUITE = "bench/lamp-1room-v0", "bench/lamp-1room"
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


def register_bench_env() -> None:
    agenthub.register(ENV_ID, "agenthub.environments.toy:LampCorridorEnv", max_turns=1, rooms=1, doors=4,
                      description="Lamp corridor, one room: a single-turn task (trainer bench).")
    agenthub.register_suite(SUITE, ENV_ID, train=1000, test=100)


def step_seeds(args: argparse.Namespace) -> list[int]:
    """The seeds of the tasks our trainer plays, step by step, in its order (as `grpo.rl`
    samples them); TRL reads its dataset in order (shuffle_dataset=False), so it plays the same."""
    from agenthub.trainers.grpo import step_tasks

    tasks = agenthub.load_suite(SUITE, "train")
    return [t.seed for step in range(1, args.steps + 1) for t in step_tasks(tasks, args.seed, step, args.prompts)]


def run_ours(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    from agenthub.trainers.config import load_config
    from agenthub.trainers import grpo
    from agenthub.trainers.grpo import iter_metrics, train

    if args.update_all:  # the trainer has no switch for it: its filter skips groups without signal
        grpo.is_zero_variance = lambda advantages: False
    batch = args.prompts * args.generations
    cfg = load_config(base={
        "model": args.model, "suite": SUITE, "steps": args.steps, "seed": args.seed, "dtype": "float32",
        "tensorboard": False, "eval": None, "reward": "outcome", "algorithm": {"estimator": "grpo"},
        "rollout": {"mode": "free", "group_size": args.generations, "tasks_per_step": args.prompts,
                    "concurrency": batch, "temperature": 1.0, "max_new_tokens": args.max_new_tokens,
                    "max_context": 512},
        "loss": {"micro_batch": batch, "kl_coef": 0.0, "clip_low": 0.2, "clip_high": 0.28},
        "optim": {"lr": args.lr, "schedule": "constant", "grad_clip": 1.0},
        "lora": {"r": args.lora_r, "alpha": 2 * args.lora_r, "target_modules": LORA_TARGETS} if args.lora else None})
    train(cfg, out, progress=False)
    steps = [m for m in iter_metrics(out / "metrics.jsonl") if m.get("phase") == "rl"]
    return {"step_s": [m["step_time"] for m in steps], "gen_s": [m["rollout_time"] for m in steps],
            "gen_tokens": [m["generation_tokens_per_s"] * m["rollout_time"] for m in steps],
            "reward": [m["reward_mean"] for m in steps], "trained": [m["sequences"] for m in steps]}


def run_trl(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    import trl
    from datasets import Dataset
    from transformers import AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    rows = []
    for seed in step_seeds(args):
        env = agenthub.make(ENV_ID)
        obs, _ = env.reset(seed=seed)
        rows.append({"prompt": [dict(m) for m in obs], "seed": seed})
        env.close()
    rewards: list[list[float]] = []

    def corridor_reward(completions: list[list[dict[str, str]]], seed: list[int], **_: Any) -> list[float]:
        scores = []
        for completion, s in zip(completions, seed):
            env = agenthub.make(ENV_ID)
            env.reset(seed=s)
            _, _, terminated, truncated, info = env.step(completion[-1])
            scores.append(float(info.get("outcome", 0.0)) if terminated or truncated else 0.0)
            env.close()
        rewards.append(scores)
        return scores

    class StepTimer(TrainerCallback):
        """Step k's time: from the end of step k-1 (the first: its start) to its end."""

        def __init__(self) -> None:
            self.times: list[float] = []
            self.last: float | None = None

        def on_step_begin(self, *_: Any, **__: Any) -> None:
            self.last = self.last or time.perf_counter()

        def on_step_end(self, *_: Any, **__: Any) -> None:
            now = time.perf_counter()
            self.times.append(now - self.last)  # type: ignore[operator]
            self.last = now

    class TimedGRPOTrainer(GRPOTrainer):
        """Times TRL 1.16's generation call (a private method: it may move in later versions)."""

        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, **kw)
            self.generations: list[tuple[float, int]] = []

        def _generate_single_turn(self, *a: Any, **kw: Any) -> Any:
            t0 = time.perf_counter()
            completion_ids, logprobs = super()._generate_single_turn(*a, **kw)
            self.generations.append((time.perf_counter() - t0, sum(len(c) for c in completion_ids)))
            return completion_ids, logprobs

    config = GRPOConfig(
        output_dir=str(out), report_to="none", logging_strategy="no", save_strategy="no", disable_tqdm=True,
        use_cpu=True, bf16=False, fp16=False, gradient_checkpointing=False, use_vllm=False,
        model_init_kwargs={"dtype": "float32"}, seed=args.seed, max_steps=args.steps, shuffle_dataset=False,
        per_device_train_batch_size=args.prompts * args.generations, gradient_accumulation_steps=1,
        num_generations=args.generations, max_completion_length=args.max_new_tokens,
        temperature=1.0, top_p=1.0, top_k=0, beta=0.0, epsilon=0.2, epsilon_high=0.28, loss_type="dapo",
        scale_rewards="group", num_iterations=1, learning_rate=args.lr, lr_scheduler_type="constant",
        warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0, optim="adamw_torch", log_completions=False)
    timer = StepTimer()
    peft_config = None
    if args.lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=args.lora_r, lora_alpha=2 * args.lora_r, lora_dropout=0.0,
                                 target_modules=LORA_TARGETS, task_type="CAUSAL_LM")
    trainer = TimedGRPOTrainer(model=args.model, reward_funcs=corridor_reward, args=config, peft_config=peft_config,
                               train_dataset=Dataset.from_list(rows), callbacks=[timer],
                               processing_class=AutoTokenizer.from_pretrained(args.model, padding_side="left"))
    trainer.train()
    return {"step_s": timer.times, "gen_s": [g[0] for g in trainer.generations],
            "gen_tokens": [g[1] for g in trainer.generations], "reward": [statistics.mean(r) for r in rewards],
            "trained": [args.prompts * args.generations] * len(timer.times), "version": trl.__version__}


def side_main(args: argparse.Namespace) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    register_bench_env()
    with tempfile.TemporaryDirectory() as tmp:
        result = (run_ours if args.side == "ours" else run_trl)(args, Path(tmp) / "run")
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["threads"] = torch.get_num_threads()
    Path(args.json).write_text(json.dumps(result))


def make_model(args: argparse.Namespace, root: Path) -> Path:
    """A from-scratch model, SFT-warm-started on `--sft-tasks` oracle demonstrations."""
    from agenthub.trainers.config import load_config
    from agenthub.trainers.grpo import train
    from agenthub.trainers.model_init import corpus_from_envs, init_model

    path = init_model(root / "init", args.size, corpus_from_envs([ENV_ID], 20), seed=args.seed)
    if args.sft_tasks == 0:
        return path
    train(load_config(base={"model": str(path), "suite": SUITE, "steps": 0, "seed": args.seed, "eval": None,
                            "dtype": "float32", "tensorboard": False,
                            "sft": {"tasks": args.sft_tasks, "epochs": 2, "lr": 3e-3, "warmup_steps": 2}}),
          root / "sft", progress=False)
    return root / "sft" / "model"


def parameter_count(model_dir: Path) -> int:
    """Parameters in a Hugging Face directory's safetensors files (headers only, nothing loaded)."""
    from safetensors import safe_open

    total = 0
    for file in model_dir.glob("*.safetensors"):
        with safe_open(file, "pt") as f:
            for key in f.keys():
                n = 1
                for d in f.get_slice(key).get_shape():
                    n *= d
                total += n
    return total


def summarize(r: dict[str, Any]) -> dict[str, float]:
    later = slice(1, None) if len(r["step_s"]) > 1 else slice(None)  # the first step is the warm-up
    return {"step_s": statistics.median(r["step_s"][later]), "gen_s": statistics.median(r["gen_s"][later]),
            "gen_tokens_per_s": statistics.median(t / s for t, s in zip(r["gen_tokens"][later], r["gen_s"][later])),
            "total_s": sum(r["step_s"]), "process_s": r["process_s"], "peak_rss_mb": r["peak_rss_mb"],
            "reward": statistics.mean(r["reward"]), "trained_per_step": statistics.mean(r["trained"]),
            "load_1min": r["load_1min"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--prompts", type=int, default=4, help="prompts (tasks) per step")
    parser.add_argument("--generations", type=int, default=8, help="samples per prompt (group size)")
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--size", default="tiny", help="model size for init_model")
    parser.add_argument("--sft-tasks", type=int, default=128, help="SFT warm-start demonstrations; 0: raw model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads per side (default: torch's)")
    parser.add_argument("--json", default=None, help="also write the figures here (with --side: the child's output)")
    parser.add_argument("--side", choices=["ours", "trl"], help=argparse.SUPPRESS)
    parser.add_argument("--model", help="bench this model spec (e.g. smollm2-135m-instruct) instead of a "
                        "from-scratch --size model; no SFT warm start")
    parser.add_argument("--lora", action="store_true", help="train a LoRA adapter on both sides (PEFT)")
    parser.add_argument("--lora-r", type=int, default=8, help="LoRA rank (alpha = 2 x rank)")
    parser.add_argument("--update-all", action="store_true",
                        help="our trainer updates on groups whose rewards are all equal too, as TRL does")
    args = parser.parse_args()
    if args.side:
        return side_main(args)

    register_bench_env()
    with tempfile.TemporaryDirectory() as tmp:
        if args.model:
            from agenthub.trainers.model_sources import local_model_dir

            model, about = local_model_dir(args.model), f"{args.model}, as it is"
        else:
            model = make_model(args, Path(tmp))
            about = f"{args.size} model, " + (f"SFT warm start on {args.sft_tasks} demos" if args.sft_tasks
                                               else "no SFT warm start")
        params = parameter_count(Path(model))
        results: dict[str, Any] = {}
        for side in ("ours", "trl"):
            out = Path(tmp) / f"{side}.json"
            flags = [f"--{k.replace('_', '-')}" + ("" if v is True else f"={v}") for k, v in vars(args).items()
                     if v is not None and v is not False and k not in ("json", "side", "model")]
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, __file__, f"--side={side}", f"--model={model}", f"--json={out}",
                                   *flags], capture_output=True, text=True)
            if proc.returncode != 0:
                sys.exit(f"--side {side} failed:\n{proc.stdout[-3000:]}{proc.stderr[-5000:]}")
            results[side] = {**json.loads(out.read_text()), "process_s": time.perf_counter() - t0,
                             "load_1min": os.getloadavg()[0]}
    figures = {side: summarize(r) for side, r in results.items()}
    threads = "/".join(str(r["threads"]) for r in results.values())
    trained = f"LoRA r={args.lora_r} on {'/'.join(LORA_TARGETS)}" if args.lora else "full fine-tune"
    trained += " (ours also on all-equal-reward groups)" if args.update_all else ""
    print(f"{SUITE}: {args.prompts} prompts x {args.generations} generations, <= {args.max_new_tokens} new tokens, "
          f"lr {args.lr:g}, {args.steps} steps; {about} ({params / 1e6:.1f}M parameters), {trained}, "
          f"CPU fp32, torch threads {threads}; medians after step 1")
    columns = [("step s", "step_s", ".3f"), ("gen s", "gen_s", ".3f"), ("gen tok/s", "gen_tokens_per_s", ".0f"),
               ("total s", "total_s", ".2f"), ("process s", "process_s", ".1f"), ("peak RSS MB", "peak_rss_mb", ".0f"),
               ("reward", "reward", ".2f"), ("trained seq", "trained_per_step", ".1f"), ("load 1m", "load_1min", ".2f")]
    print(f"{'side':<12}" + "".join(f" {title:>{len(title) + 1}}" for title, _, _ in columns))
    for side, f in figures.items():
        name = "agenthub" if side == "ours" else f"trl {results['trl']['version']}"
        print(f"{name:<12}" + "".join(f" {f[key]:>{len(title) + 1}{fmt}}" for title, key, fmt in columns))
    ratio = figures["trl"]["step_s"] / figures["ours"]["step_s"]
    print(f"TRL / agenthub step time: x{ratio:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "parameters": params, "figures": figures,
                                               "ratio_trl_over_ours": ratio, "runs": results}, indent=2))


if __name__ == "__main__":
    main()
