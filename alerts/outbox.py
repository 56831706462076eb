"""Durable outbox in SQLite (WAL): notifications are written before any send is tried.

Guarantees, from the outbox's point of view:

* **written first** — :meth:`Outbox.commit` stores new notifications together with the
  alert state in one transaction;
* **ordered per dedup key** — an entry is due only when no older entry of its key is still
  pending, so a resolve never overtakes its trigger;
* **at least once** — an entry is marked ``sent`` in one transaction right after a 2xx and is
  never picked again; a sender claims an entry (a lease) before sending, so two dispatchers do
  not send it twice. A request that timed out is retried although the receiver may have
  handled it, and a process killed between the 2xx and the commit re-sends that one entry
  after the lease expires: receivers deduplicate by ``notificationId`` / ``dedup_key``;
* **bounded** — at most ``max_pending`` pending entries per receiver; notifications over it are
  recorded ``failed`` (``outbox full``) at once and reported by :meth:`Outbox.commit`;
* **retries** — 429, 5xx and network errors back off exponentially with jitter, honouring
  ``Retry-After``; other 4xx are recorded ``failed`` with the response body; an entry still
  failing after ``Backoff.max_age`` seconds is recorded ``failed`` (bounded retries).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sqlite3
import threading
from dataclasses import dataclass
from typing import Any

from alerts.errors import AlertsError
from alerts.model import Alert, Notification

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dedup_key TEXT NOT NULL,
    receiver TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',  -- pending | sent | failed
    notification TEXT NOT NULL,
    created_at REAL NOT NULL,
    next_attempt_at REAL NOT NULL,
    claimed_until REAL NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    sent_at REAL,
    response_status INTEGER,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox(status, dedup_key, id);
CREATE TABLE IF NOT EXISTS alert_state (
    fingerprint TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    alert TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS engine_state (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alert_memory (
    fingerprint TEXT PRIMARY KEY,  -- rule × label set
    last_window_end REAL NOT NULL  -- windows ending at or before it were judged already
);
"""


@dataclass(frozen=True)
class Backoff:
    """Delay before retry ``n`` (1-based): ``min(cap, base·factor^(n−1))·U(1−jitter, 1)``.

    ``Retry-After`` lengthens the delay (up to ``max_retry_after``), never shortens it.
    """

    base: float = 1.0
    factor: float = 2.0
    cap: float = 30.0
    jitter: float = 0.5
    max_age: float = 86400.0
    max_retry_after: float = 3600.0

    def __post_init__(self) -> None:
        for name in ("base", "cap", "max_age", "max_retry_after"):
            if not getattr(self, name) > 0:
                raise ValueError(f"The {name!r} parameter of Backoff must be > 0. "
                                 f"Got {getattr(self, name)!r}.")
        if self.factor < 1:
            raise ValueError(f"The 'factor' parameter of Backoff must be >= 1. "
                             f"Got {self.factor!r}.")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"The 'jitter' parameter of Backoff must be in [0, 1). "
                             f"Got {self.jitter!r}.")

    def delay(self, attempt: int, rng: random.Random, retry_after: float | None = None,
              cap: float | None = None) -> float:
        """``cap`` (e.g. a receiver's ``retry_max_delay``) replaces :attr:`cap`."""
        limit = self.cap if cap is None else cap
        raw = min(limit, self.base * self.factor ** max(attempt - 1, 0))
        delay = raw * (1.0 - self.jitter * rng.random())
        if retry_after is not None and retry_after > 0:
            delay = max(delay, min(retry_after, self.max_retry_after))
        return delay


@dataclass(frozen=True)
class Entry:
    id: int
    dedup_key: str
    receiver: str
    status: str
    notification: Notification
    attempts: int
    created_at: float
    next_attempt_at: float
    sent_at: float | None
    response_status: int | None
    last_error: str | None


def _create_private(path: str) -> None:
    """Create the database file owner-only (0600) if it does not exist: it holds alert
    payloads. SQLite gives its ``-wal`` and ``-shm`` files the same mode."""
    if path == ":memory:" or path.startswith("file:"):
        return
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


class Outbox:
    """The SQLite file holding the outbox, the alert state and the engine state."""

    def __init__(self, path: str, backoff: Backoff | None = None,
                 rng: random.Random | None = None, lease: float = 60.0,
                 busy_timeout: float = 5.0, max_pending: int = 10_000):
        """``busy_timeout``: how long a write waits for another connection's lock before it
        raises ``sqlite3.OperationalError: database is locked``."""
        self.path = path
        self.backoff = backoff or Backoff()
        self.rng = rng or random.Random()
        self.lease = lease
        self.max_pending = max_pending
        self._lock = threading.RLock()
        try:
            _create_private(path)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                       timeout=busy_timeout)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:  # not a database, locked for long, unreadable…
            raise AlertsError(f"cannot open the alert database {path}: {exc}") from None
        except OSError as exc:
            raise AlertsError(f"cannot create the alert database {path}: "
                              f"{exc.strerror}") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _tx(self):
        return _Transaction(self._db, self._lock)

    # ---- writing

    def commit(self, notifications: list[Notification], now: float,
               alerts: list[Alert] | None = None, state: dict[str, Any] | None = None,
               memory: dict[str, float] | None = None) -> list[Notification]:
        """Enqueue ``notifications`` and store alert/engine state and alert memory (the last
        judged window end per fingerprint), in one transaction. Returns the notifications
        refused because their receiver already has ``max_pending`` pending entries (they are
        recorded ``failed``)."""
        with self._tx() as db:
            refused = []
            pending = dict(db.execute("SELECT receiver, COUNT(*) FROM outbox WHERE "
                                      "status='pending' GROUP BY receiver").fetchall())
            for n in notifications:
                full = pending.get(n.receiver, 0) >= self.max_pending
                pending[n.receiver] = pending.get(n.receiver, 0) + (not full)
                refused += [n] if full else []
                db.execute(
                    "INSERT INTO outbox (dedup_key, receiver, notification, created_at, "
                    "next_attempt_at, status, sent_at, last_error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (n.dedup_key, n.receiver, json.dumps(n.to_dict()), now, now,
                     "failed" if full else "pending", now if full else None,
                     f"outbox full: {self.max_pending} entries pending for {n.receiver!r}"
                     if full else None))
            if memory:
                db.executemany("INSERT OR REPLACE INTO alert_memory (fingerprint, "
                               "last_window_end) VALUES (?, ?)", list(memory.items()))
            if alerts is not None:
                db.executemany(
                    "INSERT OR REPLACE INTO alert_state (fingerprint, status, alert) "
                    "VALUES (?, ?, ?)",
                    [(a.fingerprint, a.status, json.dumps(a.to_dict())) for a in alerts])
            if state is not None:
                db.execute("INSERT OR REPLACE INTO engine_state (name, value) VALUES (?, ?)",
                           ("engine", json.dumps(state)))
        return refused

    def claim(self, entry_id: int, now: float) -> bool:
        """Take the lease of a pending entry; False if another sender holds it or it is done."""
        with self._tx() as db:
            cur = db.execute("UPDATE outbox SET claimed_until = ? WHERE id = ? AND status = "
                             "'pending' AND claimed_until <= ?", (now + self.lease, entry_id, now))
            return cur.rowcount == 1

    def mark_sent(self, entry_id: int, now: float, status: int) -> None:
        with self._tx() as db:
            db.execute("UPDATE outbox SET status='sent', sent_at=?, response_status=?, "
                       "attempts=attempts+1, claimed_until=0, last_error=NULL WHERE id=?",
                       (now, status, entry_id))

    def mark_failed(self, entry_id: int, now: float, error: str, status: int | None = None
                    ) -> None:
        with self._tx() as db:
            db.execute("UPDATE outbox SET status='failed', sent_at=?, response_status=?, "
                       "attempts=attempts+1, claimed_until=0, last_error=? WHERE id=?",
                       (now, status, error[:4000], entry_id))

    def mark_retry(self, entry_id: int, now: float, error: str, status: int | None = None,
                   retry_after: float | None = None, cap: float | None = None) -> bool:
        """Schedule the next attempt (delay capped at ``cap`` if given); False (and
        ``failed``) when past ``Backoff.max_age``."""
        with self._tx() as db:
            row = db.execute("SELECT attempts, created_at FROM outbox WHERE id=?",
                             (entry_id,)).fetchone()
            attempts = row[0] + 1
            if now - row[1] >= self.backoff.max_age:
                db.execute("UPDATE outbox SET status='failed', attempts=?, claimed_until=0, "
                           "response_status=?, last_error=? WHERE id=?",
                           (attempts, status, f"gave up after {attempts} attempts: {error}"
                            [:4000], entry_id))
                return False
            delay = self.backoff.delay(attempts, self.rng, retry_after, cap)
            db.execute("UPDATE outbox SET attempts=?, next_attempt_at=?, claimed_until=0, "
                       "response_status=?, last_error=? WHERE id=?",
                       (attempts, now + delay, status, error[:4000], entry_id))
            return True

    def fail_orphans(self, receivers: set[str], now: float) -> dict[str, int]:
        """Record ``failed`` the pending entries of receivers no longer in the spec; returns
        their number per receiver."""
        with self._tx() as db:
            rows = db.execute("SELECT DISTINCT receiver FROM outbox WHERE status='pending'"
                              ).fetchall()
            gone = [r[0] for r in rows if r[0] not in receivers]
            return {name: db.execute("UPDATE outbox SET status='failed', sent_at=?, "
                                     "last_error=? WHERE status='pending' AND receiver=?",
                                     (now, f"receiver {name!r} is no longer in the spec", name)
                                     ).rowcount for name in gone}

    def prune(self, before: float) -> int:
        """Delete sent/failed entries and resolved alerts older than ``before``; returns the
        number of outbox entries removed (retention bound of the file)."""
        with self._tx() as db:
            n = db.execute("DELETE FROM outbox WHERE status != 'pending' AND sent_at < ?",
                           (before,)).rowcount
            db.execute("DELETE FROM alert_state WHERE status = 'resolved' AND "
                       "json_extract(alert, '$.ends_at') < ?", (before,))
        return n

    # ---- reading

    def due(self, now: float, limit: int = 100, receiver: str | None = None) -> list[Entry]:
        """Pending entries (of ``receiver``, or all) whose time has come and that no older
        pending entry blocks."""
        only = "" if receiver is None else "AND o.receiver = ? "
        args = (now, now) + (() if receiver is None else (receiver,)) + (limit,)
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM outbox o WHERE o.status='pending' AND o.next_attempt_at <= ? "
                "AND o.claimed_until <= ? " + only + "AND NOT EXISTS (SELECT 1 FROM outbox p "
                "WHERE p.dedup_key = o.dedup_key AND p.status='pending' AND p.id < o.id) "
                "ORDER BY o.id LIMIT ?", args).fetchall()
        return [_entry(r) for r in rows]

    def entries(self, status: str | None = None) -> list[Entry]:
        with self._lock:
            if status is None:
                rows = self._db.execute("SELECT * FROM outbox ORDER BY id").fetchall()
            else:
                rows = self._db.execute("SELECT * FROM outbox WHERE status=? ORDER BY id",
                                        (status,)).fetchall()
        return [_entry(r) for r in rows]

    def depth(self) -> int:
        with self._lock:
            return self._db.execute(
                "SELECT COUNT(*) FROM outbox WHERE status='pending'").fetchone()[0]

    def next_due(self) -> float | None:
        """When the earliest pending entry becomes due (for a dispatcher's sleep)."""
        with self._lock:
            return self._db.execute("SELECT MIN(next_attempt_at) FROM outbox WHERE "
                                    "status='pending'").fetchone()[0]

    def load_memory(self) -> dict[str, float]:
        """The last judged window end of every fingerprint ever judged."""
        with self._lock:
            return dict(self._db.execute("SELECT fingerprint, last_window_end FROM "
                                         "alert_memory").fetchall())

    def load_state(self) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM engine_state WHERE name='engine'"
                                   ).fetchone()
        return json.loads(row[0]) if row else None

    def alerts(self, status: str | None = "firing") -> list[Alert]:
        with self._lock:
            if status is None:
                rows = self._db.execute("SELECT alert FROM alert_state").fetchall()
            else:
                rows = self._db.execute("SELECT alert FROM alert_state WHERE status=?",
                                        (status,)).fetchall()
        return [Alert.from_dict(json.loads(r[0])) for r in rows]


class _Transaction:
    def __init__(self, db: sqlite3.Connection, lock: threading.RLock):
        self.db, self.lock = db, lock

    def __enter__(self) -> sqlite3.Connection:
        self.lock.acquire()
        try:  # BEGIN raises "database is locked" when another connection holds the lock
            self.db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.lock.release()
            raise
        return self.db

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self.lock.release()


def _entry(row: tuple) -> Entry:
    (id_, key, receiver, status, note, created, next_at, _claimed, attempts, sent_at,
     resp, err) = row
    return Entry(id=id_, dedup_key=key, receiver=receiver, status=status,
                 notification=Notification.from_dict(json.loads(note)), attempts=attempts,
                 created_at=created, next_attempt_at=next_at, sent_at=sent_at,
                 response_status=resp, last_error=err)
