"""The progress estimator of SPA ("SPA-RL: Reinforcing LLM Agents via Stepwise Progress
Attribution"): a model that reads a whole trajectory and says how much each turn
contributed to the episode's outcome.

A causal transformer reads the conversation; a scalar head, read at the last token of
each assistant turn, gives that turn's contribution c_t. Because the backbone is causal,
c_t depends only on what happened up to turn t. Training asks only that the
contributions add up to the outcome, MSE(sum_t c_t, R), over many explored
trajectories; the model is left to work out which kinds of turns reliably come before
success, which is exactly the credit assignment a sparse outcome lacks.

The backbone is built from scratch (a small Qwen2-style model and a byte-level BPE
tokenizer trained on the trajectories' own text: no model hub is needed) or is any
local Hugging Face model directory. Conversations are rendered as plain text, one
"<role>" block per message, so turn boundaries are known exactly with any tokenizer, and
encoded as literal text (`trainers.chat_text`): a control-token string in a message
(`<bos>`, a backbone's `<|im_end|>`) is read as the text it is.
Long trajectories are cut into windows that each repeat the task prompt.

An estimator is saved to a directory (`backbone/` in Hugging Face format, `head.pt`,
`estimator.json` with its settings and training figures) and loaded back with `load`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import random
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
from agenthub.trainers.needs_torch import torch
from torch import nn

from agenthub.errors import AgentHubError
from agenthub.progress import progress_bar
from agenthub.trainers.chat_text import LiteralText
from agenthub.trainers.model_init import ESTIMATOR_SIZES as SIZES, byte_level_bpe
from agenthub.types import Message, Trajectory, text_of

TOKENS_PER_BATCH = 8192  # padded tokens in one forward pass: bounds memory on long trajectories


def render(message: Message) -> str:
    """A message as plain text: its role, its text, and any tool calls it makes."""
    text = text_of(message)
    for call in message.get("tool_calls") or []:
        function = call.get("function", {})
        text += f"\n{function.get('name')}({function.get('arguments')})"
    return f"<{message.get('role')}>\n{text}\n"


def train_tokenizer(texts: Iterable[str], vocab_size: int = 2048,
                    special_tokens: tuple[str, ...] = ("<pad>", "<bos>")) -> Any:
    """A byte-level BPE tokenizer trained on `texts` (any text encodes; no unknown token);
    its first two special tokens are pad and bos."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=byte_level_bpe(texts, vocab_size, special_tokens),
                                   pad_token=special_tokens[0], bos_token=special_tokens[1])


@dataclasses.dataclass
class _Window:
    """A stretch of one trajectory that fits the model: the prompt, then some turns."""

    trajectory: int
    turns: list[int]
    ids: list[int]
    ends: list[int]  # position of each turn's last token


class _ProgressModel(nn.Module):
    def __init__(self, backbone: nn.Module, hidden_size: int):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.head.weight)  # start from "no turn contributes anything"
        nn.init.zeros_(self.head.bias)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        hidden = self.backbone(input_ids=ids, attention_mask=mask).last_hidden_state
        return self.head(hidden[rows, cols]).squeeze(-1)


class ProgressEstimator:
    """Per-turn contributions of a trajectory to its outcome; see the module docstring."""

    def __init__(self, backbone: nn.Module, tokenizer: Any, *, max_tokens: int = 1024,
                 max_prompt_tokens: int = 192, max_message_tokens: int = 64):
        if max_prompt_tokens + 2 * max_message_tokens + 1 > max_tokens:
            raise AgentHubError("max_tokens must leave room for the prompt and at least one turn")
        self.model = _ProgressModel(backbone, backbone.config.hidden_size)
        self.tokenizer = tokenizer
        self._literal = LiteralText(tokenizer)  # message text never becomes control ids
        self.max_tokens, self.max_prompt_tokens, self.max_message_tokens = (
            max_tokens, max_prompt_tokens, max_message_tokens)
        self.info: dict[str, Any] = {}  # training figures, saved with the estimator

    @classmethod
    def from_scratch(cls, trajectories: list[Trajectory], *, size: str = "tiny", vocab_size: int = 2048,
                     max_tokens: int = 1024, seed: int = 0, **kwargs: Any) -> ProgressEstimator:
        """A new Qwen2-style backbone, its tokenizer trained on these trajectories' text."""
        from transformers import AutoModel, Qwen2Config

        if size not in SIZES:
            raise AgentHubError(f"unknown estimator size {size!r} (choose from: {', '.join(SIZES)})")
        texts = (render(m) for t in trajectories for m in t.messages())
        tokenizer = train_tokenizer(texts, vocab_size)
        torch.manual_seed(seed)
        config = Qwen2Config(vocab_size=len(tokenizer), max_position_embeddings=max_tokens,
                             tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id,
                             bos_token_id=tokenizer.bos_token_id, **SIZES[size])
        return cls(AutoModel.from_config(config), tokenizer, max_tokens=max_tokens, **kwargs)

    @classmethod
    def from_backbone(cls, path: str | Path, *, max_tokens: int = 1024, **kwargs: Any) -> ProgressEstimator:
        """A local Hugging Face model directory as the backbone (its LM head is dropped)."""
        from transformers import AutoModel, AutoTokenizer

        from agenthub.trainers.model_sources import local_model_dir

        path = local_model_dir(path)  # any model spec (Hub id, .gguf, adapter, ...) as one directory
        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
            backbone = AutoModel.from_pretrained(path)
        except (OSError, ValueError) as e:
            raise AgentHubError(f"cannot load a backbone from {str(path)!r}: {e}") from e
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        max_tokens = min(max_tokens, getattr(backbone.config, "max_position_embeddings", max_tokens))
        return cls(backbone, tokenizer, max_tokens=max_tokens, **kwargs)

    @classmethod
    def load(cls, directory: str | Path) -> ProgressEstimator:
        from transformers import AutoModel, PreTrainedTokenizerFast

        directory = Path(directory)
        if not (directory / "estimator.json").is_file():
            raise AgentHubError(f"{directory} is not a progress estimator (no estimator.json): "
                                f"make one with `agenthub rewards train-progress`")
        settings = json.loads((directory / "estimator.json").read_text())
        # the tokenizer exactly as saved: AutoTokenizer would pick the backbone type's own
        # tokenizer class, which may pre-tokenize differently (Qwen2's splits digits)
        with _no_hf_progress_bars():
            backbone = AutoModel.from_pretrained(directory / "backbone")
        estimator = cls(backbone, PreTrainedTokenizerFast.from_pretrained(directory / "backbone"),
                        **settings["settings"])
        estimator.model.head.load_state_dict(torch.load(directory / "head.pt", weights_only=True))
        estimator.info = settings.get("info", {})
        return estimator

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with _no_hf_progress_bars():
            self.model.backbone.save_pretrained(directory / "backbone")
        self.tokenizer.save_pretrained(directory / "backbone")
        torch.save(self.model.head.state_dict(), directory / "head.pt")
        settings = {"max_tokens": self.max_tokens, "max_prompt_tokens": self.max_prompt_tokens,
                    "max_message_tokens": self.max_message_tokens}
        (directory / "estimator.json").write_text(json.dumps({"settings": settings, "info": self.info}, indent=2))

    @torch.no_grad()
    def predict(self, trajectories: list[Trajectory]) -> list[list[float]]:
        """Each turn's contribution c_t, for every trajectory (batched forward passes)."""
        self.model.eval()
        out = [[0.0] * len(t.turns) for t in trajectories]
        windows = self._encode(trajectories)
        for batch in _batches(windows, lambda w: len(w.ids)):
            values = self._forward(batch)
            for window, (start, stop) in zip(batch, _spans(batch)):
                for turn, value in zip(window.turns, values[start:stop].tolist()):
                    out[window.trajectory][turn] = value
        return out

    def fit(self, trajectories: list[Trajectory], *, epochs: int = 10, batch_size: int = 8, lr: float = 2e-3,
            seed: int = 0, progress: bool = True) -> list[float]:
        """Train so that each trajectory's contributions sum to its outcome; returns the
        mean training loss of each epoch."""
        examples = [t for t in trajectories if t.turns]
        if not examples:
            raise AgentHubError("no trajectory with turns to train the progress estimator on")
        by_trajectory: dict[int, list[_Window]] = {}
        for window in self._encode(examples):
            by_trajectory.setdefault(window.trajectory, []).append(window)
        device = self.device
        targets = torch.tensor([t.outcome for t in examples], dtype=torch.float32, device=device)
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=lr, weight_decay=0.0)
        rng = random.Random(seed)
        order = list(by_trajectory)
        losses: list[float] = []
        self.model.train()
        with progress_bar(progress, "training progress estimator", epochs) as advance:
            for epoch in range(epochs):
                rng.shuffle(order)
                total, count = 0.0, 0
                for group in _batches(order, lambda i: sum(len(w.ids) for w in by_trajectory[i]), batch_size):
                    batch = [w for i in group for w in by_trajectory[i]]
                    position = {i: p for p, i in enumerate(group)}
                    owners = torch.tensor([position[w.trajectory] for w in batch for _ in w.turns], device=device)
                    sums = torch.zeros(len(group), device=device).index_add(0, owners, self._forward(batch))
                    loss = nn.functional.mse_loss(sums, targets[torch.tensor(group, device=device)])
                    optimizer.zero_grad()
                    loss.backward()
                    nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
                    optimizer.step()
                    total, count = total + loss.item() * len(group), count + len(group)
                losses.append(total / count)
                advance(f"training progress estimator · loss {losses[-1]:.4f}")
        self.model.eval()
        return losses

    def _forward(self, batch: list[_Window]) -> torch.Tensor:
        """The contributions at every turn end of every window, concatenated in order."""
        width = max(len(w.ids) for w in batch)
        ids = torch.full((len(batch), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        rows, cols = [], []
        for r, window in enumerate(batch):
            ids[r, :len(window.ids)] = torch.tensor(window.ids)
            mask[r, :len(window.ids)] = 1
            rows += [r] * len(window.ends)
            cols += window.ends
        device = self.device
        return self.model(ids.to(device), mask.to(device), torch.tensor(rows, device=device),
                          torch.tensor(cols, device=device))

    @property
    def device(self) -> torch.device:
        """Where the model is: move it with `estimator.model.to(...)`."""
        return next(self.model.parameters()).device

    def _encode(self, trajectories: list[Trajectory]) -> list[_Window]:
        windows = []
        start = [self.tokenizer.bos_token_id] if self.tokenizer.bos_token_id is not None else []
        for index, trajectory in enumerate(trajectories):
            if not trajectory.turns:
                continue
            prompt = start + self._tokens(trajectory.turns[0].observation, per_message=False)[-self.max_prompt_tokens:]
            window = _Window(index, [], list(prompt), [])
            for k, turn in enumerate(trajectory.turns):
                segment = (self._tokens(turn.observation) if k else []) + self._tokens([turn.action])
                segment = segment[-(self.max_tokens - len(prompt)):]
                if window.turns and len(window.ids) + len(segment) > self.max_tokens:
                    windows.append(window)
                    window = _Window(index, [], list(prompt), [])
                window.ids += segment
                window.turns.append(k)
                window.ends.append(len(window.ids) - 1)
            windows.append(window)
        return windows

    def _tokens(self, messages: list[Message], per_message: bool = True) -> list[int]:
        if not messages:
            return []
        encoded = self._literal.encode_batch([render(m) for m in messages])
        cap = self.max_message_tokens if per_message else None
        return [token for ids in encoded for token in ids[:cap]]


@contextlib.contextmanager
def _no_hf_progress_bars() -> Iterator[None]:
    """transformers' weight-loading and shard bars are noise for a model of a few MB."""
    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if shown:
            hf_logging.enable_progress_bar()


def _batches(items: list[Any], size: Any, most: int | None = None) -> Iterable[list[Any]]:
    """Consecutive items, at most `most` at a time, grouped so that each group's padded
    size stays within TOKENS_PER_BATCH (an item larger than that goes alone)."""
    batch: list[Any] = []
    longest = 0
    for item in items:
        n = size(item)
        if batch and (max(longest, n) * (len(batch) + 1) > TOKENS_PER_BATCH or len(batch) == most):
            yield batch
            batch, longest = [], 0
        batch.append(item)
        longest = max(longest, n)
    if batch:
        yield batch


def _spans(batch: list[_Window]) -> list[tuple[int, int]]:
    spans, start = [], 0
    for window in batch:
        spans.append((start, start + len(window.turns)))
        start += len(window.turns)
    return spans


def train_progress_estimator(trajectories: list[Trajectory], out: str | Path, *, backbone: str | None = None,
                             size: str = "tiny", epochs: int = 10, lr: float = 2e-3, heldout: float = 0.1,
                             seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Train an estimator on explored trajectories, score it on held-out tasks, save it to
    `out`, and return its figures. Tasks (not episodes) are held out, so the held-out
    figures measure generalisation to unseen tasks."""
    tasks = sorted({t.task_id for t in trajectories})
    random.Random(seed).shuffle(tasks)
    held = set(tasks[:int(len(tasks) * heldout)]) if len(tasks) > 1 else set()
    train = [t for t in trajectories if t.task_id not in held]
    test = [t for t in trajectories if t.task_id in held and t.turns]
    if backbone:
        estimator = ProgressEstimator.from_backbone(backbone)
    else:
        estimator = ProgressEstimator.from_scratch(train, size=size, seed=seed)
    losses = estimator.fit(train, epochs=epochs, lr=lr, seed=seed, progress=progress)
    info: dict[str, Any] = {"trajectories": len(train), "heldout_trajectories": len(test),
                            "parameters": sum(p.numel() for p in estimator.model.parameters()),
                            "final_train_mse": losses[-1], "epochs": epochs}
    if test:
        sums = np.array([sum(c) for c in estimator.predict(test)])
        outcomes = np.array([t.outcome for t in test])
        info["heldout_mse"] = float(np.mean((sums - outcomes) ** 2))
        if sums.std() > 0 and outcomes.std() > 0:
            info["heldout_pearson"] = float(np.corrcoef(sums, outcomes)[0, 1])
    estimator.info = info
    estimator.save(out)
    return info
