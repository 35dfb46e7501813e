"""Similarity search: a per-process cache of normalised matrices, refreshed when the version row changes."""

from __future__ import annotations

import threading

import numpy as np
from argilla_server.enums import SimilarityOrder
from argilla_server.search_engine.base import SearchResponseItem, SearchResponses

from curate.server.search.documents import enum_value
from curate.server.search.schema import record_rid
from curate.server.search.sql import Query, build_query

_vector_cache: dict[str, tuple[int, np.ndarray, np.ndarray]] = {}
_vector_lock = threading.Lock()


def vector_matrix(conn, vs: str) -> tuple[np.ndarray, np.ndarray]:
    """(rids, unit-norm float32 matrix) of every vector of these vector settings, from the cache when the
    version row has not changed."""
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


def _post_filter(conn, q: Query, rids: np.ndarray, scores: np.ndarray, k: int) -> bool:
    """Check the filters on the best-scored candidates only. True (and every other score set to -inf) when
    at least k of the top max(4k, 500) pass: then they hold the filtered top k. False: filter everything
    first. Broad filters (the annotator's pending records) cost one small query instead of reading every
    match."""
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


def similarity(conn, dataset_id, vs, value, exclude_id, text, filter, k, order, threshold) -> SearchResponses:
    """The k records most (or least) similar to `value` among the matches of a text query and a filter,
    scored as Elasticsearch's cosine similarity."""
    rids, matrix = vector_matrix(conn, vs)
    if len(rids) == 0:
        return SearchResponses(items=[], total=0)
    query = np.asarray(value, dtype=np.float32)
    if matrix.shape[1] != query.shape[0]:
        raise ValueError(f"vector has {query.shape[0]} dimensions, the index has {matrix.shape[1]}")
    norm = float(np.linalg.norm(query)) or 1.0
    cos = matrix @ (query / norm)
    # Elasticsearch's cosine score is (1 + cos) / 2; "least similar" searches with the negated vector.
    least = enum_value(order) == SimilarityOrder.least_similar.value
    scores = (1.0 - cos) / 2.0 if least else (1.0 + cos) / 2.0
    if exclude_id is not None:
        found = record_rid(conn, exclude_id)
        if found is not None:
            scores[rids == found[0]] = -np.inf
    if text is not None or filter is not None:
        q = build_query(conn, dataset_id, text, filter)
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
