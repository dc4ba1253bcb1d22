"""The jobs of `POST /v1/runs`, stored in SQLite (WAL) in the output folder before they are accepted.

A job is `queued`, `running`, `succeeded`, `failed` or `cancelled`. Each server process holds a *slot* (a lock
file, `flock`ed for as long as it lives) and owns the jobs it accepted; when it starts again on that slot it
re-queues its jobs that were `running` (an interrupted run starts over from the beginning) and resumes its queued
ones. A job finishes once: `finish` only moves a `running` job, in one transaction with its result, so there is one
finished result per job, however often its run was interrupted.

Example:
    >>> store = JobStore(Path(tmp) / "jobs.sqlite3", owner=0)  # doctest: +SKIP
    >>> job_id = store.add({"idea": "a red kitten"})  # doctest: +SKIP
    >>> store.claim(job_id), store.get(job_id)["status"]  # doctest: +SKIP
    (True, 'running')
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED = ("succeeded", "failed", "cancelled")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    owner INTEGER NOT NULL,
    status TEXT NOT NULL,
    request TEXT NOT NULL,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    tries INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    result TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS jobs_owner_status ON jobs (owner, status, created);
"""


class JobStore:
    """The jobs table: one connection shared by the server's threads (calls are short and serialized)."""

    def __init__(self, path: Path, owner: int) -> None:
        self.path = path
        self.owner = owner
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=10.0)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a commit survives a killed process
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _write(self, sql: str, args: tuple[Any, ...]) -> int:
        with self._lock:
            return self._db.execute(sql, args).rowcount

    def add(self, request: dict[str, Any]) -> str:
        """Store a new queued job (committed when this returns) and return its id."""
        job_id = uuid.uuid4().hex
        self._write(
            "INSERT INTO jobs (id, owner, status, request, created) VALUES (?, ?, 'queued', ?, ?)",
            (job_id, self.owner, json.dumps(request), time.time()),
        )
        return job_id

    def recover(self) -> list[str]:
        """At start-up: this slot's interrupted (`running`) jobs back to `queued`; all its queued jobs, oldest first."""
        self._write("UPDATE jobs SET status='queued', started=NULL WHERE owner=? AND status='running'", (self.owner,))
        with self._lock:
            rows = self._db.execute(
                "SELECT id FROM jobs WHERE owner=? AND status='queued' ORDER BY created", (self.owner,)
            ).fetchall()
        return [r[0] for r in rows]

    def claim(self, job_id: str) -> bool:
        """queued -> running; False when the job is no longer queued (cancelled meanwhile)."""
        return self._write(
            "UPDATE jobs SET status='running', started=?, tries=tries+1 WHERE id=? AND status='queued'",
            (time.time(), job_id),
        ) == 1

    def finish(self, job_id: str, status: str, *, result: dict[str, Any] | None = None, error: str | None = None) -> bool:
        """running -> a finished status with its result, once; False when the job was not running."""
        return self._write(
            "UPDATE jobs SET status=?, finished=?, result=?, error=? WHERE id=? AND status='running'",
            (status, time.time(), json.dumps(result) if result is not None else None, error, job_id),
        ) == 1

    def cancel(self, job_id: str) -> str | None:
        """Cancel a job: a queued one at once, a running one is asked to stop. The status after, None if unknown."""
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET status='cancelled', finished=? WHERE id=? AND status='queued'", (time.time(), job_id)
            )
            self._db.execute("UPDATE jobs SET cancel_requested=1 WHERE id=? AND status='running'", (job_id,))
            row = self._db.execute("SELECT status FROM jobs WHERE id=?", (job_id,)).fetchone()
        return row[0] if row else None

    def cancel_requested(self, job_id: str) -> bool:
        with self._lock:
            row = self._db.execute("SELECT cancel_requested FROM jobs WHERE id=?", (job_id,)).fetchone()
        return bool(row and row[0])

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            cur = self._db.execute("SELECT * FROM jobs WHERE id=?", (job_id,))
            row = cur.fetchone()
            names = [d[0] for d in cur.description]
        if row is None:
            return None
        job = dict(zip(names, row))
        job["request"] = json.loads(job["request"])
        job["result"] = json.loads(job["result"]) if job["result"] else None
        return job

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
        return {status: n for status, n in rows}
