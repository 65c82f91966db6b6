"""Tables and figures of a sweep, regenerated from the results store alone.

- ``report.csv``: one line per (profile, task, T, architecture, method): test accuracy and every
  metric, as the mean over folds with the half width of its 95% Student-t interval (THESIS
  section 5; empty with a single fold).
- ``report.md``: the same numbers as Markdown tables, one section per task, with links to figures.
- ``figures/cosine.png``: cosine similarity of each method per architecture, grouped bars with
  95% interval error bars, one panel per task (as the study's main figure).
- ``figures/per_step_<profile>_<task>.png``: the share of relevance per time step, per
  architecture and T (Experiment 1).
The heatmap grids are drawn by the jobs themselves (``figures/heatmaps/``).
"""
from __future__ import annotations

import csv
import io
import math
import os
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from .. import plot
from .config import MAIN_ARCHS

__all__ = ["write_report", "summarize", "METRICS"]

# metric -> (column title, what it is); the order of the tables
METRICS = {
    "cosine": ("cosine", "cosine(mask, block relevance)"),
    "in_mask": ("in mask", "share of positive relevance inside the mask blocks"),
    "rank_accuracy": ("rank acc.", "relevance rank accuracy (pixels)"),
    "pixel_flipping": ("flips", "7x7 patches removed until the class changes (lower is better)"),
    "aopc": ("AOPC", "area over the perturbation curve, 4x4 patches (higher is better)"),
    "entropy": ("entropy", "normalised heatmap entropy"),
}


def _mean_ci(values):
    from .. import metrics
    mean, half = metrics.mean_ci(np.asarray(values, dtype=np.float64))
    return float(mean), float(half)


def _arch_order(arch):
    return (MAIN_ARCHS.index(arch), "") if arch in MAIN_ARCHS else (len(MAIN_ARCHS), arch)


def summarize(rows) -> list:
    """One dict per (profile, dataset, T, arch, method): folds, accuracy and each metric as
    (mean, ci half width) over the folds, and the fold-mean relevance share per step."""
    groups = defaultdict(list)
    methods = {}
    for row in rows:
        key = (row["profile"], row["dataset"], row["steps"], row["arch"])
        groups[key].append(row)
        methods.setdefault(key, [])
        for m in list(row["config"].get("methods", [])) + sorted(row["metrics"]):   # the sweep's order
            if m in row["metrics"] and m not in methods[key]:
                methods[key].append(m)
    out = []
    for key in sorted(groups, key=lambda k: (k[0], k[1], k[2], _arch_order(k[3]))):
        runs = groups[key]
        accuracy = _mean_ci([r["accuracy"] for r in runs])
        wall_s = float(np.mean([r["wall_s"] for r in runs]))
        train_s = float(np.mean([sum(e.get("seconds", 0.0) for e in (r.get("history") or [])) for r in runs]))
        for method in methods[key]:
            per_fold = [r["metrics"][method] for r in runs if method in r["metrics"]]
            entry = {"profile": key[0], "dataset": key[1], "T": key[2], "arch": key[3], "method": method,
                     "folds": sorted(str(r["fold"]) for r in runs), "accuracy": accuracy,
                     "wall_s": wall_s, "train_s": train_s}
            for metric in METRICS:
                values = [s[metric] for s in per_fold if metric in s]
                entry[metric] = _mean_ci(values) if values else None
            steps = [s["per_step"] for s in per_fold if "per_step" in s]
            entry["per_step"] = np.mean(steps, axis=0).tolist() if steps else None
            out.append(entry)
    return out


def _write_atomic(path: Path, write):
    """Write the text file ``path`` through a temporary file in its folder (``write(tmp_path)``), then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _fmt(pair, scale=1.0, digits=3):
    if pair is None:
        return "-"
    mean, half = pair
    text = f"{mean * scale:.{digits}f}"
    return text if math.isnan(half) else f"{text} ± {half * scale:.{digits}f}"


def _csv_text(summary) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    header = ["profile", "dataset", "T", "arch", "method", "n_folds", "wall_s_mean", "accuracy_mean",
              "accuracy_ci"]
    for metric in METRICS:
        header += [f"{metric}_mean", f"{metric}_ci"]
    writer.writerow(header)
    for e in summary:
        line = [e["profile"], e["dataset"], e["T"], e["arch"], e["method"], len(e["folds"]), e["wall_s"],
                *e["accuracy"]]
        for metric in METRICS:
            line += list(e[metric]) if e[metric] is not None else ["", ""]
        writer.writerow(["" if isinstance(v, float) and math.isnan(v) else
                         (f"{v:.6g}" if isinstance(v, float) else v) for v in line])
    return buf.getvalue()


def _sections(summary):
    """(profile, dataset, T) -> entries, in report order."""
    sections = defaultdict(list)
    for e in summary:
        sections[(e["profile"], e["dataset"], e["T"])].append(e)
    return sections


def _markdown(summary, rows, figures, db_path) -> str:
    lines = ["# lrpnet sweep report", "",
             f"{len(rows)} finished jobs in `{db_path}`, generated {time.strftime('%Y-%m-%d %H:%M:%S')}. "
             "Values are means over folds ± the half width of the 95% Student-t interval "
             "(no interval with a single fold); each metric is first averaged over a model's "
             "explained test samples.", ""]
    for (profile, dataset, T), entries in _sections(summary).items():
        folds = entries[0]["folds"]
        lines += [f"## {dataset}, T = {T} (profile {profile}; folds: {', '.join(folds)})", "",
                  "| architecture | test accuracy (%) | folds | job wall time (s) | of which training (s) |",
                  "|---|---|---|---|---|"]
        seen = set()
        for e in entries:
            if e["arch"] not in seen:
                seen.add(e["arch"])
                lines.append(f"| {e['arch']} | {_fmt(e['accuracy'], 100, 2)} | {len(e['folds'])} | "
                             f"{e['wall_s']:.0f} | {e['train_s']:.0f} |")
        shown = [m for m in METRICS if any(e[m] is not None for e in entries)]
        lines += ["", "| architecture | method | " + " | ".join(METRICS[m][0] for m in shown) + " |",
                  "|---|---|" + "---|" * len(shown)]
        for e in entries:
            lines.append(f"| {e['arch']} | {e['method']} | " + " | ".join(_fmt(e[m]) for m in shown) + " |")
        lines += _side_by_side(entries)
        lines.append("")
    lines += ["## Metrics", ""] + [f"- {title}: {what}" for title, what in METRICS.values()] + [""]
    lines += ["## Figures", ""] + [f"- [{p}]({p})" for p in figures]
    heatmaps = [(r, r["heatmaps"]) for r in rows if r.get("heatmaps")]
    if heatmaps:
        lines += ["", "### Heatmaps (methods x test samples), per trained model", ""]
        for r, path in sorted(heatmaps, key=lambda rp: (rp[0]["dataset"], rp[0]["steps"], _arch_order(rp[0]["arch"]))):
            lines.append(f"- {r['arch']}, {r['dataset']}, T={r['steps']}, fold {r['fold']}: [{path}]({path})")
    return "\n".join(lines) + "\n"


def _side_by_side(entries) -> list:
    """Markdown lines: for each method explained both as the principled preset and as the thesis's
    code computed it (``thesis-<preset>``, THESIS.md section 7), their cosine and mask share side by
    side per architecture, and the difference; no lines when no such pair was explained."""
    by = {(e["arch"], e["method"]): e for e in entries}
    pairs = sorted({e["method"].removeprefix("thesis-") for e in entries if e["method"].startswith("thesis-")
                    and (e["arch"], e["method"].removeprefix("thesis-")) in by})
    if not pairs:
        return []
    lines = ["", "Principled rules beside the thesis's code (``thesis-*``: no bias in any denominator, "
             "Shallow's shared first layer; THESIS.md section 7):", "",
             "| architecture | method | cosine | thesis's cosine | difference | in mask | thesis's in mask |",
             "|---|---|---|---|---|---|---|"]
    for method in pairs:
        for arch in dict.fromkeys(e["arch"] for e in entries):
            a, b = by.get((arch, method)), by.get((arch, "thesis-" + method))
            if a is None or b is None:
                continue
            both = a["cosine"] is not None and b["cosine"] is not None
            diff = f"{b['cosine'][0] - a['cosine'][0]:+.3f}" if both else "-"
            lines.append(f"| {arch} | {method} | {_fmt(a['cosine'])} | {_fmt(b['cosine'])} | {diff} | "
                         f"{_fmt(a['in_mask'])} | {_fmt(b['in_mask'])} |")
    return lines


def _new_figure(n_panels, width, height):
    from matplotlib.figure import Figure   # no pyplot: no global state, no display needed
    return Figure(figsize=(width, height * n_panels), layout="constrained")


def _cosine_figure(summary, path: Path) -> bool:
    sections = {k: v for k, v in _sections(summary).items() if any(e["cosine"] is not None for e in v)}
    if not sections:
        return False
    fig = _new_figure(len(sections), 11, 3.6)
    axes = fig.subplots(len(sections), 1, squeeze=False)[:, 0]
    for ax, ((profile, dataset, T), entries) in zip(axes, sections.items()):
        archs = list(dict.fromkeys(e["arch"] for e in entries))
        methods = list(dict.fromkeys(e["method"] for e in entries))
        width = 0.8 / len(methods)
        for j, method in enumerate(methods):
            by_arch = {e["arch"]: e["cosine"] for e in entries if e["method"] == method and e["cosine"]}
            means = [by_arch[a][0] if a in by_arch else np.nan for a in archs]
            errs = [by_arch[a][1] if a in by_arch and not math.isnan(by_arch[a][1]) else 0.0 for a in archs]
            xs = np.arange(len(archs)) + (j - (len(methods) - 1) / 2) * width
            # no error bar where there is no interval (a single fold): a zero-length cap reads as one
            ax.bar(xs, means, width, yerr=errs if any(errs) else None, capsize=2, label=method)
        ax.set_xticks(np.arange(len(archs)), archs, rotation=30, ha="right")
        ax.set_ylim(0, 1.15)                 # headroom for the legend above the bars
        ax.set_yticks(np.linspace(0, 1, 6))
        ax.set_ylabel("cosine similarity")
        ax.set_title(f"{dataset} (T = {T}, profile {profile}, {len(entries[0]['folds'])} fold(s))")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(ncols=len(methods), fontsize="small", loc="upper center")
    plot.save_png(fig, path, dpi=110)
    return True


def _per_step_figures(summary, folder: Path) -> list:
    by_task = defaultdict(list)
    for e in summary:
        if e["per_step"] is not None:
            by_task[(e["profile"], e["dataset"])].append(e)
    written = []
    for (profile, dataset), entries in by_task.items():
        archs = list(dict.fromkeys(e["arch"] for e in entries))
        steps = sorted({e["T"] for e in entries})
        panels = [(arch, T) for arch in archs for T in steps]
        # one row per architecture and a column per T (Experiment 1); a single T wraps into 4 columns
        ncols = len(steps) if len(steps) > 1 else min(4, len(archs))
        nrows = math.ceil(len(panels) / ncols)
        fig = _new_figure(1, 3.2 * ncols, 2.6 * nrows + 0.6)
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        for ax, (arch, T) in zip(axes, panels):
            for e in entries:
                if e["arch"] == arch and e["T"] == T:
                    ax.plot(np.arange(1, T + 1), e["per_step"], marker="o", ms=3, label=e["method"])
            ax.set_xticks(np.arange(1, T + 1, max(1, T // 7)))
            ax.set_title(f"{arch}, T = {T}", fontsize="small")
            ax.set_xlabel("time step")
            ax.set_ylabel("share of relevance")
            ax.set_ylim(0, 1)
        for ax in axes[len(panels):]:
            ax.set_visible(False)
        axes[0].legend(fontsize="x-small")
        fig.suptitle(f"Relevance per time step: {dataset} (profile {profile})")
        path = folder / f"per_step_{profile}_{dataset}.png"
        plot.save_png(fig, path, dpi=100)
        written.append(path)
    return written


def write_report(store, out_dir) -> dict:
    """Write report.md, report.csv, figures/cosine.png and figures/per_step_*.png for the rows of
    ``store`` into ``out_dir``; returns {"markdown", "csv", "figures": [...]} (absolute paths)."""
    out_dir = Path(out_dir)
    rows = store.rows()
    summary = summarize(rows)
    figures = []
    cosine = out_dir / "figures" / "cosine.png"
    if _cosine_figure(summary, cosine):
        figures.append(cosine)
    figures += _per_step_figures(summary, out_dir / "figures")
    relative = [str(p.relative_to(out_dir)) for p in figures]
    md, csv_path = out_dir / "report.md", out_dir / "report.csv"
    _write_atomic(csv_path, lambda tmp: tmp.write_text(_csv_text(summary)))
    _write_atomic(md, lambda tmp: tmp.write_text(_markdown(summary, rows, relative, store.path)))
    return {"markdown": md, "csv": csv_path, "figures": figures}
