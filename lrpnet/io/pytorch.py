"""PyTorch models as lrpnet models with the same weights: ``from_torch(module, ...)``.

Two kinds of torch model convert:

(a) an ``nn.Sequential`` (or several modules given in order) of Linear, Conv2d, BatchNorm1d/2d, ReLU,
    Sigmoid, Tanh, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d / AdaptiveMaxPool2d, Flatten, Dropout,
    Identity and a final Softmax / LogSoftmax -> an lrpnet ``Sequential``. ``input_shape`` is ONE
    SAMPLE'S SHAPE IN TORCH'S ORDER: ``(features,)`` for an MLP, ``(C, H, W)`` for a CNN.

    Input layout: a converted CNN reads lrpnet's channels-last batches (N, H, W, C), not torch's
    (N, C, H, W): pass ``x.permute(0, 2, 3, 1)`` (NumPy: ``x.transpose(0, 2, 3, 1)``), and its
    relevance comes back in that layout (``.transpose(0, 3, 1, 2)`` gives torch's); ``model.input_shape``
    says what it expects, and a batch in torch's layout is refused with this hint. Two consequences are
    handled here: conv kernels go from torch's (out, in, kh, kw) to lrpnet's (kh, kw, in, out), and the
    first Linear after a Flatten of a (C, H, W) tensor gets its input columns reordered from torch's
    C,H,W flattening order to lrpnet's H,W,C order.

    Padding: torch's ``padding=0`` is lrpnet's "VALID", ``padding="same"`` its "SAME", and an integer
    padding p becomes explicit zero padding ((p_h, p_h), (p_w, p_w)), exactly torch's (so a stride-2
    convolution or max pool with ``padding=1`` on an even-sized input converts; TensorFlow's SAME would
    pad differently there). A max pool pads with -inf, as torch's does; an AvgPool2d with padding
    converts when it does not count the padded zeros (``count_include_pad=False``).

    BatchNorm (eval mode: the running statistics) is folded into the Linear / Conv2d right before it,
    as zennit's canonizers do: W' = W * s and b' = (b - mean) * s + beta per output, with
    s = gamma / sqrt(var + eps). The explanation is that of the folded layer. An adaptive pool converts
    when its output size divides the input size (then it is a pool with kernel = stride = input /
    output). A final Softmax (or LogSoftmax) is dropped with a warning: lrpnet explains the logits.
    Anything else (dilation, groups, ceil_mode, reflect padding, padding as wide as the kernel,
    LeakyReLU and other activations without an lrpnet layer) is refused with an error that names the
    module.

(b) an ``nn.LSTM`` or ``nn.GRU`` (one layer, one direction, batch_first or not) followed by an
    ``nn.Linear`` on its last hidden state -> lrpnet's ``lstm`` / ``gru`` architecture. lrpnet
    models read an image (N, 28, W) cut into T column slices (THESIS.md section 2): the torch model
    must read the sequence whose element t is ``image[:, :, t*w:(t+1)*w]`` flattened row-major
    (w = W/T), which ``torch_sequence(images, T)`` builds. Give ``input_shape=(28, W)`` and ``T``.

The weights are copied, not shared; the dtype follows the torch parameters (float32 or float64).
"""
from __future__ import annotations

import warnings

import numpy

__all__ = ["from_torch", "torch_sequence", "UnsupportedModule"]

SUPPORTED = ("Linear, Conv2d, BatchNorm1d/2d (after a Linear / Conv2d), ReLU, Sigmoid, Tanh, MaxPool2d, "
             "AvgPool2d, AdaptiveAvgPool2d / AdaptiveMaxPool2d, Flatten, Dropout, Identity, a final "
             "Softmax / LogSoftmax (or an LSTM / GRU followed by a Linear)")


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


def _without_final_softmax(modules):
    """``modules`` without a last Softmax / LogSoftmax (and the Identities around it), with a warning:
    relevance is explained on the logits, the scores before the softmax."""
    import torch.nn as nn
    body = list(modules)
    while body and isinstance(body[-1], nn.Identity):
        body.pop()
    if body and isinstance(body[-1], (nn.Softmax, nn.LogSoftmax)):
        warnings.warn(f"from_torch: the final {type(body[-1]).__name__} is dropped: lrpnet explains the "
                      f"logits (the scores before it), and model.predict returns logits", UserWarning,
                      stacklevel=3)
        body.pop()
    return body


def from_torch(module, *more, input_shape=None, T=None, dtype=None):
    """An lrpnet model computing the same function as the torch model, with copied weights.

    ``module, *more``: an ``nn.Sequential`` / a sequence of supported layers, or an ``nn.LSTM`` /
    ``nn.GRU`` followed by an ``nn.Linear`` (see the module docstring). ``input_shape``: one sample's
    shape in torch's order for (a) (``(C, H, W)`` or ``(features,)``; for an MLP it defaults to the
    first Linear's ``in_features``), the image shape ``(28, W)`` for (b). ``T``: the number of time
    steps for (b). ``dtype``: defaults to the torch parameters' dtype.

    A converted CNN takes its input channels-last, (N, H, W, C): give it ``x.permute(0, 2, 3, 1)`` of a
    torch batch (N, C, H, W).
    """
    import torch.nn as nn
    modules = _flatten_modules([module, *more])
    if not modules:
        raise ValueError("from_torch: no modules given")
    dtype = dtype or _dtype_of(modules)
    modules = _without_final_softmax(modules)
    if modules and isinstance(modules[0], (nn.LSTM, nn.GRU)):
        return _recurrent(modules, input_shape, T, dtype)
    for i, m in enumerate(modules):
        if isinstance(m, nn.RNNBase):
            raise UnsupportedModule(f"from_torch: {m!r} at position {i}: a recurrent layer must come first, "
                                    f"followed only by one nn.Linear")
    return _sequential(modules, input_shape, dtype)


# -- (a) feed-forward ------------------------------------------------------------------------------
def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _padding(where, kernel, padding):
    """lrpnet's padding for torch's: "VALID" for 0, "SAME" for "same" (stride 1: the same pads as
    TensorFlow's, (k - 1) // 2 before), explicit [[p_h, p_h], [p_w, p_w]] for an integer padding."""
    if isinstance(padding, str):
        return {"valid": "VALID", "same": "SAME"}[padding]
    padding = _pair(padding)
    if not any(padding):
        return "VALID"
    for k, p in zip(kernel, padding):
        if p >= k:
            raise UnsupportedModule(f"from_torch: {where}: padding {tuple(padding)} is as wide as the "
                                    f"kernel {tuple(kernel)}: windows of padding alone have no lrpnet "
                                    f"equivalent")
    return [[p, p] for p in padding]


def _out_hw(shape_hw, kernel, stride, padding):
    from ..layers.conv import window_pads, check_padding
    return window_pads((1, *shape_hw, 1), kernel, stride, check_padding(padding))[1]


class _Converter:
    """Walks the torch modules, keeping the current value's shape in torch's order, and collects the
    lrpnet layer specs with the arrays to copy into each."""

    def __init__(self, shape):
        self.shape = tuple(int(s) for s in shape)
        self.specs, self.weights = [], []      # weights[i]: local param name -> numpy array for specs[i]
        self.perm = None                       # column order for the Linear after a Flatten of (C, H, W)

    def add(self, kind, kwargs, params=None):
        self.specs.append((kind, kwargs))
        self.weights.append(params or {})

    def convert(self, i, m):
        import torch.nn as nn
        where = f"module {i} ({m!r})"
        simple = {nn.ReLU: "relu", nn.Sigmoid: "sigmoid", nn.Tanh: "tanh"}
        if isinstance(m, nn.Linear):
            self.linear(where, m)
        elif isinstance(m, nn.Conv2d):
            self.conv(where, m)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            self.batchnorm(where, m)
        elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            self.pool(where, m)
        elif isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            self.adaptive_pool(where, m)
        elif isinstance(m, nn.Flatten):
            self.flatten(where, m)
        elif type(m) in simple:
            self.add(simple[type(m)], {})
        elif isinstance(m, nn.Dropout):
            if m.p >= 1:
                raise UnsupportedModule(f"from_torch: {where}: dropout p={m.p} drops everything")
            self.add("dropout", {"keep": 1.0 - m.p})
        elif isinstance(m, nn.Identity):
            pass
        elif isinstance(m, (nn.Softmax, nn.LogSoftmax)):
            raise UnsupportedModule(f"from_torch: {where}: a {type(m).__name__} is accepted only as the "
                                    f"last module (and dropped: lrpnet explains the logits)")
        elif isinstance(m, nn.LeakyReLU):
            raise UnsupportedModule(f"from_torch: {where}: LeakyReLU is not supported: lrpnet has no "
                                    f"LeakyReLU layer with a relevance rule; supported modules: {SUPPORTED}")
        else:
            raise UnsupportedModule(f"from_torch: {where} is not supported; supported modules: {SUPPORTED}")

    def linear(self, where, m):
        if len(self.shape) != 1 or self.shape[0] != m.in_features:
            raise UnsupportedModule(f"from_torch: {where} expects {m.in_features} features but gets "
                                    f"a value of shape {self.shape} (missing nn.Flatten?)")
        W = _np(m.weight).T                          # lrpnet Dense: (in, out)
        if self.perm is not None:
            W, self.perm = W[self.perm], None
        params = {"W": W} if m.bias is None else {"W": W, "b": _np(m.bias)}
        self.add("dense", {"n_in": m.in_features, "n_out": m.out_features,
                           "bias": "plain" if m.bias is not None else None}, params)
        self.shape = (m.out_features,)

    def conv(self, where, m):
        if len(self.shape) != 3 or self.shape[0] != m.in_channels:
            raise UnsupportedModule(f"from_torch: {where} expects (C={m.in_channels}, H, W) input, "
                                    f"gets {self.shape}")
        if m.groups != 1 or _pair(m.dilation) != (1, 1) or m.padding_mode != "zeros":
            raise UnsupportedModule(f"from_torch: {where}: groups, dilation and non-zero padding "
                                    f"modes have no lrpnet equivalent")
        k, s = _pair(m.kernel_size), _pair(m.stride)
        pad = _padding(where, k, m.padding)
        params = {"W": _np(m.weight).transpose(2, 3, 1, 0)}     # (out, in, kh, kw) -> (kh, kw, in, out)
        if m.bias is not None:
            params["b"] = _np(m.bias)
        self.add("conv2d", {"in_channels": m.in_channels, "out_channels": m.out_channels,
                            "kernel_size": list(k), "stride": list(s), "padding": pad,
                            "bias": "plain" if m.bias is not None else None}, params)
        self.shape = (m.out_channels, *_out_hw(self.shape[1:], k, s, pad))

    def batchnorm(self, where, m):
        """Fold y = gamma (z - mean) / sqrt(var + eps) + beta into the layer that made z."""
        import torch.nn as nn
        before, rank = ("dense", 1) if isinstance(m, nn.BatchNorm1d) else ("conv2d", 3)
        if not self.specs or self.specs[-1][0] != before:
            raise UnsupportedModule(f"from_torch: {where}: a {type(m).__name__} converts only right after "
                                    f"a {'Linear' if before == 'dense' else 'Conv2d'}, into which it is "
                                    f"folded; here it follows {self.specs[-1][0] if self.specs else 'the input'}")
        if len(self.shape) != rank or self.shape[0] != m.num_features:
            raise UnsupportedModule(f"from_torch: {where} expects {m.num_features} features "
                                    f"(channels), gets a value of shape {self.shape}")
        if m.running_mean is None:
            raise UnsupportedModule(f"from_torch: {where} has no running statistics "
                                    f"(track_running_stats=False): it normalises each batch by that "
                                    f"batch's own statistics, which no fixed layer computes")
        if m.training:
            warnings.warn(f"from_torch: {where} is in training mode; it is folded with its running "
                          f"statistics, as in eval mode (call .eval() on the torch model to compare "
                          f"outputs)", UserWarning, stacklevel=5)
        scale = 1.0 / numpy.sqrt(_np(m.running_var) + m.eps)
        shift = -_np(m.running_mean) * scale
        if m.affine:
            scale, shift = scale * _np(m.weight), shift * _np(m.weight) + _np(m.bias)
        kwargs, params = self.specs[-1][1], self.weights[-1]
        params["W"] = params["W"] * scale              # the output axis is the last in lrpnet's layouts
        params["b"] = params.get("b", 0.0) * scale + shift
        kwargs["bias"] = "plain"

    def pool(self, where, m):
        import torch.nn as nn
        if len(self.shape) != 3:
            raise UnsupportedModule(f"from_torch: {where} expects (C, H, W) input, gets {self.shape}")
        if m.ceil_mode:
            raise UnsupportedModule(f"from_torch: {where}: ceil_mode=True has no lrpnet equivalent")
        if isinstance(m, nn.MaxPool2d) and (_pair(m.dilation) != (1, 1) or m.return_indices):
            raise UnsupportedModule(f"from_torch: {where}: dilation and return_indices have no lrpnet equivalent")
        padding = _pair(m.padding)
        if isinstance(m, nn.AvgPool2d):
            if m.divisor_override is not None:
                raise UnsupportedModule(f"from_torch: {where}: divisor_override has no lrpnet equivalent")
            if any(padding) and m.count_include_pad:
                raise UnsupportedModule(f"from_torch: {where}: averages counting padded zeros "
                                        f"(count_include_pad=True) have no lrpnet equivalent")
        k = _pair(m.kernel_size)
        s = _pair(m.stride if m.stride is not None else m.kernel_size)
        pad = _padding(where, k, padding)
        self.add("maxpool2d" if isinstance(m, nn.MaxPool2d) else "avgpool2d",
                 {"size": list(k), "stride": list(s), "padding": pad})
        self.shape = (self.shape[0], *_out_hw(self.shape[1:], k, s, pad))

    def adaptive_pool(self, where, m):
        """An adaptive pool whose output size divides the input is a pool with kernel = stride = in / out."""
        import torch.nn as nn
        if len(self.shape) != 3:
            raise UnsupportedModule(f"from_torch: {where} expects (C, H, W) input, gets {self.shape}")
        if isinstance(m, nn.AdaptiveMaxPool2d) and m.return_indices:
            raise UnsupportedModule(f"from_torch: {where}: return_indices has no lrpnet equivalent")
        out = tuple(n if o is None else o for n, o in zip(self.shape[1:], _pair(m.output_size)))
        if any(n % o for n, o in zip(self.shape[1:], out)):
            raise UnsupportedModule(f"from_torch: {where}: output size {out} does not divide the input "
                                    f"size {self.shape[1:]}; only then is the adaptive pool a fixed "
                                    f"pool (kernel = stride = input / output)")
        k = [n // o for n, o in zip(self.shape[1:], out)]
        self.add("maxpool2d" if isinstance(m, nn.AdaptiveMaxPool2d) else "avgpool2d",
                 {"size": k, "stride": k, "padding": "VALID"})
        self.shape = (self.shape[0], *out)

    def flatten(self, where, m):
        if m.start_dim != 1 or m.end_dim != -1:
            raise UnsupportedModule(f"from_torch: {where}: only Flatten(start_dim=1, end_dim=-1) is supported")
        if len(self.shape) == 3:
            c, h, w = self.shape
            # lrpnet flattens (H, W, C); column j of lrpnet's order is column perm[j] of torch's (C, H, W)
            self.perm = numpy.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).reshape(-1)
        if len(self.shape) > 1:
            self.add("flatten", {})
        self.shape = (int(numpy.prod(self.shape)),)


def _sequential(modules, input_shape, dtype):
    import torch.nn as nn
    from ..models import Sequential

    if input_shape is None:
        first = next((m for m in modules if not isinstance(m, (nn.Identity, nn.Dropout))), None)
        if not isinstance(first, nn.Linear):
            raise ValueError("from_torch: input_shape is required unless the model starts with nn.Linear "
                             "(give one sample's shape in torch's order, e.g. (1, 28, 28))")
        input_shape = (first.in_features,)
    shape = tuple(int(s) for s in input_shape)
    convert = _Converter(shape)
    for i, m in enumerate(modules):
        convert.convert(i, m)
    if len(convert.shape) != 1:
        raise UnsupportedModule(f"from_torch: the model's output has shape {convert.shape}; expected "
                                f"class scores (N, C)")
    lrp_input = (shape[1], shape[2], shape[0]) if len(shape) == 3 else shape      # NHWC
    model = Sequential(convert.specs, input_shape=lrp_input, n_classes=convert.shape[0], seed=0, dtype=dtype)
    for layer, params in zip(model.layers.values(), convert.weights):
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
