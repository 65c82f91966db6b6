"""The results of a sweep, and who is running what: one SQLite database in the output folder.

- ``jobs``: one row per finished job, keyed by the job's hash. Each row is written in one
  transaction when its job has finished, so a run killed at any moment leaves either the whole row or
  none: rerunning the same command finds the finished jobs here and skips them.
- ``claims``: one row per job that a sweep is running now: its owner (``host:pid`` of the sweep's
  driver), when it started and the owner's last heartbeat. A job starts only after its claim is won
  in one transaction, so several sweeps on one output folder (on one machine, or on several sharing
  a file system) split the work and never run a job twice. A claim whose owner stopped beating (it
  was killed) is taken over.

The drivers alone write here (the workers only return results). The database keeps a rollback
journal, not a write-ahead log: WAL needs memory shared between the processes, which machines that
share only a file system do not have.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import threading
import time
from pathlib import Path

__all__ = ["Store", "SCHEMA", "RUN", "WAIT", "DONE", "HEARTBEAT_S", "CLAIM_TIMEOUT_S", "this_owner",
           "heartbeat"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    hash        TEXT PRIMARY KEY,   -- sha256 of the job's canonical configuration (config.job_hash)
    config      TEXT NOT NULL,      -- the configuration, as JSON
    arch        TEXT NOT NULL,
    dataset     TEXT NOT NULL,
    steps       INTEGER NOT NULL,   -- T, the number of time steps
    fold        TEXT NOT NULL,      -- fold number, or "official"
    profile     TEXT NOT NULL,
    accuracy    REAL NOT NULL,      -- test accuracy (on the test subset)
    wall_s      REAL NOT NULL,      -- the job's wall time: training, evaluation and explanation
    metrics     TEXT NOT NULL,      -- JSON: method -> metric -> value (means over explained samples)
    history     TEXT NOT NULL,      -- JSON: fit's per-epoch records
    checkpoint  TEXT,               -- path of the trained model, relative to the output folder
    heatmaps    TEXT,               -- path of the heatmap grid, relative to the output folder
    info        TEXT NOT NULL,      -- JSON: anything else the job reported (device, host, sizes)
    finished_at REAL NOT NULL       -- Unix time the row was written
);
CREATE TABLE IF NOT EXISTS claims (
    hash        TEXT PRIMARY KEY,   -- the job being run
    owner       TEXT NOT NULL,      -- host:pid of the sweep's driver that runs it
    started_at  REAL NOT NULL,      -- Unix time the claim was won
    heartbeat   REAL NOT NULL       -- Unix time the owner last said it is alive
);
"""

_COLUMNS = ("hash", "config", "arch", "dataset", "steps", "fold", "profile", "accuracy", "wall_s",
            "metrics", "history", "checkpoint", "heatmaps", "info", "finished_at")
_JSON = ("config", "metrics", "history", "info")

# the answers of ``Store.claim``
RUN = "run"        # the claim is yours: run the job
WAIT = "wait"      # another sweep runs it: ask again later
DONE = "done"      # it is finished: skip it

HEARTBEAT_S = 10.0         # how often a driver renews its claims
CLAIM_TIMEOUT_S = 120.0    # a claim without a heartbeat for this long is taken over


def this_owner() -> str:
    """The owner name of this process's claims: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _dead_here(owner: str) -> bool:
    """Whether ``owner`` is a process of this host that no longer exists (its claims need not wait
    for the timeout: a rerun right after a SIGKILL goes on at once)."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:                 # alive, another user's
        return False
    return False


class Store:
    """``Store(path)`` opens (creating if needed) the results database at ``path``.

    ``put(result)`` writes one finished job's result (the dict ``jobs.run_job`` returns) in one
    transaction, replacing an earlier row of the same hash (``--force``), and drops its claim;
    ``finished()`` is the set of hashes that have a row; ``rows()`` the rows as dicts with their JSON
    columns decoded. ``claim``, ``beat`` and ``release`` keep the claims (see the module's doc).
    """

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are explicit (BEGIN / COMMIT in ``_transaction``)
        self._db = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None)
        try:
            self._use_rollback_journal()
            self._db.execute("PRAGMA synchronous=FULL")      # a committed row survives a power cut
            self._db.executescript(SCHEMA)
        except BaseException:
            self._db.close()
            raise

    def _use_rollback_journal(self):
        """A rollback journal (see the module's doc). A database that an older lrpnet left in WAL mode
        is switched back, unless another connection has it open: then it stays in WAL mode for now."""
        if self._db.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
            try:
                self._db.execute("PRAGMA journal_mode=DELETE")
            except sqlite3.OperationalError:
                pass

    def close(self) -> None:
        self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @contextlib.contextmanager
    def _transaction(self):
        """One write transaction; BEGIN IMMEDIATE takes the write lock first, so what it reads cannot
        change before it writes."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    # -- finished jobs ---------------------------------------------------------------------------

    def finished(self) -> set:
        """Hashes of the jobs that have a row."""
        return {h for (h,) in self._db.execute("SELECT hash FROM jobs")}

    def put(self, result: dict) -> None:
        """Write the row of one finished job, and drop its claim, in a single transaction."""
        cfg = result["config"]
        row = {
            "hash": result["hash"], "config": cfg, "arch": cfg["arch"], "dataset": cfg["dataset"],
            "steps": int(cfg["T"]), "fold": str(cfg["fold"]), "profile": cfg.get("profile", ""),
            "accuracy": float(result["accuracy"]), "wall_s": float(result["wall_s"]),
            "metrics": result["metrics"], "history": result.get("history", []),
            "checkpoint": result.get("checkpoint"), "heatmaps": result.get("heatmaps"),
            "info": result.get("info", {}), "finished_at": time.time(),
        }
        for key in _JSON:
            row[key] = json.dumps(row[key], sort_keys=True)
        placeholders = ", ".join("?" for _ in _COLUMNS)
        with self._transaction() as db:
            db.execute(f"INSERT OR REPLACE INTO jobs ({', '.join(_COLUMNS)}) VALUES ({placeholders})",
                       [row[c] for c in _COLUMNS])
            db.execute("DELETE FROM claims WHERE hash = ?", (row["hash"],))

    def rows(self) -> list:
        """Every row as a dict (JSON columns decoded), in the order they were finished."""
        cur = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM jobs ORDER BY finished_at, hash")
        out = []
        for values in cur:
            row = dict(zip(_COLUMNS, values))
            for key in _JSON:
                row[key] = json.loads(row[key])
            out.append(row)
        return out

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]

    # -- claims ----------------------------------------------------------------------------------

    def claim(self, job: str, owner: str, timeout_s: float = CLAIM_TIMEOUT_S, finished_since=None) -> str:
        """Try to claim job ``job`` (its hash) for ``owner``, in one transaction: ``DONE`` when it has
        a row (one written at or after the Unix time ``finished_since``, when given: ``--force``
        redoes older rows), ``WAIT`` when another owner holds a live claim, else ``RUN``: the claim
        is ``owner``'s now. A claim is live while its owner beat in the last ``timeout_s`` seconds
        and, if it is a process of this host, still exists."""
        now = time.time()
        with self._transaction() as db:
            row = db.execute("SELECT finished_at FROM jobs WHERE hash = ?", (job,)).fetchone()
            if row is not None and (finished_since is None or row[0] >= finished_since):
                return DONE
            held = db.execute("SELECT owner, heartbeat FROM claims WHERE hash = ?", (job,)).fetchone()
            if held is not None and held[0] != owner and held[1] > now - timeout_s and not _dead_here(held[0]):
                return WAIT
            db.execute("INSERT OR REPLACE INTO claims (hash, owner, started_at, heartbeat) VALUES (?, ?, ?, ?)",
                       (job, owner, now, now))
        return RUN

    def beat(self, owner: str) -> int:
        """Renew the heartbeat of every claim of ``owner``; the number of its claims."""
        with self._transaction() as db:
            return db.execute("UPDATE claims SET heartbeat = ? WHERE owner = ?", (time.time(), owner)).rowcount

    def release(self, owner: str, job: str | None = None) -> None:
        """Drop ``owner``'s claim of ``job`` (a failed job: another sweep, or a rerun, may try it), or
        all of its claims (the sweep ends)."""
        with self._transaction() as db:
            if job is None:
                db.execute("DELETE FROM claims WHERE owner = ?", (owner,))
            else:
                db.execute("DELETE FROM claims WHERE owner = ? AND hash = ?", (owner, job))

    def claims(self) -> list:
        """The claims held now, as dicts (hash, owner, started_at, heartbeat)."""
        cur = self._db.execute("SELECT hash, owner, started_at, heartbeat FROM claims ORDER BY started_at")
        return [dict(zip(("hash", "owner", "started_at", "heartbeat"), values)) for values in cur]


@contextlib.contextmanager
def heartbeat(path, owner: str, every_s: float = HEARTBEAT_S):
    """While the block runs, a thread renews ``owner``'s claims in the store at ``path`` every
    ``every_s`` seconds (on its own connection: the driver's may be busy). A beat that fails (the
    database locked for longer than its timeout) is tried again at the next one."""
    stop = threading.Event()

    def beat():
        with Store(path) as store:
            while not stop.wait(every_s):
                try:
                    store.beat(owner)
                except sqlite3.OperationalError:
                    pass

    thread = threading.Thread(target=beat, name="lrpnet-sweep-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
