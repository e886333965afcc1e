"""`from agenthub.trainers.needs_torch import torch`: torch, or an ImportError that says which
extra to install. The trainer modules import torch this way, so a user without the `train`
extra gets the pip command rather than a bare `No module named 'torch'`."""
try:
    import torch
except ImportError as e:
    raise ImportError(f"this part of agenthub needs torch: pip install 'agenthub[train]' ({e})") from e

__all__ = ["torch"]
