"""Heatmaps of relevance: a diverging colormap centred at zero, with symmetric limits.

Red is positive relevance (evidence for the class), blue negative, white zero ("bwr"). The limits are
+-max|R| of each heatmap, so zero is always white and the two signs are comparable. Drawing uses
matplotlib's object API (``Figure``, no pyplot state), so it works headless with the Agg backend.
"""
from __future__ import annotations

import os
import tempfile

import numpy


def _figure(**kwargs):
    from matplotlib.figure import Figure
    return Figure(**kwargs)


def symmetric_limit(relevance) -> float:
    """max |R|, or 1 for an all-zero heatmap (so the image is white, not undefined)."""
    m = float(numpy.max(numpy.abs(relevance))) if numpy.size(relevance) else 0.0
    return m if numpy.isfinite(m) and m > 0 else 1.0


def as_2d(a, what="relevance"):
    """(H, W) from (H, W), (H, W, 1) or (H, W, C) (channels summed), with a clear error otherwise."""
    a = numpy.asarray(a, dtype=float)
    if a.ndim == 3:
        a = a.sum(axis=-1)
    if a.ndim != 2:
        raise ValueError(f"{what} must be an (H, W) or (H, W, C) array, got shape {a.shape}")
    return a


def heatmap(relevance, image=None, ax=None, cmap="bwr", title=None, image_mode="contour", colorbar=False):
    """Draw one heatmap on ``ax`` (a new figure's axes when None) and return the axes.

    image: the input (H, W) in [-1, 1], drawn as contour lines over the heatmap (``image_mode="contour"``)
    or beside it on a second axes of the same figure (``image_mode="beside"``, only when ``ax`` is None).
    """
    R = as_2d(relevance)
    if image_mode not in ("contour", "beside"):
        raise ValueError(f"image_mode must be 'contour' or 'beside', got {image_mode!r}")
    if ax is None:
        beside = image is not None and image_mode == "beside"
        aspect = R.shape[1] / max(R.shape[0], 1)
        fig = _figure(figsize=(1.0 + 2.0 * aspect * (2 if beside else 1), 2.4))
        axes = fig.subplots(1, 2 if beside else 1, squeeze=False)[0]
        if beside:
            axes[0].imshow(as_2d(image, "image"), cmap="gray", vmin=-1, vmax=1)
            axes[0].set_axis_off()
        ax = axes[-1]
    v = symmetric_limit(R)
    im = ax.imshow(R, cmap=cmap, vmin=-v, vmax=v, interpolation="nearest")
    if image is not None and image_mode == "contour" and numpy.ptp(as_2d(image, "image")) > 0:
        ax.contour(as_2d(image, "image"), levels=[0.0], colors="k", linewidths=0.4, alpha=0.6)
    if title:
        ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.03)
    return ax


def heatmap_grid(images, relevances_by_method: dict, path=None, titles=None, dpi=150):
    """A grid: the inputs in the first row, one row of heatmaps per method, one column per sample.

    images: (S, H, W) inputs; relevances_by_method: method name -> (S, H, W) relevance; titles: one per
    column. Saves a PNG at ``path`` when given (written to a temporary file and renamed, so no partial
    file is ever left behind) and returns the figure.
    """
    images = numpy.asarray(images, dtype=float)
    if images.ndim == 2:
        images = images[None]
    S = len(images)
    for name, R in relevances_by_method.items():
        if numpy.shape(R)[:3] != images.shape[:3]:
            raise ValueError(f"relevance of {name!r} has shape {numpy.shape(R)}, expected {images.shape}")
    if titles is not None and len(titles) != S:
        raise ValueError(f"expected {S} titles (one per column), got {len(titles)}")
    rows = 1 + len(relevances_by_method)
    h, w = images.shape[1:3]
    cell_w = 1.2 + 1.6 * w / h
    fig = _figure(figsize=(cell_w * S + 1.0, 1.7 * rows), constrained_layout=True)
    axes = fig.subplots(rows, S, squeeze=False)
    for s in range(S):
        ax = axes[0, s]
        ax.imshow(images[s], cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        if titles is not None:
            ax.set_title(titles[s], fontsize=8)
        for r, (name, R) in enumerate(relevances_by_method.items(), start=1):
            heatmap(numpy.asarray(R)[s], images[s], ax=axes[r, s])
            if s == 0:
                axes[r, s].set_ylabel(name, fontsize=8)
    axes[0, 0].set_ylabel("input", fontsize=8)
    if path is not None:
        save_png(fig, path, dpi=dpi)
    return fig


def save_png(fig, path, dpi=150):
    """Write ``fig`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=folder)
    os.close(fd)
    try:
        os.chmod(tmp, 0o644)                      # mkstemp makes 0600; a figure is ordinary output
        fig.savefig(tmp, dpi=dpi, format="png")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def relevance_flow(explanation, sample=0, image=None, ledger=None, path=None, dpi=150):
    """One sample's relevance flow beside its heatmap, in three panels: the heatmap; the relevance
    reaching the input at each time step (``explanation.per_step``); the relevance arriving at each
    layer, summed over its steps (``explanation.per_layer``; the output layer at the top, in the order
    of the relevance pass). With ``ledger`` (``lrpnet.ledger.record`` of the same explanation) the
    layer panel also shows what each layer absorbs (bias and stabiliser shares, zero denominators;
    the initial states' rows, "state@...", hold what reaches them). Red is positive, blue negative.
    Saves a PNG at ``path`` when given (``save_png``); returns the figure.
    """
    if ledger is not None:
        layers = [(r["layer"], r["arrived"], r["absorbed"]) for r in ledger.by_layer(sample)]
    else:
        layers = [(k, float(numpy.asarray(v)[sample]), None) for k, v in explanation.per_layer.items()]
    if not layers:
        raise ValueError(f"{explanation.method!r} has no relevance flow (a gradient method): "
                         "explain with a relevance method and return_details=True")
    fig = _figure(figsize=(11, max(3.0, 0.2 * len(layers) + 1.2)), constrained_layout=True)
    ax_map, ax_step, ax_layer = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.0, 1.2, 1.6]})
    heatmap(numpy.asarray(explanation.relevance)[sample], image, ax=ax_map, colorbar=True,
            title=f"relevance, {explanation.method}")
    if explanation.per_step is None:
        ax_step.set_axis_off()
    else:
        steps = numpy.asarray(explanation.per_step)[sample]
        ax_step.bar(numpy.arange(len(steps)), steps, color=_sign_colors(steps))
        ax_step.axhline(0, color="k", linewidth=0.5)
        ax_step.set_xticks(numpy.arange(len(steps)))
        ax_step.set_xlabel("time step", fontsize=8)
        ax_step.set_title("relevance reaching the input", fontsize=8)
    y = numpy.arange(len(layers))
    arrived = numpy.array([a for _, a, _ in layers])
    high = 0.8 if ledger is None else 0.4
    ax_layer.barh(y, arrived, height=high, color=_sign_colors(arrived), label="arrived")
    if ledger is not None:
        absorbed = numpy.array([b for _, _, b in layers])
        ax_layer.barh(y + high, absorbed, height=high, color="0.5", label="absorbed")
        ax_layer.legend(fontsize=6, loc="lower right")
    ax_layer.axvline(0, color="k", linewidth=0.5)
    ax_layer.set_yticks(y + (0 if ledger is None else high / 2))
    ax_layer.set_yticklabels([name for name, _, _ in layers], fontsize=6)
    ax_layer.invert_yaxis()
    ax_layer.set_title("relevance per layer (sum over steps)", fontsize=8)
    if path is not None:
        save_png(fig, path, dpi=dpi)
    return fig


def _sign_colors(values):
    return ["tab:red" if v >= 0 else "tab:blue" for v in values]
