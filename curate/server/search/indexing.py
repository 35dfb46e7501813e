"""Documents -> the index's rows: write a batch of records, delete records, note what changed."""

from __future__ import annotations

import os
import random
import sqlite3
from collections.abc import Iterable

import numpy as np

from curate.server.search.documents import field_text, scalars, term_num
from curate.server.search.schema import DatasetInfo, Transaction, create_dataset, db_path, get_dataset


def delete_rids(conn: sqlite3.Connection, info: DatasetInfo, rids: list[int], keep_record: bool) -> set[str]:
    """Remove everything indexed for these records; return the vector settings touched."""
    touched: set[str] = set()
    for start in range(0, len(rids), 500):
        chunk = rids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        conn.execute(f"DELETE FROM props WHERE rid IN ({marks})", chunk)
        conn.execute(f"DELETE FROM responses WHERE rid IN ({marks})", chunk)
        conn.execute(f"DELETE FROM {info.fts} WHERE rowid IN ({marks})", chunk)
        touched |= {
            r[0] for r in conn.execute(f"SELECT DISTINCT vs FROM vectors WHERE rid IN ({marks})", chunk)
        }
        conn.execute(f"DELETE FROM vectors WHERE rid IN ({marks})", chunk)
        if not keep_record:
            conn.execute(f"DELETE FROM records WHERE rid IN ({marks})", chunk)
    return touched


def bump_vectors(conn: sqlite3.Connection, vector_settings: Iterable[str]) -> None:
    """Mark these vector settings changed, so that every process reloads their matrices."""
    conn.executemany(
        "INSERT INTO vector_versions (vs, version) VALUES (?, 1) "
        "ON CONFLICT(vs) DO UPDATE SET version = version + 1",
        [(vs,) for vs in vector_settings],
    )


def response_rows(ds: int, rid: int, resp: dict) -> list[tuple]:
    """The `props` rows of a response document (key `r:<question>`, with its user and id)."""
    rows = []
    for question, value in resp["values"].items():
        for scalar in scalars(value):
            term, num = term_num(scalar)
            rows.append((ds, rid, f"r:{question}", term, num, resp["user"], resp["id"]))
    return rows


def suggestion_rows(ds: int, rid: int, sug: dict) -> list[tuple]:
    """The `props` rows of a suggestion document (keys `s:<question>:<value|score|agent|type>`)."""
    rows = []
    for prop in ("value", "score", "agent", "type"):
        for scalar in scalars(sug[prop]):
            term, num = term_num(scalar)
            rows.append((ds, rid, f"s:{sug['question']}:{prop}", term, num, None, None))
    return rows


def index_docs(conn: sqlite3.Connection, dataset_id: str, spec: dict, docs: list[dict]) -> None:
    """Insert or replace these record documents in one transaction (the dataset is registered if new)."""
    with Transaction(conn):
        info = get_dataset(conn, dataset_id) or create_dataset(conn, dataset_id, spec)
        ds = info.ds
        existing = (
            dict(
                conn.execute(
                    f"SELECT id, rid FROM records WHERE id IN ({','.join('?' * len(docs))})",
                    [d["id"] for d in docs],
                ).fetchall()
            )
            if docs
            else {}
        )
        touched = delete_rids(conn, info, list(existing.values()), keep_record=True)

        props, responses, fts, vectors = [], [], [], []
        fts_cols = [(name, col, kind) for name, (col, kind) in info.fields.items() if col]
        for doc in docs:
            rid = existing.get(doc["id"])
            values = (doc["external_id"], doc["status"], doc["inserted_at"], doc["updated_at"])
            if rid is None:
                rid = conn.execute(
                    "INSERT INTO records (ds, id, external_id, status, inserted_at, updated_at, rnd) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (ds, doc["id"], *values, random.getrandbits(31)),
                ).lastrowid
            else:
                conn.execute(
                    "UPDATE records SET external_id=?, status=?, inserted_at=?, updated_at=? WHERE rid=?",
                    (*values, rid),
                )
            for name, value in doc["metadata"].items():
                for scalar in scalars(value):
                    term, num = term_num(scalar)
                    props.append((ds, rid, f"m:{name}", term, num, None, None))
            for sug in doc["suggestions"]:
                props.extend(suggestion_rows(ds, rid, sug))
            for resp in doc["responses"]:
                responses.append((resp["id"], ds, rid, resp["user"], resp["status"]))
                props.extend(response_rows(ds, rid, resp))
            if fts_cols:
                texts = [field_text(doc["fields"].get(name), kind) for name, _, kind in fts_cols]
                if any(texts):
                    fts.append((rid, *texts))
            for vs, value in doc["vectors"]:
                if value:
                    vectors.append((vs, rid, ds, np.asarray(value, dtype=np.float32).tobytes()))
                    touched.add(vs)

        conn.executemany(
            "INSERT INTO props (ds, rid, key, term, num, user, rsp) VALUES (?,?,?,?,?,?,?)", props
        )
        note_multikeys(conn, [p for p in props if p[6] is None])
        conn.executemany(
            "INSERT OR REPLACE INTO responses (id, ds, rid, user, status) VALUES (?,?,?,?,?)", responses
        )
        if fts:
            cols = ", ".join(c for _, c, _ in fts_cols)
            marks = ",".join("?" * (len(fts_cols) + 1))
            conn.executemany(f"INSERT INTO {info.fts} (rowid, {cols}) VALUES ({marks})", fts)
        conn.executemany("INSERT OR REPLACE INTO vectors (vs, rid, ds, vec) VALUES (?,?,?,?)", vectors)
        bump_vectors(conn, touched)


def note_multikeys(conn: sqlite3.Connection, rows: list[tuple]) -> None:
    """Remember metadata/suggestion keys that a record holds several values for (their sorts can't use
    `paging.index_ordered_page`)."""
    seen: set[tuple[int, str]] = set()
    multi: set[tuple[int, str]] = set()
    for _ds, rid, key, *_ in rows:
        (multi if (rid, key) in seen else seen).add((rid, key))
    if multi:
        conn.executemany(
            "INSERT OR IGNORE INTO multikeys (ds, key) VALUES (?, ?)", {(rows[0][0], key) for _, key in multi}
        )


_analyzed_at: dict[tuple[int, str], int] = {}


def maybe_analyze(conn: sqlite3.Connection) -> None:
    """Refresh SQLite's planner statistics when the index has grown by half since the last time.

    Without them SQLite scans a whole dataset and probes the filter lists instead of reading the (much
    smaller) lists; the ANALYZE is sampled (analysis_limit), and growth by half keeps the runs few.
    """
    key = (os.getpid(), str(db_path()))
    size = conn.execute("SELECT COALESCE(MAX(rid), 0) FROM records").fetchone()[0]
    if key not in _analyzed_at:
        has_stats = conn.execute("SELECT 1 FROM sqlite_master WHERE name='sqlite_stat1'").fetchone()
        _analyzed_at[key] = size if has_stats else 0
    if size >= 1.5 * _analyzed_at[key] + 1000:
        conn.execute("PRAGMA analysis_limit=400")
        conn.execute("ANALYZE")
        _analyzed_at[key] = size
