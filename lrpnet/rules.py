"""LRP rules, each written once for every linear layer (dense, conv2d) as a modified forward pass.

A linear layer offers ``linear(x, W, b)`` (its affine map with any parameters) and
``linear_input_grad(W, dz, x_shape)`` (that map's vector-Jacobian product in x). A rule is a list of
``Group``s: each group holds (x', W') pairs (modified inputs and weights), a modified bias b', a
stabiliser eps and a coefficient c; the pairs of a group share one denominator (zennit's scheme):

    z    = sum_pairs linear(x', W') + b'               the modified forward pass
    s    = c R / (z + eps sign(z))                     sign(0) = +1; s = 0 where the denominator is 0
    R_in = sum_pairs x' * linear_input_grad(W', s)     the modified gradient x input

For a dense layer with local contributions z'_jk = x'_j w'_jk this is the LRP toolbox's literal form
R_j = sum_k c z'_jk / (sum_j z'_jk + b'_k + eps_k) R_k (Bach et al. 2015, Eq. 58 / 60).

Absorbed relevance, computed from the terms that absorb it (not as a difference of totals):
    absorbed_k = s_k (b'_k + eps sign(z_k))            the bias and stabiliser share
               + c R_k                   where the denominator is exactly 0 (nothing to pass it to)
so that sum(R_in) + sum(absorbed) = sum(c R) summed over the groups, which is R when sum c = 1.

The rules (``LINEAR``; x are the layer's inputs, a ReLU network's activations or pixels):

| name       | pairs (x', W')                                        | b'            | equation |
|------------|-------------------------------------------------------|---------------|----------|
| epsilon    | (x, W)                                                | b             | Bach et al. 2015 Eq. 58; eps = 0 is LRP-0 |
| zplus      | (x+, W+), (x-, W-)                                    | b+            | Montavon et al. 2017 (z+), signed inputs as zennit |
| alpha_beta | alpha: (x+, W+), (x-, W-); -beta: (x+, W-), (x-, W+)  | b+ ; b-       | Bach et al. 2015 Eq. 60 |
| zbox       | (x, W), (-l, W+), (-h, W-)                            | none          | Montavon et al. 2017 (z^B), l <= x <= h |
| w_square   | (1, W^2)                                              | none          | Montavon et al. 2017 (w^2) |
| flat       | (1, 1)                                                | none          | Lapuschkin et al. 2019 (flat) |
| gamma      | (x, W), (gamma x+, W+), (gamma x-, W-)                | b + gamma b+  | Montavon et al. 2019 (gamma) |

Bias choices, all documented here once: z+ keeps the positive part of the bias in its denominator
(zennit's choice; the study's ReLU units have b <= 0, so their z+ is exactly conservative); alpha-beta
puts b+ with the positive and b- with the negative contributions; z^B, w^2 and flat ignore the bias
(their relevance depends on weights and bounds only, as in their equations); epsilon and gamma keep it.

Non-linear nodes have their own short rules below: proportional pooling and winner-take-all, the
proportional split of a sum, and the gate rules (signal-take-all, prop, half).
"""
from __future__ import annotations

from typing import NamedTuple

from . import backend


class Group(NamedTuple):
    """(x', W') pairs sharing one denominator, their bias b' (or None), stabiliser eps, coefficient c."""
    pairs: list
    bias: object = None
    eps: float = 0.0
    coef: float = 1.0


# -- small helpers ------------------------------------------------------------------------------------
def pos(a):
    return backend.xp().maximum(a, 0)


def neg(a):
    return backend.xp().minimum(a, 0)


@backend.register("sign")
def sign(z):
    """+1 where z >= 0, -1 elsewhere: a stabiliser eps sign(z) never cancels z, even at z = 0."""
    one = z.dtype.type(1)
    return backend.xp().where(z >= 0, one, -one)


@backend.register("lrp_divide")
def lrp_divide(R, z, eps, coef):
    """The stabilised division every rule below shares, and what it absorbs:

        d = z + eps sign(z)         (d = z when eps = 0)
        s = coef R / d,             and s = 0 where d = 0
        absorbed = s eps sign(z) + (coef R where d = 0)

    so that s d + (coef R where d = 0) = coef R: with z = sum of contributions + b', the relevance
    sent back (s times the contributions) plus s b' plus ``absorbed`` is coef R (module docstring)."""
    xp = backend.xp()
    cR = coef * R if coef != 1 else R
    if eps:
        stab = eps * backend.op("sign")(z)
        d = z + stab
    else:
        d = z
    s = safe_divide(cR, d)
    lost = xp.where(d == 0, cR, 0)
    return s, (s * stab + lost if eps else lost)


def safe_divide(a, b):
    """a / b, and 0 where b == 0 (computed without a division by zero)."""
    xp = backend.xp()
    zero = b == 0
    return xp.where(zero, 0.0, a / xp.where(zero, 1.0, b)).astype(a.dtype, copy=False)


# -- the core: one modified forward pass and its input gradient per group ------------------------------
def propagate(layer, x_shape, R, groups):
    """(R_in, absorbed) for relevance R at a linear layer's output (module docstring)."""
    xp = backend.xp()
    R_in = xp.zeros(x_shape, dtype=R.dtype)
    absorbed = xp.zeros_like(R)
    for g in groups:
        # a pair whose x' is all zero adds nothing (x- of ReLU activations): skip its two passes on
        # the CPU; on a GPU, asking whether it is zero would wait for the device, so compute it
        if backend.device() == "cpu":
            g = g._replace(pairs=[(xi, wi) for xi, wi in g.pairs if bool(xi.any())] or g.pairs[:1])
        z = None
        for xi, wi in g.pairs:
            zi = layer.linear(xi, wi)
            z = zi if z is None else z + zi
        if g.bias is not None:
            z = z + g.bias
        s, lost = backend.op("lrp_divide")(R, z, g.eps, g.coef)
        for xi, wi in g.pairs:
            R_in = R_in + xi * layer.linear_input_grad(wi, s, x_shape)
        absorbed = absorbed + lost + (0 if g.bias is None else s * g.bias)
    return R_in, absorbed


# -- the linear rules: each returns its groups -----------------------------------------------------------
def epsilon(x, weight, bias, eps=1e-2):
    """LRP-epsilon, R_j = sum_k x_j w_jk / (z_k + eps sign(z_k)) R_k with z_k = sum_j x_j w_jk + b_k
    (Bach et al. 2015, Eq. 58); eps = 0 gives LRP-0."""
    if eps < 0:
        raise ValueError(f"epsilon rule: eps must be >= 0, got {eps}")
    return [Group([(x, weight)], bias, eps)]


def zplus(x, weight, bias, eps=0.0):
    """z+ rule, R_j = sum_k (x_j w_jk)+ / sum_j (x_j w_jk)+ R_k (Montavon et al. 2017), with
    (x w)+ = x+ w+ + x- w- for signed inputs, and b+ in the denominator."""
    return [Group([(pos(x), pos(weight)), (neg(x), neg(weight))], _part(bias, pos), eps)]


def alpha_beta(x, weight, bias, alpha=1.5, beta=0.5, eps=0.0):
    """LRP-alpha-beta, R_j = sum_k (alpha z+_jk / sum_j z+_jk - beta z-_jk / sum_j z-_jk) R_k,
    with alpha - beta = 1 (Bach et al. 2015, Eq. 60); z+ holds b+ and z- holds b-."""
    if abs(alpha - beta - 1.0) > 1e-12:
        raise ValueError(f"alpha-beta rule needs alpha - beta = 1, got alpha={alpha}, beta={beta}")
    groups = [Group([(pos(x), pos(weight)), (neg(x), neg(weight))], _part(bias, pos), eps, alpha)]
    if beta:
        groups.append(Group([(pos(x), neg(weight)), (neg(x), pos(weight))], _part(bias, neg), eps, -beta))
    return groups


def zbox(x, weight, bias, low=-1.0, high=1.0, eps=0.0):
    """z^B rule for inputs bounded by low <= x <= high (pixels in [-1, 1]):
    R_j = sum_k (x_j w_jk - l_j w+_jk - h_j w-_jk) / sum_j (...) R_k (Montavon et al. 2017)."""
    xp = backend.xp()
    ones = xp.ones_like(x)
    return [Group([(x, weight), (-low * ones, pos(weight)), (-high * ones, neg(weight))], None, eps)]


def w_square(x, weight, bias, eps=0.0):
    """w^2 rule, R_j = sum_k w_jk^2 / sum_j w_jk^2 R_k (Montavon et al. 2017): independent of x."""
    return [Group([(backend.xp().ones_like(x), weight * weight)], None, eps)]


def flat(x, weight, bias, eps=0.0):
    """flat rule, R_j = sum_k 1 / sum_j 1 R_k over the receptive field (Lapuschkin et al. 2019)."""
    xp = backend.xp()
    return [Group([(xp.ones_like(x), xp.ones_like(weight))], None, eps)]


def gamma(x, weight, bias, gamma=0.25, eps=1e-9):
    """LRP-gamma, R_j = sum_k (z_jk + gamma z+_jk) / sum_j (z_jk + gamma z+_jk) R_k with z_jk = x_j w_jk
    and b + gamma b+ in the denominator (Montavon et al. 2019); gamma = 0 gives LRP-epsilon."""
    if gamma < 0:
        raise ValueError(f"gamma rule: gamma must be >= 0, got {gamma}")
    b = None if bias is None else bias + gamma * pos(bias)
    return [Group([(x, weight), (gamma * pos(x), pos(weight)), (gamma * neg(x), neg(weight))], b, eps)]


def _part(bias, part):
    return None if bias is None else part(bias)


LINEAR = {"epsilon": epsilon, "zplus": zplus, "alpha_beta": alpha_beta, "zbox": zbox,
          "w_square": w_square, "flat": flat, "gamma": gamma}


def linear(layer, x, R, rule, params=None, pixel_mask=None, pixel_rule=None, pixel_params=None):
    """(R_in, absorbed) of the linear rule ``rule`` at ``layer`` with input x and output relevance R.

    With ``pixel_mask`` (1 on pixel features, 0 on state features, broadcastable to x), the MIXED rule of
    THESIS.md section 4 (Shallow's first layer, Conv+'s lateral convs): the pixel features use
    ``pixel_rule`` (z^B), the others ``rule`` (z+ or alpha-beta), in one shared denominator. The pixel
    pairs join the first group of ``rule`` (its positive group for alpha-beta), which keeps that
    group's bias, stabiliser and coefficient.
    """
    groups = _rule(rule)(x, layer.weight, layer.bias, **(params or {}))
    if pixel_mask is not None:
        pixels = _rule(pixel_rule)(x, layer.weight, layer.bias, **(pixel_params or {}))
        groups = mixed(pixels, groups, pixel_mask)
    return propagate(layer, x.shape, R, groups)


def mixed(pixel_groups, state_groups, mask):
    """One rule from two: pixel pairs masked by ``mask``, state pairs by 1 - mask, sharing the first
    state group's denominator."""
    if len(pixel_groups) != 1:
        raise ValueError("the mixed rule needs a one-group rule (zbox, w_square, flat, epsilon, zplus, "
                         f"gamma) on the pixel features, got {len(pixel_groups)} groups")
    keep = 1 - mask
    state = [g._replace(pairs=[(xi * keep, wi) for xi, wi in g.pairs]) for g in state_groups]
    first = state[0]
    joined = first._replace(pairs=[(xi * mask, wi) for xi, wi in pixel_groups[0].pairs] + first.pairs)
    return [joined] + state[1:]


def _rule(name):
    if name not in LINEAR:
        raise ValueError(f"unknown linear rule {name!r}; expected one of {', '.join(LINEAR)}")
    return LINEAR[name]


# -- pooling ----------------------------------------------------------------------------------------------
def pool_proportional(layer, cache, x, a, R, eps=0.0):
    """R_in = x * (da/dx)^T (R / a) (THESIS.md section 4) with the pool's own backward as (da/dx)^T.
    Every pool is positively homogeneous (sum_i x_i da/dx_i = a), so only the stabiliser and zero
    outputs absorb: absorbed = s eps sign(a), and R where a + eps sign(a) = 0."""
    s, absorbed = backend.op("lrp_divide")(R, a, eps, 1.0)
    return x * layer.backward(cache, s)[0][0], absorbed


def pool_winner_take_all(layer, cache, R):
    """Max pool, winner-take-all: each window's relevance goes wholly to its maximum
    (``MaxPool2D.backward`` routes a signal to the winners of ``winners(cache)``); nothing is absorbed."""
    if layer.kind != "maxpool2d":
        raise ValueError(f"winner-take-all applies to max pooling only, got a {layer.kind!r} layer")
    return layer.backward(cache, R)[0][0], backend.xp().zeros_like(R)


# -- sums and gates ---------------------------------------------------------------------------------------
def add_proportional(xs, R, eps=1e-6):
    """y = sum_i x_i: R_i = x_i / (y + eps sign(y)) R (the accumulator c_t = f c_{t-1} + i c~ of
    Arras et al. 2017); absorbed = s eps sign(y), and R where the denominator is 0."""
    y = xs[0]
    for xi in xs[1:]:
        y = y + xi
    s, absorbed = backend.op("lrp_divide")(R, y, eps, 1.0)
    return tuple(xi * s for xi in xs), absorbed


def gate_signal_take_all(gate, signal, R):
    """y = gate * signal, signal-take-all (Arras et al. 2017, LRP-all in Arras et al. 2019):
    R_signal = R, R_gate = 0 (the gate is treated as a constant weight)."""
    return (None, R), backend.xp().zeros_like(R)


def gate_prop(gate, signal, R, eps=1e-6):
    """y = gate * signal, LRP-prop (Arras et al. 2019, after Ding et al. 2017): the two factors share R
    in proportion to their values, R_g = g / (g + s) R, R_s = s / (g + s) R, stabilised by eps."""
    s, absorbed = backend.op("lrp_divide")(R, gate + signal, eps, 1.0)
    return (gate * s, signal * s), absorbed


def gate_half(gate, signal, R):
    """y = gate * signal, LRP-half (Arras et al. 2019): R_g = R_s = R / 2."""
    return (0.5 * R, 0.5 * R), backend.xp().zeros_like(R)
