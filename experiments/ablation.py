"""Ablation: what each difference between the thesis's text and its code does (THESIS.md section 7).

On one task (MNIST-MAJ by default) and one profile (``fast`` by default), every architecture of
``--archs`` (Shallow, Deep, R-LSTM) is trained as lrpnet builds it by default (the baseline), and
again with ONE difference switched on at a time; each model is explained with the study's methods and
scored. The table gives, per architecture and difference, the change in test accuracy and, per
method, in cosine similarity to the mask and in the share of relevance inside the mask.

Differences that change the trained model (a job each, run by the sweep's machinery, so a run can be
stopped and resumed and runs on several workers):
- ``no dropout``: the plain models without the naive dropout the code trained with (``dropout="none"``;
  what lrpnet built before; Shallow and Deep);
- ``stationary dropout``: the same architecture with stationary dropout (Deep -> Deep-SD,
  R-LSTM -> R-LSTM-SD): naive vs stationary;
- ``zero ReLU biases``: the code's effective ReLU biases, 0 and untrained (``relu_bias="zero"``);
- ``fixed batch order``: every epoch in the same order, as the code reseeded its shuffle.
Differences in how a trained model is explained (the baseline model, no training):
- ``thesis DTD`` / ``thesis LRP``: the code's rules (``thesis-dtd``, ``thesis-lrp-alpha1.5beta0.5``:
  no bias in any denominator, the added stabiliser, Shallow's shared first layer) for the principled ones;
- ``GB, gates kept``: guided backprop through the sigmoid gates (the code's) for the text's zeroed gates.

    python experiments/ablation.py --out results/ablation                 # the fast profile, 3 archs
    python experiments/ablation.py --out results/ablation-quick --train-size 6000 --epochs 4 --explain-size 200

Writes ``OUT/results.sqlite`` (the jobs), ``OUT/ablation.md`` (the table) and ``OUT/ablation.png``
(the change in cosine per difference and method, one panel per architecture).
"""
from __future__ import annotations

import argparse
import copy
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lrpnet.sweep import config as cfg                     # noqa: E402
from lrpnet.sweep.store import Store                        # noqa: E402

ARCHS = ("shallow", "deep", "rlstm")
METHODS = ("sa", "gb", "dtd", "lrp-alpha1.5beta0.5")
STATIONARY = {"deep": "deep_sd", "rlstm": "rlstm_sd", "convrlstm_sd": "convrlstm_sd"}


@dataclass(frozen=True)
class Trained:
    """A difference that changes the trained model: ``change(config)`` -> the job's config, or None
    where the difference does not apply to that architecture."""
    name: str
    change: object


@dataclass(frozen=True)
class Explained:
    """A difference in how the baseline model is explained: ``method`` replaced by ``instead``."""
    name: str
    method: str
    instead: str


def _with_model(option, value):
    def change(config):
        if option not in config.get("model", {}):
            return None
        return {**config, "model": {**config["model"], option: value}}
    return change


def _stationary(config):
    arch = STATIONARY.get(config["arch"])
    if arch is None or arch == config["arch"]:
        return None
    return {**config, "arch": arch, "model": cfg.model_options(arch, config.get("model", {}))}


def _fixed_order(config):
    return {**config, "batch_order": "fixed"}


TRAINED = (Trained("no dropout", _with_model("dropout", "none")),
           Trained("stationary dropout", _stationary),
           Trained("zero ReLU biases", _with_model("relu_bias", "zero")),
           Trained("fixed batch order", _fixed_order))
EXPLAINED = (Explained("thesis DTD", "dtd", "thesis-dtd"),
             Explained("thesis LRP", "lrp-alpha1.5beta0.5", "thesis-lrp-alpha1.5beta0.5"),
             Explained("GB, gates kept", "gb", "gb-ungated"))


def jobs(profile, archs, dataset) -> list:
    """[(arch, difference name, job config)]: each baseline (explained also with the EXPLAINED
    alternatives), then each TRAINED difference that applies."""
    out = []
    extra = [e.instead for e in EXPLAINED]
    for arch in archs:
        (base,) = cfg.job_configs(profile, [arch], [dataset], list(METHODS) + extra, [cfg.MAIN_STEPS])
        out.append((arch, "baseline", base))
        plain = {**base, "methods": list(METHODS)}
        for diff in TRAINED:
            changed = diff.change(copy.deepcopy(plain))
            if changed is not None:
                out.append((arch, diff.name, changed))
    return out


def table(rows_by_hash, planned) -> list:
    """One dict per (arch, difference): accuracy and, per method, cosine and in-mask share, as the
    change from the baseline (the baseline row holds absolute values)."""
    found = {(arch, name): rows_by_hash.get(cfg.job_hash(c)) for arch, name, c in planned}
    out = []
    for arch in dict.fromkeys(a for a, _, _ in planned):
        base = found.get((arch, "baseline"))
        if base is None:
            continue
        out.append({"arch": arch, "difference": "baseline", "accuracy": base["accuracy"],
                    **{m: _scores(base, m) for m in METHODS}})
        for name in [d.name for d in TRAINED]:
            row = found.get((arch, name))
            if row is not None:
                out.append({"arch": arch, "difference": name, "accuracy": row["accuracy"] - base["accuracy"],
                            **{m: _delta(_scores(row, m), _scores(base, m)) for m in METHODS}})
        for e in EXPLAINED:
            if e.instead in base["metrics"]:
                delta = {m: None for m in METHODS}
                delta[e.method] = _delta(_scores(base, e.instead), _scores(base, e.method))
                out.append({"arch": arch, "difference": e.name, "accuracy": 0.0, **delta})
    return out


def _scores(row, method):
    m = row["metrics"].get(method)
    return None if m is None else (m.get("cosine"), m.get("in_mask"))


def _delta(a, b):
    if a is None or b is None or None in a or None in b:
        return None
    return (a[0] - b[0], a[1] - b[1])


def markdown(entries, profile, dataset) -> str:
    longer = "".join(f", {arch} {n}" for arch, n in profile.arch_epochs)
    lines = [f"Ablation on {dataset}, profile {profile.name} ({profile.epochs} epochs{longer}, dropout "
             f"{profile.dropout_schedule}"
             + (f", {profile.train_size} training samples" if profile.train_size else "")
             + (f", {profile.explain_size} explained samples" if profile.explain_size else "") + "). "
             "Baseline rows: test accuracy (%) and, per method, cosine / in-mask share; other rows: the "
             "change from the baseline (accuracy in points).", "",
             "| architecture | difference | accuracy | " + " | ".join(METHODS) + " |",
             "|---|---|---|" + "---|" * len(METHODS)]
    for e in entries:
        base = e["difference"] == "baseline"
        acc = f"{100 * e['accuracy']:.2f}" if base else f"{100 * e['accuracy']:+.2f}"
        cells = []
        for m in METHODS:
            v = e[m]
            cells.append("" if v is None else (f"{v[0]:.3f} / {v[1]:.3f}" if base else f"{v[0]:+.3f} / {v[1]:+.3f}"))
        lines.append(f"| {e['arch']} | {e['difference']} | {acc} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def figure(entries, path) -> None:
    from lrpnet import plot
    from matplotlib.figure import Figure
    archs = list(dict.fromkeys(e["arch"] for e in entries))
    fig = Figure(figsize=(11, 3.2 * len(archs)), layout="constrained")
    for i, arch in enumerate(archs):
        ax = fig.add_subplot(len(archs), 1, i + 1)
        rows = [e for e in entries if e["arch"] == arch and e["difference"] != "baseline"]
        width = 0.8 / len(METHODS)
        for j, m in enumerate(METHODS):
            xs = np.arange(len(rows)) + (j - (len(METHODS) - 1) / 2) * width
            ax.bar(xs, [0.0 if r[m] is None else r[m][0] for r in rows], width, label=m)
        ax.axhline(0, color="black", lw=0.6)
        ax.set_xticks(np.arange(len(rows)), [r["difference"] for r in rows], fontsize="small")
        ax.set_ylabel("change in cosine")
        ax.set_title(arch)
        ax.legend(ncols=len(METHODS), fontsize="small")
    plot.save_png(fig, path)


def parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="results/ablation", help="output folder (default: results/ablation)")
    p.add_argument("--dataset", default="mnist-maj")
    p.add_argument("--archs", default=",".join(ARCHS), help=f"comma-separated (default: {','.join(ARCHS)})")
    p.add_argument("--profile", default="fast", choices=sorted(cfg.PROFILES))
    for name in ("epochs", "train-size", "val-size", "test-size", "explain-size"):
        p.add_argument(f"--{name}", type=int, help="override the profile's setting")
    p.add_argument("--dropout-schedule", choices=["constant", "curriculum"],
                   help="override the profile's (fast: curriculum; the run in experiments/README.md: constant)")
    p.add_argument("--workers", type=int, default=None, help="local processes (default: one per core)")
    p.add_argument("--report-only", action="store_true", help="only write the table and figure")
    return p


def main(argv=None) -> int:
    from lrpnet.sweep.runner import default_workers, run_jobs

    args = parser().parse_args(argv)
    archs = [a for a in args.archs.split(",") if a]
    unknown = sorted(set(archs) - set(cfg.MAIN_ARCHS))
    if not archs or unknown:
        print(f"ablation: unknown or no architectures {unknown or archs}; expected some of "
              f"{', '.join(cfg.MAIN_ARCHS)}", file=sys.stderr)
        return 2
    profile = cfg.PROFILES[args.profile].override(epochs=args.epochs, train_size=args.train_size,
                                                  val_size=args.val_size, test_size=args.test_size,
                                                  explain_size=args.explain_size,
                                                  dropout_schedule=args.dropout_schedule)
    out = Path(args.out)
    planned = jobs(profile, archs, args.dataset)
    with Store(out / "results.sqlite") as store:
        todo = [c for _, _, c in planned if cfg.job_hash(c) not in store.finished()]
        if todo and not args.report_only:
            print(f"ablation: {len(planned)} jobs, {len(todo)} to run; results: {store.path}", flush=True)
            failed = []
            run_jobs(todo, out, workers=args.workers or default_workers("cpu", len(todo)), progress=False,
                     on_result=store.put, on_error=lambda c, why: failed.append((c, why)))
            for c, why in failed:
                print(f"FAILED: {c['arch']}: {why}", file=sys.stderr)
        rows = {r["hash"]: r for r in store.rows()}
    entries = table(rows, planned)
    text = markdown(entries, profile, args.dataset)
    (out / "ablation.md").write_text(text)
    if entries:
        figure(entries, out / "ablation.png")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
