"""Rollouts against a running `vllm serve`, for setups that put inference on other GPUs
or machines than the trainer: the same `Engine` interface as `VLLMEngine`, over HTTP.

Generation and scoring use the OpenAI-compatible `/v1/completions` endpoint with token-id
prompts and vLLM's extensions (`return_token_ids`, per-request `seed`, `stop_token_ids`,
`prompt_logprobs`), so token-in-token-out holds across the wire. Each prompt is its own
request, sent concurrently; the server batches them at every decoding step, so calls from
many threads at once share steps too (`continuous`: `PolicyAgent` sends each turn straight in).

Weight updates are pushed: `load_weights` writes the trainer's parameters as safetensors
into `weights_dir`, a directory the server reads too (a shared filesystem when it runs
elsewhere), asks the server to reload from it and drops its prefix cache. Those two
calls are vLLM's development endpoints, so the server needs `VLLM_SERVER_DEV_MODE=1`.
Start it as

    VLLM_SERVER_DEV_MODE=1 vllm serve MODEL_DIR --logprobs-mode processed_logprobs --max-logprobs -1

(`processed_logprobs`: log-probabilities after temperature, as the trainer expects;
`--max-logprobs -1`: scoring at a temperature other than 1 reads whole distributions).
"""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from agenthub.errors import AgentHubError
from agenthub.trainers.engine import Generation, logprob_temperature
from agenthub.trainers.vllm_weights import hf_weights, tempered_logprob


class VLLMServerEngine:
    def __init__(self, base_url: str, eos_token_id: int, *, model: str | None = None,
                 weights_dir: str | Path | None = None, concurrency: int = 64, timeout: float = 600.0):
        self.base_url = base_url.rstrip("/")
        self.eos_token_id = eos_token_id
        self.continuous = True
        self.client = httpx.Client(base_url=self.base_url, timeout=timeout,
                                   limits=httpx.Limits(max_connections=concurrency))
        self.pool = ThreadPoolExecutor(concurrency, thread_name_prefix="vllm-server")
        self.model = model or self._post_or_get("GET", "/v1/models")["data"][0]["id"]
        self._weights_tmp = None if weights_dir else tempfile.TemporaryDirectory(prefix="agenthub-weights-")
        self.weights_dir = Path(weights_dir or self._weights_tmp.name)  # type: ignore[union-attr]

    def generate(self, prompts: list[list[int]], seeds: list[int], *, max_new_tokens: int,
                 temperature: float) -> list[Generation]:
        def one(prompt: list[int], seed: int) -> Generation:
            choice = self._complete(prompt, max_tokens=max_new_tokens, temperature=temperature, seed=seed,
                                    logprobs=0, stop_token_ids=[self.eos_token_id])
            ids = choice["token_ids"]
            return Generation(ids, choice["logprobs"]["token_logprobs"], bool(ids) and ids[-1] == self.eos_token_id)
        return list(self.pool.map(one, prompts, seeds))

    def score(self, prompts: list[list[int]], candidates: list[list[list[int]]], *,
              temperature: float) -> list[list[list[float]]]:
        tau = logprob_temperature(temperature)

        def one(prompt: list[int], cand: list[int]) -> list[float]:
            choice = self._complete(prompt + cand, max_tokens=1, prompt_logprobs=0 if tau == 1.0 else -1)
            positions = choice["prompt_logprobs"][-len(cand):]
            return [tempered_logprob({int(t): lp["logprob"] for t, lp in position.items()}, token, tau)
                    for token, position in zip(cand, positions)]
        requests = [(row, cand) for row, cands in enumerate(candidates) for cand in cands]
        scored = self.pool.map(one, [prompts[row] for row, _ in requests], [cand for _, cand in requests])
        results: list[list[list[float]]] = [[] for _ in prompts]
        for (row, _), logprobs in zip(requests, scored):
            results[row].append(logprobs)
        return results

    def load_weights(self, model: Any) -> None:
        """Push the trainer's parameters to the server (see the module docstring)."""
        from safetensors.torch import save_file

        # clone: tied tensors share memory, which safetensors refuses to write
        save_file({name: t.detach().cpu().contiguous().clone() for name, t in hf_weights(model)},
                  str(self.weights_dir / "model.safetensors"))
        self._post_or_get("POST", "/collective_rpc", {"method": "reload_weights",
                                                      "kwargs": {"weights_path": str(self.weights_dir)}})
        self._post_or_get("POST", "/reset_prefix_cache")

    def _complete(self, prompt: list[int], **params: Any) -> dict[str, Any]:
        body = {"model": self.model, "prompt": prompt, "return_token_ids": True, "skip_special_tokens": False,
                **params}
        return self._post_or_get("POST", "/v1/completions", body)["choices"][0]

    def _post_or_get(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            r = self.client.request(method, path, json=body)
        except httpx.HTTPError as e:
            raise AgentHubError(f"vLLM server {self.base_url} unreachable: {e}") from e
        if r.status_code == 404 and path in ("/collective_rpc", "/reset_prefix_cache"):
            raise AgentHubError(f"vLLM server {self.base_url} has no {path}: start it with VLLM_SERVER_DEV_MODE=1 "
                                "to let the trainer push weights")
        if r.status_code >= 400:
            raise AgentHubError(f"vLLM server {self.base_url}{path} answered {r.status_code}: {r.text[:300]}")
        return r.json() if r.content else None

    def close(self) -> None:
        self.pool.shutdown()
        self.client.close()
