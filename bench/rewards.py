"""Reward modules: what scoring costs, per module.

    .venv/bin/python bench/rewards.py [--episodes 100] [--samples 4] [--repeats 5] [--json OUT.json]

On guess-number trajectories of the random agent (played here, `episodes` tasks x
`samples` rollouts, scored in groups by task as a trainer does):
- formula modules (turn-level, outcome, G-RA, D-RA, a Compose): trajectories/s, the
  median of `repeats` runs;
- SPA: seconds per training epoch of a from-scratch tiny estimator, and inference
  turns/s (batched, then one trajectory at a time);
- IGPO: HFAnswerScorer contexts/s on a fresh tiny Qwen2 LM, batch 1 vs batch 8.
Figures are printed; nothing is asserted.

`noisy_oracle` is an agent for evidence batches with both won and lost episodes (a
random agent rarely wins a TextWorld game, an oracle always does):

    .venv/bin/python -m agenthub eval textworld/tw-simple:test --agent bench.rewards:noisy_oracle \
        --episodes 30 --samples 4 --out runs/tw-noisy
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from typing import Any

from timing import median_seconds

from agenthub.agents import Context
from agenthub.evaluation import evaluate
from agenthub.rewards import GatedAccumulation, from_config
from agenthub.rewards.offline import rescore
from agenthub.trainers.progress_estimator import ProgressEstimator
from agenthub.trainers.answer_scorer import HFAnswerScorer
from agenthub.types import Message, read_trajectories


def noisy_oracle(messages: list[Message], ctx: Context) -> str | Message:
    """The env's solution, one step at a time, except that 40% of the turns go to a
    random admissible action instead: about as good as a half-trained policy."""
    plan = ctx.state.setdefault("plan", list(ctx.env.oracle_actions()))
    rng = ctx.state.setdefault("rng", random.Random(f"{ctx.info.get('task_id')}:{ctx.sample}"))
    admissible = ctx.info.get("admissible_actions") or []
    if plan and (not admissible or rng.random() >= 0.4):
        return plan.pop(0)
    return rng.choice(admissible) if admissible else "look"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        evaluate("tools/guess-number:test", "random", tmp, episodes=args.episodes, samples=args.samples,
                 progress=False)
        trajectories = read_trajectories(f"{tmp}/trajectories.jsonl")
    turns = sum(len(t.turns) for t in trajectories)
    figures: dict[str, Any] = {"machine": "2-core CPU VM", "trajectories": len(trajectories), "turns": turns}

    modules = {"turn": from_config("turn"), "outcome": from_config("outcome"), "gra": GatedAccumulation(),
               "dra": from_config("dra"),
               "compose": from_config([{"name": "gra"}, {"component": "progress", "weight": 0.5}])}
    for name, module in modules.items():
        seconds = median_seconds(lambda module=module: rescore(module, trajectories), args.repeats)
        figures[f"{name}_trajectories_per_s"] = len(trajectories) / seconds
        print(f"{name:8s} {len(trajectories) / seconds:10.0f} trajectories/s")

    estimator = ProgressEstimator.from_scratch(trajectories)
    start = time.perf_counter()
    estimator.fit(trajectories, epochs=1, progress=False)
    figures["spa_train_s_per_epoch"] = time.perf_counter() - start
    batched = median_seconds(lambda: estimator.predict(trajectories), args.repeats)
    single = median_seconds(lambda: [estimator.predict([t]) for t in trajectories[:50]], 1) * len(trajectories) / 50
    figures["spa_predict_turns_per_s_batched"] = turns / batched
    figures["spa_predict_turns_per_s_one_by_one"] = turns / single
    print(f"SPA: {figures['spa_train_s_per_epoch']:.1f} s/epoch on {len(trajectories)} trajectories; "
          f"inference {turns / batched:.0f} turns/s batched vs {turns / single:.0f} one by one "
          f"({single / batched:.1f}x)")

    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = estimator.tokenizer
    tokenizer.chat_template = ("{% for m in messages %}<{{ m['role'] }}>\n{{ m['content'] }}\n{% endfor %}"
                               "{% if add_generation_prompt %}<assistant>\n{% endif %}")
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                                         head_dim=32, max_position_embeddings=2048))
    contexts = [t.messages()[:2 + 2 * k] for t in trajectories[:16] for k in range(4)]
    answers = ["42"] * len(contexts)
    for batch in (1, 8):
        scorer = HFAnswerScorer(model, tokenizer, batch_size=batch)
        seconds = median_seconds(lambda scorer=scorer: scorer.answer_logprob(contexts, answers), args.repeats)
        figures[f"igpo_contexts_per_s_batch{batch}"] = len(contexts) / seconds
        print(f"IGPO scorer, batch {batch}: {len(contexts) / seconds:.0f} contexts/s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)


if __name__ == "__main__":
    main()
