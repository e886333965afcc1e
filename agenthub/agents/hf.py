"""A local Hugging Face model directory (`hf:PATH`), sampled with transformers.

The chat template renders the conversation and the env's tools; the model's raw text
goes to the env, which parses any tool calls in it.
"""

from __future__ import annotations

import threading

from agenthub.agents.base import Context
from agenthub.errors import AgentHubError
from agenthub.types import Message


class HFAgent:
    def __init__(self, path: str, max_new_tokens: int = 64, temperature: float = 0.0):
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as e:
            raise AgentHubError("hf: agents need the train extra: pip install 'agenthub[train]'") from e
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModelForCausalLM.from_pretrained(path).eval()
        except OSError as e:
            raise AgentHubError(f"cannot load a model from {path!r}: {e}") from e
        self.torch = torch
        self.name = f"hf:{path}"
        self.max_new_tokens, self.temperature = max_new_tokens, temperature
        self._lock = threading.Lock()  # one generate at a time; the model is not thread-safe

    def act(self, messages: list[Message], ctx: Context) -> str:
        ids = self.tokenizer.apply_chat_template(messages, tools=ctx.env.tools or None,
                                                 add_generation_prompt=True, return_tensors="pt",
                                                 return_dict=True)["input_ids"]
        sampling = {"do_sample": True, "temperature": self.temperature} if self.temperature > 0 else {"do_sample": False}
        with self._lock, self.torch.no_grad():
            out = self.model.generate(ids, max_new_tokens=self.max_new_tokens,
                                      pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
                                      **sampling)
        return self.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
