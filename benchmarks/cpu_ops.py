"""The operation-level measurements behind the CPU-speed changes, each side by side in one process.

    python benchmarks/cpu_ops.py --threads 1                      # every table
    python benchmarks/cpu_ops.py --threads 1 --tables where,gemm

Tables (``--tables``):

- ``where``: NumPy's ``where`` against the arithmetic it can be replaced by, the sigmoid's old and new
  reference, and the pieces of ``rules.lrp_divide`` at a conv layer's size;
- ``gemm``: one matrix product in NumPy (its BLAS) and in PyTorch (its BLAS) at the study's sizes;
- ``param-grads``: a dense layer's weight gradient over T = 12 uses as 12 products and their sum,
  against one product of the stacked rows (``Dense.param_grads_of_uses``);
- ``conv-chunks``: the convolution's forward pass and weight gradient on the whole batch's patches
  at once against 4 MiB and 1 MiB chunks of images (``conv.PATCH_CHUNK_BYTES``);
- ``col2im``: two alternatives that lost: the input gradient's col2im with the batch as the last
  axis, and an im2col built offset by offset;
- ``batch-steps``: a training step with ``model.batch_steps`` off and on (blocks without recurrence
  on all T steps at once);
- ``third-pass``: the operations of the third pass against their versions at ``--before`` (default
  87637d6, where the pass started; read with before_after.py's ``definition_at``): ``rules.sign``,
  ``lrp_divide`` and ``safe_divide`` without ``where``, dropout masks from 32 random bits, the sum
  pool's backward as a gather; and the alternatives that lost (float32 draws, the pool's backward
  written into a (N, out_h, kh, out_w, kw, C) block).

Every cell is the best of ``--repeats`` rounds (each round a few calls, the mean of them), the two
columns of a row alternating round by round; float32, random inputs.
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys
import time

from threads import limit_threads  # benchmarks/threads.py, beside this script

TABLES = ("where", "gemm", "param-grads", "conv-chunks", "col2im", "batch-steps", "third-pass")


def side_by_side(fns, repeats, number):
    """Best mean time in microseconds of each of ``fns``, alternating them round by round."""
    for f in fns:
        f()
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for k, f in enumerate(fns):
            start = time.perf_counter()
            for _ in range(number):
                f()
            best[k] = min(best[k], (time.perf_counter() - start) / number * 1e6)
    return best


def row(*cells):
    print("| " + " | ".join(str(c) for c in cells) + " |", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tables", default=",".join(TABLES))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--before", default="87637d6", help="the commit of table third-pass's 'before' column")
    args = p.parse_args()
    limit_threads(args.threads)

    import numpy
    from lrpnet import rules
    from lrpnet.layers import conv as C
    from lrpnet.layers.base import sigmoid_forward

    rng = numpy.random.default_rng(0)
    f32 = numpy.float32
    R = args.repeats
    print(f"# CPU operations, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"- threads {args.threads}, numpy {numpy.__version__}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    print("- command: python benchmarks/cpu_ops.py " + " ".join(sys.argv[1:]))
    tables = args.tables.split(",")

    if "where" in tables:
        x = (rng.standard_normal((50, 384)) * 3).astype(f32)
        e, m = numpy.exp(-numpy.abs(x)), x >= 0

        def old_sigmoid():
            ex = numpy.exp(-numpy.abs(x))
            return numpy.where(x >= 0, 1 / (1 + ex), ex / (1 + ex))
        print("\n## where, (50, 384) float32 (us per call)\n")
        row("operation", "us")
        row("---", "---:")
        cases = [("where(x >= 0, a, b), mask of mixed signs", lambda: numpy.where(m, e, e)),
                 ("where(all true, a, b)", lambda: numpy.where(numpy.ones_like(m), e, e)),
                 ("exp(x)", lambda: numpy.exp(x)),
                 ("sigmoid, old reference (where of two branches)", old_sigmoid),
                 ("sigmoid, new reference 1 / (1 + exp(-x))", lambda: sigmoid_forward(x)),
                 ("sign, where with two scalars (the reference until 87637d6)",
                  lambda: numpy.where(x >= 0, f32(1), f32(-1))),
                 ("sign as arithmetic, (x >= 0) * 2 - 1", lambda: (x >= 0) * f32(2) - f32(1))]
        for (name, _), t in zip(cases, side_by_side([f for _, f in cases], R, 200)):
            row(name, f"{t:.1f}")
        z = rng.standard_normal((50, 28, 7, 24)).astype(f32)
        z[z < -1] = 0
        Rr = rng.standard_normal(z.shape).astype(f32)
        zero = z == 0
        print("\n## lrp_divide's pieces at (50, 28, 7, 24) float32, 16% zeros (us per call)\n")
        row("operation", "us")
        row("---", "---:")
        cases = [("lrp_divide, eps 0", lambda: rules.lrp_divide(Rr, z, 0.0, 1.0)),
                 ("lrp_divide, eps 1e-6", lambda: rules.lrp_divide(Rr, z, 1e-6, 1.0)),
                 ("where(z == 0, 1.0, z)", lambda: numpy.where(zero, 1.0, z)),
                 ("z + (z == 0), the same values", lambda: z + zero),
                 ("where(z >= 0, 1, -1), sign until 87637d6", lambda: numpy.where(z >= 0, f32(1), f32(-1))),
                 ("(z >= 0) * 2 - 1", lambda: (z >= 0) * f32(2) - f32(1))]
        with numpy.errstate(all="ignore"):
            for (name, _), t in zip(cases, side_by_side([f for _, f in cases], R, 20)):
                row(name, f"{t:.0f}")

    if "gemm" in tables:
        import torch
        torch.set_num_threads(args.threads)
        print("\n## One matrix product (M, K) @ (K, N), float32: NumPy against PyTorch (us)\n")
        row("M, K, N", "NumPy us", "PyTorch us", "NumPy / PyTorch")
        row("---", "---:", "---:", "---:")
        for m, k, n in [(50, 324, 384), (50, 324, 128), (50, 128, 512), (50, 784, 256), (600, 196, 512),
                        (256, 324, 384), (256, 784, 256)]:
            a, b = rng.random((m, k), dtype=f32), rng.random((k, n), dtype=f32)
            ta, tb = torch.from_numpy(a), torch.from_numpy(b)
            t1, t2 = side_by_side([lambda: a @ b, lambda: ta @ tb], R, 100)
            row(f"{m}, {k}, {n}", f"{t1:.1f}", f"{t2:.1f}", f"{t1 / t2:.2f}")

    if "param-grads" in tables:
        print("\n## A dense layer's weight and bias gradient over T = 12 uses (us)\n")
        row("N, in, out", "12 products, summed", "one product of 12 N rows", "ratio")
        row("---", "---:", "---:", "---:")
        for n, i, o in [(50, 324, 384), (50, 324, 128), (50, 784, 256), (50, 512, 128), (256, 324, 384),
                        (256, 784, 256)]:
            xs = [rng.standard_normal((n, i)).astype(f32) for _ in range(12)]
            ds = [rng.standard_normal((n, o)).astype(f32) for _ in range(12)]

            def each(xs=xs, ds=ds):
                g = b = None
                for x_, d_ in zip(xs, ds):
                    g = x_.T @ d_ if g is None else g + x_.T @ d_
                    b = d_.sum(0) if b is None else b + d_.sum(0)
                return g, b

            def stacked(xs=xs, ds=ds):
                x_, d_ = numpy.concatenate(xs), numpy.concatenate(ds)
                return x_.T @ d_, d_.sum(0)
            t1, t2 = side_by_side([each, stacked], R, 10)
            row(f"{n}, {i}, {o}", f"{t1:.0f}", f"{t2:.0f}", f"{t1 / t2:.2f}")

    conv_cases = [(50, 28, 7, 1, 5, 24, "convdeep conv1"), (256, 28, 7, 1, 5, 24, "convdeep conv1"),
                  (50, 14, 4, 24, 3, 32, "convdeep conv2"), (256, 14, 4, 24, 3, 32, "convdeep conv2"),
                  (50, 28, 7, 25, 5, 24, "conv+deep conv1"), (256, 28, 7, 25, 5, 24, "conv+deep conv1"),
                  (50, 14, 4, 56, 3, 32, "conv+deep conv2"), (256, 14, 4, 56, 3, 32, "conv+deep conv2"),
                  (3072, 28, 7, 1, 5, 24, "convdeep conv1, 12 steps x 256"),
                  (3072, 14, 4, 24, 3, 32, "convdeep conv2, 12 steps x 256")]
    if "conv-chunks" in tables:
        print("\n## Convolution forward pass and weight gradient: whole batch against chunks of images (ms)\n")
        row("input (N, H, W, C_in) kernel", "forward: whole", "4 MiB", "1 MiB", "whole / 4 MiB",
            "weight grad: whole", "4 MiB", "1 MiB", "whole / 4 MiB")
        row("---", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:")
        saved = dict(C.PATCH_CHUNK_BYTES)
        for n, h, w, ci, k, co, label in conv_cases:
            W = rng.standard_normal((k, k, ci, co)).astype(f32)
            x = rng.standard_normal((n, h, w, ci)).astype(f32)
            dz = rng.standard_normal((n, h, w, co)).astype(f32)
            b = numpy.zeros(co, f32)
            pads, _ = C.window_pads(x.shape, (k, k), (1, 1), "SAME")

            def with_chunk(size, fn):
                def run():
                    C.PATCH_CHUNK_BYTES["cpu"] = size
                    return fn()
                return run
            fwd = lambda: C.conv2d_forward(x, W, b, (1, 1), pads)                # noqa: E731
            wg = lambda: C.conv2d_weight_grad(x, dz, W.shape, (1, 1), pads)      # noqa: E731
            sizes = (2 ** 62, 4 * 2 ** 20, 2 ** 20)
            tf = side_by_side([with_chunk(s, fwd) for s in sizes], R, 2)
            tw = side_by_side([with_chunk(s, wg) for s in sizes], R, 2)
            row(f"({n}, {h}, {w}, {ci}) {k}x{k}x{co} ({label})", *(f"{t / 1e3:.2f}" for t in tf),
                f"{tf[0] / tf[1]:.2f}", *(f"{t / 1e3:.2f}" for t in tw), f"{tw[0] / tw[1]:.2f}")
        C.PATCH_CHUNK_BYTES.update(saved)

    if "col2im" in tables:
        def col2im_batch_last(weight, dz, x_shape, stride, pads):
            """col2im with the batch as the last axis, so that each offset's add runs over N contiguous
            numbers instead of C_in."""
            kh, kw, c_in, c_out = weight.shape
            n, oh, ow, _ = dz.shape
            top, bottom, left, right = pads
            dzt = dz.reshape(n, oh * ow, c_out).transpose(2, 1, 0).reshape(c_out, oh * ow * n)
            dpatches = (weight.reshape(kh * kw * c_in, c_out) @ dzt).reshape(kh * kw, c_in, oh, ow, n)
            dxpad = numpy.zeros((c_in, x_shape[1] + top + bottom, x_shape[2] + left + right, n), dtype=dz.dtype)
            for o in range(kh * kw):
                i, j = divmod(o, kw)
                dxpad[:, i:i + oh, j:j + ow, :] += dpatches[o]
            return numpy.ascontiguousarray(dxpad[:, top:top + x_shape[1], left:left + x_shape[2], :].transpose(3, 1, 2, 0))

        def patches_by_offset(x, kernel, stride, pads):
            (kh, kw) = kernel
            n, _, _, c = x.shape
            oh, ow = C.output_hw(x.shape, kernel, stride, pads)
            xpad = C.pad_hw(x, pads)
            out = numpy.empty((n, oh, ow, kh * kw, c), dtype=x.dtype)
            for o in range(kh * kw):
                out[:, :, :, o, :] = C.offset_view(xpad, o // kw, o % kw, (oh, ow), stride)
            return out.reshape(n, oh, ow, kh * kw * c)
        print("\n## Alternatives that lost: col2im with the batch last, im2col offset by offset (ms)\n")
        row("input (N, H, W, C_in) kernel", "input grad (as picked)", "col2im", "col2im, batch last",
            "im2col (window view)", "im2col by offset")
        row("---", "---:", "---:", "---:", "---:", "---:")
        for n, h, w, ci, k, co, label in [(100, 28, 7, 1, 5, 24, "convdeep conv1, explain chunk"),
                                          (50, 28, 7, 1, 5, 24, "convdeep conv1"),
                                          (256, 28, 7, 1, 5, 24, "convdeep conv1"),
                                          (100, 14, 4, 24, 3, 32, "convdeep conv2, explain chunk"),
                                          (50, 28, 7, 25, 5, 24, "conv+deep conv1")]:
            W = rng.standard_normal((k, k, ci, co)).astype(f32)
            x = rng.standard_normal((n, h, w, ci)).astype(f32)
            dz = rng.standard_normal((n, h, w, co)).astype(f32)
            pads, _ = C.window_pads(x.shape, (k, k), (1, 1), "SAME")
            assert numpy.allclose(col2im_batch_last(W, dz, x.shape, (1, 1), pads),
                                  C.input_grad_col2im(W, dz, x.shape, (1, 1), pads), atol=1e-4)
            ts = side_by_side([lambda: C.conv2d_input_grad(W, dz, x.shape, (1, 1), pads),
                               lambda: C.input_grad_col2im(W, dz, x.shape, (1, 1), pads),
                               lambda: col2im_batch_last(W, dz, x.shape, (1, 1), pads),
                               lambda: C.conv2d_patches(x, (k, k), (1, 1), pads),
                               lambda: patches_by_offset(x, (k, k), (1, 1), pads)], R, 5)
            row(f"({n}, {h}, {w}, {ci}) {k}x{k}x{co} ({label})", *(f"{t / 1e3:.2f}" for t in ts))

    if "batch-steps" in tables:
        from lrpnet.models import build
        from lrpnet.training import Adam
        print("\n## A training step with batch_steps off and on (ms; Adam, dropout on)\n")
        row("model", "batch", "off", "on", "off / on")
        row("---", "---:", "---:", "---:", "---:")
        for arch in ("deep", "rlstm", "convdeep"):
            for b in (50, 256):
                x = rng.uniform(-1, 1, (b, 28, 84)).astype(f32)
                y = rng.integers(0, 10, b)
                steps = []
                for on in (False, True):
                    model = build(arch, input_shape=(28, 84), T=12, n_classes=10, seed=0)
                    model.batch_steps = on
                    opt, draws = Adam(model.params, lr=2e-4), numpy.random.default_rng(1)
                    steps.append(lambda model=model, opt=opt, draws=draws:
                                 opt.step(model.loss_and_grads(x, y, train=True, rng=draws)[1]))
                off, on = side_by_side(steps, 3, 2)
                row(arch, b, f"{off / 1e3:.1f}", f"{on / 1e3:.1f}", f"{off / on:.2f}")
    if "third-pass" in tables:
        third_pass(args.before, R, rng)
    print(f"\n- load average at the end: {os.getloadavg()[0]:.1f}")


def third_pass(commit, repeats, rng):
    """Each operation of the third pass at ``commit`` and now, side by side (us per call)."""
    import numpy
    from before_after import definition_at
    from lrpnet import backend, rules
    from lrpnet.graph import Tape
    from lrpnet.layers import Dropout
    from lrpnet.layers import pool as P
    from lrpnet.layers.conv import crop_hw, window_pads

    f32 = numpy.float32
    namespaces = {}
    _, old_sign = definition_at(commit, "lrpnet/rules.py", "sign", namespaces)
    _, old_safe_divide = definition_at(commit, "lrpnet/rules.py", "safe_divide", namespaces)
    _, old_lrp_divide = definition_at(commit, "lrpnet/rules.py", "lrp_divide", namespaces)
    _, old_mask = definition_at(commit, "lrpnet/layers/dropout.py", "Dropout.mask", {})
    _, old_sum_back = definition_at(commit, "lrpnet/layers/pool.py", "sumpool2d_backward", {})

    def old_divide(R, z, eps, coef):           # the old lrp_divide with the old sign registered
        saved = backend._registry["sign"]["numpy"]
        backend._registry["sign"]["numpy"] = old_sign
        try:
            return old_lrp_divide(R, z, eps, coef)
        finally:
            backend._registry["sign"]["numpy"] = saved

    print(f"\n## Third pass: each operation at {commit} and now (us per call; float32)\n")
    row("operation", "shape", f"at {commit}", "now", "ratio")
    row("---", "---", "---:", "---:", "---:")

    def compare(name, shape, old, new, number):
        t_old, t_new = side_by_side([old, new], repeats, number)
        row(name, shape, f"{t_old:.0f}", f"{t_new:.0f}", f"{t_old / t_new:.2f}")

    for shape in [(50, 28, 7, 24), (100, 28, 7, 24), (50, 256)]:
        z = rng.standard_normal(shape).astype(f32)
        z[z < -1] = 0                                           # 16% zero denominators
        R = rng.standard_normal(shape).astype(f32)
        with numpy.errstate(all="ignore"):
            compare("sign", shape, lambda: old_sign(z), lambda: rules.sign(z), 20)
            compare("safe_divide", shape, lambda: old_safe_divide(R, z), lambda: rules.safe_divide(R, z), 20)
            for eps in (0.0, 1e-6):
                compare(f"lrp_divide, eps {eps:g}", shape, lambda: old_divide(R, z, eps, 1.0),
                        lambda: rules.lrp_divide(R, z, eps, 1.0), 20)

    gen = numpy.random.default_rng(0)
    for shape in [(50, 256), (50, 128), (256, 256)]:
        layer, tape = Dropout(0.8), Tape(train=True, rng=gen)
        for dtype in (numpy.dtype("float32"), numpy.dtype("float64")):
            compare(f"Dropout.mask, {dtype.name} model", shape, lambda: old_mask(layer, tape, shape, dtype),
                    lambda: layer.mask(tape, shape, dtype), 100)
        compare("lost: float64 draws against float32 draws", shape, lambda: gen.random(shape),
                lambda: gen.random(shape, dtype=f32), 100)

    def blocks_backward(dy, x_shape, size, pads):      # lost: one copy into a padded block, then a crop
        n, oh, ow, c = dy.shape
        blocks = numpy.empty((n, oh, size[0], ow, size[1], c), dtype=dy.dtype)
        blocks[...] = dy[:, :, None, :, None, :]
        return crop_hw(blocks.reshape(n, oh * size[0], ow * size[1], c), pads, x_shape)

    for x_shape in [(50, 28, 7, 24), (256, 28, 7, 24), (50, 14, 4, 32), (256, 14, 4, 32)]:
        pads, out_hw = window_pads(x_shape, (2, 2), (2, 2), "SAME")
        dy = rng.standard_normal((x_shape[0],) + out_hw + (x_shape[3],)).astype(f32)
        new = P.sumpool2d_backward(dy, x_shape, (2, 2), (2, 2), pads)
        assert numpy.array_equal(new, old_sum_back(dy, x_shape, (2, 2), (2, 2), pads))
        assert numpy.array_equal(new, blocks_backward(dy, x_shape, (2, 2), pads))
        compare("sumpool2d_backward 2x2 SAME", x_shape, lambda: old_sum_back(dy, x_shape, (2, 2), (2, 2), pads),
                lambda: P.sumpool2d_backward(dy, x_shape, (2, 2), (2, 2), pads), 10)
        compare("lost: the same into a block, then cropped", x_shape,
                lambda: old_sum_back(dy, x_shape, (2, 2), (2, 2), pads),
                lambda: blocks_backward(dy, x_shape, (2, 2), pads), 10)


if __name__ == "__main__":
    main()
