"""The tape: a record of which layer was applied to which values, in order.

A model's forward pass is ordinary Python that applies layers to values on a ``Tape``::

    tape = Tape()
    x = tape.input(images)                 # a leaf
    h = tape.apply(dense, x)               # records (dense, inputs, output, cache)
    y = tape.apply(relu, h)

Every backward pass walks the tape in reverse and asks each node's layer for one local step:

- ``Tape.backward`` (the gradient) asks ``layer.backward(cache, dy)``;
- guided backprop asks ``layer.guided_backward(cache, dy)``;
- a relevance pass (``lrpnet.explain``) asks the rule that its composite assigns to the node.

So an architecture is only a forward pass: its gradient and its relevance pass follow from the
composition, and adding an architecture adds no backward code. Nodes are appended in execution order,
which is a topological order, so walking them backwards visits a value only after every consumer of
that value has sent its signal back; signals reaching one value from several consumers add up.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Callable

import numpy

from . import backend


class Part:
    """A signal that is zero everywhere but at ``index`` of an array of ``shape``, where it is ``values``:
    what a layer that picks part of its input sends back (a time slice, a step's rows, a gate's
    columns: ``backward_part``). The walk adds a part into the sum for its Var instead of a whole array
    of zeros around it: the T slices of one image cost one image-sized array, not T (T^2 N H W adds).
    ``dense()`` is the whole array; a layer's step never sees a Part, only the walk's sums do."""
    __slots__ = ("shape", "index", "values")

    def __init__(self, shape, index, values):
        self.shape, self.index, self.values = tuple(shape), index, values

    def dense(self):
        out = backend.module_of(self.values).zeros(self.shape, dtype=self.values.dtype)   # where the values live
        out[self.index] = self.values
        return out

    def add_to(self, acc):
        acc[self.index] += self.values


def dense(signal):
    """A signal as an array: a ``Part`` filled in, anything else as it is."""
    return signal.dense() if isinstance(signal, Part) else signal


def _plus(a, b):
    """a + b as a new array, for signals either of which may be a ``Part``."""
    if isinstance(a, Part):
        a, b = b, a
    if isinstance(a, Part):
        acc = a.dense()
    elif isinstance(b, Part):
        acc = a.copy()
    else:
        return a + b
    b.add_to(acc)
    return acc


def _holds(total, term):
    """Whether total + term has total's shape and dtype (so that adding term into total in place is the
    same sum)."""
    values = term.values if isinstance(term, Part) else term
    shape = term.shape if isinstance(term, Part) else getattr(term, "shape", ())
    dtype = getattr(values, "dtype", total.dtype)
    if dtype == total.dtype and shape == total.shape:
        return True
    return (total.shape == numpy.broadcast_shapes(total.shape, shape)
            and total.dtype == numpy.result_type(total.dtype, dtype))


class Sum:
    """A running sum that never writes into a term: the first term is held as given (a layer's or a
    rule's array, which may be another's too, or a ``Part``), the second makes a new array, and the rest
    are added into that one in place: a sum of k terms makes one array, not k - 1 (T time steps reading
    the image cost one image-sized array). The additions are in the order of ``t1 + t2 + ... + tk``;
    None terms are skipped. ``Tape.reverse`` adds up the signals reaching a Var with it, and
    ``rules.propagate`` its groups' z, R_in and absorbed. ``value``: the sum so far, as held (None
    before any term; a term as given after one); ``array()``: it as an array (a ``Part`` filled in)."""
    __slots__ = ("value", "_owned")

    def __init__(self, term=None):
        self.value, self._owned = None, False
        self.add(term)

    def add(self, term):
        if term is None:
            return
        if self.value is None:
            self.value = term
        elif self._owned and _holds(self.value, term):
            if isinstance(term, Part):
                term.add_to(self.value)
            else:
                self.value += term
        else:
            self.value, self._owned = _plus(self.value, term), True

    def array(self):
        return dense(self.value)


class Var:
    """One value on the tape: ``value`` is the array; ``node`` is the node that made it (None for
    a leaf); ``tag`` says what a leaf is ("input" for the model's input) and is inherited by the
    outputs of shape-only layers (slices, reshapes), so rules can tell pixels from hidden states.

    A Var refers to its node weakly (the tape's list owns the nodes): a node refers to its output
    Var, and a strong reference back would make a cycle, which only Python's cyclic garbage collector
    frees; a tape and all its arrays would then outlive its pass (explaining 1,000 ConvDeep samples in
    chunks held 435 MB after the call returned, and more on each call)."""

    __slots__ = ("value", "_node", "tag")

    def __init__(self, value, node=None, tag=None):
        self.value = value
        self._node = None if node is None else weakref.ref(node)
        self.tag = tag

    @property
    def node(self):
        return None if self._node is None else self._node()

    @node.setter
    def node(self, node):
        self._node = None if node is None else weakref.ref(node)

    @property
    def shape(self):
        return self.value.shape

    def __repr__(self):
        made_by = self.node.layer.kind if self.node is not None else "leaf"
        return f"Var({made_by}, shape={tuple(self.value.shape)}, tag={self.tag!r})"


@dataclass(eq=False)
class Node:
    """One application of a layer: ``output = layer(*inputs)``, with what its backward step needs."""
    layer: object
    inputs: tuple
    output: Var
    cache: object
    step: int | None = None      # the time step the node belongs to (None outside the recurrence)


@dataclass(eq=False)
class Tape:
    """The record of one forward pass, and the context layers see while they run.

    ``train`` switches dropout on; ``rng`` draws dropout masks; ``drop_scale`` scales every dropout
    layer's drop probability in this pass (1: as built; a curriculum raises it from 0 during training,
    ``lrpnet.training.dropout_scale``); ``memo`` keeps what must stay fixed for one sequence (a
    stationary dropout mask); ``step`` is the current time step, set by the model.
    """
    train: bool = False
    rng: object = None
    drop_scale: float = 1.0
    record: bool = True
    array_type: type | None = None   # the array type of this pass (numpy or cupy); others are refused
    nodes: list = field(default_factory=list)
    memo: dict = field(default_factory=dict)
    step: int | None = None

    def input(self, value, tag="input") -> Var:
        """A leaf holding ``value``."""
        return Var(value, None, tag)

    def apply(self, layer, *inputs: Var) -> Var:
        """Run ``layer.forward`` on the inputs' values and record the node."""
        values = [v.value for v in inputs]
        if self.array_type is not None:
            for k, value in enumerate(values):
                if not isinstance(value, self.array_type):
                    self._mismatch(layer, k, value)
        y, cache = layer.forward(self, *values)
        out = Var(y, None, inputs[0].tag if layer.shape_only and len(inputs) == 1 else None)
        if self.record:
            node = Node(layer, inputs, out, cache, self.step)
            self.nodes.append(node)
            out.node = node
        return out

    def _mismatch(self, layer, k, value):
        from .backend import DeviceMismatch, describe
        raise DeviceMismatch(f"layer {layer.name or layer.kind!r} ({layer.kind}, step {self.step}): input {k} "
                             f"is a {describe(value)}, but this pass runs on "
                             f"{self.array_type.__module__.split('.')[0]}.{self.array_type.__name__} arrays")

    def reverse(self, seeds: dict, local_step: Callable, keep: bool = False) -> dict:
        """Walk the tape backwards, carrying a signal (gradient or relevance) from outputs to inputs.

        ``seeds`` maps Vars to their starting signal. ``local_step(node, signal)`` returns one signal
        per input of ``node`` (None for an input that gets none). Returns the signals of the leaves,
        keyed by Var, and, with ``keep=True``, of every intermediate Var as well.
        """
        # id(Var) -> (Var, Sum of the signals reaching it): a Var that several consumers read gets their
        # signals added up (``Sum``: the second makes a new array, which the walk owns, and the others
        # are added into it in place; a signal a layer returned may be another's too, as Add's, so it
        # is never written to). A signal may be a ``Part`` (zero outside one block): it is added as a
        # block, and filled in when a node's step or the caller receives it.
        signals = {id(v): (v, Sum(s)) for v, s in seeds.items()}
        kept = {}
        for node in reversed(self.nodes):
            entry = signals.pop(id(node.output), None)
            if entry is None:
                continue
            signal = entry[1].array()
            if keep:
                kept[node.output] = signal
            for v, s in zip(node.inputs, local_step(node, signal)):
                if s is None:
                    continue
                held = signals.get(id(v))
                if held is None:
                    signals[id(v)] = (v, Sum(s))
                else:
                    held[1].add(s)
        kept.update({v: total.array() for v, total in signals.values()})
        return kept

    def backward(self, seeds: dict, guided: bool = False, params: bool = True, leaves=None):
        """The gradient of ``sum(seed * output)`` with respect to leaves and parameters.

        Returns ``(leaf_grads, param_grads)``: leaf_grads keyed by Var, param_grads keyed by the
        parameter's full name (``layer.name + "." + local name``), summed over every use of the layer
        (over time steps, for recurrent cells; a dense layer sums them in one product over all its
        uses, ``Dense.param_grads_of_uses``).

        ``guided``: False (the gradient), True (every layer's ``guided_backward``), or the layer kinds
        whose ``guided_backward`` is used (guided backprop's variants, ``lrpnet.explain``).

        Only what is asked for is computed: ``params=False`` skips every parameter gradient (an
        explanation needs none); ``leaves`` lists the leaf Vars whose gradient is wanted (None: every
        leaf; training passes ``()``), and an input gradient that reaches none of them and no wanted
        parameter is not computed (conv1's gradient with respect to the pixels, in training). Nor are
        the columns of a concatenation that only unwanted inputs fill (``_column_cuts``): in training,
        the LSTM's gates send a gradient to h_{t-1} and none to the pixels x_t of [x_t ; h_{t-1}].
        """
        param_grads: dict = {}
        wanted = self._wanted(params, leaves)
        cuts = self._column_cuts(wanted, seeds)
        uses: dict = {}               # id(linear layer) -> (layer, caches, output gradients) of its nodes

        def local_step(node, dy):
            layer = node.layer
            needed = [wanted.get(id(v), False) for v in node.inputs]
            cut = cuts.get(id(node.output))
            if cut is not None:          # a concatenation whose gradient came only for columns cut[0]:cut[1]
                dxs, _ = layer.backward_columns(node.cache, dy, cut[0])
                return tuple(dx if need else None for dx, need in zip(dxs, needed))
            if hasattr(layer, "backward_part"):          # a slice of its input, the same under guided
                dxs, _ = layer.backward_part(node.cache, dy)
                return tuple(dx if need else None for dx, need in zip(dxs, needed))
            if not hasattr(layer, "param_grads"):
                use_guided = guided is True or (bool(guided) and layer.kind in guided)
                dxs, dparams = (layer.guided_backward if use_guided else layer.backward)(node.cache, dy)
                if params and dparams:
                    add_param_grads(layer, dparams)
                return tuple(dx if need else None for dx, need in zip(dxs, needed))
            # a linear layer (guided or not): its input gradient if needed; its parameter gradient
            # here, or (a layer with ``param_grads_of_uses``: dense) after the walk, in one go over
            # every node of the layer
            if params and layer.params:
                if hasattr(layer, "param_grads_of_uses"):
                    uses.setdefault(id(layer), (layer, [], []))
                    uses[id(layer)][1].append(node.cache)
                    uses[id(layer)][2].append(dy)
                else:
                    add_param_grads(layer, layer.param_grads(node.cache, dy))
            if not needed[0]:
                return (None,)
            cut = cuts.get(id(node.inputs[0]))
            if cut is not None:
                return (layer.input_grad_columns(node.cache, dy, *cut),)
            return (layer.input_grad(node.cache, dy),)

        def add_param_grads(layer, dparams):
            for k, g in dparams.items():
                full = f"{layer.name}.{k}"
                param_grads[full] = param_grads[full] + g if full in param_grads else g

        leaf_grads = self.reverse(seeds, local_step)
        for layer, caches, dys in uses.values():
            add_param_grads(layer, layer.param_grads_of_uses(caches, dys))
        return leaf_grads, param_grads

    def _wanted(self, params, leaves) -> dict:
        """id(Var) -> whether its gradient leads to a wanted leaf or parameter, for every Var that is
        a node's input. Nodes are in execution order, so a Var's maker is decided before its users."""
        wanted_leaves = None if leaves is None else {id(v) for v in leaves}
        made: dict = {}                 # id(output Var) -> wanted
        out: dict = {}
        for node in self.nodes:
            any_input = False
            for v in node.inputs:
                if v.node is None:
                    w = wanted_leaves is None or id(v) in wanted_leaves
                else:
                    w = made.get(id(v), False)
                out[id(v)] = w
                any_input = any_input or w
            made[id(node.output)] = any_input or bool(params and node.layer.params)
        return out

    def _column_cuts(self, wanted, seeds) -> dict:
        """id(Var) -> (start, stop) for each concatenation output whose gradient is wanted only in
        columns [start, stop) of its last axis: the span of its inputs that are wanted, when some at
        either end are not. Only where every node reading it can send back those columns alone (a
        dense or convolution layer, ``input_grad_columns``: dz W[start:stop]^T) and the concatenation can split them
        (``backward_columns``); the gradient of that Var is then the (N, stop - start) block.

        Saves the part of the products that would go to unwanted inputs: in training, the pixels x_t
        of the LSTM's, GRU's and Shallow's [x_t ; h_{t-1}] (196 of the LSTM's 324 columns), and the
        pixel channel of conv+deep's [x_t ; a1_{t-1}] (``Conv2D.input_grad_columns``)."""
        spans, seeded = {}, {id(v) for v in seeds}
        for node in self.nodes:
            if not getattr(node.layer, "joins_last_axis", False) or id(node.output) in seeded:
                continue
            ends, start = [], 0
            for v in node.inputs:
                ends.append((start, start + v.value.shape[-1]))
                start = ends[-1][1]
            used = [end for v, end in zip(node.inputs, ends) if wanted.get(id(v), False)]
            if used and len(used) < len(ends) and (used[0][0] > 0 or used[-1][1] < ends[-1][1]):
                spans[id(node.output)] = (used[0][0], used[-1][1])
        read = set()
        for node in self.nodes:               # every reader must send back the columns alone
            for v in node.inputs:
                if id(v) in spans:
                    read.add(id(v))
                    if not hasattr(node.layer, "input_grad_columns"):
                        spans[id(v)] = None
        return {k: span for k, span in spans.items() if span is not None and k in read}
