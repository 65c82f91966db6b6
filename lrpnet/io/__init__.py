"""Models in and out of lrpnet: checkpoints (``save`` / ``load``) and PyTorch models (``from_torch``)."""
from .checkpoint import FORMAT, FORMAT_VERSION, CheckpointError, load, save
from .pytorch import from_torch

__all__ = ["save", "load", "CheckpointError", "FORMAT", "FORMAT_VERSION", "from_torch"]
