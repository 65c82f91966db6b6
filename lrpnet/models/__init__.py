"""Models by name: ``build("rlstm", input_shape=(28, 84), T=12, n_classes=10, seed=0)``."""
from __future__ import annotations

from .base import Model
from .sequential import Sequential

ARCHITECTURES: dict = {}     # name -> Model subclass, filled by @architecture


def architecture(name):
    """Class decorator: make a Model subclass buildable as ``build(name, ...)``."""
    def register(cls):
        cls.arch = name
        ARCHITECTURES[name] = cls
        return cls
    return register


def build(name: str, **config) -> Model:
    """A new model of architecture ``name``; ``config`` is passed to its constructor."""
    _load_architectures()
    if name == "sequential":
        return Sequential(**config)
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; expected one of {', '.join(names())}")
    return ARCHITECTURES[name](**config)


def names() -> list:
    """The names ``build`` accepts for the study's recurrent architectures."""
    _load_architectures()
    return list(ARCHITECTURES)


def _load_architectures():
    from . import recurrent  # noqa: F401  (registers the architectures)


__all__ = ["Model", "Sequential", "build", "names", "architecture", "ARCHITECTURES"]
