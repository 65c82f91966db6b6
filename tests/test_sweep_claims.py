"""Claims in the results store: a job runs only for the sweep that won its claim; a finished job is
never claimed again; a claim whose owner stopped beating, or died on this host, is taken over; the
runner asks for claims just before a job would start, and looks again at the jobs others run."""
import concurrent.futures
import multiprocessing
import socket
import subprocess
import sys
import time

import pytest

from lrpnet.sweep import config as cfg
from lrpnet.sweep import store as store_module
from lrpnet.sweep.store import DONE, RUN, WAIT, Store, heartbeat

HASHES = [f"job{i:02d}" for i in range(24)]


class _Clock:
    """A stand-in for the ``time`` module inside the store: time moves only when the test says so."""
    def __init__(self, now=1000.0):
        self.now = now

    def time(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = _Clock()
    monkeypatch.setattr(store_module, "time", c)
    return c


def _result(h):
    config = cfg.job_configs(cfg.PROFILES["smoke"], ["deep"], ["mnist-maj"], ["sa"], [12])[0]
    return {"hash": h, "config": config, "accuracy": 0.5, "wall_s": 1.0, "metrics": {}}


def test_a_live_claim_makes_others_wait_and_a_stale_one_is_taken_over(tmp_path, clock):
    with Store(tmp_path / "r.sqlite") as a, Store(tmp_path / "r.sqlite") as b:
        assert a.claim("j", "hostA:1", timeout_s=60) == RUN
        assert a.claim("j", "hostA:1", timeout_s=60) == RUN           # its own claim: still its own
        assert b.claim("j", "hostB:2", timeout_s=60) == WAIT
        clock.now += 50
        assert a.beat("hostA:1") == 1                                   # renewed at 1050
        clock.now += 50
        assert b.claim("j", "hostB:2", timeout_s=60) == WAIT            # 50 s since the beat
        clock.now += 11
        assert b.claim("j", "hostB:2", timeout_s=60) == RUN             # 61 s: taken over
        (held,) = b.claims()
        assert held["owner"] == "hostB:2" and held["started_at"] == held["heartbeat"] == clock.now
        assert a.beat("hostA:1") == 0                                   # A holds nothing any more


def test_a_finished_job_is_done_and_its_claim_is_dropped(tmp_path, clock):
    with Store(tmp_path / "r.sqlite") as s:
        assert s.claim("j", "me:1") == RUN
        s.put(_result("j"))
        assert s.claims() == []
        assert s.claim("j", "other:2") == DONE
        # --force: a row written before this run started is redone, one written since is not
        assert s.claim("j", "other:2", finished_since=clock.now + 1) == RUN
        assert s.claim("j", "third:3", finished_since=clock.now) == DONE


def test_release_drops_one_claim_or_all_of_an_owner(tmp_path, clock):
    with Store(tmp_path / "r.sqlite") as s:
        for h in ("a", "b", "c"):
            assert s.claim(h, "me:1") == RUN
        assert s.claim("d", "you:2") == RUN
        s.release("me:1", "a")
        assert sorted(c["hash"] for c in s.claims()) == ["b", "c", "d"]
        s.release("me:1")
        assert [c["hash"] for c in s.claims()] == ["d"]
        assert s.claim("a", "you:2") == RUN                             # released: anyone may run it


def test_a_claim_of_a_dead_process_on_this_host_is_taken_over_at_once(tmp_path, clock):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead = f"{socket.gethostname()}:{gone.stdout.strip()}"
    with Store(tmp_path / "r.sqlite") as s:
        assert s.claim("j", dead, timeout_s=3600) == RUN
        assert s.claim("j", store_module.this_owner(), timeout_s=3600) == RUN
        # a live process of this host (this one) keeps its claim
        assert s.claim("j", "someone:9", timeout_s=3600) == WAIT


def test_the_heartbeat_thread_renews_the_claims(tmp_path):
    with Store(tmp_path / "r.sqlite") as s:
        assert s.claim("j", "me:1") == RUN
        (before,) = s.claims()
        with heartbeat(s.path, "me:1", every_s=0.02):
            time.sleep(0.3)
        (after,) = s.claims()
    assert after["heartbeat"] > before["heartbeat"] and after["started_at"] == before["started_at"]


def _claim_all(path, owner):
    with Store(path) as s:
        return [h for h in HASHES if s.claim(h, owner) == RUN]


def test_processes_racing_for_the_same_jobs_win_each_exactly_once(tmp_path):
    path = tmp_path / "r.sqlite"
    Store(path).close()
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(4, mp_context=ctx) as pool:
        won = list(pool.map(_claim_all, [path] * 4, [f"racer:{i}" for i in range(4)]))
    assert sorted(h for hashes in won for h in hashes) == HASHES       # every job once, none twice


# -- the runner asks for each claim just before the job would start --------------------------------------
def test_run_jobs_runs_only_won_claims_and_asks_again_for_waiting_ones(tmp_path):
    from lrpnet.sweep.runner import run_jobs
    (tmp_path / "nodata").mkdir()
    configs = cfg.job_configs(cfg.PROFILES["smoke"], ["deep", "rlstm", "shallow"], ["mnist-maj"], ["sa"], [12])
    answers = {"deep": [WAIT, WAIT, RUN], "rlstm": [DONE], "shallow": [WAIT, DONE]}
    asked, errors = [], []

    def claim(config):
        asked.append(config["arch"])
        return answers[config["arch"]].pop(0)

    run_jobs(configs, tmp_path / "out", data_dir=tmp_path / "nodata", workers=1, claim=claim, poll_s=0.01,
             on_result=lambda r: pytest.fail("no job can succeed without data"),
             on_error=lambda c, text: errors.append(c["arch"]))
    assert sorted(asked) == ["deep"] * 3 + ["rlstm"] + ["shallow"] * 2
    assert errors == ["deep"]                                          # ran once, only when its claim was won
    assert all(not a for a in answers.values())


def test_a_bad_claim_answer_is_refused(tmp_path):
    from lrpnet.sweep.runner import run_jobs
    configs = cfg.job_configs(cfg.PROFILES["smoke"], ["deep"], ["mnist-maj"], ["sa"], [12])
    with pytest.raises(ValueError, match="claim answered 'maybe'"):
        run_jobs(configs, tmp_path, claim=lambda c: "maybe", on_result=print, on_error=print)


def test_the_store_keeps_a_rollback_journal_and_converts_an_older_wal_database(tmp_path):
    """WAL needs memory shared by every process that opens the database: machines that share only a
    file system have none, so the store keeps a rollback journal, also in a database an older lrpnet
    left in WAL mode (while another connection has that one open, it stays as it is)."""
    import sqlite3
    path = tmp_path / "r.sqlite"
    with Store(path) as s:
        assert s._db.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    older = sqlite3.connect(path, isolation_level=None)
    older.execute("PRAGMA journal_mode=WAL")
    with Store(path) as s:                                   # opened beside the WAL connection: works
        assert s.claim("j", "me:1") == RUN
    older.close()
    with Store(path) as s:
        assert s._db.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        assert [c["hash"] for c in s.claims()] == ["j"]
