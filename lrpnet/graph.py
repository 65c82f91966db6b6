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
        self.node = node
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

    ``train`` switches dropout on; ``rng`` draws dropout masks; ``memo`` keeps what must stay fixed
    for one sequence (a stationary dropout mask); ``step`` is the current time step, set by the model.
    """
    train: bool = False
    rng: object = None
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
        if self.array_type is not None:
            for k, v in enumerate(inputs):
                if not isinstance(v.value, self.array_type):
                    self._mismatch(layer, k, v.value)
        y, cache = layer.forward(self, *(v.value for v in inputs))
        tag = inputs[0].tag if layer.shape_only and len(inputs) == 1 else None
        out = Var(y, None, tag)
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
        signals = {id(v): (v, s) for v, s in seeds.items()}
        kept = {}
        for node in reversed(self.nodes):
            entry = signals.pop(id(node.output), None)
            if entry is None:
                continue
            if keep:
                kept[node.output] = entry[1]
            for v, s in zip(node.inputs, local_step(node, entry[1])):
                if s is None:
                    continue
                if id(v) in signals:
                    signals[id(v)] = (v, signals[id(v)][1] + s)
                else:
                    signals[id(v)] = (v, s)
        kept.update({v: s for v, s in signals.values()})
        return kept

    def backward(self, seeds: dict, guided: bool = False, params: bool = True, leaves=None):
        """The gradient of ``sum(seed * output)`` with respect to leaves and parameters.

        Returns ``(leaf_grads, param_grads)``: leaf_grads keyed by Var, param_grads keyed by the
        parameter's full name (``layer.name + "." + local name``), summed over every use of the layer
        (over time steps, for recurrent cells).

        ``guided``: False (the gradient), True (every layer's ``guided_backward``), or the layer kinds
        whose ``guided_backward`` is used (guided backprop's variants, ``lrpnet.explain``).

        Only what is asked for is computed: ``params=False`` skips every parameter gradient (an
        explanation needs none); ``leaves`` lists the leaf Vars whose gradient is wanted (None: every
        leaf; training passes ``()``), and an input gradient that reaches none of them and no wanted
        parameter is not computed (conv1's gradient with respect to the pixels, in training).
        """
        param_grads: dict = {}
        wanted = self._wanted(params, leaves)

        def local_step(node, dy):
            layer = node.layer
            needed = [wanted.get(id(v), False) for v in node.inputs]
            if not hasattr(layer, "param_grads"):
                use_guided = guided is True or (bool(guided) and layer.kind in guided)
                dxs, dparams = (layer.guided_backward if use_guided else layer.backward)(node.cache, dy)
                dparams = dparams if params else {}
            else:                     # a linear layer (guided or not): its two parts, each if needed
                dxs = (layer.input_grad(node.cache, dy) if needed[0] else None,)
                dparams = layer.param_grads(node.cache, dy) if params and layer.params else {}
            for k, g in dparams.items():
                full = f"{layer.name}.{k}"
                param_grads[full] = param_grads[full] + g if full in param_grads else g
            return tuple(dx if need else None for dx, need in zip(dxs, needed))

        leaf_grads = self.reverse(seeds, local_step)
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
