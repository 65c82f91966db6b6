"""How fast an LSTM training step can be in NumPy at all: lrpnet's step against a hand-written NumPy step
with no tape, and against PyTorch's ``nn.LSTM``, side by side in one process.

    python benchmarks/lstm_floor.py --threads 1

Issue 10 asks for lrpnet's LSTM step at <= 1.0x PyTorch's. The rows:

- lrpnet: ``model.loss_and_grads(x, y, train=True)`` + Adam, as ``benchmarks/backends.py`` times it;
- NumPy, no tape: the same step written out by hand as cheaply as NumPy allows: the input projection
  of all T steps in one product, the four gates in one product per step, no gradient for the pixels,
  the pointwise math in a handful of array operations per step, then Adam (lrpnet's ``Adam``) on the
  same parameters. What lrpnet's graph of layers could at best reach with NumPy's operations;
- its matrix products alone (the input projection, 2T per-step products, the two weight gradients),
  in NumPy and in PyTorch: what the BLAS library of each costs for the same products;
- PyTorch: ``nn.LSTM`` + ``nn.Linear`` (``benchmarks/torch_models.py``) + ``torch.optim.Adam``.

Random inputs in [-1, 1], 28x84 cut into T = 12 steps of 196 values, hidden 128, 10 classes, float32;
a cell is the best of ``--repeats`` calls after one untimed. The hand-written step's gradients are
checked against lrpnet's before timing.
"""
from __future__ import annotations

import argparse
import os
import sys

from side_by_side import footer, header  # benchmarks/side_by_side.py, beside this script
from threads import limit_threads  # benchmarks/threads.py, beside this script

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
SHAPE, T, CLASSES, LR = (28, 84), 12, 10, 2e-4


def packed(model):
    """lrpnet's LSTM parameters as the hand-written step keeps them: W_x (n_in, 4H), W_h (H, 4H), b (4H,)
    with columns i, f, o, g (the gates' layer, then the candidate's), and the read-out."""
    import numpy
    p = model.params
    W = numpy.concatenate([p["cell.gates.W"], p["cell.cand.W"]], axis=1)
    b = numpy.concatenate([p["cell.gates.b_ih"] + p["cell.gates.b_hh"], p["cell.cand.b_ih"] + p["cell.cand.b_hh"]])
    n_in = W.shape[0] - p["cell.cand.W"].shape[1]
    return {"Wx": numpy.ascontiguousarray(W[:n_in]), "Wh": numpy.ascontiguousarray(W[n_in:]), "b": b,
            "Wo": p["out.W"], "bo": p["out.b"]}


def numpy_step(P, x, y):
    """Loss and gradients of the study's loss for the LSTM, by hand: (loss, {name: gradient})."""
    import numpy
    from lrpnet.losses import softmax_xent_zero_logit
    n = x.shape[0]
    H = P["Wh"].shape[0]
    xs = x.reshape(n, SHAPE[0], T, SHAPE[1] // T).transpose(2, 0, 1, 3).reshape(T * n, -1)   # step-major rows
    pre_x = (xs @ P["Wx"] + P["b"]).reshape(T, n, 4 * H)          # every step's input projection at once
    h, c = numpy.zeros((n, H), x.dtype), numpy.zeros((n, H), x.dtype)
    hs, saved = [], []
    for t in range(T):
        a = pre_x[t] + h @ P["Wh"]
        s = 1 / (1 + numpy.exp(-a[:, :3 * H]))                     # i, f, o
        g = numpy.tanh(a[:, 3 * H:])
        i, f, o = s[:, :H], s[:, H:2 * H], s[:, 2 * H:]
        c_prev, c = c, f * c + i * g
        tc = numpy.tanh(c)
        hs.append(h)
        saved.append((s, g, c_prev, tc))
        h = o * tc
    logits = h @ P["Wo"] + P["bo"]
    loss, dlogits = softmax_xent_zero_logit(logits, y)
    grads = {"Wo": h.T @ dlogits, "bo": dlogits.sum(axis=0)}
    dh = dlogits @ P["Wo"].T
    dc = numpy.zeros_like(dh)
    da = numpy.empty((T, n, 4 * H), x.dtype)
    for t in reversed(range(T)):
        s, g, c_prev, tc = saved[t]
        i, f, o = s[:, :H], s[:, H:2 * H], s[:, 2 * H:]
        dc = dc + dh * o * (1 - tc * tc)
        ds = numpy.concatenate([dc * g, dc * c_prev, dh * tc], axis=1)
        da[t, :, :3 * H] = ds * s * (1 - s)
        da[t, :, 3 * H:] = dc * i * (1 - g * g)
        dc = dc * f
        if t:
            dh = da[t] @ P["Wh"].T                                 # h_{t-1}'s gradient only
    rows = da.reshape(T * n, 4 * H)
    grads["Wx"] = xs.T @ rows
    grads["Wh"] = numpy.concatenate(hs).T @ rows                   # h_0 = 0 adds nothing
    grads["b"] = rows.sum(axis=0)
    return loss, grads


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", default="50,256")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    limit_threads(args.threads)
    import numpy
    import torch
    from lrpnet import backend
    from lrpnet.memory import keep_freed_memory
    from lrpnet.models import build
    from lrpnet.training import Adam
    from torch_models import training_step
    from backends import best_of
    keep_freed_memory()
    torch.set_num_threads(args.threads)

    header("An LSTM training step: lrpnet, NumPy without a tape, PyTorch", args.threads, f"numpy {numpy.__version__}", f"torch {torch.__version__}")
    print("| batch | lrpnet | NumPy, no tape | its products, NumPy | its products, PyTorch | PyTorch nn.LSTM "
          "| lrpnet / PyTorch | NumPy, no tape / PyTorch |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    rng = numpy.random.default_rng(0)
    notes = []
    for batch in [int(b) for b in args.batches.split(",")]:
        x = rng.uniform(-1, 1, (batch,) + SHAPE).astype("float32")
        y = rng.integers(0, CLASSES, batch)
        model = build("lstm", input_shape=SHAPE, T=T, n_classes=CLASSES, seed=0)
        P = packed(model)
        # the hand-written gradients against lrpnet's, before any timing
        _, want = model.loss_and_grads(x, y)
        _, got = numpy_step(P, x, y)
        got_packed = packed_grads_check(want, got)
        notes.append(f"batch {batch}: max |hand-written - lrpnet| / max |lrpnet| over the gradients = {got_packed:.1e}")

        opt, drop = Adam(model.params, lr=LR), backend.random_state([0, 0, 1])

        def lrpnet_step():
            _, grads = model.loss_and_grads(x, y, train=True, rng=drop)
            opt.step(grads)
        hand_opt = Adam(dict(P), lr=LR)

        def hand_step():
            _, grads = numpy_step(P, x, y)
            hand_opt.step(grads)
        H = P["Wh"].shape[0]
        xs = numpy.ascontiguousarray(x.reshape(batch * T, -1))
        h = numpy.ascontiguousarray(xs[:batch, :H])
        da = rng.standard_normal((T * batch, 4 * H)).astype("float32")
        tP = {k: torch.as_tensor(v) for k, v in P.items()}
        numpy_products = products(P, xs, h, da, batch)
        torch_products = products(tP, torch.as_tensor(xs), torch.as_tensor(h), torch.as_tensor(da), batch)
        torch_step = training_step(model, x, y, LR)
        times = [1e3 * best_of(fn, args.repeats)
                 for fn in (lrpnet_step, hand_step, numpy_products, torch_products, torch_step)]
        print(f"| {batch} | {times[0]:.2f} | {times[1]:.2f} | {times[2]:.2f} | {times[3]:.2f} | {times[4]:.2f} "
              f"| {times[0] / times[4]:.2f} | {times[1] / times[4]:.2f} |")
    footer(*notes)


def products(P, xs, h, da, batch):
    """A function doing the matrix products of ``numpy_step`` on arrays of their shapes, NumPy's or
    torch's: the input projection of all steps, T products with W_h forward, T - 1 back, the two
    weight gradients."""
    H = P["Wh"].shape[0]

    def run():
        xs @ P["Wx"]
        for _ in range(T):
            h @ P["Wh"]
        for _ in range(T - 1):
            da[:batch] @ P["Wh"].T
        xs.T @ da
        xs[:, :H].T @ da
    return run


def packed_grads_check(want, got):
    """The largest difference between the hand-written gradients and lrpnet's, over their largest value."""
    import numpy
    H = want["cell.cand.W"].shape[1]
    n_in = want["cell.cand.W"].shape[0] - H
    W = numpy.concatenate([want["cell.gates.W"], want["cell.cand.W"]], axis=1)
    b = numpy.concatenate([want["cell.gates.b_ih"], want["cell.cand.b_ih"]])
    pairs = [(W[:n_in], got["Wx"]), (W[n_in:], got["Wh"]), (b, got["b"]), (want["out.W"], got["Wo"]),
             (want["out.b"], got["bo"])]
    return max(float(numpy.abs(a - g).max() / numpy.abs(a).max()) for a, g in pairs)


if __name__ == "__main__":
    main()
