"""Checkpoints: a model's parameters, architecture and configuration in one ``.npz`` file.

Layout of the file (a plain NumPy ``.npz``, readable with ``numpy.load(path, allow_pickle=False)``):

- one array per parameter, under the parameter's name (``"0_dense.W"``, ``"rlstm.gates.W"``, ...);
- ``"__lrpnet__"``: a 0-d unicode array holding JSON metadata::

      {"format": "lrpnet-checkpoint", "format_version": 1, "lrpnet_version": "0.1.0",
       "arch": "rlstm", "config": {...}, "dtype": "float32",
       "params": {"name": [shape, dtype], ...}, "extra": ..., "optimizer": {...} or null}

- with ``optimizer=``: the Adam moments under ``"optimizer/m/<name>"`` and ``"optimizer/v/<name>"``
  (their step count and settings are in the metadata), so a run can resume exactly.

``load`` rebuilds the model with ``lrpnet.models.build(arch, **config)`` and copies the arrays into its
parameters in place, checking names, shapes and dtypes; the round trip is bit-exact. Before building,
every size in the configuration is checked against the stored arrays (a width larger than all the
parameter values the file holds cannot match them, and would ask for memory before failing), and after
it every parameter must be finite: NaN or infinite weights are refused (``save`` refuses them too).

Old parameter names: the sigmoid gates of the R-LSTM, LSTM, GRU and R-GRU cells were one layer per
gate (``cell.gate_i.W``, ``cell.gate_f.W``, ``cell.gate_o.W``, ...) and are now one layer computing them
side by side (``cell.gates.W``, columns i, f, o; ``lrpnet.cells.gates``). A checkpoint written with
the old names loads as it is: ``load`` concatenates the old per-gate arrays (and Adam moments) along
the output axis into the joined one (``joined_from`` on the joined layer names the old layers), which
is exactly the model that checkpoint held. No pickles: the
metadata is JSON and every array is numeric, so loading a file cannot run code.

Writes are atomic: the file is written to a temporary file in the target directory, flushed to disk,
then renamed over ``path``; if anything fails, the temporary file is removed and an existing file at
``path`` is left as it was.
"""
from __future__ import annotations

import inspect
import json
import os
import tempfile
import zipfile

import numpy

from .. import backend

FORMAT = "lrpnet-checkpoint"
FORMAT_VERSION = 1
META_KEY = "__lrpnet__"
OPT_PREFIX = "optimizer/"

__all__ = ["save", "load", "read_meta", "join_old_names", "CheckpointError", "FORMAT", "FORMAT_VERSION"]


class CheckpointError(ValueError):
    """A file that is not a readable lrpnet checkpoint, or one that does not fit its architecture."""


# -- writing -----------------------------------------------------------------------------------------
def _jsonable(o):
    """JSON fallback for the NumPy scalars and arrays a configuration may hold."""
    if isinstance(o, numpy.generic):
        return o.item()
    if isinstance(o, numpy.ndarray):
        return o.tolist()
    if isinstance(o, numpy.dtype):
        return o.name
    raise TypeError(f"{type(o).__name__} object {o!r} cannot be stored in a checkpoint's JSON metadata")


def save(model, path, extra=None, optimizer=None) -> None:
    """Write ``model`` to ``path`` (an ``.npz`` file; the name is used as given), atomically.

    ``extra``: anything JSON can hold (a training history, notes), returned by ``read_meta`` /
    ``load(path, with_meta=True)`` under ``"extra"``. ``optimizer``: an ``lrpnet.training.Adam`` whose
    state is stored too, so training can resume (``meta["optimizer_state"]``).
    """
    from .. import __version__

    path = os.fspath(path)
    params = backend.fetch(model.params)         # host arrays: one copy per dtype from a GPU
    for k, a in params.items():
        if k == META_KEY or k.startswith(OPT_PREFIX):
            raise ValueError(f"save: parameter name {k!r} clashes with the checkpoint's own keys")
        if not numpy.isfinite(a).all():
            raise ValueError(f"save: parameter {k!r} holds {_count_bad(a)}; a checkpoint holds finite weights")
    arrays = dict(params)
    opt_meta = None
    if optimizer is not None:
        state = optimizer.state_dict()
        if set(state["m"]) != set(params):
            raise ValueError("save: the optimizer's parameters are not the model's")
        opt_meta = {k: state[k] for k in ("t", "lr", "beta1", "beta2", "eps")}
        for which in ("m", "v"):
            arrays.update({f"{OPT_PREFIX}{which}/{k}": a for k, a in state[which].items()})
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "lrpnet_version": __version__,
            "arch": model.arch, "config": model.config, "dtype": model.dtype.name,
            "params": {k: [list(a.shape), a.dtype.name] for k, a in params.items()},
            "extra": extra, "optimizer": opt_meta}
    try:
        text = json.dumps(meta, default=_jsonable, allow_nan=True)
    except (TypeError, ValueError) as e:
        raise TypeError(f"save: the metadata cannot be written as JSON ({e}); "
                        f"'extra' must hold only dicts, lists, strings, numbers, booleans and None") from e
    arrays[META_KEY] = numpy.array(text)          # a 0-d unicode array, not an object array

    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            numpy.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)                      # mkstemp makes 0600; a checkpoint is ordinary data
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(directory)                   # make the rename itself durable


def _fsync_directory(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:                               # some platforms cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- reading -----------------------------------------------------------------------------------------
def _open(path):
    """The file's arrays as a dict name -> numpy array, and its metadata, or a CheckpointError."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint at {path!r}")
    with open(path, "rb") as f:
        head = f.read(4)
    if not zipfile.is_zipfile(path):
        if head.startswith(b"PK"):
            raise CheckpointError(f"{path!r} is a damaged .npz file (truncated or corrupt: its zip "
                                  f"directory is missing); write the checkpoint again")
        raise CheckpointError(f"{path!r} is not an lrpnet checkpoint: expected an .npz (zip) file, "
                              f"the file starts with {head!r}")
    try:
        with numpy.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"{path!r} is a damaged .npz file ({type(e).__name__}: {e})") from e
    if META_KEY not in arrays:
        shown = ", ".join(sorted(arrays)[:8]) + (", ..." if len(arrays) > 8 else "")
        raise CheckpointError(f"{path!r} is an .npz file but not an lrpnet checkpoint: it has no "
                              f"{META_KEY!r} metadata (arrays found: {shown or 'none'}); "
                              f"lrpnet reads only files written by lrpnet.save")
    raw = arrays.pop(META_KEY)
    if raw.dtype.kind != "U" or raw.ndim != 0:
        raise CheckpointError(f"{path!r}: the {META_KEY!r} entry must be a 0-d unicode array, "
                              f"got {raw.dtype} of shape {raw.shape}")
    try:
        meta = json.loads(str(raw))
    except ValueError as e:
        raise CheckpointError(f"{path!r}: the metadata is not valid JSON ({e})") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise CheckpointError(f"{path!r}: metadata format is {got!r}, expected {FORMAT!r}")
    version = meta.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{path!r}: invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path!r} was written in checkpoint format version {version} (by lrpnet "
                              f"{meta.get('lrpnet_version', '?')}); this lrpnet reads versions up to "
                              f"{FORMAT_VERSION}: upgrade lrpnet to load it")
    for key in ("arch", "config", "dtype"):
        if key not in meta:
            raise CheckpointError(f"{path!r}: the metadata lacks {key!r}")
    return arrays, meta


def read_meta(path) -> dict:
    """The checkpoint's JSON metadata (architecture, configuration, dtype, versions, ``extra``)."""
    return _open(path)[1]


# the configuration fields of a Sequential's layer specs that size its parameter arrays
SEQUENTIAL_SIZES = ("n_in", "n_out", "in_channels", "out_channels", "kernel_size")


def _sizes(config, where="config"):
    """(field, value) for every int in a configuration (nested dicts and lists) but the seed."""
    if isinstance(config, dict):
        for k, v in config.items():
            if k != "seed":
                yield from _sizes(v, f"{where}[{k!r}]")
    elif isinstance(config, (list, tuple)):
        for i, v in enumerate(config):
            yield from _sizes(v, f"{where}[{i}]")
    elif isinstance(config, int) and not isinstance(config, bool):
        yield where, config


def _check_sizes(arch, config, n_values, path):
    """Every size of the configuration is at most ``n_values``, the number of parameter values the
    file stores: each is a dimension of some parameter array of the model it describes (a width, a
    channel count, the classes, an input side, the steps), so a larger one cannot match the stored
    arrays, and building the model first would ask for its memory (units = 1e9: a MemoryError).
    A Sequential's input shape and pool sizes size no array; only its layers' widths are checked."""
    if arch == "sequential":
        fields = [(f, v) for i, spec in enumerate(config.get("layers") or [])
                  if isinstance(spec, (list, tuple)) and len(spec) == 2 and isinstance(spec[1], dict)
                  for k, value in spec[1].items() if k in SEQUENTIAL_SIZES
                  for f, v in _sizes(value, f"config['layers'][{i}][1][{k!r}]")]
    else:
        fields = list(_sizes(config))
    for field, value in fields:
        if value > max(n_values, 1):
            raise CheckpointError(f"{path!r}: {field} = {value} is larger than all {n_values:,} parameter "
                                  f"values the file stores, so the model it describes cannot match them "
                                  f"(a damaged or edited configuration)")


def _count_bad(a):
    """'3 NaN and 1 infinite values', for an error message."""
    return f"{int(numpy.isnan(a).sum())} NaN and {int(numpy.isinf(a).sum())} infinite values"


def _rebuild(meta, path, n_values):
    """A fresh model of the checkpoint's architecture and configuration; ``n_values``: the number of
    parameter values the file stores (``_check_sizes``)."""
    from ..models import Sequential, build
    arch, config = meta["arch"], dict(meta["config"])
    if arch == "sequential":
        cls = Sequential
    else:
        from ..models import ARCHITECTURES, names, upgrade_config
        if arch not in names():
            raise CheckpointError(f"{path!r}: unknown architecture {arch!r}; this lrpnet knows "
                                  f"sequential, {', '.join(names())}")
        cls = ARCHITECTURES[arch]
        config = upgrade_config(arch, config)     # options the stored model predates: what it was
    accepted = inspect.signature(cls.__init__).parameters
    if "dtype" in accepted or any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        config.setdefault("dtype", meta["dtype"])
    _check_sizes(arch, config, n_values, path)
    try:
        model = Sequential(**config) if arch == "sequential" else build(arch, **config)
    except (TypeError, ValueError, MemoryError) as e:
        raise CheckpointError(f"{path!r}: cannot rebuild architecture {arch!r} from the stored "
                              f"configuration ({type(e).__name__}: {e})") from e
    if model.dtype.name != meta["dtype"]:
        raise CheckpointError(f"{path!r}: the rebuilt model is {model.dtype.name}, the checkpoint {meta['dtype']}")
    return model


def join_old_names(model, arrays: dict) -> dict:
    """``arrays`` (parameter name -> array) with the arrays of layers that ``model`` now joins into one
    (a layer with ``joined_from``, the old layers' names) concatenated along the last axis under the
    new name, where every old part is there and the new name is not (module docstring)."""
    out = dict(arrays)
    for lname, layer in model.layers.items():
        old = getattr(layer, "joined_from", None)
        if not old:
            continue
        for local in layer.params:
            parts = [f"{o}.{local}" for o in old]
            if f"{lname}.{local}" not in out and all(k in out for k in parts):
                out[f"{lname}.{local}"] = numpy.concatenate([out.pop(k) for k in parts], axis=-1)
    return out


def load(path, with_meta=False):
    """Read a model written by ``save``: the same architecture, configuration and (bit-exact) weights.

    With ``with_meta=True`` returns ``(model, meta)``; ``meta["extra"]`` is what ``save`` was given and
    ``meta["optimizer_state"]`` (None if no optimizer was saved) goes to ``Adam.load_state_dict``.
    Raises ``CheckpointError`` for a damaged or foreign file, an unknown architecture, a newer format
    version, or parameters that do not fit the architecture (missing, extra, wrong shape or dtype).
    """
    path = os.fspath(path)
    arrays, meta = _open(path)
    stored = {k: a for k, a in arrays.items() if not k.startswith(OPT_PREFIX)}
    if not isinstance(meta["config"], dict):
        raise CheckpointError(f"{path!r}: the configuration must be a JSON object, got {type(meta['config']).__name__}")
    model = _rebuild(meta, path, sum(a.size for a in stored.values()))
    params = model.params
    stored = join_old_names(model, stored)
    missing = sorted(set(params) - set(stored))
    unexpected = sorted(set(stored) - set(params))
    if missing or unexpected:
        raise CheckpointError(f"{path!r} does not fit architecture {meta['arch']!r}: "
                              f"missing parameters {missing or 'none'}; unexpected parameters {unexpected or 'none'}")
    for k, p in params.items():
        a = stored[k]
        if tuple(a.shape) != tuple(p.shape):
            raise CheckpointError(f"{path!r}: parameter {k!r} has shape {tuple(a.shape)}, architecture "
                                  f"{meta['arch']!r} expects {tuple(p.shape)}")
        if a.dtype != p.dtype:
            raise CheckpointError(f"{path!r}: parameter {k!r} is {a.dtype}, the model is {p.dtype}")
        if not numpy.isfinite(a).all():
            raise CheckpointError(f"{path!r}: parameter {k!r} holds {_count_bad(a)}; a model explains "
                                  f"to NaN with them (the file is damaged, or was saved from a diverged run)")
    for k, p in params.items():
        p[...] = backend.asarray(stored[k])
    if not with_meta:
        return model
    meta = dict(meta)
    meta["optimizer_state"] = None
    if meta.get("optimizer") is not None:
        state = dict(meta["optimizer"])
        for which in ("m", "v"):
            prefix = f"{OPT_PREFIX}{which}/"
            state[which] = join_old_names(model, {k[len(prefix):]: a for k, a in arrays.items()
                                                  if k.startswith(prefix)})
            if set(state[which]) != set(params):
                raise CheckpointError(f"{path!r}: the optimizer state does not cover the model's parameters")
            for k, a in state[which].items():
                if a.dtype.kind != "f":
                    raise CheckpointError(f"{path!r}: the optimizer's {which}[{k!r}] is {a.dtype}, not floats")
                if not numpy.isfinite(a).all():
                    raise CheckpointError(f"{path!r}: the optimizer's {which}[{k!r}] holds {_count_bad(a)}")
        meta["optimizer_state"] = state
    return model, meta
