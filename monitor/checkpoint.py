"""Checkpoints: source positions and daemon state in one SQLite (WAL) transaction.

A checkpoint database may be shared by several instances (one consumer group on one host):
each instance (``owner``) keeps its own daemon state row, and every source position (a
Kafka partition ``"topic:partition"``, a file path…) is a row owned by one instance at a
time. :meth:`Checkpoint.claim` takes positions over (a Kafka assignment);
:meth:`Checkpoint.save` writes an owner's positions and state together and is *fenced*: if
another owner has claimed one of the positions meanwhile, nothing is written and
:class:`Fenced` names the positions lost. Positions are opaque integers.

>>> import tempfile, os
>>> cp = Checkpoint(os.path.join(tempfile.mkdtemp(), "cp.db"))
>>> cp.load() is None
True
>>> cp.save({"preds:0": 42}, {"windows": [1, 2]})
1
>>> cp.load()
({'preds:0': 42}, {'windows': [1, 2]})
"""

from __future__ import annotations

import array
import io
import os
import pickle
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterable

import orjson

from slices.errors import SlicewatchError

SCHEMA = """
CREATE TABLE IF NOT EXISTS positions (
    key TEXT PRIMARY KEY, next INTEGER NOT NULL, owner TEXT NOT NULL,
    seq INTEGER NOT NULL, saved_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS states (
    owner TEXT PRIMARY KEY, state BLOB NOT NULL, seq INTEGER NOT NULL, saved_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS leases (
    owner TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL, since REAL NOT NULL);
"""


class CheckpointError(SlicewatchError):
    """A checkpoint database that cannot be opened, read or written."""


class Fenced(CheckpointError):
    """Another owner claimed positions this owner tried to save; nothing was written."""

    def __init__(self, owner: str, lost: Iterable[str]):
        self.lost = sorted(lost)
        super().__init__(f"checkpoint owner {owner!r} no longer owns {', '.join(self.lost)}: "
                         "another instance claimed them; the save was not written")


def encode_state(state: dict) -> bytes:
    """Daemon state (plain data) → bytes: pickle protocol 5, uncompressed — 25× faster than
    JSON for multi-MB states of float lists (a checkpoint every few seconds must be cheap).
    Loading refuses every class reference (:class:`_PlainUnpickler`); note that the River
    concept-drift detectors carry their own pickled state inside (a string), which
    :class:`monitor.drift.ConceptMonitor` loads — keep checkpoint files as private as the
    daemon's configuration."""
    return pickle.dumps(state, protocol=5)


def decode_state(blob: bytes) -> dict:
    """Inverse of :func:`encode_state` (older zlib-JSON checkpoints still load)."""
    if blob[:1] == b"\x80":
        return _PlainUnpickler(io.BytesIO(blob)).load()
    return _untag(orjson.loads(zlib.decompress(blob)))


class _PlainUnpickler(pickle.Unpickler):
    """Only plain data (dict, list, tuple, str, bytes, numbers, None, ``array.array`` of
    numbers): no other globals."""

    def find_class(self, module: str, name: str):
        if module == "array" and name in ("array", "_array_reconstructor"):
            return getattr(array, name)
        raise CheckpointError(f"checkpoint state refers to {module}.{name}; only plain data "
                              "is allowed in a checkpoint")


_FLOATS = {"inf": float("inf"), "-inf": float("-inf"), "nan": float("nan")}


def _untag(value):
    """Older JSON checkpoints wrote non-finite floats as ``{"$f": "-inf"}``."""
    if isinstance(value, dict):
        if len(value) == 1 and value.get("$f") in _FLOATS:
            return _FLOATS[value["$f"]]
        return {k: _untag(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_untag(v) for v in value]
    return value


class Checkpoint:
    """One owner's view of a checkpoint database (created if missing, WAL journal).

    ``owner`` names the instance (stable across restarts of that instance); positions and
    state written by :meth:`save` are read back by :meth:`load` of the same owner.
    """

    def __init__(self, path: str, owner: str = "default", *, timeout: float = 30.0):
        if not owner:
            raise CheckpointError("checkpoint owner must be a non-empty string")
        self.path = path
        self.owner = owner
        self.seq = 0
        self._lock = threading.Lock()
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            self._db = sqlite3.connect(path, timeout=timeout, isolation_level=None,
                                       check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a committed save survives a process crash (kill -9); a power
            # loss may undo the last saves, never part of one — offsets and state stay a
            # pair, so the instance resumes from an earlier checkpoint and reads more again
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
            row = self._db.execute("SELECT seq FROM states WHERE owner=?", (owner,)).fetchone()
        except (OSError, sqlite3.Error) as exc:
            raise CheckpointError(f"cannot open checkpoint database {path}: {exc}") from None
        self.seq = row[0] if row else 0

    # ---- writing -------------------------------------------------------------------------
    def save(self, positions: dict[str, int], state: dict) -> int:
        """Write ``positions`` (key → next position) and ``state`` atomically; returns the new
        sequence number. Raises :class:`Fenced` (writing nothing) if another owner holds any
        of the positions."""
        return self.save_encoded(positions, encode_state(state))

    def save_encoded(self, positions: dict[str, int], blob: bytes) -> int:
        """:meth:`save` with the state already encoded (:func:`encode_state`): the part that
        may run in another thread (SQLite releases the GIL while it writes)."""
        now = time.time()
        with self._lock, self._tx() as db:
            seq = self.seq + 1
            lost = []
            for key, nxt in positions.items():
                cur = db.execute("SELECT owner FROM positions WHERE key=?", (key,)).fetchone()
                if cur is not None and cur[0] != self.owner:
                    lost.append(key)
                    continue
                db.execute("INSERT INTO positions(key, next, owner, seq, saved_at) "
                           "VALUES (?,?,?,?,?) ON CONFLICT(key) DO UPDATE SET "
                           "next=excluded.next, seq=excluded.seq, saved_at=excluded.saved_at",
                           (key, int(nxt), self.owner, seq, now))
            if lost:
                raise Fenced(self.owner, lost)
            db.execute("INSERT INTO states(owner, state, seq, saved_at) VALUES (?,?,?,?) "
                       "ON CONFLICT(owner) DO UPDATE SET state=excluded.state, "
                       "seq=excluded.seq, saved_at=excluded.saved_at",
                       (self.owner, blob, seq, now))
        self.seq = seq
        return seq

    def claim(self, keys: Iterable[str]) -> dict[str, int]:
        """Take ``keys`` over for this owner; returns the saved next position of each key
        that has one (whoever wrote it). Keys without a row stay unsaved until :meth:`save`."""
        keys = list(keys)
        out: dict[str, int] = {}
        with self._lock, self._tx() as db:
            for key in keys:
                row = db.execute("SELECT next FROM positions WHERE key=?", (key,)).fetchone()
                if row is not None:
                    out[key] = int(row[0])
                    db.execute("UPDATE positions SET owner=? WHERE key=?", (self.owner, key))
        return out

    def drop_state(self) -> None:
        """Delete this owner's state row (after its windows were drained elsewhere)."""
        with self._lock, self._tx() as db:
            db.execute("DELETE FROM states WHERE owner=?", (self.owner,))
        self.seq = 0

    # ---- reading -------------------------------------------------------------------------
    def load(self) -> tuple[dict[str, int], dict] | None:
        """``(positions owned by this owner, state)`` of the last save, or None."""
        with self._lock:
            try:
                row = self._db.execute("SELECT state, seq FROM states WHERE owner=?",
                                       (self.owner,)).fetchone()
                if row is None:
                    return None
                pos = self._db.execute("SELECT key, next FROM positions WHERE owner=?",
                                       (self.owner,)).fetchall()
            except sqlite3.Error as exc:
                raise CheckpointError(f"cannot read checkpoint {self.path}: {exc}") from None
        self.seq = row[1]
        return {k: int(n) for k, n in pos}, decode_state(row[0])

    def positions(self) -> dict[str, tuple[int, str]]:
        """Every saved position: key → (next, owner)."""
        with self._lock:
            rows = self._db.execute("SELECT key, next, owner FROM positions").fetchall()
        return {k: (int(n), o) for k, n, o in rows}

    def owners(self) -> list[str]:
        """Owners that have a saved state."""
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT owner FROM states ORDER BY owner")]

    # ---- single-instance guard -----------------------------------------------------------
    def acquire(self, host: str, pid: int) -> None:
        """Register this process as the live holder of ``owner``; raises CheckpointError if
        another live process on this host holds it (two instances must not share a name)."""
        with self._lock, self._tx() as db:
            row = db.execute("SELECT host, pid FROM leases WHERE owner=?",
                             (self.owner,)).fetchone()
            if row and row[0] == host and row[1] != pid and _alive(row[1]):
                raise CheckpointError(
                    f"checkpoint owner {self.owner!r} in {self.path} is in use by pid {row[1]}; "
                    "give each instance its own kafka.instance_id")
            db.execute("INSERT OR REPLACE INTO leases(owner, host, pid, since) VALUES (?,?,?,?)",
                       (self.owner, host, pid, time.time()))

    def release(self) -> None:
        with self._lock, self._tx() as db:
            db.execute("DELETE FROM leases WHERE owner=? AND pid=?", (self.owner, os.getpid()))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ---- helpers -------------------------------------------------------------------------
    def _tx(self):
        return _Transaction(self._db, self.path)


class _Transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on any error)."""

    def __init__(self, db: sqlite3.Connection, path: str):
        self.db, self.path = db, path

    def __enter__(self) -> sqlite3.Connection:
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise CheckpointError(f"cannot write checkpoint {self.path}: {exc}") from None
        return self.db

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                self.db.execute("COMMIT")
                return
            except sqlite3.Error as err:
                self.db.execute("ROLLBACK")
                raise CheckpointError(f"cannot write checkpoint {self.path}: {err}") from None
        self.db.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            raise CheckpointError(f"cannot write checkpoint {self.path}: {exc}") from None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
