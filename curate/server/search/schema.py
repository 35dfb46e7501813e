"""The index file: its tables, one connection per (process, thread), transactions, the dataset registry."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from curate.server.search import DB_ENV

SCHEMA = """
-- AUTOINCREMENT: a deleted dataset's number (and FTS table name) is never reused
CREATE TABLE IF NOT EXISTS datasets (
  ds INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, fields TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
  rid INTEGER PRIMARY KEY, ds INTEGER NOT NULL, id TEXT NOT NULL UNIQUE, external_id TEXT,
  status TEXT, inserted_at REAL, updated_at REAL, rnd INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS records_ds_status ON records(ds, status);
CREATE INDEX IF NOT EXISTS records_ds_inserted ON records(ds, inserted_at);
CREATE INDEX IF NOT EXISTS records_ds_updated ON records(ds, updated_at);
CREATE INDEX IF NOT EXISTS records_ds_external ON records(ds, external_id);
CREATE INDEX IF NOT EXISTS records_ds_rnd ON records(ds, rnd);
CREATE INDEX IF NOT EXISTS records_ds_status_rnd ON records(ds, status, rnd);
CREATE TABLE IF NOT EXISTS props (
  ds INTEGER NOT NULL, rid INTEGER NOT NULL, key TEXT NOT NULL, term TEXT, num REAL, user TEXT, rsp TEXT);
CREATE INDEX IF NOT EXISTS props_term ON props(ds, key, term, rid);
CREATE INDEX IF NOT EXISTS props_num ON props(ds, key, num, rid);
CREATE INDEX IF NOT EXISTS props_rid ON props(rid, key);
CREATE TABLE IF NOT EXISTS responses (
  id TEXT PRIMARY KEY, ds INTEGER NOT NULL, rid INTEGER NOT NULL, user TEXT NOT NULL, status TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS responses_user ON responses(ds, user, status, rid);
CREATE INDEX IF NOT EXISTS responses_status ON responses(ds, status, rid);
CREATE INDEX IF NOT EXISTS responses_rid ON responses(rid, user);
CREATE TABLE IF NOT EXISTS vectors (
  vs TEXT NOT NULL, rid INTEGER NOT NULL, ds INTEGER NOT NULL, vec BLOB NOT NULL, PRIMARY KEY (vs, rid))
  WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS vectors_rid ON vectors(rid);
CREATE TABLE IF NOT EXISTS vector_versions (vs TEXT PRIMARY KEY, version INTEGER NOT NULL);
-- property keys that some record holds several values for (lists): their sorts can't walk the index
CREATE TABLE IF NOT EXISTS multikeys (
  ds INTEGER NOT NULL, key TEXT NOT NULL, PRIMARY KEY (ds, key)) WITHOUT ROWID;
"""

# --------------------------------------------------------------------------------------------------
# Connections: one per (process, thread); the schema is created once per file.


def db_path() -> Path:
    """The engine's SQLite file: $CURATE_SEARCH_DB, else `search.sqlite3` in argilla's home path."""
    if os.environ.get(DB_ENV):
        return Path(os.environ[DB_ENV])
    from argilla_server.settings import settings

    return Path(settings.home_path) / "search.sqlite3"


_local = threading.local()
_schema_lock = threading.Lock()
_schema_ready: set[tuple[int, str]] = set()


def connect() -> sqlite3.Connection:
    """This thread's connection to `db_path()` (autocommit, WAL), with the schema created on first use."""
    path = str(db_path())
    key = (os.getpid(), path)
    conn = getattr(_local, "conn", None)
    if conn is not None and getattr(_local, "key", None) == key:
        return conn
    # A connection inherited through fork (rq's work horse) must not be reused: open a fresh one.
    conn = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=60000")
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.execute("PRAGMA cache_size=-65536")
    conn.execute("PRAGMA mmap_size=268435456")
    with _schema_lock:
        if key not in _schema_ready:
            # Each CREATE ... IF NOT EXISTS commits on its own; racing processes wait on the busy timeout.
            conn.executescript(SCHEMA)
            _schema_ready.add(key)
    _local.conn, _local.key = conn, key
    return conn


class Transaction:
    """`with Transaction(conn):` = BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error); writers never deadlock."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


async def in_thread(fn, *args):
    """Run blocking SQLite work `fn(conn, *args)` off the event loop, on a thread-local connection."""
    return await asyncio.to_thread(lambda: fn(connect(), *args))


# --------------------------------------------------------------------------------------------------
# Dataset registry


@dataclass
class DatasetInfo:
    """A dataset's number in the index and its fields (name -> [FTS column | None, type])."""

    ds: int
    fields: dict

    @property
    def fts(self) -> str:
        return f"fts_{self.ds}"

    @property
    def columns(self) -> list[str]:
        return [c for c, _ in self.fields.values() if c]


def get_dataset(conn: sqlite3.Connection, dataset_id: str) -> DatasetInfo | None:
    """The indexed dataset with this server id, or None."""
    row = conn.execute("SELECT ds, fields FROM datasets WHERE id=?", (dataset_id,)).fetchone()
    return DatasetInfo(row[0], json.loads(row[1])) if row else None


def create_dataset(conn: sqlite3.Connection, dataset_id: str, spec: dict) -> DatasetInfo:
    """Register a dataset and create its FTS table (the existing one if it is already registered)."""
    existing = get_dataset(conn, dataset_id)
    if existing is not None:
        return existing
    ds = conn.execute(
        "INSERT INTO datasets (id, fields) VALUES (?, ?)", (dataset_id, json.dumps(spec))
    ).lastrowid
    info = DatasetInfo(ds, spec)
    cols = ", ".join(info.columns) or "c_empty"
    conn.execute(
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {info.fts} "
        f"USING fts5({cols}, tokenize='unicode61 remove_diacritics 2')"
    )
    return info


def require_dataset(conn: sqlite3.Connection, dataset_id: str) -> DatasetInfo:
    """The indexed dataset, or a ValueError saying it has no index."""
    info = get_dataset(conn, dataset_id)
    if info is None:
        raise ValueError(f"dataset {dataset_id} has no search index (is it published?)")
    return info


def record_rid(conn: sqlite3.Connection, record_id: str) -> tuple[int, int] | None:
    """(rid, ds) of an indexed record, or None."""
    row = conn.execute("SELECT rid, ds FROM records WHERE id=?", (record_id,)).fetchone()
    return (row[0], row[1]) if row else None
