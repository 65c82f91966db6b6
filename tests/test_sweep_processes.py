"""The sweep's processes, for real: its workers end when the driver ends, however it ends (SIGKILL,
Ctrl-C, SIGTERM), no job starts after an interrupt, and two sweeps on one output folder run each job
once. Linux only (the processes are found in /proc)."""
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from test_sweep import SMALL, SWEEP, _env, _rows, needs_data

pytestmark = [pytest.mark.realdata, needs_data,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")]

ARCHS = ["--archs", "deep,rlstm,shallow,deep_v2"]      # 4 jobs
LONG = ["--epochs", "50"]                              # jobs that are still running when the test acts


class _Sweep:
    """experiments/sweep.py in its own session, its output (stdout and stderr) collected by a thread."""

    def __init__(self, out, *extra):
        self.proc = subprocess.Popen([sys.executable, "-u", str(SWEEP), *SMALL, "--out", str(out), *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(),
                                     start_new_session=True)
        self.lines = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self.reader.start()

    def started(self):
        """The hashes of the jobs that printed "started" so far."""
        return re.findall(r"\[job (\w+)\] started:", "".join(self.lines))

    def wait_for(self, n_started, timeout=90):
        deadline = time.monotonic() + timeout
        while len(self.started()) < n_started:
            assert self.proc.poll() is None and time.monotonic() < deadline, "".join(self.lines)[-3000:]
            time.sleep(0.05)

    def finish(self, timeout=90):
        """The exit status; the output is complete once every process that held it has ended."""
        rc = self.proc.wait(timeout=timeout)
        self.reader.join(timeout=timeout)
        return rc

    def text(self):
        return "".join(self.lines)

    def kill_all(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _processes():
    """{pid: (parent pid, state)} of every process, from /proc."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path("/proc", entry, "stat").read_text()
            except OSError:
                continue
            state, ppid = stat.rsplit(")", 1)[1].split()[:2]
            found[int(entry)] = (int(ppid), state)
    return found


def _descendants(pid):
    table, found, frontier = _processes(), set(), {pid}
    while frontier:
        frontier = {p for p, (parent, _) in table.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pids):
    """Those of ``pids`` that still run (a zombie has ended: only its parent has not collected it)."""
    table = _processes()
    return {p for p in pids if p in table and table[p][1] != "Z"}


def _until_gone(pids, timeout=10.0):
    deadline = time.monotonic() + timeout
    while _alive(pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return _alive(pids)


def test_sigkill_of_the_driver_ends_its_workers(tmp_path):
    sweep = _Sweep(tmp_path / "out", *ARCHS, *LONG, "--workers", "2")
    try:
        sweep.wait_for(2)                              # both workers are in a job, two jobs are queued
        workers = _descendants(sweep.proc.pid)
        assert len(workers) >= 2, workers
        started = sweep.started()
        os.kill(sweep.proc.pid, signal.SIGKILL)        # the driver alone, as the OOM killer would
        sweep.finish()
        assert not _until_gone(workers, timeout=5.0), "workers outlived their driver"
        assert sweep.started() == started, "a job started after the driver was killed"
        assert not list((tmp_path / "out").glob("checkpoints/*.npz"))
    finally:
        sweep.kill_all()


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_after_an_interrupt_no_job_starts_and_no_worker_is_left(tmp_path, how):
    out = tmp_path / "out"
    sweep = _Sweep(out, *ARCHS, *LONG, "--workers", "2")
    try:
        sweep.wait_for(2)
        workers = _descendants(sweep.proc.pid)
        started = sweep.started()
        if how == "ctrl-c":                             # a terminal signals the whole foreground group
            os.killpg(sweep.proc.pid, signal.SIGINT)
        else:
            os.kill(sweep.proc.pid, signal.SIGTERM)
        assert sweep.finish(timeout=30) == 130, sweep.text()[-3000:]
        assert "interrupted; no new job started" in sweep.text()
        assert not _until_gone(workers, timeout=5.0), "workers outlived the interrupt"
        assert sweep.started() == started, "a job started after the interrupt"
        assert _rows(out) == []                          # the jobs in flight were ended, not finished
        db = sqlite3.connect(out / "results.sqlite")
        assert db.execute("SELECT COUNT(*) FROM claims").fetchone() == (0,)    # released on the way out
        db.close()
    finally:
        sweep.kill_all()


def test_two_sweeps_on_one_folder_run_each_job_once(tmp_path):
    out = tmp_path / "out"
    # a short claim timeout: a sweep that finds its last jobs running elsewhere looks again every 2 s
    sweeps = [_Sweep(out, *ARCHS, "--workers", "1", "--claim-timeout", "4") for _ in range(2)]
    try:
        codes = [s.finish(timeout=120) for s in sweeps]
        assert codes == [0, 0], "\n".join(s.text()[-2000:] for s in sweeps)
        runs = sweeps[0].started() + sweeps[1].started()
        assert len(runs) == len(set(runs)) == 4, runs          # every job once, none twice
        rows = _rows(out)
        assert sorted(r[1] for r in rows) == ["deep", "deep_v2", "rlstm", "shallow"]
        for s in sweeps:                                        # and each sweep saw the whole grid end
            assert "report of 4 jobs" in s.text()
    finally:
        for s in sweeps:
            s.kill_all()
