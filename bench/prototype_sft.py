"""The calibration prototype's SFT (../shared/NOTES-feasibility.md §7), as one file: the
reference `bench/ablation.py`'s product rows are compared with.

    .venv/bin/python bench/prototype_sft.py --demos runs/ablation/demonstrations.jsonl \
        [--layout compact|chat-compact|chat-recap] [--minutes 3] [--context-weight 0.2] [--init DIR]

One example per walkthrough step, its prompt built here from the demonstration's chat:
- `compact` (the prototype's): "Goal: ... / Observation: <the current observation, first
  400 characters> / Previous: the last 3 commands / Admissible: a | b | c / Command:" and
  the command after a space, with no chat template;
- `chat-compact`: the same text as the user message of agenthub's chat template, the
  command as the assistant's reply;
- `chat-recap`: the user message is the env's own last observation (demonstrations of a
  `-recap` suite, whose observations restate the goal, commands and admissible ones):
  exactly what the demo's policy sees with `rollout.history: 0`.

A byte-level BPE (`model_init.train_tokenizer`, 2,048 tokens) fitted to the examples and a
`tiny` Qwen2 made here (or `--init DIR`: a model directory's tokenizer and weights), AdamW
(betas 0.9/0.95, no weight decay), 20 warmup steps then a cosine decay over the
`--minutes` of wall time, batches of 32, loss on the command (+ `--context-weight` x the
prompt's tokens). Then the per-turn accuracy at the oracle's states of `--test-games`
held-out games of the demonstrations' suite (`bench.ablation.per_turn`'s measure: free =
the greedy command equals the walkthrough's, choice = the admissible command with the best
mean log-likelihood does), printed as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import time

import torch
from ablation import oracle_states  # bench/ is on sys.path when this script runs
from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

from agenthub.suites import list_suites
from agenthub.trainers.model_init import SIZES, train_tokenizer
from agenthub.types import Message, read_trajectories, text_of

SYSTEM = "You are playing a text-based game. Each turn, reply with exactly one command."
ADMISSIBLE = re.compile(r"\n*Admissible commands:[ \n](.*)$", re.S)
LAYOUTS = ("compact", "chat-compact", "chat-recap")


def admissible(observation: str) -> list[str]:
    found = ADMISSIBLE.search(observation)
    return re.split(r", |\n", found.group(1).strip()) if found else []


def example(messages: list[Message], layout: str) -> tuple[str, str]:
    """(the prompt text, what precedes the command) of the step after `messages`."""
    observations = [text_of(m) for m in messages if m["role"] != "assistant" and m["role"] != "system"]
    if layout == "chat-recap":
        return f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{observations[-1]}<|im_end|>\n" \
               "<|im_start|>assistant\n", ""
    commands = [text_of(m) for m in messages if m["role"] == "assistant"]
    goal, _, room = observations[0].partition("\n\n")
    current = ADMISSIBLE.sub("", observations[-1] if len(observations) > 1 else room)[:400]
    body = (f"Goal: {goal}\nObservation: {current}\nPrevious: {' | '.join(commands[-3:])}\n"
            f"Admissible: {' | '.join(admissible(observations[-1]))}")
    if layout == "compact":
        return body + "\nCommand:", " "
    return f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{body}<|im_end|>\n<|im_start|>assistant\n", ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--demos", required=True,
                        help="demonstrations JSONL (bench/ablation.py or the demo writes one)")
    parser.add_argument("--layout", default="compact", choices=LAYOUTS)
    parser.add_argument("--minutes", type=float, default=3.0, help="training wall time")
    parser.add_argument("--context-weight", type=float, default=0.0)
    parser.add_argument("--init", help="start from this model directory (its tokenizer too)")
    parser.add_argument("--test-games", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)

    demos = [t for t in read_trajectories(args.demos) if t.success]
    steps = []
    for t in demos:
        messages = t.messages()
        steps += [(*example(messages[:i], args.layout), text_of(m)) for i, m in enumerate(messages)
                  if m["role"] == "assistant"]
    if args.init:
        tokenizer, model = AutoTokenizer.from_pretrained(args.init), AutoModelForCausalLM.from_pretrained(args.init)
    else:
        tokenizer = train_tokenizer([p + lead + c for p, lead, c in steps], 2048)
        size = {k: v for k, v in SIZES["tiny"].items() if k != "vocab_size"}
        model = Qwen2ForCausalLM(Qwen2Config(vocab_size=-(-len(tokenizer) // 64) * 64, tie_word_embeddings=True,
                                             eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                                             head_dim=size["hidden_size"] // size["num_attention_heads"], **size))
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    encoded = [(tokenizer(p)["input_ids"], tokenizer(lead + c)["input_ids"] + [eos]) for p, lead, c in steps]

    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.95), weight_decay=0.0)
    start, step, epochs = time.monotonic(), 0, 0
    model.train()
    while time.monotonic() - start < args.minutes * 60:
        order = list(range(len(encoded)))
        rng.shuffle(order)
        epochs += 1
        for b in range(0, len(order), 32):
            elapsed = (time.monotonic() - start) / (args.minutes * 60)
            if elapsed >= 1:
                break
            for group in optimizer.param_groups:
                group["lr"] = 3e-3 * min(1.0, (step + 1) / 20) * 0.5 * (1 + math.cos(math.pi * elapsed))
            batch = [encoded[i] for i in order[b:b + 32]]
            width = max(len(p) + len(c) for p, c in batch)
            ids = torch.full((len(batch), width), pad)
            weights, attention = torch.zeros(len(batch), width), torch.zeros(len(batch), width, dtype=torch.long)
            for row, (p, c) in enumerate(batch):
                ids[row, :len(p) + len(c)] = torch.tensor(p + c)
                attention[row, :len(p) + len(c)] = 1
                weights[row, 1:len(p)] = args.context_weight
                weights[row, len(p):len(p) + len(c)] = 1.0
            logits = model(input_ids=ids, attention_mask=attention).logits[:, :-1]
            logp = torch.log_softmax(logits.float(), -1).gather(-1, ids[:, 1:, None])[..., 0]
            loss = -(logp * weights[:, 1:]).sum() / weights[:, 1:].sum()
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            step += 1
    model.eval()

    suite = next(s.name for s in list_suites() if s.env_id == demos[0].env_id)  # the demonstrations' games
    states = oracle_states(suite, args.test_games)
    prompts = [example(s.messages, args.layout) for s in states]
    free = choice = 0
    with torch.no_grad():
        for (prompt, lead), state in zip(prompts, states):
            ids = tokenizer(prompt)["input_ids"]
            out = model.generate(input_ids=torch.tensor([ids]), max_new_tokens=16, do_sample=False,
                                 eos_token_id=eos, pad_token_id=pad)[0, len(ids):].tolist()
            free += tokenizer.decode(out[:out.index(eos)] if eos in out else out).strip() == state.oracle
            options = state.info.get("admissible_actions") or []
            scores = []
            for command in options:
                tail = tokenizer(lead + command)["input_ids"] + [eos]
                logp = torch.log_softmax(model(input_ids=torch.tensor([ids + tail])).logits[0, len(ids) - 1:-1], -1)
                scores.append(logp.gather(-1, torch.tensor(tail)[:, None]).mean().item())
            choice += bool(options) and options[max(range(len(options)), key=scores.__getitem__)] == state.oracle
    print(json.dumps({"layout": args.layout, "context_weight": args.context_weight, "minutes": args.minutes,
                      "steps": step, "epochs": epochs, "states": len(states),
                      "turn_free": free / len(states), "turn_choice": choice / len(states)}))


if __name__ == "__main__":
    main()
