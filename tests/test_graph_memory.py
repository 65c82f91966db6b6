"""A pass frees its arrays as soon as nothing refers to it, without waiting for Python's cyclic
garbage collector (a Var refers to its node weakly, so tape, nodes and Vars make no cycle)."""
import gc
import weakref

import numpy

import lrpnet
from lrpnet.models import build

from test_architectures import SHAPE, SMALL, C, T


def test_a_traced_pass_is_freed_by_reference_counting_alone():
    model = build("convdeep", input_shape=SHAPE, T=T, n_classes=C, seed=0, **SMALL["convdeep"])
    x = numpy.random.default_rng(0).uniform(-1, 1, (4,) + SHAPE)
    gc.collect()
    gc.disable()
    try:
        tape, x_var, out = model.trace(x)
        node = tape.nodes[len(tape.nodes) // 2]
        assert node.output.node is node               # the weak link still resolves while the tape lives
        kept = weakref.ref(tape), weakref.ref(node), weakref.ref(tape.nodes[-1])   # the logits' node
        del tape, x_var, out, node
        assert [r() for r in kept] == [None, None, None]        # and with the nodes, their caches
    finally:
        gc.enable()


def test_explaining_leaves_nothing_behind_for_the_collector():
    model = build("rlstm", input_shape=SHAPE, T=T, n_classes=C, seed=0, **SMALL["rlstm"])
    x = numpy.random.default_rng(0).uniform(-1, 1, (6,) + SHAPE)
    lrpnet.explain(model, x, "dtd", batch_size=2)
    gc.collect()
    gc.disable()
    try:
        lrpnet.explain(model, x, "lrp-alpha1.5beta0.5", batch_size=2, return_details=True)
        assert gc.collect() == 0, "an explanation left reference cycles for the garbage collector"
    finally:
        gc.enable()
