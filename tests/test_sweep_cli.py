"""Bad arguments to experiments/sweep.py: exit status 2, one line on stderr, and no work done (no
output folder, no results database). Every check runs before anything is trained."""
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from lrpnet import backend
from lrpnet.sweep.cli import main, parser

ROOT = Path(__file__).resolve().parents[1]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


BAD = [
    (["--archs", "deep,nope"], "unknown architecture 'nope'"),
    (["--methods", "sa,lrp-bogus"], "unknown method 'lrp-bogus'"),
    (["--datasets", "cifar10"], "unknown dataset 'cifar10'"),
    (["--device", "tpu"], "'tpu'"),
    (["--grid", "exp9"], "'exp9'"),
    (["--profile", "huge"], "'huge'"),
    (["--folds", "0,9"], "bad fold '9'"),
    (["--epochs", "0"], "--epochs must be >= 1, got 0"),
    (["--explain-size", "-5"], "--explain-size must be >= 1, got -5"),
    (["--lr", "-0.1"], "--lr must be > 0"),
    (["--lr", "fast"], "invalid float value: 'fast'"),
    (["--workers", "0"], "--workers must be >= 1"),
    (["--datasets", "mnist-7"], "T=12"),                        # 196 columns do not cut into 12 slices
    (["--cluster", "localhost:8786"], "expected a scheduler address like tcp://HOST:PORT"),
    (["--workers", "2", "--cluster", "tcp://127.0.0.1:1"], "not both"),
    (["--no-such-option"], "unrecognized arguments: --no-such-option"),
    (["--report-only"], "no results database"),
]


def _check_one_line_error(rc, err, expected, out):
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("sweep.py: error: ") and expected in lines[0], lines[0]
    assert not out.exists(), "a rejected command must not create its output folder"


@pytest.mark.parametrize("argv, expected", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_argument_exits_2_with_one_line_and_does_no_work(argv, expected, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main([*argv, "--out", str(out)])
    captured = capsys.readouterr()
    _check_one_line_error(rc, captured.err, expected, out)
    assert captured.out == ""


def test_unreachable_cluster_is_refused_quickly(tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["--cluster", f"tcp://127.0.0.1:{_free_port()}", "--out", str(out)])
    _check_one_line_error(rc, capsys.readouterr().err, "no Dask scheduler answered", out)


def test_missing_data_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    (tmp_path / "empty").mkdir()
    rc = main(["--data-dir", str(tmp_path / "empty"), "--out", str(out)])
    _check_one_line_error(rc, capsys.readouterr().err, "data not available", out)


@pytest.mark.skipif(backend.gpu_available(), reason="this machine has a GPU")
def test_gpu_device_without_gpu_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["--device", "gpu", "--out", str(out)])
    _check_one_line_error(rc, capsys.readouterr().err, "no usable CUDA GPU here: ", out)


def test_real_process_exit_status(tmp_path):
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, str(ROOT / "experiments" / "sweep.py"), "--archs", "nope",
                           "--out", str(out)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    _check_one_line_error(done.returncode, done.stderr, "unknown architecture 'nope'", out)
    assert done.stdout == ""


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    options = [s for a in parser()._actions for s in a.option_strings if s.startswith("--")]
    assert len(options) > 20
    for opt in options:
        assert opt in text, opt
    for profile in ("thesis", "fast", "smoke"):
        assert profile in text
