"""Bridges from agenthub to other projects' trainers and servers (one module per project).

Nothing in the core imports this package: each bridge imports its project lazily and
only when used, so agenthub installs and runs without them.

- `agenthub.integrations.trl`: agenthub envs and suites as TRL `GRPOTrainer`
  environments (`environment_factory`), reward modules as TRL reward functions.
"""
