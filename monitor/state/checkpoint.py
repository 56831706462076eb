"""Checkpoints: source positions and daemon state in one SQLite (WAL) transaction.

A checkpoint database may be shared by several instances (one consumer group on one host):
each instance (``owner``) keeps its own daemon state row, and every source position (a
Kafka partition ``"topic:partition"``, a file path…) is a row owned by one instance at a
time. :meth:`Checkpoint.claim` takes positions over (a Kafka assignment);
:meth:`Checkpoint.save` writes an owner's positions and state together and is *fenced*: if
another owner has claimed one of the positions meanwhile, nothing is written and
:class:`Fenced` names the positions lost. Positions are opaque integers. The state is
versioned plain data (:mod:`monitor.state.encoding`, no pickle: loading cannot run code),
bounded in size on load and stored with its CRC32, which :meth:`Checkpoint.load` verifies (a
state damaged on disk is refused, not resumed from); the database is created with mode 0600
(docs/checkpoint-state.md).

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

import os
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterable
from typing import Any

from monitor.state import encoding as state_encoding
from monitor.state.encoding import MAX_STATE_BYTES, StateError
from slices.errors import SlicewatchError

SCHEMA = """
CREATE TABLE IF NOT EXISTS positions (
    key TEXT PRIMARY KEY, next INTEGER NOT NULL, owner TEXT NOT NULL,
    seq INTEGER NOT NULL, saved_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS states (
    owner TEXT PRIMARY KEY, state BLOB NOT NULL, seq INTEGER NOT NULL, saved_at REAL NOT NULL,
    crc INTEGER);
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
    """Daemon state (plain data) → bytes: the versioned plain-data encoding of
    :mod:`monitor.state.encoding` (MessagePack; arrays as bytes). No pickle."""
    try:
        return state_encoding.encode_state(state)
    except StateError as exc:
        raise CheckpointError(str(exc)) from None


def decode_state(blob: bytes, *, max_bytes: int = MAX_STATE_BYTES) -> dict:
    """Inverse of :func:`encode_state`, bounded; raises :class:`CheckpointError` for a blob
    of an older format (pickle, zlib-JSON), a malformed one or one over the bounds.
    Nothing on this path can run code."""
    try:
        state = state_encoding.decode_state(blob, max_bytes=max_bytes)
    except StateError as exc:
        raise CheckpointError(str(exc)) from None
    if not isinstance(state, dict):
        raise CheckpointError("checkpoint state is not a mapping")
    return state


def state_bound() -> int:
    """The bound on a state blob: ``SLICEWATCH_MAX_STATE_BYTES`` if set, else
    :data:`MAX_STATE_BYTES` (1 GiB, SQLite's own limit on one BLOB)."""
    raw = os.environ.get("SLICEWATCH_MAX_STATE_BYTES", "").strip()
    if not raw:
        return MAX_STATE_BYTES
    if not raw.isdigit() or int(raw) < 1:
        raise CheckpointError(f"SLICEWATCH_MAX_STATE_BYTES must be a positive integer; "
                              f"got {raw!r}")
    return int(raw)


class Checkpoint:
    """One owner's view of a checkpoint database (created if missing, WAL journal).

    ``owner`` names the instance (stable across restarts of that instance); positions and
    state written by :meth:`save` are read back by :meth:`load` of the same owner.
    """

    def __init__(self, path: str, owner: str = "default", *, timeout: float = 30.0,
                 max_state_bytes: int | None = None):
        if not owner:
            raise CheckpointError("checkpoint owner must be a non-empty string")
        self.path = path
        self.owner = owner
        self.seq = 0
        self.max_state_bytes = max_state_bytes or state_bound()
        self._lock = threading.Lock()
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            # created private (0600): SQLite gives its -wal and -shm files the same mode
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
            self._db = sqlite3.connect(path, timeout=timeout, isolation_level=None,
                                       check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a committed save survives a process crash (kill -9); a power
            # loss may undo the last saves, never part of one — offsets and state stay a
            # pair, so the instance resumes from an earlier checkpoint and reads more again
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
            _add_crc_column(self._db)
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
        crc = zlib.crc32(blob)  # verified by load: a state damaged on disk is refused
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
            db.execute("INSERT INTO states(owner, state, seq, saved_at, crc) "
                       "VALUES (?,?,?,?,?) ON CONFLICT(owner) DO UPDATE SET "
                       "state=excluded.state, seq=excluded.seq, saved_at=excluded.saved_at, "
                       "crc=excluded.crc", (self.owner, blob, seq, now, crc))
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
                size = self._db.execute("SELECT length(state) FROM states WHERE owner=?",
                                        (self.owner,)).fetchone()
                if size is None:
                    return None
                if size[0] > self.max_state_bytes:  # refused before it is read into memory
                    raise CheckpointError(
                        f"checkpoint {self.path}: the state of {self.owner!r} is {size[0]} "
                        f"bytes, over the bound of {self.max_state_bytes} bytes")
                row = self._db.execute("SELECT state, seq, crc FROM states WHERE owner=?",
                                       (self.owner,)).fetchone()
                pos = self._db.execute("SELECT key, next FROM positions WHERE owner=?",
                                       (self.owner,)).fetchall()
            except sqlite3.Error as exc:
                raise CheckpointError(f"cannot read checkpoint {self.path}: {exc}") from None
        if row[2] is not None and zlib.crc32(row[0]) != row[2]:
            raise CheckpointError(
                f"checkpoint {self.path}: the state of {self.owner!r} is damaged (CRC32 "
                f"{zlib.crc32(row[0]):08x}, saved as {row[2] & 0xFFFFFFFF:08x}): the file "
                "changed on disk since it was saved; delete it (with its -wal and -shm "
                "files) to start afresh")
        try:
            state = decode_state(row[0], max_bytes=self.max_state_bytes)
        except CheckpointError as exc:
            raise CheckpointError(f"checkpoint {self.path}: {exc}") from None
        self.seq = row[1]
        return {k: int(n) for k, n in pos}, state

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


def _add_crc_column(db: sqlite3.Connection) -> None:
    """Give a database written before states had a checksum its ``crc`` column: its rows
    keep NULL there and load unverified until their next save writes one."""
    columns = {r[1] for r in db.execute("PRAGMA table_info(states)")}
    if "crc" not in columns:
        try:
            db.execute("ALTER TABLE states ADD COLUMN crc INTEGER")
        except sqlite3.OperationalError as exc:  # another instance added it meanwhile
            if "duplicate column" not in str(exc):
                raise


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def load_checkpointed(daemon: Any, state: dict, path: str) -> None:
    """``daemon.load_state(state)``; a state that does not fit (hand-edited, truncated, of
    another spec) is a :class:`CheckpointError` naming the database, not a traceback."""
    try:
        daemon.load_state(state)
    except SlicewatchError as exc:
        raise CheckpointError(f"checkpoint {path}: cannot resume from its state: {exc}") \
            from None
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise CheckpointError(f"checkpoint {path}: its state does not fit this spec "
                              f"({type(exc).__name__}: {str(exc)[:200]}); delete it to start "
                              "afresh") from None
