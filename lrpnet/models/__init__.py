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


def options(name: str) -> dict:
    """The options architecture ``name`` takes (``dropout``, ``relu_bias``, ``pool``: the module
    docstring of ``lrpnet.models.recurrent``) with their defaults; {} for "sequential"."""
    import inspect
    _load_architectures()
    if name == "sequential":
        return {}
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; expected one of {', '.join(names())}")
    from .recurrent import OPTIONS
    accepted = inspect.signature(ARCHITECTURES[name].__init__).parameters
    return {k: accepted[k].default for k in OPTIONS if k in accepted}


def upgrade_config(name: str, config: dict) -> dict:
    """``config`` (a model's stored configuration) with the options it predates set to what the model
    it describes was (the architecture's ``legacy_config``: Shallow, Deep, DeepV2, ConvDeep and
    Conv+Deep had no dropout before the ``dropout`` option); a new dict. What ``lrpnet.io.load`` calls
    before rebuilding a checkpoint's model."""
    _load_architectures()
    config = dict(config)
    for key, value in getattr(ARCHITECTURES.get(name), "legacy_config", {}).items():
        config.setdefault(key, value)
    return config


def names() -> list:
    """The names ``build`` accepts for the study's recurrent architectures."""
    _load_architectures()
    return list(ARCHITECTURES)


def _load_architectures():
    from . import recurrent  # noqa: F401  (registers the architectures)


__all__ = ["Model", "Sequential", "build", "names", "options", "upgrade_config", "architecture", "ARCHITECTURES"]
