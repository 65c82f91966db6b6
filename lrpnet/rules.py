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
| gamma      | (x, W), (gamma x+, W+), (gamma x-, W-)                | b + gamma b+  | Montavon et al. 2019 (gamma); variant "zennit": by output sign |

Bias choices, all documented here once: z+ keeps the positive part of the bias in its denominator
(zennit's choice; the study's ReLU units have b <= 0, so their z+ is exactly conservative); alpha-beta
puts b+ with the positive and b- with the negative contributions; z^B, w^2 and flat ignore the bias
(their relevance depends on weights and bounds only, as in their equations); epsilon and gamma keep it.
z+ and alpha-beta take ``with_bias=False``, and alpha-beta ``stabiliser="added"``: what the thesis's
code computed (THESIS.md section 7; ``composites`` presets ``thesis-*``).

Non-linear nodes have their own short rules below: proportional pooling and winner-take-all, the
proportional split of a sum, and the gate rules (signal-take-all, prop, abs, half).

Every rule is one ``Rule`` object, registered by the ``@rule(name, kinds, step)`` decorator on the
function that writes its equation: the layer kinds it applies to, its parameters (the function's
keyword defaults) and how it is applied at a node (``step``). Adding a rule is writing that function
here; ``composites`` checks entries against this book and ``explain`` applies what it finds in it.
"""
from __future__ import annotations

import contextlib
import contextvars
import inspect
from typing import NamedTuple

import numpy

from . import backend
from .graph import Sum


class Group(NamedTuple):
    """(x', W') pairs sharing one denominator, their bias b' (or None), stabiliser eps, coefficient c,
    and the outputs the group handles: all (select 0), or only those whose plain pre-activation
    z = linear(x, W) + b is >= 0 (select +1) or < 0 (select -1), as in zennit's sign-dependent rules."""
    pairs: list
    bias: object = None
    eps: float = 0.0
    coef: float = 1.0
    select: int = 0


# -- small helpers ------------------------------------------------------------------------------------
def pos(a):
    """a+ = max(a, 0)."""
    return signed_parts(a)[0]


def neg(a):
    """a- = min(a, 0)."""
    return signed_parts(a)[1]


def signed_parts(a):
    """(a+, a-). On the CPU, where no entry of a is negative (ReLU activations), a+ is a itself and a-
    is ``constant(a, 0)``: one pass to check, instead of two copies and a scan of a- in ``propagate``.
    Within ``keeping_parts`` (a relevance walk), each array's parts are computed once."""
    return kept(("parts", id(a)), (a,), lambda: _signed_parts(a))


def _signed_parts(a):
    if backend.device() == "cpu" and getattr(a, "size", 0) and a.min() >= 0:
        return a, constant(a, 0)
    xp = backend.xp()
    return xp.maximum(a, 0), xp.minimum(a, 0)


_kept_parts = contextvars.ContextVar("lrpnet_kept_parts", default=None)


@contextlib.contextmanager
def keeping_parts():
    """Within this block, ``pos`` and ``neg`` of one array, and the merged weights of a layer's one-number
    pairs (``propagate``), are computed once and kept until the block ends. A relevance walk runs in
    it (``lrpnet.explain``): a recurrent cell's layer reads its weight at each of the T steps, and
    alpha-beta reads x+ and x- in both of its groups."""
    token = _kept_parts.set({})
    try:
        yield
    finally:
        _kept_parts.reset(token)


def kept(key, held, compute):
    """``compute()``, or, within ``keeping_parts``, what it gave for ``key`` the first time. ``key`` names
    arrays by id; ``held`` (those arrays) is kept with the value, so that no other array takes their
    ids while the block lasts, and checked, so that an id is never taken for another array's."""
    memo = _kept_parts.get()
    if memo is None:
        return compute()
    entry = memo.get(key)
    if entry is not None and all(a is b for a, b in zip(entry[0], held)):
        return entry[1]
    value = compute()
    memo[key] = (held, value)
    return value


def nothing_absorbed(R):
    """What a rule that absorbs nothing returns as absorbed: zeros shaped like R, read-only. On the CPU
    a shared broadcast view of one zero (``constant``): the pass and move steps of every activation,
    dropout and slice node allocated and zero-filled an array the size of R that only a walk with
    details reads (``explain(..., return_details=True)``, the ledger)."""
    return constant(R, 0)


def constant(like, c):
    """c everywhere, in ``like``'s shape and dtype. On the CPU a broadcast view of one number (no
    memory, and ``one_number`` knows it without reading it); on a GPU a full array, since every pair is
    computed there (``propagate``)."""
    xp = backend.xp()
    like = xp.asarray(like)
    if backend.device() == "cpu":
        value = xp.asarray(c, dtype=like.dtype)
        key = (like.shape, value.dtype, value.tobytes())     # the bytes: -0.0 and NaN are their own
        view = _constants.get(key)
        if view is None:            # read-only, so one view serves every caller
            if len(_constants) >= 64:
                _constants.clear()
            view = _constants[key] = xp.broadcast_to(value, like.shape)
        return view
    return xp.full(like.shape, c, dtype=like.dtype)


_constants: dict = {}       # (shape, dtype, bytes of c) -> constant's broadcast view, on the CPU


def one_number(a):
    """The number that ``a`` holds everywhere, or None: a broadcast of one number (every stride 0,
    ``constant``) without reading it, any other array by comparing every entry with its first."""
    if not a.size:
        return None
    c = a.flat[0]
    if not any(a.strides):
        return c
    if a.flat[-1] != c:             # most arrays differ at their ends: no pass over them
        return None
    return c if bool((a == c).all()) else None


@backend.register("sign")
def sign(z):
    """sign(z) = 2 [z >= 0] - 1: +1 where z >= 0, -1 elsewhere (NaN too), so that a stabiliser
    eps sign(z) never cancels z, even at z = 0. Arithmetic on the 0/1 mask, not a select: NumPy's
    ``where`` costs about 8x as much on a mask of mixed signs (benchmarks/RESULTS.md)."""
    s = (z >= 0).astype(z.dtype)
    s *= 2
    s -= 1
    return s


@backend.register("lrp_divide")
def lrp_divide(R, z, eps, coef):
    """The stabilised division every rule below shares, and what it absorbs:

        d = z + eps sign(z)         (d = z when eps = 0)
        s = coef R / d,             and s = 0 where d = 0
        absorbed = s eps sign(z) + (coef R where d = 0)

    so that s d + (coef R where d = 0) = coef R: with z = sum of contributions + b', the relevance
    sent back (s times the contributions) plus s b' plus ``absorbed`` is coef R (module docstring)."""
    cR = coef * R if coef != 1 else R
    if eps:
        stab = eps * backend.op("sign")(z)
        d = z + stab
    else:
        d = z
    zero = d == 0
    lost = cR * zero                    # coef R where d = 0, else 0: a product with the 0/1 mask
    s = safe_divide(cR, d, zero)
    if not eps:
        return s, lost
    absorbed = s * stab
    absorbed += lost
    return s, absorbed


def safe_divide(a, b, zero=None):
    """a / b where b != 0, and 0 where b == 0, with no division by zero and no select:

        safe_divide(a, b) = a / (b + [b == 0]) * [b != 0]      ([.] = 1 where true, else 0)

    Where b = 0 the denominator is 0 + 1 and the quotient is multiplied by 0; elsewhere b + 0 = b and
    the quotient is multiplied by 1: exactly a / b. (The 0 has a's sign, and is NaN for an infinite
    or NaN a.) ``zero``: the mask [b == 0] when the caller has it. In place where it can be: on a
    convolution's outputs every temporary costs."""
    xp = backend.xp()
    zero = b == 0 if zero is None else zero
    if xp is numpy and not zero.any():  # no zero denominator (the usual case): b + 0 = b and * 1, a / b
        return (a / b).astype(a.dtype, copy=False)
    s = b + zero
    if s.dtype == numpy.result_type(a.dtype, s.dtype) and s.shape == numpy.broadcast_shapes(a.shape, s.shape):
        xp.divide(a, s, out=s)
    else:
        s = a / s
    s *= ~zero
    return s.astype(a.dtype, copy=False)


# -- the core: one modified forward pass and its input gradient per group ------------------------------
def propagate(layer, x_shape, R, groups, plain=None, parts=None, output=None):
    """(R_in, absorbed) for relevance R at a linear layer's output (module docstring). ``plain`` is
    (x, W, b), the layer's own input and parameters, needed by groups that select outputs and to know
    the pair (x, W). ``output``: the layer's output at x from the forward pass, linear(x, W) + b; with
    it, the pair (x, W) (z^B's, epsilon's, gamma's first) costs no product: x W = output - b (equal up
    to rounding: the subtraction rounds, and the forward pass may have run the steps as one product).
    ``parts``: a dict to fill with ``absorbed`` split by cause, arrays shaped like R that add up to it:
    "bias" s b', "stabiliser" s eps sign(z), "zero" c R where z + eps sign(z) = 0 (``divide_parts``);
    nothing of it is computed when ``parts`` is None.

    On the CPU, pairs whose x' is one number c everywhere (``one_number``: the broadcasts of
    ``constant`` and ``neg`` known without reading them) are done together. A pair with c = 0 (x- of
    ReLU activations) adds nothing. The others (z^B's bounds, w^2's and flat's ones) merge into one: the
    layer is linear in x' and in W', so sum_i linear(c_i, W'_i) = linear(1, W_c) and
    sum_i c_i linear_input_grad(W'_i, s) = linear_input_grad(W_c, s) with W_c = sum_i c_i W'_i; and
    linear(1, W_c) is the same for every sample, so one sample's forward pass serves the batch; within
    ``keeping_parts`` both are computed once per layer (``merged``: z^B's bounds at every step). (On a
    GPU, asking what an array holds would wait for the device: every pair is computed there.) Sums
    (z over the pairs, R_in, absorbed) add into one new array each (``Sum``)."""
    xp = backend.xp()
    R_in, absorbed = Sum(), Sum()
    if parts is not None:
        parts.update({cause: xp.zeros_like(R) for cause in ("bias", "stabiliser", "zero")})
    z_plain = None
    for g in groups:
        R_g = R
        if g.select:                  # this group handles only the outputs of one sign
            if z_plain is None:
                x, weight, bias = plain
                z_plain = output if output is not None else layer.linear(x, weight) + (0 if bias is None else bias)
            R_g = xp.where((z_plain >= 0) if g.select > 0 else (z_plain < 0), R, 0)
        pairs, consts, w_const = g.pairs, [], None
        if backend.device() == "cpu":
            pairs = []
            for xi, wi in g.pairs:
                c = one_number(xi)
                if c is None:
                    pairs.append((xi, wi))
                elif c != 0:                          # x' = c everywhere: into W_c
                    consts.append((c, wi))
        z = Sum()
        if consts:                    # one sample's linear(1, W_c), shape (1, ...), serves them all
            w_const, z_const = kept(("merged", id(layer), tuple(x_shape[1:]), R.dtype)
                                    + tuple((c.dtype, c.tobytes()) for c, _ in consts),
                                    (layer,) + tuple(wi for _, wi in consts),
                                    lambda: merged(layer, consts, x_shape, R.dtype))
            z.add(z_const)
        for xi, wi in pairs:
            z.add(_pair_forward(layer, xi, wi, plain, output))
        if z.value is None:           # every x' is 0
            z.add(xp.zeros_like(R))
        z.add(g.bias)
        s, lost = backend.op("lrp_divide")(R_g, z.value, g.eps, g.coef)
        if w_const is not None:
            R_in.add(layer.linear_input_grad(w_const, s, x_shape))
        for xi, wi in pairs:
            R_in.add(xi * layer.linear_input_grad(wi, s, x_shape))
        absorbed.add(lost)
        if g.bias is not None:
            absorbed.add(s * g.bias)
        if parts is not None:           # the same absorbed, by cause
            shares = {"bias": 0 if g.bias is None else s * g.bias, **divide_parts(R_g, z.value, g.eps, g.coef, s)}
            for cause, share in shares.items():
                parts[cause] = parts[cause] + share
    R_in = xp.zeros(x_shape, dtype=R.dtype) if R_in.value is None else R_in.value
    return R_in, absorbed.value


def _pair_forward(layer, xi, wi, plain, output):
    """linear(x', W') of one pair; for the layer's own (x, W), taken from its forward output when given."""
    if output is not None and plain is not None and xi is plain[0] and wi is plain[1]:
        bias = plain[2]
        return output if bias is None else output - bias
    return layer.linear(xi, wi)


def merged(layer, consts, x_shape, dtype):
    """(W_c, linear(1, W_c)) for the one-number pairs (c_i, W'_i) of a group: W_c = sum_i c_i W'_i, and
    its forward pass on one sample of ones, shape (1, ...) (``propagate``). The same at every step of a
    recurrent layer: kept for the walk (``keeping_parts``)."""
    xp = backend.xp()
    w_const = None
    for c, wi in consts:
        w_const = c * wi if w_const is None else w_const + c * wi
    return w_const, layer.linear(xp.ones((1,) + tuple(x_shape[1:]), dtype=dtype), w_const)


# -- the rule book: every rule is one object, registered where its equation is written -----------------
class Rule(NamedTuple):
    """One relevance rule: its name, the layer kinds it applies to ("*": any kind that has no rules of
    its own), the function that writes its equation (its keyword parameters with defaults are the
    rule's parameters), and ``step``, which applies it at a node of the tape:
    ``step(rule, node, R, params, composite) -> (relevance per input of the node, absorbed)``.
    A proportional rule also names what it divides by at a node, ``denominator(node) -> z`` (its
    d = z + eps sign(z)), so that ``lrpnet.ledger`` can split what it absorbs by cause."""
    name: str
    kinds: tuple
    equation: object
    step: object
    denominator: object = None

    @property
    def params(self) -> dict:
        """parameter name -> default value."""
        if self.equation is None:
            return {}
        sig = inspect.signature(self.equation)
        return {k: p.default for k, p in sig.parameters.items() if p.default is not inspect.Parameter.empty}

    def check(self, params: dict):
        """A ValueError naming what is wrong with ``params`` (unknown names, values the equation
        refuses), before any relevance is computed."""
        unknown = set(params) - set(self.params)
        if unknown:
            takes = f"it takes {sorted(self.params)}" if self.params else "it takes no parameters"
            raise ValueError(f"rule {self.name!r} does not take {sorted(unknown)}; {takes}")
        if self.step is _linear_step:          # the equation checks its values: try it on scalars
            with backend.using("numpy"):
                self.equation(0.0, 0.0, None, **params)

    def apply(self, node, R, params, composite):
        return self.step(self, node, R, params, composite)


RULES: dict = {}        # (rule name, layer kind) -> Rule
LINEAR_KINDS = ("dense", "conv2d")
POOL_KINDS = ("maxpool2d", "avgpool2d", "sumpool2d")


def rule(name, kinds, step, denominator=None):
    """Register the decorated function as the equation of rule ``name`` for ``kinds``."""
    def register(equation):
        for kind in kinds:
            RULES[(name, kind)] = Rule(name, tuple(kinds), equation, step, denominator)
        return equation
    return register


def lookup(name, kind) -> Rule:
    """The rule ``name`` for layer kind ``kind``, or a ValueError listing the rules that kind has."""
    found = RULES.get((name, kind if has_rules(kind) else "*"))
    if found is None:
        raise ValueError(f"rule {name!r} is not available for {kind!r} nodes; "
                         f"expected one of {', '.join(names_for(kind))}")
    return found


def has_rules(kind) -> bool:
    """Whether ``kind`` has rules of its own (else the "*" rules, pass and move, apply to it)."""
    return any(k == kind for _, k in RULES)


def names_for(kind) -> list:
    """The names of the rules that apply to layer kind ``kind``."""
    kind = kind if has_rules(kind) else "*"
    return [n for n, k in RULES if k == kind]


# how each family of rules is applied at a node
def _linear_step(rule, node, R, params, composite):
    R_in, lost = linear(node.layer, node.inputs[0].value, R, *linear_choice(node, composite),
                        output=node.output.value)
    return (R_in,), lost


def linear_choice(node, composite):
    """The rule ``composite`` gives a linear node, as ``linear``'s arguments after (layer, x, R):
    (rule, params, pixel_mask, pixel_rule, pixel_params, shared). Its layer's rule; the input rule where
    its input is the pixels; the MIXED rule where its input joins pixels and states (``pixel_mask``),
    joined as the composite's "mixed" entry says (``shared``: the thesis's one denominator)."""
    rule, params = composite[node.layer.kind]
    pixel_rule, pixel_params = composite["input"]
    mask = pixel_mask(node)
    if mask is None:
        return rule, params, None, None, None, False
    if isinstance(mask, str) or (pixel_rule, pixel_params) == (rule, params):
        return pixel_rule, pixel_params, None, None, None, False
    shared = composite.get("mixed", ("first_group", {}))[0] == "shared"
    return rule, params, mask, pixel_rule, pixel_params, shared


def _pass_step(rule, node, R, params, composite):
    return (R,) + (None,) * (len(node.inputs) - 1), nothing_absorbed(R)


def _move_step(rule, node, R, params, composite):
    # a layer picking part of its input sends a ``graph.Part``: the walk adds it as a block
    step = getattr(node.layer, "backward_part", node.layer.backward)
    return step(node.cache, R)[0], nothing_absorbed(R)


def _pool_step(rule, node, R, params, composite):
    args = (node.layer, node.cache, node.inputs[0].value, node.output.value, R)
    R_in, lost = rule.equation(*args, **params)
    return (R_in,), lost


def _route_step(rule, node, R, params, composite):
    R_in, lost = rule.equation(node.layer, node.cache, R, **params)
    return (R_in,), lost


def _sum_step(rule, node, R, params, composite):
    return rule.equation([v.value for v in node.inputs], R, **params)


def _gate_step(rule, node, R, params, composite):
    gate, signal = (v.value for v in node.inputs)
    return rule.equation(gate, signal, R, **params)


@rule("pass", kinds=("*",), step=_pass_step)
def passes(R):
    """Relevance passes unchanged to the first input (an elementwise layer on a signal path: the rule
    sits on the linear layer before it)."""
    return R


@rule("move", kinds=("*",), step=_move_step)
def moves(R):
    """Relevance moves exactly like the gradient (shape layers: slices, reshapes, concatenations)."""
    return R


# the composite's "mixed" entry: how a layer seeing pixels and states together joins the two rules
@rule("first_group", kinds=("mixed",), step=None)
def first_group():
    """The pixel pairs join the first group of the state rule (its positive group for alpha-beta)."""


@rule("shared", kinds=("mixed",), step=None)
def shared():
    """Every pair, pixel and state, in one denominator, each state group's coefficient folded into its
    weights (THESIS.md section 7: Shallow's first layer in the thesis's code)."""


# -- the linear rules: each returns its groups -----------------------------------------------------------
LINEAR_RULE_KINDS = ("input",) + LINEAR_KINDS


@rule("epsilon", kinds=LINEAR_RULE_KINDS, step=_linear_step)
def epsilon(x, weight, bias, eps=1e-2):
    """LRP-epsilon, R_j = sum_k x_j w_jk / (z_k + eps sign(z_k)) R_k with z_k = sum_j x_j w_jk + b_k
    (Bach et al. 2015, Eq. 58); eps = 0 gives LRP-0."""
    if eps < 0:
        raise ValueError(f"epsilon rule: eps must be >= 0, got {eps}")
    return [Group([(x, weight)], bias, eps)]


@rule("zplus", kinds=LINEAR_RULE_KINDS, step=_linear_step)
def zplus(x, weight, bias, eps=0.0, with_bias=True):
    """z+ rule, R_j = sum_k (x_j w_jk)+ / sum_j (x_j w_jk)+ R_k (Montavon et al. 2017), with
    (x w)+ = x+ w+ + x- w- for signed inputs, and b+ in the denominator (none with ``with_bias=False``)."""
    return [Group([(pos(x), pos(weight)), (neg(x), neg(weight))], _part(bias, pos, with_bias), eps)]


@rule("alpha_beta", kinds=LINEAR_RULE_KINDS, step=_linear_step)
def alpha_beta(x, weight, bias, alpha=1.5, beta=0.5, eps=0.0, with_bias=True, stabiliser="signed"):
    """LRP-alpha-beta, R_j = sum_k (alpha z+_jk / sum_j z+_jk - beta z-_jk / sum_j z-_jk) R_k,
    with alpha - beta = 1 (Bach et al. 2015, Eq. 60); z+ holds b+ and z- holds b- (no bias with
    ``with_bias=False``). The stabiliser is eps sign(z) (``"signed"``), or eps added to both
    denominators (``"added"``: s+- = R / (z+- + eps), the thesis's code, THESIS.md section 7; the
    negative group's eps enters as -eps sign(z), which is + eps for z < 0, and where z- = 0 there is
    nothing to share and both forms give the same)."""
    if abs(alpha - beta - 1.0) > 1e-12:
        raise ValueError(f"alpha-beta rule needs alpha - beta = 1, got alpha={alpha}, beta={beta}")
    if stabiliser not in ("signed", "added"):
        raise ValueError(f"alpha-beta rule: stabiliser must be 'signed' or 'added', got {stabiliser!r}")
    eps_neg = -eps if stabiliser == "added" else eps
    groups = [Group([(pos(x), pos(weight)), (neg(x), neg(weight))], _part(bias, pos, with_bias), eps, alpha)]
    if beta:
        groups.append(Group([(pos(x), neg(weight)), (neg(x), pos(weight))], _part(bias, neg, with_bias),
                            eps_neg, -beta))
    return groups


@rule("zbox", kinds=LINEAR_RULE_KINDS, step=_linear_step)
def zbox(x, weight, bias, low=-1.0, high=1.0, eps=0.0):
    """z^B rule for inputs bounded by low <= x <= high (pixels in [-1, 1]):
    R_j = sum_k (x_j w_jk - l_j w+_jk - h_j w-_jk) / sum_j (...) R_k (Montavon et al. 2017)."""
    return [Group([(x, weight), (constant(x, -low), pos(weight)), (constant(x, -high), neg(weight))], None, eps)]


@rule("w_square", kinds=LINEAR_RULE_KINDS, step=_linear_step)
def w_square(x, weight, bias, eps=0.0):
    """w^2 rule, R_j = sum_k w_jk^2 / sum_j w_jk^2 R_k (Montavon et al. 2017): independent of x."""
    return [Group([(constant(x, 1), weight * weight)], None, eps)]


@rule("flat", kinds=LINEAR_RULE_KINDS, step=_linear_step)
def flat(x, weight, bias, eps=0.0):
    """flat rule, R_j = sum_k 1 / sum_j 1 R_k over the receptive field (Lapuschkin et al. 2019)."""
    return [Group([(constant(x, 1), constant(weight, 1))], None, eps)]


@rule("gamma", kinds=LINEAR_RULE_KINDS, step=_linear_step)
def gamma(x, weight, bias, gamma=0.25, eps=1e-9, variant="montavon"):
    """LRP-gamma. ``variant="montavon"`` (Montavon et al. 2019, Eq. for LRP-gamma; the same for every
    output): R_j = sum_k (z_jk + gamma z+_jk) / sum_j (z_jk + gamma z+_jk) R_k, z_jk = x_j w_jk, with
    b + gamma b+ in the denominator; for x >= 0 this is x_j (w_jk + gamma w+_jk), the paper's form, and
    signed inputs favour positive contributions ((x w)+ = x+ w+ + x- w-). gamma = 0 gives LRP-epsilon.

    ``variant="zennit"`` (zennit 0.5's generalised Gamma, after Andeol et al. 2021): the favoured sign
    follows each output's sign. Outputs with plain z_k >= 0 use x+ (w + gamma w+) + x- (w + gamma w-)
    and b + gamma b+; outputs with z_k < 0 use x+ (w + gamma w-) + x- (w + gamma w+) and b + gamma b-.
    For x >= 0 and z_k >= 0 both variants agree. (zennit drops the relevance of outputs with z_k = 0
    exactly; here they count as positive.) Either variant's denominator can cross zero when the
    explained score is negative (``start="logit"``): the sign of the result then flips."""
    if gamma < 0:
        raise ValueError(f"gamma rule: gamma must be >= 0, got {gamma}")
    if variant == "montavon":
        b = None if bias is None else bias + gamma * pos(bias)
        return [Group([(x, weight), (gamma * pos(x), pos(weight)), (gamma * neg(x), neg(weight))], b, eps)]
    if variant == "zennit":
        up, down = weight + gamma * pos(weight), weight + gamma * neg(weight)
        b_up = None if bias is None else bias + gamma * pos(bias)
        b_down = None if bias is None else bias + gamma * neg(bias)
        return [Group([(pos(x), up), (neg(x), down)], b_up, eps, 1.0, +1),
                Group([(pos(x), down), (neg(x), up)], b_down, eps, 1.0, -1)]
    raise ValueError(f"gamma rule: variant must be 'montavon' or 'zennit', got {variant!r}")


def _part(bias, part, with_bias=True):
    return None if bias is None or not with_bias else part(bias)


LINEAR = {name: RULES[(name, "dense")].equation for name, kind in RULES if kind == "dense"}


def linear(layer, x, R, rule, params=None, pixel_mask=None, pixel_rule=None, pixel_params=None,
           shared=False, parts=None, output=None):
    """(R_in, absorbed) of the linear rule ``rule`` at ``layer`` with input x and output relevance R;
    ``parts``: a dict that ``propagate`` fills with ``absorbed`` split by cause (bias, stabiliser, zero);
    ``output``: the layer's forward output at x, whose x W the rule's pair (x, W) reuses (``propagate``).

    With ``pixel_mask`` (1 on pixel features, 0 on state features, broadcastable to x), the MIXED rule of
    THESIS.md section 4 (Shallow's first layer, Conv+'s lateral convs): the pixel features use
    ``pixel_rule`` (z^B), the others ``rule`` (z+ or alpha-beta), in one shared denominator. The pixel
    pairs join the first group of ``rule`` (its positive group for alpha-beta), which keeps that
    group's bias, stabiliser and coefficient; with ``shared=True`` every pair joins one group (``mixed``).
    """
    weight, bias = layer.weight, layer.bias          # the bias once: -softplus(b) is computed at each read
    groups = _rule(rule)(x, weight, bias, **(params or {}))
    if pixel_mask is not None:
        pixels = _rule(pixel_rule)(x, weight, bias, **(pixel_params or {}))
        groups = mixed(pixels, groups, pixel_mask, shared)
    return propagate(layer, x.shape, R, groups, plain=(x, weight, bias), parts=parts, output=output)


def mixed(pixel_groups, state_groups, mask, shared=False):
    """One rule from two: pixel pairs masked by ``mask``, state pairs by 1 - mask, sharing the first
    state group's denominator. ``shared``: the thesis's code's form, one group for all, each state
    group's coefficient c folded into its weights, (x', c W'): for alpha-beta,
    z = alpha sum_j x_j w+_jk - beta sum_j x_j w-_jk + sum_i (z^B terms), every share with coefficient 1
    (the beta part then gives the state positive relevance)."""
    if len(pixel_groups) != 1:
        raise ValueError("the mixed rule needs a one-group rule (zbox, w_square, flat, epsilon, zplus, "
                         f"gamma) on the pixel features, got {len(pixel_groups)} groups")
    if any(g.select for g in state_groups):
        raise ValueError("the mixed rule cannot join a rule that selects outputs by sign (gamma variant 'zennit')")
    keep = 1 - mask
    state = [g._replace(pairs=[(xi * keep, wi) for xi, wi in g.pairs]) for g in state_groups]
    pixel_pairs = [(xi * mask, wi) for xi, wi in pixel_groups[0].pairs]
    if shared:
        folded = [(xi, g.coef * wi) for g in state for xi, wi in g.pairs]
        return [state[0]._replace(pairs=pixel_pairs + folded, coef=1.0)]
    return [state[0]._replace(pairs=pixel_pairs + state[0].pairs)] + state[1:]


def _rule(name):
    if name not in LINEAR:
        raise ValueError(f"unknown linear rule {name!r}; expected one of {', '.join(LINEAR)}")
    return LINEAR[name]


def pixel_mask(node):
    """Whether a linear node is an input layer: None (no), "all" (its input is the model's input or a
    slice of it), or a 0/1 mask over the input's features (a concat of pixels and other values)."""
    v = node.inputs[0]
    if v.tag == "input":
        return "all"
    made = v.node
    if made is None or made.layer.kind != "concat" or not any(u.tag == "input" for u in made.inputs):
        return None
    if all(u.tag == "input" for u in made.inputs):
        return "all"
    xp = backend.xp()
    axis = made.layer.axis % v.value.ndim
    parts = []
    for u in made.inputs:
        shape = [1] * v.value.ndim
        shape[axis] = u.value.shape[axis]
        parts.append(xp.full(shape, 1 if u.tag == "input" else 0, dtype=v.value.dtype))
    return xp.concatenate(parts, axis=axis)


# -- proportional splits: pools, sums, gates ------------------------------------------------------------
def split(parts, total, R, eps):
    """The stabilised proportional split every non-linear rule below shares: R_i = part_i / d R with
    d = total + eps sign(total) (``lrp_divide``), and what it absorbs (by cause: ``divide_parts``)."""
    s, absorbed = backend.op("lrp_divide")(R, total, eps, 1.0)
    return tuple(p * s for p in parts), absorbed


def divide_parts(R, z, eps, coef=1.0, s=None):
    """What ``lrp_divide(R, z, eps, coef)`` absorbs, by cause, with d = z + eps sign(z) and s = coef R / d
    (lrp_divide's s; computed when None):

        "stabiliser"   s eps sign(z)            the stabiliser's share of d
        "zero"         coef R  where d = 0      nothing to pass it to (s = 0 there)

    The two add up to lrp_divide's absorbed. A linear rule's bias share s b' is the third cause
    (``propagate``); the non-linear rules have no bias, and absorb these two only."""
    if s is None:
        s, _ = backend.op("lrp_divide")(R, z, eps, coef)
    stab = eps * backend.op("sign")(z)
    return {"stabiliser": s * stab, "zero": backend.xp().where(z + stab == 0, coef * R, 0)}


def _output(node):
    return node.output.value                           # a = pool(x)


def _sum_of_inputs(node):
    xs = [v.value for v in node.inputs]
    return sum(xs[1:], xs[0])                          # y = sum_i x_i; g + s


def _sum_of_magnitudes(node):
    xp = backend.xp()
    gate, signal = (v.value for v in node.inputs)
    return xp.abs(gate) + xp.abs(signal)               # |g| + |s|


@rule("proportional", kinds=POOL_KINDS, step=_pool_step, denominator=_output)
def pool_proportional(layer, cache, x, a, R, eps=0.0):
    """R_in = x * (da/dx)^T (R / a) (THESIS.md section 4) with the pool's own backward as (da/dx)^T.
    Every pool is positively homogeneous (sum_i x_i da/dx_i = a), so only the stabiliser and zero
    outputs absorb: absorbed = s eps sign(a), and R where a + eps sign(a) = 0."""
    s, absorbed = backend.op("lrp_divide")(R, a, eps, 1.0)
    return x * layer.backward(cache, s)[0][0], absorbed


@rule("winner_take_all", kinds=("maxpool2d",), step=_route_step)
def pool_winner_take_all(layer, cache, R):
    """Max pool, winner-take-all: each window's relevance goes wholly to its maximum
    (``MaxPool2D.backward`` routes a signal to the winners of ``winners(cache)``); nothing is absorbed."""
    if layer.kind != "maxpool2d":
        raise ValueError(f"winner-take-all applies to max pooling only, got a {layer.kind!r} layer")
    return layer.backward(cache, R)[0][0], nothing_absorbed(R)


@rule("proportional", kinds=("add",), step=_sum_step, denominator=_sum_of_inputs)
def add_proportional(xs, R, eps=1e-6):
    """y = sum_i x_i: R_i = x_i / (y + eps sign(y)) R (the accumulator c_t = f c_{t-1} + i c~ of
    Arras et al. 2017); absorbed = s eps sign(y), and R where the denominator is 0."""
    y = xs[0]
    for xi in xs[1:]:
        y = y + xi
    return split(xs, y, R, eps)


# The gate rules for y = gate * signal, as compared by Arras et al. 2019 ("Evaluating Recurrent Neural
# Network Explanations", BlackboxNLP; also "Explaining and Interpreting LSTMs", LNCS 11700, 2019).
@rule("signal_take_all", kinds=("gatemul",), step=_gate_step)
def gate_signal_take_all(gate, signal, R):
    """Signal-take-all (Arras et al. 2017; LRP-all in Arras et al. 2019): R_signal = R, R_gate = 0
    (the gate is treated as a constant weight)."""
    return (None, R), nothing_absorbed(R)


@rule("prop", kinds=("gatemul",), step=_gate_step, denominator=_sum_of_inputs)
def gate_prop(gate, signal, R, eps=1e-6):
    """LRP-prop (Arras et al. 2019, after Ding et al. 2017): the two factors share R in proportion to
    their values, R_g = g / (g + s) R, R_s = s / (g + s) R, stabilised by eps. Not bounded: where the
    signal is negative (a tanh candidate), g + s can come near 0 and both shares explode with opposite
    signs (LRP-abs below avoids it). A gate's share then flows through the sigmoid to the gate's linear
    layer, whose pre-activation is not a ReLU's: its rule divides by z, which can be near 0 too."""
    return split((gate, signal), gate + signal, R, eps)


@rule("abs", kinds=("gatemul",), step=_gate_step, denominator=_sum_of_magnitudes)
def gate_abs(gate, signal, R, eps=1e-6):
    """LRP-abs (Arras et al. 2019): as LRP-prop with absolute values, R_g = |g| / (|g| + |s|) R,
    R_s = |s| / (|g| + |s|) R; both shares keep R's sign and are at most |R|."""
    xp = backend.xp()
    g, s = xp.abs(gate), xp.abs(signal)
    return split((g, s), g + s, R, eps)


@rule("half", kinds=("gatemul",), step=_gate_step)
def gate_half(gate, signal, R):
    """LRP-half (Arras et al. 2019): R_g = R_s = R / 2."""
    return (0.5 * R, 0.5 * R), nothing_absorbed(R)
