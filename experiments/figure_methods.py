"""Heatmaps of SA, GB, DTD and LRP-alpha1.5beta0.5 for one MNIST-MAJ sample, from an R-LSTM and a Deep model.

    python experiments/figure_methods.py --out figures/methods.png
    python experiments/figure_methods.py --checkpoint rlstm=runs/rlstm.npz --checkpoint deep=runs/deep.npz

Models are untrained (seed 0, the thesis's sizes, T=12) unless a checkpoint is given for them. The
sample is test sample ``--index`` of ``--task`` when the data loads (``LRPNET_DATA``), else a
synthetic MAJ-like image (three 28x28 blocks of strokes on background -1). Relevance explains the
predicted class (``--target true`` explains the label instead).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lrpnet  # noqa: E402
from lrpnet import models  # noqa: E402
from lrpnet.plot import heatmap_grid, save_png  # noqa: E402

METHODS = ("sa", "gb", "dtd", "lrp-alpha1.5beta0.5")
ARCHS = ("rlstm", "deep")
NAMES = {"rlstm": "R-LSTM", "deep": "Deep"}


def synthetic_sample(seed=0):
    """A 28x84 image of three blocks with random strokes in [-1, 1] (background -1), and a label."""
    rng = numpy.random.default_rng(seed)
    img = -numpy.ones((28, 84))
    for b in range(3):
        for _ in range(3):
            r0, c0 = rng.integers(5, 23, 2)
            r1, c1 = rng.integers(5, 23, 2)
            for t in numpy.linspace(0, 1, 40):
                r, c = int(round(r0 + t * (r1 - r0))), int(round(c0 + t * (c1 - c0)))
                img[max(r - 1, 0):r + 2, 28 * b + max(c - 1, 0):28 * b + c + 2] = 1.0
    return img, None, "synthetic sample"


def load_sample(task, index):
    try:
        from lrpnet.data import load_task
        ds = load_task(task, "test", download=False)
        label = int(ds.labels[index])
        blocks = ds.block_labels[index].tolist()
        return ds.images(index).astype(numpy.float64), label, f"{task} test #{index}: blocks {blocks}, label {label}"
    except Exception as e:  # no data here: say so and draw a synthetic sample
        print(f"could not load {task!r} ({type(e).__name__}: {e}); using a synthetic sample", file=sys.stderr)
        return synthetic_sample(index)


def load_models(checkpoints):
    built = {}
    for arch in ARCHS:
        if arch in checkpoints:
            built[arch] = lrpnet.load(checkpoints[arch])
        else:
            built[arch] = models.build(arch, input_shape=(28, 84), T=12, n_classes=10, seed=0)
    return built


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="figures/methods.png")
    p.add_argument("--task", default="mnist-maj")
    p.add_argument("--index", type=int, default=0)
    p.add_argument("--target", choices=("predicted", "true"), default="predicted")
    p.add_argument("--checkpoint", action="append", default=[], metavar="ARCH=PATH",
                   help=f"a trained model for ARCH (one of {', '.join(ARCHS)})")
    args = p.parse_args(argv)
    checkpoints = {}
    for item in args.checkpoint:
        arch, sep, path = item.partition("=")
        if not sep or arch not in ARCHS:
            p.error(f"--checkpoint must be ARCH=PATH with ARCH in {ARCHS}, got {item!r}")
        checkpoints[arch] = path

    image, label, caption = load_sample(args.task, args.index)
    x = image[None]
    columns, titles = {m: [] for m in METHODS}, []
    for arch, model in load_models(checkpoints).items():
        target = label if args.target == "true" and label is not None else "predicted"
        target = numpy.array([target]) if not isinstance(target, str) else target
        for m in METHODS:
            columns[m].append(lrpnet.explain(model, x, m, target=target)[0])
        e = lrpnet.explain(model, x, "dtd", target=target, return_details=True)
        state = "trained" if arch in checkpoints else "untrained"
        titles.append(f"{NAMES[arch]} ({state}): class {int(e.target[0])}, R = {e.score[0]:.3g}")
        print(f"{NAMES[arch]}: logits {[round(float(v), 3) for v in e.logits[0]]}, explained class {int(e.target[0])}")
    relevances = {m: numpy.stack(columns[m]) for m in METHODS}
    fig = heatmap_grid(numpy.stack([image] * len(titles)), relevances, titles=titles)
    fig.suptitle(caption, fontsize=9)
    save_png(fig, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
