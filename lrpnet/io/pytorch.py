"""PyTorch models as lrpnet models with the same weights: ``from_torch(module, ...)``.

Two kinds of torch model convert:

(a) an ``nn.Sequential`` (or several modules given in order) of Linear, Conv2d, ReLU, Sigmoid, Tanh,
    MaxPool2d, AvgPool2d, Flatten, Dropout and Identity -> an lrpnet ``Sequential``. ``input_shape``
    is ONE SAMPLE'S SHAPE IN TORCH'S ORDER: ``(features,)`` for an MLP, ``(C, H, W)`` for a CNN. lrpnet
    images are NHWC, so the converted CNN takes input of shape (N, H, W, C): pass
    ``x_torch.permute(0, 2, 3, 1)`` (``model.input_shape`` says what it expects). Two consequences
    are handled here: conv kernels go from torch's (out, in, kh, kw) to lrpnet's (kh, kw, in, out),
    and the first Linear after a Flatten of a (C, H, W) tensor gets its input columns reordered from
    torch's C,H,W flattening order to lrpnet's H,W,C order.

    Padding: lrpnet convolutions and pools use TensorFlow's "VALID" / "SAME" padding. Torch's
    ``padding=0`` is VALID; an integer padding p converts when it is exactly what SAME does on this
    input size (the same output size and p rows/columns before), e.g. p = (k - 1) / 2 for an odd
    kernel with stride 1. Anything else (even kernels with padding, dilation, groups, ceil_mode,
    reflect padding, AvgPool2d counting padded zeros) is refused with an error that names the module.

(b) an ``nn.LSTM`` or ``nn.GRU`` (one layer, one direction, batch_first or not) followed by an
    ``nn.Linear`` on its last hidden state -> lrpnet's ``lstm`` / ``gru`` architecture. lrpnet
    models read an image (N, 28, W) cut into T column slices (THESIS.md section 2): the torch model
    must read the sequence whose element t is ``image[:, :, t*w:(t+1)*w]`` flattened row-major
    (w = W/T), which ``torch_sequence(images, T)`` builds. Give ``input_shape=(28, W)`` and ``T``.

The weights are copied, not shared; the dtype follows the torch parameters (float32 or float64).
"""
from __future__ import annotations

import numpy

__all__ = ["from_torch", "torch_sequence", "UnsupportedModule"]


class UnsupportedModule(ValueError):
    """A torch module (or a setting of one) that has no exact lrpnet equivalent."""


def _np(t):
    return t.detach().cpu().numpy()


def _flatten_modules(modules):
    import torch.nn as nn
    out = []
    for m in modules:
        if isinstance(m, nn.Sequential):
            out.extend(_flatten_modules(list(m)))
        else:
            out.append(m)
    return out


def _dtype_of(modules):
    for m in modules:
        for p in m.parameters():
            name = str(p.dtype).replace("torch.", "")
            if name not in ("float32", "float64"):
                raise UnsupportedModule(f"{m!r} has {name} parameters; lrpnet supports float32 and float64")
            return name
    return "float32"


def from_torch(module, *more, input_shape=None, T=None, dtype=None):
    """An lrpnet model computing the same function as the torch model, with copied weights.

    ``module, *more``: an ``nn.Sequential`` / a sequence of supported layers, or an ``nn.LSTM`` /
    ``nn.GRU`` followed by an ``nn.Linear`` (see the module docstring). ``input_shape``: one sample's
    shape in torch's order for (a) (``(C, H, W)`` or ``(features,)``; for an MLP it defaults to the
    first Linear's ``in_features``), the image shape ``(28, W)`` for (b). ``T``: the number of time
    steps for (b). ``dtype``: defaults to the torch parameters' dtype.
    """
    import torch.nn as nn
    modules = _flatten_modules([module, *more])
    if not modules:
        raise ValueError("from_torch: no modules given")
    dtype = dtype or _dtype_of(modules)
    if isinstance(modules[0], (nn.LSTM, nn.GRU)):
        return _recurrent(modules, input_shape, T, dtype)
    for i, m in enumerate(modules):
        if isinstance(m, nn.RNNBase):
            raise UnsupportedModule(f"from_torch: {m!r} at position {i}: a recurrent layer must come first, "
                                    f"followed only by one nn.Linear")
    return _sequential(modules, input_shape, dtype)


# -- (a) feed-forward ------------------------------------------------------------------------------
def _same_or_valid(m, what, shape_hw, kernel, stride, padding):
    """"VALID" or "SAME" if torch's symmetric integer ``padding`` equals one of them on this input."""
    from ..layers.conv import axis_pads
    if isinstance(padding, str):
        if padding == "valid":
            return "VALID"
        if padding == "same" and all(s == 1 for s in stride):
            # torch's "same" pads (k-1)//2 before; TensorFlow's SAME pads (k-1)//2 before too
            return "SAME"
        raise UnsupportedModule(f"from_torch: {m!r}: padding={padding!r} with stride {stride} has no lrpnet equivalent")
    if all(p == 0 for p in padding):
        return "VALID"
    for size, k, s, p in zip(shape_hw, kernel, stride, padding):
        before, _, out = axis_pads(size, k, s, "SAME")
        torch_out = (size + 2 * p - k) // s + 1
        if before != p or out != torch_out:
            raise UnsupportedModule(
                f"from_torch: {m!r}: {what} padding {tuple(padding)} on a {tuple(shape_hw)} input is neither "
                f"VALID (padding 0) nor TensorFlow's SAME (which would pad {before} before and give "
                f"{out} outputs; torch gives {torch_out}); lrpnet supports only those two")
    return "SAME"


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _sequential(modules, input_shape, dtype):
    import torch.nn as nn
    from ..layers.conv import axis_pads
    from ..models import Sequential

    if input_shape is None:
        first = next((m for m in modules if not isinstance(m, (nn.Identity, nn.Dropout))), None)
        if not isinstance(first, nn.Linear):
            raise ValueError("from_torch: input_shape is required unless the model starts with nn.Linear "
                             "(give one sample's shape in torch's order, e.g. (1, 28, 28))")
        input_shape = (first.in_features,)
    shape = tuple(int(s) for s in input_shape)          # the current value's shape, in torch's order
    if len(shape) == 3:
        lrp_input = (shape[1], shape[2], shape[0])     # NHWC
    else:
        lrp_input = shape
    specs, weights = [], []       # weights[i]: local param name -> numpy array for specs[i]
    perm = None                   # pending column order for the Linear after a Flatten of (C, H, W)

    def add(kind, kwargs, params=None):
        specs.append((kind, kwargs))
        weights.append(params or {})

    for i, m in enumerate(modules):
        where = f"module {i} ({m!r})"
        if isinstance(m, nn.Linear):
            if len(shape) != 1 or shape[0] != m.in_features:
                raise UnsupportedModule(f"from_torch: {where} expects {m.in_features} features but gets "
                                        f"a value of shape {shape} (missing nn.Flatten?)")
            W = _np(m.weight).T                          # lrpnet Dense: (in, out)
            if perm is not None:
                W = W[perm]
                perm = None
            params = {"W": W}
            if m.bias is not None:
                params["b"] = _np(m.bias)
            add("dense", {"n_in": m.in_features, "n_out": m.out_features,
                          "bias": "plain" if m.bias is not None else None}, params)
            shape = (m.out_features,)
        elif isinstance(m, nn.Conv2d):
            if len(shape) != 3 or shape[0] != m.in_channels:
                raise UnsupportedModule(f"from_torch: {where} expects (C={m.in_channels}, H, W) input, gets {shape}")
            if m.groups != 1 or _pair(m.dilation) != (1, 1) or m.padding_mode != "zeros":
                raise UnsupportedModule(f"from_torch: {where}: groups, dilation and non-zero padding "
                                        f"modes have no lrpnet equivalent")
            k, s = _pair(m.kernel_size), _pair(m.stride)
            pad = _same_or_valid(m, "conv", shape[1:], k, s, m.padding if isinstance(m.padding, str) else _pair(m.padding))
            params = {"W": _np(m.weight).transpose(2, 3, 1, 0)}     # (out, in, kh, kw) -> (kh, kw, in, out)
            if m.bias is not None:
                params["b"] = _np(m.bias)
            add("conv2d", {"in_channels": m.in_channels, "out_channels": m.out_channels, "kernel_size": list(k),
                           "stride": list(s), "padding": pad, "bias": "plain" if m.bias is not None else None},
                params)
            shape = (m.out_channels,) + tuple(axis_pads(n, kk, ss, pad)[2] for n, kk, ss in zip(shape[1:], k, s))
        elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            if len(shape) != 3:
                raise UnsupportedModule(f"from_torch: {where} expects (C, H, W) input, gets {shape}")
            if m.ceil_mode:
                raise UnsupportedModule(f"from_torch: {where}: ceil_mode=True has no lrpnet equivalent")
            if isinstance(m, nn.MaxPool2d) and _pair(m.dilation) != (1, 1):
                raise UnsupportedModule(f"from_torch: {where}: dilation has no lrpnet equivalent")
            padding = _pair(m.padding)
            if isinstance(m, nn.AvgPool2d):
                if m.divisor_override is not None:
                    raise UnsupportedModule(f"from_torch: {where}: divisor_override has no lrpnet equivalent")
                if any(padding) and m.count_include_pad:
                    raise UnsupportedModule(f"from_torch: {where}: averages counting padded zeros "
                                            f"(count_include_pad=True) have no lrpnet equivalent")
            k = _pair(m.kernel_size)
            s = _pair(m.stride if m.stride is not None else m.kernel_size)
            pad = _same_or_valid(m, "pool", shape[1:], k, s, padding)
            kind = "maxpool2d" if isinstance(m, nn.MaxPool2d) else "avgpool2d"
            add(kind, {"size": list(k), "stride": list(s), "padding": pad})
            shape = (shape[0],) + tuple(axis_pads(n, kk, ss, pad)[2] for n, kk, ss in zip(shape[1:], k, s))
        elif isinstance(m, nn.Flatten):
            if m.start_dim != 1 or m.end_dim != -1:
                raise UnsupportedModule(f"from_torch: {where}: only Flatten(start_dim=1, end_dim=-1) is supported")
            if len(shape) == 3:
                c, h, w = shape
                # lrpnet flattens (H, W, C); column j of lrpnet's order is column perm[j] of torch's (C, H, W)
                perm = numpy.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).reshape(-1)
            if len(shape) > 1:
                add("flatten", {})
            shape = (int(numpy.prod(shape)),)
        elif isinstance(m, nn.ReLU):
            add("relu", {})
        elif isinstance(m, nn.Sigmoid):
            add("sigmoid", {})
        elif isinstance(m, nn.Tanh):
            add("tanh", {})
        elif isinstance(m, nn.Dropout):
            if m.p >= 1:
                raise UnsupportedModule(f"from_torch: {where}: dropout p={m.p} drops everything")
            add("dropout", {"keep": 1.0 - m.p})
        elif isinstance(m, nn.Identity):
            continue
        else:
            raise UnsupportedModule(
                f"from_torch: {where} is not supported; supported modules: Linear, Conv2d, ReLU, Sigmoid, "
                f"Tanh, MaxPool2d, AvgPool2d, Flatten, Dropout, Identity (or an LSTM/GRU followed by a Linear)")
    if len(shape) != 1:
        raise UnsupportedModule(f"from_torch: the model's output has shape {shape}; expected class scores (N, C)")
    model = Sequential(specs, input_shape=lrp_input, n_classes=shape[0], seed=0, dtype=dtype)
    for layer, params in zip(model.layers.values(), weights):
        for k, a in params.items():
            _copy_into(layer, k, a)
    return model


def _copy_into(layer, k, a):
    from .. import backend
    p = layer.params[k]
    if tuple(p.shape) != tuple(a.shape):
        raise ValueError(f"from_torch: {layer.name}.{k} has shape {tuple(p.shape)}, torch gave {tuple(a.shape)}")
    p[...] = backend.asarray(a, dtype=p.dtype)


# -- (b) recurrent ---------------------------------------------------------------------------------
def torch_sequence(images, T):
    """(N, H, W) images -> (N, T, H * W/T): element t is ``images[:, :, t*w:(t+1)*w]`` flattened
    row-major, the sequence lrpnet's recurrent models read (THESIS.md section 2). Works on numpy
    arrays and torch tensors (use ``.transpose(0, 1)`` for a sequence-first torch RNN)."""
    n, h, w = images.shape
    if w % T:
        raise ValueError(f"image width {w} is not divisible into T={T} slices")
    cols = w // T
    return images.reshape(n, h, T, cols).transpose(1, 2).reshape(n, T, h * cols) if hasattr(images, "detach") \
        else numpy.asarray(images).reshape(n, h, T, cols).transpose(0, 2, 1, 3).reshape(n, T, h * cols)


def _recurrent(modules, input_shape, T, dtype):
    """nn.LSTM / nn.GRU + nn.Linear -> lrpnet's ``lstm`` / ``gru`` architecture with the same weights."""
    import torch.nn as nn
    from ..models import build
    rnn, rest = modules[0], [m for m in modules[1:] if not isinstance(m, nn.Identity)]
    kind = "lstm" if isinstance(rnn, nn.LSTM) else "gru"
    if len(rest) != 1 or not isinstance(rest[0], nn.Linear):
        raise UnsupportedModule(f"from_torch: {type(rnn).__name__} must be followed by exactly one nn.Linear "
                                f"(the read-out from the last hidden state), got {rest!r}")
    head = rest[0]
    if rnn.num_layers != 1 or rnn.bidirectional or not rnn.bias or getattr(rnn, "proj_size", 0):
        raise UnsupportedModule(f"from_torch: {rnn!r}: only one-layer, unidirectional {type(rnn).__name__}s "
                                f"with biases and no projection convert")
    if input_shape is None or T is None:
        raise ValueError(f"from_torch: a {type(rnn).__name__} needs input_shape=(height, width) of the images "
                         f"and T, the number of column slices (input_size = height * width / T)")
    height, width = (int(s) for s in input_shape)
    if width % T or height * (width // T) != rnn.input_size:
        raise ValueError(f"from_torch: {rnn!r} reads {rnn.input_size} values per step, but images of shape "
                         f"({height}, {width}) cut into T={T} slices give "
                         f"{height * width / T:g} per step (height * width / T)")
    if head.in_features != rnn.hidden_size:
        raise UnsupportedModule(f"from_torch: {head!r} expects {head.in_features} inputs, the "
                                f"{type(rnn).__name__} gives {rnn.hidden_size}")
    if kind == "lstm":
        from ..cells.lstm import params_from_torch
    else:
        from ..cells.gru import params_from_torch
    params = params_from_torch({k: _np(v) for k, v in rnn.state_dict().items()}, prefix="cell")
    params["out.W"] = _np(head.weight).T
    params["out.b"] = _np(head.bias) if head.bias is not None else numpy.zeros(head.out_features)
    model = build(kind, input_shape=(height, width), T=int(T), n_classes=head.out_features, seed=0,
                  dtype=dtype, hidden=rnn.hidden_size)
    if set(params) != set(model.params):
        raise RuntimeError(f"from_torch: the {kind} mapping does not cover lrpnet's parameters "
                           f"(differences: {sorted(set(params) ^ set(model.params))})")
    for name, a in params.items():
        layer, k = name.rsplit(".", 1)
        _copy_into(model.layers[layer], k, a)
    return model
