"""The results of a sweep: one SQLite row per finished job, keyed by the job's hash.

Only the driver process writes, and each row is written in one transaction when its job has
finished, so a run killed at any moment leaves either the whole row or none: rerunning the same
command finds the finished jobs here and skips them.
"""
from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

__all__ = ["Store", "SCHEMA"]

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
)
"""

_COLUMNS = ("hash", "config", "arch", "dataset", "steps", "fold", "profile", "accuracy", "wall_s",
            "metrics", "history", "checkpoint", "heatmaps", "info", "finished_at")
_JSON = ("config", "metrics", "history", "info")


class Store:
    """``Store(path)`` opens (creating if needed) the results database at ``path``.

    ``put(result)`` writes one finished job's result (the dict ``jobs.run_job`` returns) in one
    transaction, replacing an earlier row of the same hash (``--force``); ``finished()`` is the set
    of hashes that have a row; ``rows()`` the rows as dicts with their JSON columns decoded.
    """

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are explicit (BEGIN / COMMIT in ``put``)
        self._db = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")      # readers (reports) never block the writer
        self._db.execute("PRAGMA synchronous=FULL")      # a committed row survives a power cut
        self._db.execute(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def finished(self) -> set:
        """Hashes of the jobs that have a row."""
        return {h for (h,) in self._db.execute("SELECT hash FROM jobs")}

    def put(self, result: dict) -> None:
        """Write the row of one finished job in a single transaction."""
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
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute(f"INSERT OR REPLACE INTO jobs ({', '.join(_COLUMNS)}) VALUES ({placeholders})",
                             [row[c] for c in _COLUMNS])
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

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
