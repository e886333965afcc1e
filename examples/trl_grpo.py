"""Train on any agenthub env or suite with TRL's own GRPOTrainer.

    python examples/trl_grpo.py tools/guess-number-v0 --model runs/tiny --steps 20
    python examples/trl_grpo.py textworld/w2-o3-q4 --env-option tool_mode=true --reward gated

The env is TRL's environment (`environment_factory`): its tools are the model's tools and
its return is the reward TRL logs as `rewards/<env id>/mean`; `--reward` adds one of
agenthub's reward modules as a TRL reward function. `--model` is any Hugging Face
directory whose chat template can call tools (`agenthub model init OUT --size tiny`
writes one; without `--model` a tiny from-scratch model is made in OUT/model). Needs
`pip install 'agenthub[trl,train]'` and transformers >= 5.2.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # environment_factory is marked experimental in TRL


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("target", help="env id (e.g. tools/guess-number-v0) or suite NAME[:SPLIT]")
    parser.add_argument("--model", help="Hugging Face model directory (default: a tiny from-scratch model)")
    parser.add_argument("--out", default="runs/trl", help="output directory")
    parser.add_argument("--episodes", type=int, default=64, help="tasks in the training dataset")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--generations", type=int, default=4, help="rollouts per task (GRPO group size)")
    parser.add_argument("--env-option", action="append", default=[], metavar="KEY=JSON",
                        help="keyword for agenthub.make, e.g. tool_mode=true (repeatable)")
    parser.add_argument("--reward", choices=["none", "turn", "gated"], default="none",
                        help="add an agenthub reward module (TurnLevel or GatedAccumulation) to the env's return")
    args = parser.parse_args()

    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from agenthub.integrations.trl import prepare_tokenizer, reward_function, trl_environments
    from agenthub.rewards import GatedAccumulation, TurnLevel

    out = Path(args.out)
    env_kwargs = {key: json.loads(value) for key, value in (o.split("=", 1) for o in args.env_option)}
    envs = trl_environments(args.target, episodes=args.episodes, env_kwargs=env_kwargs)
    model = args.model
    if model is None:
        from agenthub.trainers.model_init import init_model

        texts = [m["content"] for row in envs.dataset for m in row["prompt"]]
        model = str(init_model(out / "model", "tiny", texts))
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(model, padding_side="left"))
    modules = {"none": [], "turn": [reward_function(TurnLevel())],
               "gated": [reward_function(GatedAccumulation(threshold=1.0))]}
    config = GRPOConfig(output_dir=str(out), max_steps=args.steps, num_generations=args.generations,
                        per_device_train_batch_size=args.generations, max_completion_length=256,
                        logging_steps=1, save_strategy="no", report_to="none", use_cpu=not _has_gpu())
    trainer = GRPOTrainer(model=model, processing_class=tokenizer, args=config, train_dataset=envs.dataset,
                          environment_factory=envs.factory, reward_funcs=modules[args.reward])
    try:
        trainer.train()
    finally:
        envs.close()
    trainer.save_model(str(out / "final"))
    won = sum(t.success for t in envs.history)
    print(f"{len(envs.history)} episodes, {won} won; model saved to {out / 'final'}")


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    main()
