"""The trainer: from-scratch models, token-in-token-out rollouts, GRPO / RLOO / Dr.GRPO
with turn-level advantages, SFT warm-start, checkpoints.

Modules, in the order a newcomer should read them: `config` (what a run is), `chat`
(conversations as tokens), `model_init` (models without a hub), `engine` (batched
generation and scoring behind a small interface; `vllm_engine` is the vLLM one),
`policy` (the model as an agent for the rollout runner), `batch` (rollouts as training
tensors), `advantages`, `losses`, `sft`, `checkpoint`, and `grpo` (the loop, one file).
`report` draws a run's curves; `toy` is a synthetic env for smoke tests.
"""
