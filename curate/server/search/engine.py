"""`SQLiteSearchEngine`: argilla-server's SearchEngine on SQLite + numpy, registered as ENGINE_NAME.

Importing this module registers the engine; argilla-server then picks it by ARGILLA_SEARCH_ENGINE.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import time
from collections.abc import Iterable
from datetime import datetime

from argilla_server.enums import MetadataPropertyType, SimilarityOrder
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
    Filter,
    FloatMetadataMetrics,
    IntegerMetadataMetrics,
    MetadataMetrics,
    Order,
    SearchEngine,
    SearchResponses,
    TermsMetrics,
    TextQuery,
)

from curate.server.search import ENGINE_NAME, paging, vectors
from curate.server.search.documents import (
    enum_value,
    fields_spec,
    parse_date,
    record_doc,
    response_doc,
    suggestion_doc,
    timestamp,
)
from curate.server.search.indexing import (
    bump_vectors,
    delete_rids,
    index_docs,
    maybe_analyze,
    note_multikeys,
    response_rows,
    suggestion_rows,
)
from curate.server.search.schema import (
    Transaction,
    create_dataset,
    db_path,
    get_dataset,
    in_thread,
    record_rid,
)

_LOG = logging.getLogger("curate.search_engine")

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


@SearchEngine.register(engine_name=ENGINE_NAME)
class SQLiteSearchEngine(SearchEngine):
    """argilla-server's SearchEngine on SQLite + numpy (see the `curate.server.search` docstring)."""

    @classmethod
    async def new_instance(cls) -> SQLiteSearchEngine:
        return cls()

    async def close(self):
        pass  # connections are per thread and reused across requests

    async def ping(self) -> bool:
        try:
            return await in_thread(lambda c: c.execute("SELECT 1").fetchone()[0] == 1)
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
        spec, dataset_id = fields_spec(dataset), str(dataset.id)

        def work(conn):
            with Transaction(conn):
                create_dataset(conn, dataset_id, spec)

        await in_thread(work)

    @_timed
    async def delete_index(self, dataset: Dataset):
        dataset_id = str(dataset.id)

        def work(conn):
            with Transaction(conn):
                info = get_dataset(conn, dataset_id)
                if info is None:
                    return
                vs = [r[0] for r in conn.execute("SELECT DISTINCT vs FROM vectors WHERE ds=?", (info.ds,))]
                for table in ("props", "responses", "vectors", "records", "multikeys"):
                    conn.execute(f"DELETE FROM {table} WHERE ds=?", (info.ds,))
                conn.execute(f"DROP TABLE IF EXISTS {info.fts}")
                conn.execute("DELETE FROM datasets WHERE ds=?", (info.ds,))
                bump_vectors(conn, vs)

        await in_thread(work)

    @_timed
    async def configure_metadata_property(self, dataset: Dataset, metadata_property: MetadataProperty):
        pass  # every metadata value is indexed with both its keyword and numeric form: nothing to map

    @_timed
    async def configure_index_vectors(self, vector_settings: VectorSettings):
        pass  # vectors are stored per vector settings id; dimensions are checked at query time

    # --- records ----------------------------------------------------------------------------------

    @_timed
    async def index_records(self, dataset: Dataset, records: Iterable[Record]):
        docs = [record_doc(r) for r in records]
        if not docs:
            return
        dataset_id = str(dataset.id)
        spec = None

        def work(conn):
            info = get_dataset(conn, dataset_id)
            index_docs(conn, dataset_id, info.fields if info else spec, docs)
            maybe_analyze(conn)

        # Datasets indexed before this engine existed get their mapping here (fields are preloaded).
        if await in_thread(lambda c: get_dataset(c, dataset_id)) is None:
            spec = fields_spec(dataset)
        await in_thread(work)

    @_timed
    async def partial_record_update(self, record: Record, **update):
        record_id = str(record.id)
        columns = {}
        for key, value in update.items():
            if key in ("status", "external_id"):
                columns[key] = None if value is None else str(enum_value(value))
            elif key in ("inserted_at", "updated_at"):
                columns[key] = timestamp(value) if isinstance(value, datetime) else parse_date(value)
            else:
                _LOG.warning("partial update of %r is not indexed by %s", key, ENGINE_NAME)
        if not columns:
            return

        def work(conn):
            sets = ", ".join(f"{k}=?" for k in columns)
            with Transaction(conn):
                conn.execute(f"UPDATE records SET {sets} WHERE id=?", [*columns.values(), record_id])

        await in_thread(work)

    @_timed
    async def delete_records(self, dataset: Dataset, records: Iterable[Record]):
        ids, dataset_id = [str(r.id) for r in records], str(dataset.id)
        if not ids:
            return

        def work(conn):
            with Transaction(conn):
                info = get_dataset(conn, dataset_id)
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
                bump_vectors(conn, delete_rids(conn, info, rids, keep_record=False))

        await in_thread(work)

    # --- responses and suggestions ----------------------------------------------------------------

    @_timed
    async def update_record_response(self, response: Response):
        doc, record_id = response_doc(response), str(response.record_id)

        def work(conn):
            with Transaction(conn):
                found = record_rid(conn, record_id)
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
                    response_rows(ds, rid, doc),
                )

        await in_thread(work)

    @_timed
    async def delete_record_response(self, response: Response):
        response_id, record_id = str(response.id), str(response.record_id)

        def work(conn):
            with Transaction(conn):
                found = record_rid(conn, record_id)
                if found is not None:
                    conn.execute("DELETE FROM props WHERE rid=? AND rsp=?", (found[0], response_id))
                conn.execute("DELETE FROM responses WHERE id=?", (response_id,))

        await in_thread(work)

    @_timed
    async def update_record_suggestion(self, suggestion: Suggestion):
        doc, record_id = suggestion_doc(suggestion), str(suggestion.record_id)

        def work(conn):
            with Transaction(conn):
                found = record_rid(conn, record_id)
                if found is None:
                    return
                rid, ds = found
                keys = [f"s:{doc['question']}:{p}" for p in ("value", "score", "agent", "type")]
                conn.execute("DELETE FROM props WHERE rid=? AND key IN (?,?,?,?)", (rid, *keys))
                rows = suggestion_rows(ds, rid, doc)
                conn.executemany(
                    "INSERT INTO props (ds, rid, key, term, num, user, rsp) VALUES (?,?,?,?,?,?,?)", rows
                )
                note_multikeys(conn, rows)

        await in_thread(work)

    @_timed
    async def delete_record_suggestion(self, suggestion: Suggestion):
        question, record_id = suggestion.question.name, str(suggestion.record_id)

        def work(conn):
            with Transaction(conn):
                found = record_rid(conn, record_id)
                if found is not None:
                    keys = [f"s:{question}:{p}" for p in ("value", "score", "agent", "type")]
                    conn.execute("DELETE FROM props WHERE rid=? AND key IN (?,?,?,?)", (found[0], *keys))

        await in_thread(work)

    # --- progress and metrics ---------------------------------------------------------------------

    @_timed
    async def get_dataset_progress(self, dataset: Dataset) -> dict:
        if dataset.is_draft:
            return {}
        dataset_id = str(dataset.id)

        def work(conn):
            info = get_dataset(conn, dataset_id)
            if info is None:
                return {"total": 0}
            counts = dict(
                conn.execute(
                    "SELECT status, COUNT(*) FROM records WHERE ds=? AND status IS NOT NULL GROUP BY status",
                    (info.ds,),
                ).fetchall()
            )
            return {"total": sum(counts.values()), **counts}

        return await in_thread(work)

    @_timed
    async def get_dataset_user_progress(self, dataset: Dataset, user: User) -> dict:
        if dataset.is_draft:
            return {}
        dataset_id, user_id = str(dataset.id), str(user.id)

        def work(conn):
            info = get_dataset(conn, dataset_id)
            if info is None:
                return {"total": 0}
            counts = dict(
                conn.execute(
                    "SELECT status, COUNT(*) FROM responses WHERE ds=? AND user=? GROUP BY status",
                    (info.ds, user_id),
                ).fetchall()
            )
            return {"total": sum(counts.values()), **counts}

        return await in_thread(work)

    @_timed
    async def compute_metrics_for(self, metadata_property: MetadataProperty) -> MetadataMetrics:
        dataset_id, key = str(metadata_property.dataset_id), f"m:{metadata_property.name}"
        kind = metadata_property.type

        def work(conn):
            info = get_dataset(conn, dataset_id)
            ds = info.ds if info else -1
            if kind == MetadataPropertyType.terms:
                rows = conn.execute(
                    "SELECT term, COUNT(DISTINCT rid) AS n FROM props "
                    "WHERE ds=? AND key=? AND term IS NOT NULL GROUP BY term ORDER BY n DESC, term ASC",
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

        return await in_thread(work)

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
        return await in_thread(paging.search, dataset_id, text, filter, sort, offset, limit, user_id)

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
        return await in_thread(
            vectors.similarity, dataset_id, vs, value, exclude_id, text, filter, max_results, order, threshold
        )
