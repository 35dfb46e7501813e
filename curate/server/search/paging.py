"""A page of search results: the total, then the page in the requested order.

Two shortcuts avoid sorting every match: a sort whose first key is a single-valued metadata or
suggestion property walks that property's index (`index_ordered_page`), and a user's random order reads
a window of the stored random keys (`user_order_page`). Both give the same page as the generic path.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
from argilla_server.enums import SortOrder
from argilla_server.search_engine.base import (
    AndFilter,
    MetadataFilterScope,
    Order,
    SearchResponseItem,
    SearchResponses,
    SuggestionFilterScope,
    TermsFilter,
)

from curate.server.search.documents import enum_value
from curate.server.search.schema import require_dataset
from curate.server.search.sql import Query, build_query, in_sql, prop_key, range_sql, sort_sql

# From this many matches on, a sort whose first key is a single-valued metadata or suggestion property
# walks that property's index in order instead of sorting every match.
INDEX_SORT_MIN_TOTAL = 2000
INDEX_SORT_MIN_FRACTION = 0.02  # ... and from this share of the dataset
# Read a user's random order through windows of the random key (False: always sort every match).
USER_ORDER_WINDOWS = True


def user_seed(user_id: Any) -> int:
    """The 31-bit seed of a user's random order."""
    return int(hashlib.sha1(str(user_id).encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


def search(conn, dataset_id, text, filter, sort, offset, limit, user_id) -> SearchResponses:
    """One page of matches of a text query and a filter, in the order of `sort`; without a sort, by
    relevance for a text query, else in the user's random order (no user: the order of first indexing)."""
    counting = build_query(conn, dataset_id, text, filter)
    if counting.empty:
        return SearchResponses(items=[], total=0)
    total = conn.execute(
        f"SELECT COUNT(*) FROM records r WHERE {counting.where}", counting.params
    ).fetchone()[0]
    if total == 0 or offset >= total or limit <= 0:
        return SearchResponses(items=[], total=total)
    if sort and total >= INDEX_SORT_MIN_TOTAL:
        rows = index_ordered_page(conn, dataset_id, text, filter, sort, offset, limit, total)
        if rows is not None:
            return SearchResponses(
                items=[SearchResponseItem(record_id=r, score=None) for r in rows], total=total
            )

    # Relevance order needs every match's bm25; with an explicit sort (as Elasticsearch) scores are null.
    q = (
        build_query(conn, dataset_id, text, filter, scored=not sort)
        if text is not None and not sort
        else counting
    )
    order_parts, order_params = [], []
    for order in sort or []:
        sql, ps = sort_sql(order)
        order_parts.append(sql)
        order_params += ps
    if not order_parts:
        if q.scored:
            order_parts.append("t.score ASC")  # bm25: lower is more relevant
        elif user_id is not None:
            # Elasticsearch orders each user's records by a random score seeded with the user id, so that
            # annotators spread over the dataset; a seeded XOR of a stored random key does the same.
            seed = user_seed(user_id)
            ids = user_order_page(conn, q, seed, offset, limit, total) if USER_ORDER_WINDOWS else None
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


def user_order_page(conn, q: Query, seed: int, offset: int, limit: int, total: int) -> list[str] | None:
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
                    f"SELECT r.id FROM records r WHERE {where} "
                    "ORDER BY ((r.rnd | ?) - (r.rnd & ?)), r.rid ASC LIMIT ? OFFSET ?",
                    [*params, seed, seed, limit, offset],
                )
            ]
        bits -= 3
    return None


def index_ordered_page(
    conn, dataset_id: str, text, filter, sort: list[Order], offset: int, limit: int, total: int
) -> list[str] | None:
    """A page sorted by a metadata/suggestion property, read in that property's index order: first the
    records that have a value, then (NULLS LAST) those that don't. None when the shortcut doesn't apply
    (another kind of first key, a property with several values per record, or too few matches)."""
    first, rest = sort[0], sort[1:]
    if not isinstance(first.scope, (MetadataFilterScope, SuggestionFilterScope)):
        return None
    info = require_dataset(conn, dataset_id)
    key = prop_key(first.scope)
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
        same = isinstance(f.scope, (MetadataFilterScope, SuggestionFilterScope)) and prop_key(f.scope) == key
        if same and isinstance(f, TermsFilter) and column == "term":
            sql, ps = in_sql("p1.term", [str(v) for v in f.values])
        elif same and not isinstance(f, TermsFilter) and column == "num":
            sql, ps = range_sql("p1.num", f.ge, f.le)
        else:
            others.append(f)
            continue
        value_sql.append(sql)
        value_params += ps
    q = build_query(conn, dataset_id, text, AndFilter(others) if others else None)

    direction = "DESC" if enum_value(first.order) == SortOrder.desc.value else "ASC"
    rest_parts, rest_params = [], []
    for order in rest:
        sql, ps = sort_sql(order)
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
