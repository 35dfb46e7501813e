"""Our argilla-server search engine: SQLite (FTS5 for text) plus numpy for vectors.

argilla-server normally needs Elasticsearch or OpenSearch, which can't be installed on a laptop without
Docker. This plugin implements the whole `argilla_server.search_engine.SearchEngine` interface on one
SQLite file in the data dir, so the real server and its UI run unchanged. Semantics follow
`argilla_server/search_engine/commons.py` (the Elasticsearch implementation); where we differ it is said.

Layout (one file, all datasets):
- `records`: one row per record (status, timestamps, external id, a random key for per-user order);
- `props`: every filterable scalar as (key, term, num) rows, key = `m:<metadata>`, `s:<question>:<prop>`
  (suggestion value/score/agent/type) or `r:<question>` (response value, with its user and response id);
- `responses`: one row per response (user, status) for status filters and progress;
- `fts_<n>`: an FTS5 table per dataset with one column per text/chat/custom field;
- `vectors`: float32 blobs; similarity is a numpy matrix product over a per-process cache.

The server process and the rq worker both write here (WAL mode, busy timeout). All SQL runs in a worker
thread (`asyncio.to_thread`) so that the server's event loop stays responsive.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import os
import random
import re
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from argilla_server.enums import MetadataPropertyType, SimilarityOrder, SortOrder
from argilla_server.models import (
    Dataset,
    MetadataProperty,
    Record,
    Response,
    Suggestion,
    User,
    VectorSettings,
)
from argilla_server.search_engine.base import (
    AndFilter,
    Filter,
    FloatMetadataMetrics,
    IntegerMetadataMetrics,
    MetadataFilterScope,
    MetadataMetrics,
    Order,
    RecordFilterScope,
    ResponseFilterScope,
    SearchEngine,
    SearchResponseItem,
    SearchResponses,
    SuggestionFilterScope,
    TermsFilter,
    TermsMetrics,
    TextQuery,
)

ENGINE_NAME = "curate-sqlite"
DB_ENV = "CURATE_SEARCH_DB"
_LOG = logging.getLogger("curate.search_engine")

_SCHEMA = """
-- AUTOINCREMENT: a deleted dataset's number (and FTS table name) is never reused
CREATE TABLE IF NOT EXISTS datasets (ds INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, fields TEXT NOT NULL);
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
CREATE TABLE IF NOT EXISTS multikeys (ds INTEGER NOT NULL, key TEXT NOT NULL, PRIMARY KEY (ds, key)) WITHOUT ROWID;
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


def _connect() -> sqlite3.Connection:
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
            conn.executescript(_SCHEMA)
            _schema_ready.add(key)
    _local.conn, _local.key = conn, key
    return conn


class _Tx:
    """`with _Tx(conn):` = BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error); writers never deadlock."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


async def _run(fn, *args):
    """Run blocking SQLite work off the event loop, on a thread-local connection."""
    return await asyncio.to_thread(lambda: fn(_connect(), *args))


# Time spent in each engine method, in this process: exposed by info() (GET /api/v1/status), which is how
# benchmarks/argilla_engine.py measures the engine's share of a request.
STATS: dict[str, dict[str, float]] = {}


def _timed(method):
    name = method.__name__

    @functools.wraps(method)
    async def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return await method(*args, **kwargs)
        finally:
            entry = STATS.setdefault(name, {"calls": 0, "seconds": 0.0})
            entry["calls"] += 1
            entry["seconds"] += time.perf_counter() - start

    return wrapper


# --------------------------------------------------------------------------------------------------
# Plain-data views of the ORM objects. They are built on the event loop (attribute access may not lazy
# load there) and only touch what the Elasticsearch engine touches, which the server preloads.


def _ts(value: datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:  # argilla-server stores naive UTC datetimes
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def _enum(value: Any) -> Any:
    return getattr(value, "value", value)


def _scalars(value: Any) -> list[Any]:
    """The filterable scalars in a value: itself, or the scalar items of a list (dicts are skipped,
    like Elasticsearch's disabled objects for ranking/span answers)."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, (str, int, float, bool))]
    if isinstance(value, (str, int, float, bool)):
        return [value]
    return []


def _term_num(value: Any) -> tuple[str, float | None]:
    """The keyword form (as Elasticsearch's keyword of a JSON value) and the numeric form, if any."""
    if isinstance(value, bool):
        return ("true" if value else "false"), None
    if isinstance(value, (int, float)):
        return str(value), float(value)
    return str(value), None


def _response_doc(response: Response) -> dict:
    return {
        "id": str(response.id),
        "user": str(response.user_id),
        "status": str(_enum(response.status)),
        "values": {q: (v or {}).get("value") for q, v in (response.values or {}).items()},
    }


def _suggestion_doc(suggestion: Suggestion) -> dict:
    return {
        "question": suggestion.question.name,
        "value": suggestion.value,
        "score": suggestion.score,
        "agent": suggestion.agent,
        "type": _enum(suggestion.type),
    }


def _field_text(value: Any, kind: str) -> str | None:
    if value is None:
        return None
    if kind == "chat":
        if isinstance(value, list):
            return "\n".join(str(m.get("content", "")) if isinstance(m, dict) else str(m) for m in value)
        return str(value)
    if kind == "custom" and not isinstance(value, str):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def _record_doc(record: Record) -> dict:
    return {
        "id": str(record.id),
        "external_id": record.external_id,
        "status": str(_enum(record.status)) if record.status is not None else None,
        "inserted_at": _ts(record.inserted_at),
        "updated_at": _ts(record.updated_at),
        "fields": dict(record.fields or {}),
        "metadata": dict(record.metadata_ or {}),
        "responses": [_response_doc(r) for r in (record.responses or [])],
        "suggestions": [_suggestion_doc(s) for s in (record.suggestions or [])],
        "vectors": [(str(v.vector_settings_id), v.value) for v in (record.vectors or [])],
    }


def _fields_spec(dataset: Dataset) -> dict:
    """Field name -> (FTS column or None, type). Image fields are not searchable (as in Elasticsearch)."""
    spec, col = {}, 0
    for field in sorted(dataset.fields, key=lambda f: f.name):
        kind = str(field.settings.get("type"))
        if kind in ("text", "chat", "custom"):
            spec[field.name] = [f"c{col}", kind]
            col += 1
        else:
            spec[field.name] = [None, kind]
    return spec


# --------------------------------------------------------------------------------------------------
# Dataset registry


@dataclass
class _DatasetInfo:
    ds: int
    fields: dict  # name -> [column | None, type]

    @property
    def fts(self) -> str:
        return f"fts_{self.ds}"

    @property
    def columns(self) -> list[str]:
        return [c for c, _ in self.fields.values() if c]


def _get_dataset(conn: sqlite3.Connection, dataset_id: str) -> _DatasetInfo | None:
    row = conn.execute("SELECT ds, fields FROM datasets WHERE id=?", (dataset_id,)).fetchone()
    return _DatasetInfo(row[0], json.loads(row[1])) if row else None


def _create_dataset(conn: sqlite3.Connection, dataset_id: str, spec: dict) -> _DatasetInfo:
    existing = _get_dataset(conn, dataset_id)
    if existing is not None:
        return existing
    ds = conn.execute(
        "INSERT INTO datasets (id, fields) VALUES (?, ?)", (dataset_id, json.dumps(spec))
    ).lastrowid
    info = _DatasetInfo(ds, spec)
    cols = ", ".join(info.columns) or "c_empty"
    conn.execute(
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {info.fts} USING fts5({cols}, tokenize='unicode61 remove_diacritics 2')"
    )
    return info


def _require_dataset(conn: sqlite3.Connection, dataset_id: str) -> _DatasetInfo:
    info = _get_dataset(conn, dataset_id)
    if info is None:
        raise ValueError(f"dataset {dataset_id} has no search index (is it published?)")
    return info


def _delete_rids(
    conn: sqlite3.Connection, info: _DatasetInfo, rids: list[int], keep_record: bool
) -> set[str]:
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


def _bump_vectors(conn: sqlite3.Connection, vector_settings: Iterable[str]) -> None:
    conn.executemany(
        "INSERT INTO vector_versions (vs, version) VALUES (?, 1) "
        "ON CONFLICT(vs) DO UPDATE SET version = version + 1",
        [(vs,) for vs in vector_settings],
    )


def _response_rows(ds: int, rid: int, resp: dict) -> list[tuple]:
    rows = []
    for question, value in resp["values"].items():
        for scalar in _scalars(value):
            term, num = _term_num(scalar)
            rows.append((ds, rid, f"r:{question}", term, num, resp["user"], resp["id"]))
    return rows


def _suggestion_rows(ds: int, rid: int, sug: dict) -> list[tuple]:
    rows = []
    for prop in ("value", "score", "agent", "type"):
        for scalar in _scalars(sug[prop]):
            term, num = _term_num(scalar)
            rows.append((ds, rid, f"s:{sug['question']}:{prop}", term, num, None, None))
    return rows


def _index_docs(conn: sqlite3.Connection, dataset_id: str, spec: dict, docs: list[dict]) -> None:
    with _Tx(conn):
        info = _get_dataset(conn, dataset_id) or _create_dataset(conn, dataset_id, spec)
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
        touched = _delete_rids(conn, info, list(existing.values()), keep_record=True)

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
                for scalar in _scalars(value):
                    term, num = _term_num(scalar)
                    props.append((ds, rid, f"m:{name}", term, num, None, None))
            for sug in doc["suggestions"]:
                props.extend(_suggestion_rows(ds, rid, sug))
            for resp in doc["responses"]:
                responses.append((resp["id"], ds, rid, resp["user"], resp["status"]))
                props.extend(_response_rows(ds, rid, resp))
            if fts_cols:
                texts = [_field_text(doc["fields"].get(name), kind) for name, _, kind in fts_cols]
                if any(texts):
                    fts.append((rid, *texts))
            for vs, value in doc["vectors"]:
                if value:
                    vectors.append((vs, rid, ds, np.asarray(value, dtype=np.float32).tobytes()))
                    touched.add(vs)

        conn.executemany(
            "INSERT INTO props (ds, rid, key, term, num, user, rsp) VALUES (?,?,?,?,?,?,?)", props
        )
        _note_multikeys(conn, [p for p in props if p[6] is None])
        conn.executemany(
            "INSERT OR REPLACE INTO responses (id, ds, rid, user, status) VALUES (?,?,?,?,?)", responses
        )
        if fts:
            cols = ", ".join(c for _, c, _ in fts_cols)
            marks = ",".join("?" * (len(fts_cols) + 1))
            conn.executemany(f"INSERT INTO {info.fts} (rowid, {cols}) VALUES ({marks})", fts)
        conn.executemany("INSERT OR REPLACE INTO vectors (vs, rid, ds, vec) VALUES (?,?,?,?)", vectors)
        _bump_vectors(conn, touched)


def _note_multikeys(conn: sqlite3.Connection, rows: list[tuple]) -> None:
    """Remember metadata/suggestion keys that a record holds several values for (see _index_ordered_page)."""
    seen: set[tuple[int, str]] = set()
    multi: set[tuple[int, str]] = set()
    for _ds, rid, key, *_ in rows:
        (multi if (rid, key) in seen else seen).add((rid, key))
    if multi:
        conn.executemany(
            "INSERT OR IGNORE INTO multikeys (ds, key) VALUES (?, ?)", {(rows[0][0], key) for _, key in multi}
        )


_analyzed_at: dict[tuple[int, str], int] = {}


def _maybe_analyze(conn: sqlite3.Connection) -> None:
    """Refresh SQLite's planner statistics when the index has grown by half since the last time.
    Without them SQLite scans a whole dataset and probes the filter lists instead of reading the (much
    smaller) lists; a sampled ANALYZE costs ~0.15 s at 100k records and runs about ten times up to there."""
    key = (os.getpid(), str(db_path()))
    size = conn.execute("SELECT COALESCE(MAX(rid), 0) FROM records").fetchone()[0]
    if key not in _analyzed_at:
        has_stats = conn.execute("SELECT 1 FROM sqlite_master WHERE name='sqlite_stat1'").fetchone()
        _analyzed_at[key] = size if has_stats else 0
    if size >= 1.5 * _analyzed_at[key] + 1000:
        conn.execute("PRAGMA analysis_limit=400")
        conn.execute("ANALYZE")
        _analyzed_at[key] = size


def _rid(conn: sqlite3.Connection, record_id: str) -> tuple[int, int] | None:
    row = conn.execute("SELECT rid, ds FROM records WHERE id=?", (record_id,)).fetchone()
    return (row[0], row[1]) if row else None


# --------------------------------------------------------------------------------------------------
# Text queries: Elasticsearch's simple_query_string (default operator AND) translated to FTS5.
# Supported: words, "phrases", prefix*, -negation, +, | (or) and parentheses; ~N fuzziness is ignored.

_TOKEN = re.compile(r'\s*(?:(")((?:[^"]|"")*)"(?:~\d+)?|([()|+\-])|([^\s()|"]+))')


def _fts_phrase(text: str, prefix: bool = False) -> str | None:
    if not re.search(r"\w", text):
        return None
    quoted = '"' + text.replace('"', '""') + '"'
    return quoted + " *" if prefix else quoted


def _parse_text_query(q: str) -> tuple[str | None, str | None]:
    """-> (positive FTS5 expression or None, negative-only FTS5 expression or None)."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(q):
        m = _TOKEN.match(q, pos)
        if not m or m.end() == pos:
            break
        pos = m.end()
        if m.group(1):
            tokens.append(("phrase", m.group(2).replace('""', '"')))
        elif m.group(3):
            tokens.append(("op", m.group(3)))
        elif m.group(4):
            tokens.append(("word", m.group(4)))
    tokens_iter = iter([*tokens, ("end", "")])
    current = [next(tokens_iter)]

    def peek():
        return current[0]

    def advance():
        current[0] = next(tokens_iter)

    def parse_or():
        alts = [parse_and()]
        while peek() == ("op", "|"):
            advance()
            alts.append(parse_and())
        pos_alts = [p for p, _ in alts if p]
        if len(alts) == 1:
            return alts[0]
        # Alternatives that only exclude terms can't be expressed in FTS5; they are dropped.
        return ("(" + ") OR (".join(pos_alts) + ")" if pos_alts else None), None

    def parse_and():
        positives, negatives = [], []
        while peek()[0] != "end" and peek() not in (("op", "|"), ("op", ")")):
            negate = False
            while peek()[0] == "op" and peek()[1] in "+-":
                negate = negate or peek()[1] == "-"
                advance()
            kind, text = peek()
            if kind == "op" and text == "(":
                advance()
                expr = parse_or()
                if peek() == ("op", ")"):
                    advance()
            elif kind in ("word", "phrase"):
                advance()
                if kind == "word":
                    word = re.sub(r"~\d*$", "", text)
                    expr = (_fts_phrase(word.rstrip("*"), prefix=word.endswith("*")), None)
                else:
                    expr = (_fts_phrase(text), None)
            else:
                if kind == "op":
                    advance()
                continue
            p, n = expr
            if negate:
                if p:
                    negatives.append(p)
            else:
                if p:
                    positives.append(p)
                if n:
                    negatives.append(n)
        if positives:
            out = "(" + " AND ".join(positives) + ")"
            for n in negatives:
                out += f" NOT ({n})"
            return out, None
        return None, (" OR ".join(f"({n})" for n in negatives) if negatives else None)

    return parse_or()


# --------------------------------------------------------------------------------------------------
# Filters and sorts -> SQL over `records r`


def _parse_date(value: Any) -> float:
    """A date bound as Elasticsearch reads it: ISO 8601 (naive = UTC) or epoch milliseconds."""
    if isinstance(value, (int, float)):
        return float(value) / 1000.0
    text = str(value).strip()
    if re.fullmatch(r"-?\d+(\.\d+)?", text):
        return float(text) / 1000.0
    parsed = datetime.fromisoformat(text)  # 3.11 reads "Z" and offsets
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


_RECORD_COLUMNS = {
    "id": "id",
    "external_id": "external_id",
    "status": "status",
    "inserted_at": "inserted_at",
    "updated_at": "updated_at",
}


def _prop_key(scope) -> str:
    if isinstance(scope, MetadataFilterScope):
        return f"m:{scope.metadata_property}"
    if isinstance(scope, SuggestionFilterScope):
        prop = scope.property if scope.property not in (None, "None") else "value"
        return f"s:{scope.question}:{prop}"
    raise ValueError(f"no property key for scope {scope}")


def _range_sql(column: str, ge: Any, le: Any, convert=float) -> tuple[str, list]:
    parts, params = [], []
    if ge is not None:
        parts.append(f"{column} >= ?")
        params.append(convert(ge))
    if le is not None:
        parts.append(f"{column} <= ?")
        params.append(convert(le))
    return " AND ".join(parts) or "1", params


def _in_sql(column: str, values: list) -> tuple[str, list]:
    return f"{column} IN ({','.join('?' * len(values))})", list(values)


def _filter_sql(f: Filter, ds: int) -> tuple[str, list]:
    if isinstance(f, AndFilter):
        parts = [_filter_sql(sub, ds) for sub in f.filters]
        if not parts:
            return "1", []
        return " AND ".join(f"({p})" for p, _ in parts), [x for _, ps in parts for x in ps]
    scope = f.scope
    if isinstance(scope, RecordFilterScope):
        column = _RECORD_COLUMNS.get(scope.property)
        if column is None:
            raise ValueError(f"cannot filter on record property {scope.property!r}")
        dated = column in ("inserted_at", "updated_at")
        if isinstance(f, TermsFilter):
            values = [_parse_date(v) for v in f.values] if dated else [str(v) for v in f.values]
            return _in_sql(f"r.{column}", values)
        return _range_sql(f"r.{column}", f.ge, f.le, _parse_date if dated else float)
    if isinstance(scope, (MetadataFilterScope, SuggestionFilterScope)):
        if isinstance(f, TermsFilter):
            cond, params = _in_sql("term", [str(v) for v in f.values])
        else:
            cond, params = _range_sql("num", f.ge, f.le)
        return f"r.rid IN (SELECT rid FROM props WHERE ds=? AND key=? AND {cond})", [
            ds,
            _prop_key(scope),
            *params,
        ]
    if isinstance(scope, ResponseFilterScope):
        return _response_filter_sql(f, scope, ds)
    raise ValueError(f"cannot process filter scope {scope}")


def _response_filter_sql(f: Filter, scope: ResponseFilterScope, ds: int) -> tuple[str, list]:
    user = str(scope.user.id) if scope.user is not None else None
    if scope.question:
        if isinstance(f, TermsFilter):
            cond, params = _in_sql("term", [str(v) for v in f.values])
        else:
            cond, params = _range_sql("num", f.ge, f.le)
        sql = f"r.rid IN (SELECT rid FROM props WHERE ds=? AND key=? AND {cond}"
        params = [ds, f"r:{scope.question}", *params]
        if user:
            sql += " AND user=?"
            params.append(user)
        return sql + ")", params
    if scope.property == "status" and isinstance(f, TermsFilter):
        values = [str(_enum(v)) for v in f.values]
        parts, params = [], []
        if "pending" in values:
            # pending = no response from this user (or, without a user, no response at all)
            if user:
                parts.append("r.rid NOT IN (SELECT rid FROM responses WHERE ds=? AND user=?)")
                params += [ds, user]
            else:
                parts.append("r.rid NOT IN (SELECT rid FROM responses WHERE ds=?)")
                params.append(ds)
        others = [v for v in values if v != "pending"]
        if others:
            cond, ps = _in_sql("status", others)
            sql = f"r.rid IN (SELECT rid FROM responses WHERE ds=? AND {cond}"
            ps = [ds, *ps]
            if user:
                sql += " AND user=?"
                ps.append(user)
            parts.append(sql + ")")
            params += ps
        return "(" + " OR ".join(parts) + ")", params
    raise ValueError(f"cannot process response filter scope {scope}")


def _sort_sql(order: Order) -> tuple[str, list]:
    desc = _enum(order.order) == SortOrder.desc.value
    direction = "DESC" if desc else "ASC"
    agg = "MAX" if desc else "MIN"  # Elasticsearch's default sort mode for multi-valued fields
    scope = order.scope
    if isinstance(scope, RecordFilterScope):
        column = _RECORD_COLUMNS.get(scope.property)
        if column is None:
            raise ValueError(f"cannot sort by record property {scope.property!r}")
        return f"r.{column} {direction} NULLS LAST", []
    if isinstance(scope, (MetadataFilterScope, SuggestionFilterScope)):
        expr = f"(SELECT {agg}(COALESCE(num, term)) FROM props p WHERE p.rid=r.rid AND p.key=?)"
        return f"{expr} {direction} NULLS LAST", [_prop_key(scope)]
    if isinstance(scope, ResponseFilterScope):
        user_sql, params = "", []
        if scope.user is not None:
            user_sql, params = " AND x.user=?", [str(scope.user.id)]
        if scope.question:
            # average over the responses, as Elasticsearch's nested sort with mode=avg
            expr = f"(SELECT COALESCE(AVG(x.num), {agg}(x.term)) FROM props x WHERE x.rid=r.rid AND x.key=?{user_sql})"
            return f"{expr} {direction} NULLS LAST", [f"r:{scope.question}", *params]
        expr = f"(SELECT {agg}(x.status) FROM responses x WHERE x.rid=r.rid{user_sql})"
        return f"{expr} {direction} NULLS LAST", params
    raise ValueError(f"cannot sort by scope {scope}")


def _user_seed(user_id: Any) -> int:
    return int(hashlib.sha1(str(user_id).encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


@dataclass
class _Query:
    """The FROM/WHERE part of a search over `records r`; `scored` when the text query's bm25 is joined
    (as `t.score`), which is only needed to order by relevance."""

    ctes: str
    where: str
    params: list
    scored: bool
    ds: int = 0
    empty: bool = False

    @property
    def source(self) -> str:
        return "records r JOIN t ON t.rid = r.rid" if self.scored else "records r"


def _build_query(
    conn, dataset_id: str, text: TextQuery | None, filter: Filter | None, scored: bool = False
) -> _Query:
    info = _require_dataset(conn, dataset_id)
    where, params = ["r.ds=?"], [info.ds]
    ctes, cte_params = "", []
    if text is None:
        scored = False
    else:
        positive, negative = _parse_text_query(text.q)
        if text.field:
            column = (info.fields.get(text.field) or [None])[0]
            if column is None:
                raise ValueError(f"field {text.field!r} is not searchable in dataset {dataset_id}")
            positive = f"{{{column}}} : ({positive})" if positive else None
            negative = f"{{{column}}} : ({negative})" if negative else None
        if not info.columns or (positive is None and negative is None):
            return _Query("", "0", [], False, info.ds, empty=True)
        scored = scored and positive is not None
        if scored:
            ctes = (
                f"WITH t AS MATERIALIZED (SELECT rowid AS rid, bm25({info.fts}) AS score "
                f"FROM {info.fts} WHERE {info.fts} MATCH ?) "
            )
            cte_params = [positive]
        elif positive:
            where.append(f"r.rid IN (SELECT rowid FROM {info.fts} WHERE {info.fts} MATCH ?)")
            params.append(positive)
        if negative:
            where.append(f"r.rid NOT IN (SELECT rowid FROM {info.fts} WHERE {info.fts} MATCH ?)")
            params.append(negative)
    if filter is not None:
        sql, ps = _filter_sql(filter, info.ds)
        where.append(f"({sql})")
        params += ps
    return _Query(ctes, " AND ".join(where), cte_params + params, scored, info.ds)


# From this many matches on, a sort whose first key is a single-valued metadata or suggestion property
# walks that property's index in order instead of sorting every match (100k records: ~200 ms -> a few ms).
INDEX_SORT_MIN_TOTAL = 2000
INDEX_SORT_MIN_FRACTION = 0.02  # ... and from this share of the dataset


def _search(conn, dataset_id, text, filter, sort, offset, limit, user_id) -> SearchResponses:
    counting = _build_query(conn, dataset_id, text, filter)
    if counting.empty:
        return SearchResponses(items=[], total=0)
    total = conn.execute(
        f"SELECT COUNT(*) FROM records r WHERE {counting.where}", counting.params
    ).fetchone()[0]
    if total == 0 or offset >= total or limit <= 0:
        return SearchResponses(items=[], total=total)
    if sort and total >= INDEX_SORT_MIN_TOTAL:
        rows = _index_ordered_page(conn, dataset_id, text, filter, sort, offset, limit, total)
        if rows is not None:
            return SearchResponses(
                items=[SearchResponseItem(record_id=r, score=None) for r in rows], total=total
            )

    # Relevance order needs every match's bm25; with an explicit sort (as Elasticsearch) scores are null.
    q = (
        _build_query(conn, dataset_id, text, filter, scored=not sort)
        if text is not None and not sort
        else counting
    )
    order_parts, order_params = [], []
    for order in sort or []:
        sql, ps = _sort_sql(order)
        order_parts.append(sql)
        order_params += ps
    if not order_parts:
        if q.scored:
            order_parts.append("t.score ASC")  # bm25: lower is more relevant
        elif user_id is not None:
            # Elasticsearch orders each user's records by a random score seeded with the user id, so that
            # annotators spread over the dataset; a seeded XOR of a stored random key does the same.
            seed = _user_seed(user_id)
            ids = _user_order_page(conn, q, seed, offset, limit, total) if USER_ORDER_WINDOWS else None
            if ids is not None:
                return SearchResponses(
                    items=[SearchResponseItem(record_id=r, score=None) for r in ids], total=total
                )
            order_parts.append("((r.rnd | ?) - (r.rnd & ?))")
            order_params += [seed, seed]
    order_parts.append("r.rid ASC")
    score = "-t.score" if q.scored else "NULL"
    rows = conn.execute(
        f"{q.ctes}SELECT r.id, {score} FROM {q.source} WHERE {q.where} "
        f"ORDER BY {', '.join(order_parts)} LIMIT ? OFFSET ?",
        q.params + order_params + [limit, offset],
    ).fetchall()
    return SearchResponses(items=[SearchResponseItem(record_id=rid, score=s) for rid, s in rows], total=total)


USER_ORDER_WINDOWS = True


def _user_order_page(conn, q: _Query, seed: int, offset: int, limit: int, total: int) -> list[str] | None:
    """A page in a user's random order without sorting every match (the annotator's queue, on every
    navigation). Order key k = rnd XOR seed; the records with k < 2^(31-b) are exactly those whose rnd
    shares its top b bits with the seed, an index range on (ds, [status,] rnd). When that window holds at
    least offset+limit matches, the page is inside it; else the window is widened (or None: sort all)."""
    need = offset + limit
    bits = min(24, int(np.log2(max(total / (4 * need), 1.0))))
    while bits >= 2:
        shift = 31 - bits
        lo = (seed >> shift) << shift
        hi = lo + (1 << shift) - 1
        where = f"{q.where} AND r.rnd BETWEEN ? AND ?"
        params = [*q.params, lo, hi]
        if conn.execute(f"SELECT COUNT(*) FROM records r WHERE {where}", params).fetchone()[0] >= need:
            return [
                row[0]
                for row in conn.execute(
                    f"SELECT r.id FROM records r WHERE {where} ORDER BY ((r.rnd | ?) - (r.rnd & ?)), r.rid ASC "
                    "LIMIT ? OFFSET ?",
                    [*params, seed, seed, limit, offset],
                )
            ]
        bits -= 3
    return None


def _index_ordered_page(
    conn, dataset_id: str, text, filter, sort: list[Order], offset: int, limit: int, total: int
) -> list[str] | None:
    """A page sorted by a metadata/suggestion property, read in that property's index order: first the
    records that have a value, then (NULLS LAST) those that don't. None when the shortcut doesn't apply
    (another kind of first key, a property with several values per record, or too few matches)."""
    first, rest = sort[0], sort[1:]
    if not isinstance(first.scope, (MetadataFilterScope, SuggestionFilterScope)):
        return None
    info = _require_dataset(conn, dataset_id)
    key = _prop_key(first.scope)
    if conn.execute("SELECT 1 FROM multikeys WHERE ds=? AND key=?", (info.ds, key)).fetchone():
        return None
    size = conn.execute("SELECT COUNT(*) FROM records WHERE ds=?", (info.ds,)).fetchone()[0]
    if total < INDEX_SORT_MIN_FRACTION * size:
        return None  # few matches: reading them and sorting is cheaper than walking the index
    numeric = (
        conn.execute(
            "SELECT 1 FROM props WHERE ds=? AND key=? AND num IS NOT NULL LIMIT 1", (info.ds, key)
        ).fetchone()
        is not None
    )
    column, index = ("num", "props_num") if numeric else ("term", "props_term")

    # A filter on the sorted property itself becomes a bound of the index walk (exact: one value per record).
    value_sql, value_params, others = [], [], []
    for f in filter.filters if isinstance(filter, AndFilter) else [filter] if filter else []:
        same = isinstance(f.scope, (MetadataFilterScope, SuggestionFilterScope)) and _prop_key(f.scope) == key
        if same and isinstance(f, TermsFilter) and column == "term":
            sql, ps = _in_sql("p1.term", [str(v) for v in f.values])
        elif same and not isinstance(f, TermsFilter) and column == "num":
            sql, ps = _range_sql("p1.num", f.ge, f.le)
        else:
            others.append(f)
            continue
        value_sql.append(sql)
        value_params += ps
    q = _build_query(conn, dataset_id, text, AndFilter(others) if others else None)

    direction = "DESC" if _enum(first.order) == SortOrder.desc.value else "ASC"
    rest_parts, rest_params = [], []
    for order in rest:
        sql, ps = _sort_sql(order)
        rest_parts.append(sql)
        rest_params += ps
    # Same order as the generic path (value, other keys, rid ascending); SQLite sorts only within runs of
    # equal values ("temp b-tree for right part of ORDER BY"), so the scan still stops after the page.
    order_by = ", ".join([f"p1.{column} {direction}", *rest_parts, "p1.rid ASC"])
    # INDEXED BY + CROSS JOIN + `+p1.rid` pin the plan: walk the (ds, key, value, rid) index in order and
    # check each record's other filters (SQLite's planner would otherwise read the filter lists and sort).
    with_value = (
        f"FROM props p1 INDEXED BY {index} CROSS JOIN records r WHERE r.rid = +p1.rid AND p1.ds=? "
        f"AND p1.key=? AND p1.{column} IS NOT NULL AND {' AND '.join([*value_sql, q.where])}"
    )
    params = [info.ds, key, *value_params, *q.params]
    ids = [
        r[0]
        for r in conn.execute(
            f"SELECT r.id {with_value} ORDER BY {order_by} LIMIT ? OFFSET ?",
            params + rest_params + [limit, offset],
        )
    ]
    if len(ids) == limit or value_sql:  # a bound on the value excludes records without one
        return ids
    have = conn.execute(f"SELECT COUNT(*) {with_value}", params).fetchone()[0]
    tail_order = ", ".join([*rest_parts, "r.rid ASC"])
    ids += [
        r[0]
        for r in conn.execute(
            f"SELECT r.id FROM records r WHERE {q.where} AND r.rid NOT IN "
            f"(SELECT rid FROM props WHERE ds=? AND key=? AND {column} IS NOT NULL) "
            f"ORDER BY {tail_order} LIMIT ? OFFSET ?",
            [*q.params, info.ds, key, *rest_params, limit - len(ids), max(0, offset - have)],
        )
    ]
    return ids
    have = conn.execute(f"SELECT COUNT(*) {with_value}", params).fetchone()[0]
    tail_order = ", ".join([*rest_parts, "r.rid ASC"])
    ids += [
        r[0]
        for r in conn.execute(
            f"SELECT r.id FROM records r WHERE {q.where} AND r.rid NOT IN "
            f"(SELECT rid FROM props WHERE ds=? AND key=? AND {column} IS NOT NULL) "
            f"ORDER BY {tail_order} LIMIT ? OFFSET ?",
            [*q.params, q.ds, key, *rest_params, limit - len(ids), max(0, offset - have)],
        )
    ]
    return ids


# --------------------------------------------------------------------------------------------------
# Vectors: a per-process cache of normalised matrices, refreshed when the version row changes.

_vector_cache: dict[str, tuple[int, np.ndarray, np.ndarray]] = {}
_vector_lock = threading.Lock()


def _vector_matrix(conn, vs: str) -> tuple[np.ndarray, np.ndarray]:
    row = conn.execute("SELECT version FROM vector_versions WHERE vs=?", (vs,)).fetchone()
    version = row[0] if row else 0
    with _vector_lock:
        cached = _vector_cache.get(vs)
        if cached and cached[0] == version:
            return cached[1], cached[2]
    rows = conn.execute("SELECT rid, vec FROM vectors WHERE vs=? ORDER BY rid", (vs,)).fetchall()
    if rows:
        rids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1).copy()
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        matrix /= np.where(norms == 0, 1.0, norms)
    else:
        rids, matrix = np.empty(0, dtype=np.int64), np.empty((0, 0), dtype=np.float32)
    with _vector_lock:
        _vector_cache[vs] = (version, rids, matrix)
    return rids, matrix


def _post_filter(conn, q: _Query, rids: np.ndarray, scores: np.ndarray, k: int) -> bool:
    """Check the filters on the best-scored candidates only. True (and every other score set to -inf) when
    at least k of the top max(4k, 500) pass: then they hold the filtered top k. False: filter everything
    first. Broad filters (the annotator's pending records) cost one small query instead of 10^5 rows."""
    budget = min(len(scores), max(4 * k, 500))
    top = np.argpartition(-scores, budget - 1)[:budget] if budget < len(scores) else np.arange(len(scores))
    top = top[scores[top] > -np.inf]
    chunk = [int(x) for x in rids[top]]
    if not chunk:
        return False
    ok = {
        r[0]
        for r in conn.execute(
            f"SELECT r.rid FROM records r WHERE {q.where} AND r.rid IN ({','.join('?' * len(chunk))})",
            [*q.params, *chunk],
        )
    }
    passed = [i for i in top if int(rids[i]) in ok]
    if len(passed) < k and budget < len(scores):
        return False
    keep = np.zeros(len(scores), dtype=bool)
    keep[passed] = True
    scores[~keep] = -np.inf
    return True


def _similarity(
    conn, dataset_id, vs, value, exclude_id, text, filter, k, order, threshold
) -> SearchResponses:
    rids, matrix = _vector_matrix(conn, vs)
    if len(rids) == 0:
        return SearchResponses(items=[], total=0)
    query = np.asarray(value, dtype=np.float32)
    if matrix.shape[1] != query.shape[0]:
        raise ValueError(f"vector has {query.shape[0]} dimensions, the index has {matrix.shape[1]}")
    norm = float(np.linalg.norm(query)) or 1.0
    cos = matrix @ (query / norm)
    # Elasticsearch's cosine score is (1 + cos) / 2; "least similar" searches with the negated vector.
    scores = (1.0 - cos) / 2.0 if _enum(order) == SimilarityOrder.least_similar.value else (1.0 + cos) / 2.0
    if exclude_id is not None:
        found = _rid(conn, exclude_id)
        if found is not None:
            scores[rids == found[0]] = -np.inf
    if text is not None or filter is not None:
        q = _build_query(conn, dataset_id, text, filter)
        if q.empty:
            return SearchResponses(items=[], total=0)
        if not _post_filter(conn, q, rids, scores, k):
            allowed = np.fromiter(
                (r[0] for r in conn.execute(f"SELECT r.rid FROM records r WHERE {q.where}", q.params)),
                dtype=np.int64,
            )
            scores[~np.isin(rids, allowed)] = -np.inf
    candidates = int(np.count_nonzero(scores > -np.inf))
    k = min(k, candidates)
    if k <= 0:
        return SearchResponses(items=[], total=0)
    top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    top = top[np.lexsort((rids[top], -scores[top]))][:k]
    if threshold is not None:
        top = top[scores[top] >= threshold]
    chosen = rids[top]
    id_by_rid = {}
    for start in range(0, len(chosen), 500):
        chunk = [int(x) for x in chosen[start : start + 500]]
        id_by_rid.update(
            conn.execute(
                f"SELECT rid, id FROM records WHERE rid IN ({','.join('?' * len(chunk))})", chunk
            ).fetchall()
        )
    items = [
        SearchResponseItem(record_id=id_by_rid[int(rid)], score=float(scores[i]))
        for rid, i in zip(chosen, top)
        if int(rid) in id_by_rid
    ]
    return SearchResponses(items=items, total=len(items))


# --------------------------------------------------------------------------------------------------
# The engine


@SearchEngine.register(engine_name=ENGINE_NAME)
class SQLiteSearchEngine(SearchEngine):
    """argilla-server's SearchEngine on SQLite + numpy (see the module docstring)."""

    @classmethod
    async def new_instance(cls) -> SQLiteSearchEngine:
        return cls()

    async def close(self):
        pass  # connections are per thread and reused across requests

    async def ping(self) -> bool:
        try:
            return await _run(lambda c: c.execute("SELECT 1").fetchone()[0] == 1)
        except sqlite3.Error:
            return False

    async def info(self) -> dict:
        return {
            "name": ENGINE_NAME,
            "version": sqlite3.sqlite_version,
            "path": str(db_path()),
            "stats": {k: dict(v) for k, v in STATS.items()},
        }

    # --- datasets ---------------------------------------------------------------------------------

    @_timed
    async def create_index(self, dataset: Dataset):
        spec, dataset_id = _fields_spec(dataset), str(dataset.id)

        def work(conn):
            with _Tx(conn):
                _create_dataset(conn, dataset_id, spec)

        await _run(work)

    @_timed
    async def delete_index(self, dataset: Dataset):
        dataset_id = str(dataset.id)

        def work(conn):
            with _Tx(conn):
                info = _get_dataset(conn, dataset_id)
                if info is None:
                    return
                vs = [r[0] for r in conn.execute("SELECT DISTINCT vs FROM vectors WHERE ds=?", (info.ds,))]
                for table in ("props", "responses", "vectors", "records", "multikeys"):
                    conn.execute(f"DELETE FROM {table} WHERE ds=?", (info.ds,))
                conn.execute(f"DROP TABLE IF EXISTS {info.fts}")
                conn.execute("DELETE FROM datasets WHERE ds=?", (info.ds,))
                _bump_vectors(conn, vs)

        await _run(work)

    @_timed
    async def configure_metadata_property(self, dataset: Dataset, metadata_property: MetadataProperty):
        pass  # every metadata value is indexed with both its keyword and numeric form: nothing to map

    @_timed
    async def configure_index_vectors(self, vector_settings: VectorSettings):
        pass  # vectors are stored per vector settings id; dimensions are checked at query time

    # --- records ----------------------------------------------------------------------------------

    @_timed
    async def index_records(self, dataset: Dataset, records: Iterable[Record]):
        docs = [_record_doc(r) for r in records]
        if not docs:
            return
        dataset_id = str(dataset.id)
        spec = None

        def work(conn):
            info = _get_dataset(conn, dataset_id)
            _index_docs(conn, dataset_id, info.fields if info else spec, docs)
            _maybe_analyze(conn)

        # Datasets indexed before this engine existed get their mapping here (fields are preloaded).
        if await _run(lambda c: _get_dataset(c, dataset_id)) is None:
            spec = _fields_spec(dataset)
        await _run(work)

    @_timed
    async def partial_record_update(self, record: Record, **update):
        record_id = str(record.id)
        columns = {}
        for key, value in update.items():
            if key in ("status", "external_id"):
                columns[key] = None if value is None else str(_enum(value))
            elif key in ("inserted_at", "updated_at"):
                columns[key] = _ts(value) if isinstance(value, datetime) else _parse_date(value)
            else:
                _LOG.warning("partial update of %r is not indexed by %s", key, ENGINE_NAME)
        if not columns:
            return

        def work(conn):
            sets = ", ".join(f"{k}=?" for k in columns)
            with _Tx(conn):
                conn.execute(f"UPDATE records SET {sets} WHERE id=?", [*columns.values(), record_id])

        await _run(work)

    @_timed
    async def delete_records(self, dataset: Dataset, records: Iterable[Record]):
        ids, dataset_id = [str(r.id) for r in records], str(dataset.id)
        if not ids:
            return

        def work(conn):
            with _Tx(conn):
                info = _get_dataset(conn, dataset_id)
                if info is None:
                    return
                rids = []
                for start in range(0, len(ids), 500):
                    chunk = ids[start : start + 500]
                    rids += [
                        r[0]
                        for r in conn.execute(
                            f"SELECT rid FROM records WHERE id IN ({','.join('?' * len(chunk))})", chunk
                        )
                    ]
                _bump_vectors(conn, _delete_rids(conn, info, rids, keep_record=False))

        await _run(work)

    # --- responses and suggestions ----------------------------------------------------------------

    @_timed
    async def update_record_response(self, response: Response):
        doc, record_id = _response_doc(response), str(response.record_id)

        def work(conn):
            with _Tx(conn):
                found = _rid(conn, record_id)
                if found is None:
                    _LOG.warning("response %s for unindexed record %s", doc["id"], record_id)
                    return
                rid, ds = found
                conn.execute("DELETE FROM props WHERE rid=? AND rsp=?", (rid, doc["id"]))
                conn.execute(
                    "INSERT OR REPLACE INTO responses (id, ds, rid, user, status) VALUES (?,?,?,?,?)",
                    (doc["id"], ds, rid, doc["user"], doc["status"]),
                )
                conn.executemany(
                    "INSERT INTO props (ds, rid, key, term, num, user, rsp) VALUES (?,?,?,?,?,?,?)",
                    _response_rows(ds, rid, doc),
                )

        await _run(work)

    @_timed
    async def delete_record_response(self, response: Response):
        response_id, record_id = str(response.id), str(response.record_id)

        def work(conn):
            with _Tx(conn):
                found = _rid(conn, record_id)
                if found is not None:
                    conn.execute("DELETE FROM props WHERE rid=? AND rsp=?", (found[0], response_id))
                conn.execute("DELETE FROM responses WHERE id=?", (response_id,))

        await _run(work)

    @_timed
    async def update_record_suggestion(self, suggestion: Suggestion):
        doc, record_id = _suggestion_doc(suggestion), str(suggestion.record_id)

        def work(conn):
            with _Tx(conn):
                found = _rid(conn, record_id)
                if found is None:
                    return
                rid, ds = found
                keys = [f"s:{doc['question']}:{p}" for p in ("value", "score", "agent", "type")]
                conn.execute("DELETE FROM props WHERE rid=? AND key IN (?,?,?,?)", (rid, *keys))
                rows = _suggestion_rows(ds, rid, doc)
                conn.executemany(
                    "INSERT INTO props (ds, rid, key, term, num, user, rsp) VALUES (?,?,?,?,?,?,?)", rows
                )
                _note_multikeys(conn, rows)

        await _run(work)

    @_timed
    async def delete_record_suggestion(self, suggestion: Suggestion):
        question, record_id = suggestion.question.name, str(suggestion.record_id)

        def work(conn):
            with _Tx(conn):
                found = _rid(conn, record_id)
                if found is not None:
                    keys = [f"s:{question}:{p}" for p in ("value", "score", "agent", "type")]
                    conn.execute("DELETE FROM props WHERE rid=? AND key IN (?,?,?,?)", (found[0], *keys))

        await _run(work)

    # --- progress and metrics ---------------------------------------------------------------------

    @_timed
    async def get_dataset_progress(self, dataset: Dataset) -> dict:
        if dataset.is_draft:
            return {}
        dataset_id = str(dataset.id)

        def work(conn):
            info = _get_dataset(conn, dataset_id)
            if info is None:
                return {"total": 0}
            counts = dict(
                conn.execute(
                    "SELECT status, COUNT(*) FROM records WHERE ds=? AND status IS NOT NULL GROUP BY status",
                    (info.ds,),
                ).fetchall()
            )
            return {"total": sum(counts.values()), **counts}

        return await _run(work)

    @_timed
    async def get_dataset_user_progress(self, dataset: Dataset, user: User) -> dict:
        if dataset.is_draft:
            return {}
        dataset_id, user_id = str(dataset.id), str(user.id)

        def work(conn):
            info = _get_dataset(conn, dataset_id)
            if info is None:
                return {"total": 0}
            counts = dict(
                conn.execute(
                    "SELECT status, COUNT(*) FROM responses WHERE ds=? AND user=? GROUP BY status",
                    (info.ds, user_id),
                ).fetchall()
            )
            return {"total": sum(counts.values()), **counts}

        return await _run(work)

    @_timed
    async def compute_metrics_for(self, metadata_property: MetadataProperty) -> MetadataMetrics:
        dataset_id, key = str(metadata_property.dataset_id), f"m:{metadata_property.name}"
        kind = metadata_property.type

        def work(conn):
            info = _get_dataset(conn, dataset_id)
            ds = info.ds if info else -1
            if kind == MetadataPropertyType.terms:
                rows = conn.execute(
                    "SELECT term, COUNT(DISTINCT rid) AS n FROM props WHERE ds=? AND key=? AND term IS NOT NULL "
                    "GROUP BY term ORDER BY n DESC, term ASC",
                    (ds, key),
                ).fetchall()
                total = conn.execute(
                    "SELECT COUNT(*) FROM props WHERE ds=? AND key=? AND term IS NOT NULL", (ds, key)
                ).fetchone()[0]
                return TermsMetrics(
                    total=total, values=[TermsMetrics.TermCount(term=t, count=n) for t, n in rows]
                )
            low, high = conn.execute(
                "SELECT MIN(num), MAX(num) FROM props WHERE ds=? AND key=? AND num IS NOT NULL", (ds, key)
            ).fetchone()
            if kind == MetadataPropertyType.integer:
                return IntegerMetadataMetrics(
                    min=None if low is None else int(low), max=None if high is None else int(high)
                )
            return FloatMetadataMetrics(min=low, max=high)

        return await _run(work)

    # --- search -----------------------------------------------------------------------------------

    @_timed
    async def search(
        self,
        dataset: Dataset,
        query: TextQuery | str | None = None,
        filter: Filter | None = None,
        sort: list[Order] | None = None,
        offset: int = 0,
        limit: int = 100,
        user_id: str | None = None,
    ) -> SearchResponses:
        text = TextQuery(q=query) if isinstance(query, str) else query
        dataset_id = str(dataset.id)
        return await _run(_search, dataset_id, text, filter, sort, offset, limit, user_id)

    @_timed
    async def similarity_search(
        self,
        dataset: Dataset,
        vector_settings: VectorSettings,
        value: list[float] | None = None,
        record: Record | None = None,
        query: TextQuery | str | None = None,
        filter: Filter | None = None,
        max_results: int = 100,
        order: SimilarityOrder = SimilarityOrder.most_similar,
        threshold: float | None = None,
    ) -> SearchResponses:
        if bool(value) == bool(record):
            raise ValueError("Must provide either vector value or record to compute the similarity search")
        exclude_id = None
        if not value:
            exclude_id = str(record.id)
            value = record.vector_value_by_vector_settings(vector_settings)
        if not value:
            raise ValueError("Cannot find a vector value to apply with provided info")
        text = TextQuery(q=query) if isinstance(query, str) else query
        dataset_id, vs = str(dataset.id), str(vector_settings.id)
        return await _run(
            _similarity, dataset_id, vs, value, exclude_id, text, filter, max_results, order, threshold
        )
