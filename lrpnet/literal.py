"""The literal forms of the relevance rules: slow, written out over j and k, the oracles of ``lrpnet.rules``.

``lrpnet.rules`` writes each rule once for every linear layer, as a modified forward pass and its
input gradient (fast). Here each rule is written as its equation reads, with the contribution z_jk of
input j to output k spelled out for every sample, as the LRP toolbox writes it (Lapuschkin et al.,
``python/modules/linear.py``)::

    Z  = x[:, :, na] * W[na, :, :]                  z_jk = x_j w_jk                   (N, J, K)
    Zs = Z.sum(1) + b[na, :]                        z_k  = sum_j z_jk + b_k           (N, K)
    R_in = (Z / Zs[:, na, :] * R[:, na, :]).sum(2)  R_j  = sum_k z_jk / z_k R_k       (N, J)

A linear rule below returns its terms (``Term``: coefficient c, contributions Z, bias b, stabiliser
eps): the groups of contributions that share a denominator. ``distribute`` turns the terms into
relevance, R_j = sum_terms sum_k c z_jk / (z_k + eps sign(z_k)) R_k with z_k = sum_j z_jk + b_k, and
what they absorb: the share c R_k (b_k + eps sign(z_k)) / (z_k + eps sign(z_k)) of the bias and the
stabiliser, and all of c R_k where the denominator is 0. A convolution is the dense layer of its
matrix, built by an explicit loop over output positions and kernel offsets (``conv_matrix``); pooling
loops over windows; the sum and gate rules are elementwise. Everything runs in NumPy on the host (use
float64 to compare).

Call either form on the same layer and compare::

    import numpy
    from lrpnet import literal, rules
    from lrpnet.layers import Dense

    rng = numpy.random.default_rng(0)
    layer = Dense(4, 3, rng=rng, dtype="float64")
    x, R = rng.uniform(-1, 1, (2, 4)), rng.uniform(0, 1, (2, 3))
    fast, fast_absorbed = rules.linear(layer, x, R, "alpha_beta", {"alpha": 1.5, "beta": 0.5})
    slow, slow_absorbed = literal.linear(layer, x, R, "alpha_beta", {"alpha": 1.5, "beta": 0.5})
    numpy.testing.assert_allclose(fast, slow)                  # equal up to float rounding
    numpy.testing.assert_allclose(fast_absorbed, slow_absorbed)

``literal.node_rule(node, R, comp)`` has the contract of ``lrpnet.explain.node_rule``, so a whole
relevance pass can be checked node by node (``experiments/walkthrough.py`` prints both forms).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy

from . import backend, composites, graph, rules
from .explain import node_rule as fast_node_rule
from .layers.conv import window_pads

na = numpy.newaxis


def pos(a):
    return numpy.maximum(a, 0)


def neg(a):
    return numpy.minimum(a, 0)


def sign(z):
    """+1 where z >= 0, -1 elsewhere (so that eps sign(z) never cancels z)."""
    return numpy.where(z >= 0, 1.0, -1.0)


def host(a):
    return None if a is None else numpy.asarray(backend.to_numpy(a))


# -- the linear rules: each returns its terms ------------------------------------------------------------------
class Term(NamedTuple):
    """Contributions Z (N, J, K) sharing one denominator: R_j += c sum_k Z_jk / (sum_j Z_jk + b_k + stab_k) R_k
    with stab_k = eps sign(z_k), or eps (``added``, the thesis's code); ``select`` +1 / -1: only the
    outputs whose plain z_k = sum_j x_j w_jk + b_k is >= 0 / < 0."""
    c: float
    Z: numpy.ndarray
    b: object
    eps: float = 0.0
    added: bool = False
    select: int = 0


def contributions(x, W):
    """z_jk = x_j w_jk for every sample: (N, J, K)."""
    return x[:, :, na] * W[na, :, :]


def epsilon(x, W, b, eps=1e-2):
    """LRP-epsilon (Bach et al. 2015, Eq. 58): R_j = sum_k z_jk / (z_k + eps sign(z_k)) R_k,
    z_k = sum_j z_jk + b_k; eps = 0 is LRP-0."""
    Z = contributions(x, W)
    return [Term(1.0, Z, b, eps)]


def zplus(x, W, b, eps=0.0, with_bias=True):
    """z+ (Montavon et al. 2017): R_j = sum_k z+_jk / (sum_j z+_jk + b+_k) R_k, z+_jk = max(0, x_j w_jk);
    no bias with ``with_bias=False``."""
    Z = contributions(x, W)
    return [Term(1.0, pos(Z), pos(b) if with_bias else 0.0, eps)]


def alpha_beta(x, W, b, alpha=1.5, beta=0.5, eps=0.0, with_bias=True, stabiliser="signed"):
    """LRP-alpha-beta (Bach et al. 2015, Eq. 60), alpha - beta = 1:
    R_j = sum_k (alpha z+_jk / (sum_j z+_jk + b+_k) - beta z-_jk / (sum_j z-_jk + b-_k)) R_k;
    no bias with ``with_bias=False``; ``stabiliser="added"``: eps added to both denominators."""
    Z = contributions(x, W)
    b_pos, b_neg = (pos(b), neg(b)) if with_bias else (0.0, 0.0)
    added = stabiliser == "added"
    return [Term(alpha, pos(Z), b_pos, eps, added), Term(-beta, neg(Z), b_neg, eps, added)]


def zbox(x, W, b, low=-1.0, high=1.0, eps=0.0):
    """z^B (Montavon et al. 2017), for inputs l <= x_j <= h:
    R_j = sum_k (x_j w_jk - l w+_jk - h w-_jk) / sum_j (x_j w_jk - l w+_jk - h w-_jk) R_k; no bias."""
    Z = contributions(x, W) - low * pos(W)[na] - high * neg(W)[na]
    return [Term(1.0, Z, 0.0, eps)]


def w_square(x, W, b, eps=0.0):
    """w^2 (Montavon et al. 2017): R_j = sum_k w_jk^2 / sum_j w_jk^2 R_k, whatever x is; no bias."""
    Z = numpy.broadcast_to(W * W, (len(x),) + W.shape)
    return [Term(1.0, Z, 0.0, eps)]


def flat(x, W, b, eps=0.0, connected=None):
    """flat (Lapuschkin et al. 2019): R_j = sum_k 1 / sum_j 1 R_k over the inputs j connected to k
    (all of them in a dense layer; a convolution passes its receptive fields as ``connected``)."""
    ones = numpy.ones(W.shape) if connected is None else connected
    return [Term(1.0, numpy.broadcast_to(ones, (len(x),) + W.shape), 0.0, eps)]


def gamma(x, W, b, gamma=0.25, eps=1e-9, variant="montavon"):
    """LRP-gamma (Montavon et al. 2019): R_j = sum_k (z_jk + gamma z+_jk) / sum_j (z_jk + gamma z+_jk + ...)
    R_k, with b_k + gamma b+_k in the denominator; gamma = 0 is LRP-epsilon. ``variant="zennit"``:
    outputs with z_k < 0 favour the negative contributions instead, z_jk + gamma z-_jk and b_k + gamma b-_k."""
    Z = contributions(x, W)
    if variant == "montavon":
        return [Term(1.0, Z + gamma * pos(Z), b + gamma * pos(b), eps)]
    return [Term(1.0, Z + gamma * pos(Z), b + gamma * pos(b), eps, select=+1),
            Term(1.0, Z + gamma * neg(Z), b + gamma * neg(b), eps, select=-1)]


LINEAR = {"epsilon": epsilon, "zplus": zplus, "alpha_beta": alpha_beta, "zbox": zbox,
          "w_square": w_square, "flat": flat, "gamma": gamma}


def mixed(pixel_terms, state_terms, mask, shared=False):
    """THESIS.md section 4's mixed rule (Shallow's first layer, Conv+'s lateral convs): the pixel
    inputs (mask_j = 1) take the pixel rule's z_jk, the others (mask_j = 0) the state rule's, and the
    pixel contributions join the first state term's denominator (its bias, eps and coefficient; the
    joined denominator is stabilised by eps sign(z_k), as ``rules.mixed`` does). ``shared`` (the
    thesis's code): one term for all, each state term's c folded into its z_jk."""
    m = mask[na, :, na]
    (pixels,) = pixel_terms
    states = [t._replace(Z=(1 - m) * t.Z) for t in state_terms]
    if shared:
        Z = m * pixels.Z + sum(t.c * t.Z for t in states)
        return [states[0]._replace(c=1.0, Z=Z, added=False)]
    return [states[0]._replace(Z=m * pixels.Z + states[0].Z, added=False)] + states[1:]


def distribute(terms, R, z_plain):
    """(R_in, absorbed) from the terms: R_jk = c z_jk / (z_k + stab_k) R_k, R_j = sum_k R_jk; the bias's and
    the stabiliser's share of each term (and all of c R_k where its denominator is 0) are absorbed."""
    R_in, absorbed = 0.0, 0.0
    for t in terms:
        R_t = R if t.select == 0 else numpy.where((z_plain >= 0) if t.select > 0 else (z_plain < 0), R, 0.0)
        Zs = t.Z.sum(1) + t.b                                # z_k = sum_j z_jk + b_k
        stab = t.eps if t.added else t.eps * sign(Zs)
        den = Zs + stab
        dead = den == 0                                      # nothing to pass R_k to: it is absorbed
        S = numpy.where(dead, 0.0, t.c * R_t / numpy.where(dead, 1.0, den))       # c R_k / den_k
        R_jk = t.Z * S[:, na, :]
        R_in = R_in + R_jk.sum(2)
        absorbed = absorbed + S * (t.b + stab) + numpy.where(dead, t.c * R_t, 0.0)
    return R_in, absorbed


def dense(x, W, b, R, rule, params=None, pixel_mask=None, pixel_rule=None, pixel_params=None, shared=False):
    """(R_in, absorbed) of ``rule`` at z = x W + b, x (N, J), W (J, K), R (N, K); with ``pixel_mask``
    (J,), the mixed rule: ``pixel_rule`` on the inputs where it is 1, ``rule`` on the others."""
    b = numpy.zeros(W.shape[1]) if b is None else b
    terms = LINEAR[rule](x, W, b, **(params or {}))
    if pixel_mask is not None:
        terms = mixed(LINEAR[pixel_rule](x, W, b, **(pixel_params or {})), terms, pixel_mask, shared)
    return distribute(terms, R, contributions(x, W).sum(1) + b)


def conv_matrix(W, hw, stride, padding):
    """The matrix M (H*W*C_in, OH*OW*C_out) with conv(x) = x.reshape(N, -1) @ M, by loops: W[i, j]
    joins input (s p + i - top, s q + j - left) to output (p, q) (top, left: the layer's own padding,
    ``lrpnet.layers.conv.window_pads``). Returns (M, (OH, OW))."""
    kh, kw, ci, co = W.shape
    (sh, sw) = (stride, stride) if numpy.isscalar(stride) else stride
    (top, _, left, _), (oh, ow) = window_pads((1, *hw), (kh, kw), (sh, sw), padding)
    M = numpy.zeros((hw[0], hw[1], ci, oh, ow, co))
    for p in range(oh):
        for q in range(ow):
            for i in range(kh):
                for j in range(kw):
                    r, c = p * sh + i - top, q * sw + j - left
                    if 0 <= r < hw[0] and 0 <= c < hw[1]:
                        M[r, c, :, p, q, :] += W[i, j]
    return M.reshape(hw[0] * hw[1] * ci, oh * ow * co), (oh, ow)


def conv2d(x, W, b, R, stride, padding, rule, params=None, pixel_mask=None, pixel_rule=None,
           pixel_params=None, shared=False):
    """``dense`` on the convolution's matrix: x (N, H, W, C_in), W (kh, kw, C_in, C_out), R (N, OH, OW,
    C_out); the flat rule's z_jk = 1 on the receptive fields; ``pixel_mask`` broadcasts to x[0]."""
    n = len(x)
    M, (oh, ow) = conv_matrix(W, x.shape[1:3], stride, padding)
    fields, _ = conv_matrix(numpy.ones(W.shape), x.shape[1:3], stride, padding)

    def with_fields(r, p):
        return {**(p or {}), "connected": fields} if r == "flat" else p

    b = None if b is None else numpy.tile(b, oh * ow)
    mask = None if pixel_mask is None else numpy.broadcast_to(pixel_mask, (1,) + x.shape[1:]).reshape(-1)
    R_in, absorbed = dense(x.reshape(n, -1), M, b, R.reshape(n, -1), rule, with_fields(rule, params), mask,
                           pixel_rule, with_fields(pixel_rule, pixel_params), shared)
    return R_in.reshape(x.shape), absorbed.reshape(R.shape)


def linear(layer, x, R, rule, params=None, pixel_mask=None, pixel_rule=None, pixel_params=None, shared=False):
    """The literal twin of ``lrpnet.rules.linear``: (R_in, absorbed) of ``rule`` at a Dense or Conv2D
    layer with input x and output relevance R, as host arrays."""
    x, R, W, b = host(x), host(R), host(layer.weight), host(layer.bias)
    mask = host(pixel_mask)
    if layer.kind == "dense":
        mask = None if mask is None else numpy.broadcast_to(mask, (1,) + x.shape[1:]).reshape(-1)
        return dense(x, W, b, R, rule, params, mask, pixel_rule, pixel_params, shared)
    if layer.kind == "conv2d":
        return conv2d(x, W, b, R, layer.stride, layer.padding, rule, params, mask, pixel_rule, pixel_params, shared)
    raise ValueError(f"literal.linear: expected a dense or conv2d layer, got kind {layer.kind!r}")


# -- pooling ------------------------------------------------------------------------------------------------
def windows(x_shape, size, stride, padding):
    """{(p, q): the real input positions (r, c) of output (p, q)'s window, row-major}, and (OH, OW)."""
    (kh, kw), (sh, sw) = size, stride
    (top, _, left, _), (oh, ow) = window_pads(x_shape, size, stride, padding)
    return {(p, q): [(p * sh + i - top, q * sw + j - left) for i in range(kh) for j in range(kw)
                     if 0 <= p * sh + i - top < x_shape[1] and 0 <= q * sw + j - left < x_shape[2]]
            for p in range(oh) for q in range(ow)}, (oh, ow)


def _window(kind, x, cells):
    """(values (N, n, C), da/dx (N, n, C), a (N, C)) of one window; a max pool's da/dx is 1 at its
    first maximum (row-major), 0 elsewhere."""
    vals = numpy.stack([x[:, r, c, :] for r, c in cells], axis=1)
    if kind == "maxpool2d":
        first = vals.argmax(axis=1)
        grad = (numpy.arange(len(cells))[na, :, na] == first[:, na, :]).astype(x.dtype)
        return vals, grad, vals.max(axis=1)
    grad = numpy.full(vals.shape, 1.0 / len(cells) if kind == "avgpool2d" else 1.0)
    return vals, grad, (vals * grad).sum(axis=1)


def pool_proportional(kind, x, R, size, stride, padding, eps=0.0):
    """The proportional rule (THESIS.md section 4): R_i = sum over the windows w holding i of
    x_i (da_w/dx_i) R_w / (a_w + eps sign(a_w)); a window with a zero denominator absorbs its R_w."""
    R_in, absorbed = numpy.zeros(x.shape), numpy.zeros(R.shape)
    win, _ = windows(x.shape, size, stride, padding)
    for (p, q), cells in win.items():
        vals, grad, a = _window(kind, x, cells)
        den = a + eps * sign(a)
        dead = den == 0
        S = numpy.where(dead, 0.0, R[:, p, q, :] / numpy.where(dead, 1.0, den))
        for k, (r, c) in enumerate(cells):
            R_in[:, r, c, :] += vals[:, k, :] * grad[:, k, :] * S
        absorbed[:, p, q, :] = S * eps * sign(a) + numpy.where(dead, R[:, p, q, :], 0.0)
    return R_in, absorbed


def pool_winner_take_all(x, R, size, stride, padding):
    """Max pooling, winner-take-all: each window's R_w goes wholly to its (first) maximum."""
    R_in = numpy.zeros(x.shape)
    win, _ = windows(x.shape, size, stride, padding)
    for (p, q), cells in win.items():
        _, grad, _ = _window("maxpool2d", x, cells)
        for k, (r, c) in enumerate(cells):
            R_in[:, r, c, :] += grad[:, k, :] * R[:, p, q, :]
    return R_in, numpy.zeros(R.shape)


def pool(layer, x, R, rule="proportional", params=None):
    """The literal twin of ``rules.pool_proportional`` / ``rules.pool_winner_take_all`` at ``layer``."""
    x, R = host(x), host(R)
    if rule == "winner_take_all":
        return pool_winner_take_all(x, R, layer.size, layer.stride, layer.padding)
    return pool_proportional(layer.kind, x, R, layer.size, layer.stride, layer.padding, **(params or {}))


# -- sums and gates ------------------------------------------------------------------------------------------
def add_proportional(xs, R, eps=1e-6):
    """y = sum_i x_i (the cell state c_t = f c_{t-1} + i c~, Arras et al. 2017):
    R_i = x_i / (y + eps sign(y)) R; the stabiliser's share (and R where the denominator is 0) is absorbed."""
    y = sum(xs)
    den = y + eps * sign(y)
    dead = den == 0
    S = numpy.where(dead, 0.0, R / numpy.where(dead, 1.0, den))
    return tuple(x * S for x in xs), S * eps * sign(y) + numpy.where(dead, R, 0.0)


def gate_signal_take_all(gate, signal, R):
    """y = g * s, signal-take-all (Arras et al. 2017; LRP-all in Arras et al. 2019): R_g = 0, R_s = R."""
    return (numpy.zeros(R.shape), R), numpy.zeros(R.shape)


def gate_prop(gate, signal, R, eps=1e-6):
    """y = g * s, LRP-prop (Arras et al. 2019): R_g = g / (g + s) R, R_s = s / (g + s) R, the
    denominator stabilised by eps sign(g + s), whose share is absorbed."""
    den = gate + signal + eps * sign(gate + signal)
    dead = den == 0
    S = numpy.where(dead, 0.0, R / numpy.where(dead, 1.0, den))
    return (gate * S, signal * S), S * eps * sign(gate + signal) + numpy.where(dead, R, 0.0)


def gate_half(gate, signal, R):
    """y = g * s, LRP-half (Arras et al. 2019): R_g = R_s = R / 2."""
    return (R / 2, R / 2), numpy.zeros(R.shape)


def gate_abs(gate, signal, R, eps=1e-6):
    """y = g * s, LRP-abs (Arras et al. 2019): R_g = |g| / (|g| + |s|) R, R_s = |s| / (|g| + |s|) R,
    the denominator stabilised by eps (it is never negative), whose share is absorbed."""
    den = numpy.abs(gate) + numpy.abs(signal) + eps
    dead = den == 0
    S = numpy.where(dead, 0.0, R / numpy.where(dead, 1.0, den))
    return (numpy.abs(gate) * S, numpy.abs(signal) * S), S * eps + numpy.where(dead, R, 0.0)


GATES = {"signal_take_all": gate_signal_take_all, "prop": gate_prop, "half": gate_half, "abs": gate_abs}


# -- a node of the tape --------------------------------------------------------------------------------------
def node_rule(node, R, comp):
    """The literal twin of ``lrpnet.explain.node_rule``: (relevance per input of ``node``, absorbed) under
    composite ``comp``, as host arrays. Shape layers ("move": the gradient) and "pass" have no
    equation to write out: they are the library's own step."""
    kind = node.layer.kind
    rule, params = comp[kind]
    xs = [host(v.value) for v in node.inputs]
    if kind in composites.LINEAR_KINDS:
        R_in, absorbed = linear(node.layer, xs[0], R, *rules.linear_choice(node, comp))
        return (R_in,), absorbed
    R = host(R)
    if kind == "add":
        return add_proportional(xs, R, **params)
    if kind == "gatemul":
        return GATES[rule](*xs, R, **params)
    if kind in ("maxpool2d", "avgpool2d", "sumpool2d"):
        R_in, absorbed = pool(node.layer, xs[0], R, rule, params)
        return (R_in,), absorbed
    R_in, absorbed = fast_node_rule(node, backend.asarray(R), comp)
    return tuple(host(graph.dense(r)) for r in R_in), host(absorbed)      # a slice's Part, filled in
