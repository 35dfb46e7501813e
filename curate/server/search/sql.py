"""Filters and sorts -> SQL over `records r`, and the FROM/WHERE part of a search (`build_query`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from argilla_server.enums import SortOrder
from argilla_server.search_engine.base import (
    AndFilter,
    Filter,
    MetadataFilterScope,
    Order,
    RecordFilterScope,
    ResponseFilterScope,
    SuggestionFilterScope,
    TermsFilter,
    TextQuery,
)

from curate.server.search.documents import enum_value, parse_date
from curate.server.search.query import parse_text_query
from curate.server.search.schema import require_dataset

RECORD_COLUMNS = {
    "id": "id",
    "external_id": "external_id",
    "status": "status",
    "inserted_at": "inserted_at",
    "updated_at": "updated_at",
}


def prop_key(scope) -> str:
    """The `props` key of a metadata or suggestion scope."""
    if isinstance(scope, MetadataFilterScope):
        return f"m:{scope.metadata_property}"
    if isinstance(scope, SuggestionFilterScope):
        prop = scope.property if scope.property not in (None, "None") else "value"
        return f"s:{scope.question}:{prop}"
    raise ValueError(f"no property key for scope {scope}")


def range_sql(column: str, ge: Any, le: Any, convert=float) -> tuple[str, list]:
    """`column >= ? AND column <= ?` for the bounds given ("1" for none), with its parameters."""
    parts, params = [], []
    if ge is not None:
        parts.append(f"{column} >= ?")
        params.append(convert(ge))
    if le is not None:
        parts.append(f"{column} <= ?")
        params.append(convert(le))
    return " AND ".join(parts) or "1", params


def in_sql(column: str, values: list) -> tuple[str, list]:
    """`column IN (?, ...)` with its parameters."""
    return f"{column} IN ({','.join('?' * len(values))})", list(values)


def filter_sql(f: Filter, ds: int) -> tuple[str, list]:
    """A filter of argilla-server's search API as a condition on `records r` of dataset `ds`."""
    if isinstance(f, AndFilter):
        parts = [filter_sql(sub, ds) for sub in f.filters]
        if not parts:
            return "1", []
        return " AND ".join(f"({p})" for p, _ in parts), [x for _, ps in parts for x in ps]
    scope = f.scope
    if isinstance(scope, RecordFilterScope):
        column = RECORD_COLUMNS.get(scope.property)
        if column is None:
            raise ValueError(f"cannot filter on record property {scope.property!r}")
        dated = column in ("inserted_at", "updated_at")
        if isinstance(f, TermsFilter):
            values = [parse_date(v) for v in f.values] if dated else [str(v) for v in f.values]
            return in_sql(f"r.{column}", values)
        return range_sql(f"r.{column}", f.ge, f.le, parse_date if dated else float)
    if isinstance(scope, (MetadataFilterScope, SuggestionFilterScope)):
        if isinstance(f, TermsFilter):
            cond, params = in_sql("term", [str(v) for v in f.values])
        else:
            cond, params = range_sql("num", f.ge, f.le)
        return f"r.rid IN (SELECT rid FROM props WHERE ds=? AND key=? AND {cond})", [
            ds,
            prop_key(scope),
            *params,
        ]
    if isinstance(scope, ResponseFilterScope):
        return _response_filter_sql(f, scope, ds)
    raise ValueError(f"cannot process filter scope {scope}")


def _response_filter_sql(f: Filter, scope: ResponseFilterScope, ds: int) -> tuple[str, list]:
    user = str(scope.user.id) if scope.user is not None else None
    if scope.question:
        if isinstance(f, TermsFilter):
            cond, params = in_sql("term", [str(v) for v in f.values])
        else:
            cond, params = range_sql("num", f.ge, f.le)
        sql = f"r.rid IN (SELECT rid FROM props WHERE ds=? AND key=? AND {cond}"
        params = [ds, f"r:{scope.question}", *params]
        if user:
            sql += " AND user=?"
            params.append(user)
        return sql + ")", params
    if scope.property == "status" and isinstance(f, TermsFilter):
        values = [str(enum_value(v)) for v in f.values]
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
            cond, ps = in_sql("status", others)
            sql = f"r.rid IN (SELECT rid FROM responses WHERE ds=? AND {cond}"
            ps = [ds, *ps]
            if user:
                sql += " AND user=?"
                ps.append(user)
            parts.append(sql + ")")
            params += ps
        return "(" + " OR ".join(parts) + ")", params
    raise ValueError(f"cannot process response filter scope {scope}")


def sort_sql(order: Order) -> tuple[str, list]:
    """An ORDER BY term (NULLS LAST) for one sort key of the search API, with its parameters."""
    desc = enum_value(order.order) == SortOrder.desc.value
    direction = "DESC" if desc else "ASC"
    agg = "MAX" if desc else "MIN"  # Elasticsearch's default sort mode for multi-valued fields
    scope = order.scope
    if isinstance(scope, RecordFilterScope):
        column = RECORD_COLUMNS.get(scope.property)
        if column is None:
            raise ValueError(f"cannot sort by record property {scope.property!r}")
        return f"r.{column} {direction} NULLS LAST", []
    if isinstance(scope, (MetadataFilterScope, SuggestionFilterScope)):
        expr = f"(SELECT {agg}(COALESCE(num, term)) FROM props p WHERE p.rid=r.rid AND p.key=?)"
        return f"{expr} {direction} NULLS LAST", [prop_key(scope)]
    if isinstance(scope, ResponseFilterScope):
        user_sql, params = "", []
        if scope.user is not None:
            user_sql, params = " AND x.user=?", [str(scope.user.id)]
        if scope.question:
            # average over the responses, as Elasticsearch's nested sort with mode=avg
            expr = (
                f"(SELECT COALESCE(AVG(x.num), {agg}(x.term)) FROM props x "
                f"WHERE x.rid=r.rid AND x.key=?{user_sql})"
            )
            return f"{expr} {direction} NULLS LAST", [f"r:{scope.question}", *params]
        expr = f"(SELECT {agg}(x.status) FROM responses x WHERE x.rid=r.rid{user_sql})"
        return f"{expr} {direction} NULLS LAST", params
    raise ValueError(f"cannot sort by scope {scope}")


@dataclass
class Query:
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


def build_query(
    conn, dataset_id: str, text: TextQuery | None, filter: Filter | None, scored: bool = False
) -> Query:
    """The matches of a text query and a filter in a dataset (`empty` when nothing can match)."""
    info = require_dataset(conn, dataset_id)
    where, params = ["r.ds=?"], [info.ds]
    ctes, cte_params = "", []
    if text is None:
        scored = False
    else:
        positive, negative = parse_text_query(text.q)
        if text.field:
            column = (info.fields.get(text.field) or [None])[0]
            if column is None:
                raise ValueError(f"field {text.field!r} is not searchable in dataset {dataset_id}")
            positive = f"{{{column}}} : ({positive})" if positive else None
            negative = f"{{{column}}} : ({negative})" if negative else None
        if not info.columns or (positive is None and negative is None):
            return Query("", "0", [], False, info.ds, empty=True)
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
        sql, ps = filter_sql(filter, info.ds)
        where.append(f"({sql})")
        params += ps
    return Query(ctes, " AND ".join(where), cte_params + params, scored, info.ds)
