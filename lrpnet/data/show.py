"""Render example samples of a task, with their ground-truth mask blocks framed, to a PNG.

    python -m lrpnet.data.show mnist-maj --n 8 --out maj.png
    python -m lrpnet.data.show fashion-mnist-7 --split test --n 6 --start 100 --out f7.png

Each panel is one sample; the blocks of its mask get a coloured frame, and the title gives the
label and the class of every block. Uses the data directory of ``lrpnet.data.data_dir``
(``LRPNET_DATA``), or ``--data-dir``.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from .tasks import load_task, task_names

__all__ = ["render", "main"]

MASK_COLOUR = "tab:orange"


def render(ds, rows, out, cols: int = 2):
    """Draw the samples ``rows`` of dataset ``ds`` in a grid of ``cols`` columns; save to ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    rows = np.asarray(rows)
    cols = max(1, min(cols, len(rows)))
    n_lines = -(-len(rows) // cols)
    height, width = ds.shape
    fig, axes = plt.subplots(n_lines, cols, figsize=(cols * width / 28 * 1.3, n_lines * 1.9 + 0.4),
                             squeeze=False)
    images = ds.images(rows)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, row, image in zip(axes.ravel(), rows, images):
        ax.imshow(image, cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
        if ds.masks is not None:
            for b in np.flatnonzero(ds.masks[row]):
                ax.add_patch(Rectangle((28 * b - 0.5 + 0.75, -0.5 + 0.75), 28 - 1.5, 28 - 1.5,
                                       fill=False, edgecolor=MASK_COLOUR, linewidth=2))
        blocks = " ".join(str(c) for c in ds.block_labels[row])
        ax.set_title(f"#{row} label {ds.labels[row]}  (blocks: {blocks})", fontsize=8)
    mask_note = ", mask blocks framed in orange" if ds.masks is not None else ""
    fig.suptitle(f"{ds.name} {ds.split}{mask_note}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lrpnet.data.show", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=task_names(), help="task name")
    parser.add_argument("--n", type=int, default=8, help="number of samples (default 8)")
    parser.add_argument("--split", default="train", choices=("train", "val", "test"))
    parser.add_argument("--start", type=int, default=0, help="index of the first sample")
    parser.add_argument("--fold", type=int, default=None, help="cross-validation fold (default: official split)")
    parser.add_argument("--cols", type=int, default=2, help="panels per row (default 2)")
    parser.add_argument("--data-dir", default=None, help="data directory (default: LRPNET_DATA)")
    parser.add_argument("--out", required=True, help="output PNG path")
    args = parser.parse_args(argv)
    ds = load_task(args.task, args.split, args.data_dir, fold=args.fold)
    if not 0 <= args.start < len(ds) or args.n < 1:
        parser.error(f"--start {args.start} / --n {args.n} outside the {len(ds)} samples")
    rows = np.arange(args.start, min(args.start + args.n, len(ds)))
    render(ds, rows, args.out, cols=args.cols)
    print(f"wrote {args.out}: {len(rows)} samples of {ds!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
