"""experiments/ablation.py: the jobs it plans, and its table computed from the store it fills."""
import importlib.util
import json
import sqlite3
import sys
from pathlib import Path

import pytest

from lrpnet.sweep import config as cfg

from conftest import real_data_dir

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("ablation", ROOT / "experiments" / "ablation.py")
ablation = importlib.util.module_from_spec(spec)
sys.modules["ablation"] = ablation            # dataclasses look their module up there
spec.loader.exec_module(ablation)


def test_each_difference_changes_one_thing():
    planned = ablation.jobs(cfg.PROFILES["fast"], ["shallow", "deep", "rlstm"], "mnist-maj")
    names = [(arch, name) for arch, name, _ in planned]
    assert names == [("shallow", "baseline"), ("shallow", "no dropout"), ("shallow", "zero ReLU biases"),
                     ("shallow", "fixed batch order"),
                     ("deep", "baseline"), ("deep", "no dropout"), ("deep", "stationary dropout"),
                     ("deep", "zero ReLU biases"), ("deep", "fixed batch order"),
                     ("rlstm", "baseline"), ("rlstm", "stationary dropout"), ("rlstm", "zero ReLU biases"),
                     ("rlstm", "fixed batch order")]
    by = {(a, n): c for a, n, c in planned}
    for arch in ("shallow", "deep", "rlstm"):
        base = {**by[(arch, "baseline")], "methods": list(ablation.METHODS)}
        for (a, name), c in by.items():
            if a != arch or name == "baseline":
                continue
            changed = {k for k in set(base) | set(c) if base.get(k) != c.get(k)}
            assert changed in ({"model"}, {"batch_order"}, {"arch", "model"}, {"arch"}), (name, changed)
            assert cfg.model_hash(c) != cfg.model_hash(base)          # a model of its own
    assert by[("deep", "stationary dropout")]["arch"] == "deep_sd"
    assert by[("deep", "no dropout")]["model"]["dropout"] == "none"
    assert set(by[("deep", "baseline")]["methods"]) >= {"thesis-dtd", "thesis-lrp-alpha1.5beta0.5", "gb-ungated"}


@pytest.mark.realdata
@pytest.mark.skipif(real_data_dir() is None or not (Path(real_data_dir() or "/") / "mnist").is_dir(),
                    reason="LRPNET_DATA is unset or lacks mnist/")
def test_tiny_ablation_table_is_the_stores_differences(tmp_path, capsys):
    out = tmp_path / "abl"
    tiny = ["--out", str(out), "--archs", "deep", "--train-size", "200", "--val-size", "50", "--test-size", "100",
            "--explain-size", "20", "--epochs", "2", "--workers", "1"]
    assert ablation.main(tiny) == 0
    db = sqlite3.connect(out / "results.sqlite")
    rows = {}
    for arch, c, acc, m in db.execute("SELECT arch, config, accuracy, metrics FROM jobs"):
        c = json.loads(c)
        rows[(arch, c["model"].get("dropout"), c["model"]["relu_bias"], c.get("batch_order"))] = acc, json.loads(m)
    assert len(rows) == 5
    base_acc, base = rows[("deep", "thesis", "softplus", None)]
    zero_acc, zero = rows[("deep", "thesis", "zero", None)]
    md = (out / "ablation.md").read_text()
    line = next(l for l in md.splitlines() if l.startswith("| deep | zero ReLU biases |"))
    assert f"| {100 * (zero_acc - base_acc):+.2f} |" in line
    d = zero["dtd"]["cosine"] - base["dtd"]["cosine"], zero["dtd"]["in_mask"] - base["dtd"]["in_mask"]
    assert f"{d[0]:+.3f} / {d[1]:+.3f}" in line
    thesis = next(l for l in md.splitlines() if l.startswith("| deep | thesis DTD |"))
    t = base["thesis-dtd"]["cosine"] - base["dtd"]["cosine"]
    assert f"{t:+.3f}" in thesis
    assert (out / "ablation.png").read_bytes()[:4] == b"\x89PNG"
    assert ablation.main(tiny + ["--report-only"]) == 0          # from the store alone, nothing rerun
    assert "to run" not in capsys.readouterr().out.split("Ablation on")[-1]
