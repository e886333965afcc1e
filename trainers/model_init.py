"""Models without a model hub: a tokenizer trained here, a fresh Qwen2 config, random weights.

`init_model` writes an ordinary Hugging Face model directory (config, safetensors,
tokenizer, chat template), so everything downstream treats it like a downloaded
checkpoint. The tokenizer is a byte-level BPE (any text encodes, no unknown tokens)
trained on the texts the model will see: a fixed base text covering the chat and
tool-call format, plus environment texts (`corpus_from_envs`). A vocabulary fitted to
the environment makes sequences short, which is most of what makes a CPU run fast.

Sizes keep head_dim at 64 (vLLM's CPU attention supports head dims from 32 up; 16 fails).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from agenthub.trainers.chat import CHAT_TEMPLATE, IM_END, IM_START, PAD, TOOL_CALL_CLOSE, TOOL_CALL_OPEN

SIZES: dict[str, dict[str, Any]] = {
    # ~3M parameters: learns small TextWorld games on a 2-core CPU in minutes.
    "tiny": dict(vocab_size=4096, hidden_size=256, intermediate_size=768, num_hidden_layers=4,
                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096),
    # ~22M parameters: the GPU-scale from-scratch model.
    "small": dict(vocab_size=8192, hidden_size=512, intermediate_size=1536, num_hidden_layers=8,
                  num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=8192),
}
# The SPA progress estimator's backbones (`agenthub.trainers.progress_estimator`): smaller,
# their vocabulary and context set by the estimator's own tokenizer and window.
ESTIMATOR_SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                 num_key_value_heads=1, head_dim=32),
    "small": dict(hidden_size=128, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=32),
}

_BASE_TEXT = """You are an agent in an interactive environment. Read the observation and act.
The user describes what you see; you answer with one command, or call a tool.
# Tools
Call a tool by writing <tool_call>{"name": NAME, "arguments": {...}}</tool_call>.
{"type": "function", "function": {"name": "search", "description": "Search.", "parameters": {"type": "object",
"properties": {"query": {"type": "string"}, "number": {"type": "integer"}}, "required": ["query"]}}}
Error: unknown tool. Error: empty action: write a command or call a tool. The answer is correct.
0 1 2 3 4 5 6 7 8 9 10 11 12 16 20 32 50 64 100 128 256 1000 true false null yes no
look inventory go north south east west take drop open close put insert into on from with the a an
"""


def byte_level_bpe(texts: Iterable[str], vocab_size: int, special_tokens: Iterable[str], min_frequency: int = 0) -> Any:
    """A byte-level BPE `tokenizers.Tokenizer` trained on `texts`: any text encodes, no
    unknown token. The one tokenizer trainer: policies and the progress estimator wrap it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, show_progress=False,
                                  special_tokens=list(special_tokens),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    core.train_from_iterator(texts, trainer)
    return core


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> Any:
    """A byte-level BPE `PreTrainedTokenizerFast` with our chat template; eos is `<|im_end|>`."""
    from transformers import PreTrainedTokenizerFast

    core = byte_level_bpe([_BASE_TEXT, *texts], vocab_size, [PAD, IM_START, IM_END], min_frequency=2)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, eos_token=IM_END, pad_token=PAD,
                                        chat_template=CHAT_TEMPLATE, model_max_length=1 << 20)
    tokenizer.add_tokens([TOOL_CALL_OPEN, TOOL_CALL_CLOSE])  # plain (decodable) single tokens
    return tokenizer


def init_model(out_dir: str | Path, size: str = "tiny", texts: Iterable[str] = (), seed: int = 0,
               **overrides: Any) -> Path:
    """Write a randomly initialised model + tokenizer to `out_dir`; `overrides` change
    the size's config (e.g. `hidden_size=64` for a test model)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from agenthub.errors import AgentHubError

    if size not in SIZES:
        raise AgentHubError(f"unknown model size {size!r} (sizes: {', '.join(SIZES)})")
    params = {**SIZES[size], **overrides}
    tokenizer = train_tokenizer(texts, params.pop("vocab_size"))
    heads = params["num_attention_heads"]
    head_dim = params["hidden_size"] // heads
    if head_dim < 32:
        raise AgentHubError(f"head_dim {head_dim} < 32: vLLM cannot serve it; use fewer heads")
    config = Qwen2Config(vocab_size=-(-len(tokenizer) // 64) * 64, tie_word_embeddings=True,
                         bos_token_id=None, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, rope_theta=10000.0, head_dim=head_dim,
                         **params)
    from transformers.utils import logging

    logging.disable_progress_bar()
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "agenthub_model.json").write_text(json.dumps({
        "size": size, "parameters": sum(p.numel() for p in model.parameters()), "seed": seed,
        "config": {**params, "vocab_size": config.vocab_size}}, indent=2))
    return out


def corpus_from_envs(env_ids: list[str], episodes: int = 20, concurrency: int = 2) -> list[str]:
    """Texts for the tokenizer: every message, admissible action and oracle action of
    `episodes` oracle-played episodes of each env (seeds from the train split range)."""
    from agenthub.agents.oracle import OracleAgent
    from agenthub.runner import Episode, run_episodes
    from agenthub.types import text_of

    texts: list[str] = []
    for env_id in env_ids:
        trajectories = run_episodes([Episode(env_id, i) for i in range(episodes)],
                                    OracleAgent(), concurrency=concurrency)
        for t in trajectories:
            for msg in t.messages():
                texts.append(text_of(msg))
                texts += [json.dumps(c["function"]) for c in msg.get("tool_calls") or []]
            for turn in t.turns:
                texts += turn.info.get("admissible_actions") or []
    return texts
