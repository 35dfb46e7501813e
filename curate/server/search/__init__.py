"""Our argilla-server search engine: SQLite (FTS5 for text) plus numpy for vectors.

argilla-server normally needs Elasticsearch or OpenSearch, which can't be installed on a laptop without
Docker. This plugin implements the whole `argilla_server.search_engine.SearchEngine` interface on one
SQLite file in the data dir, so the real server and its UI run unchanged. Semantics follow
`argilla_server/search_engine/commons.py` (the Elasticsearch implementation); where we differ it is said.

Importing `curate.server.search.engine` registers the engine under `ENGINE_NAME`, the value of
ARGILLA_SEARCH_ENGINE that the launcher sets. This package module itself imports nothing heavy, so the
launcher can read the name without pulling in the server. The modules, in dependency order:
- `schema`: the SQLite file, its tables, per-thread connections and the dataset registry;
- `documents`: plain-data views of the server's ORM objects and the value conversions;
- `indexing`: documents -> rows (write, update, delete);
- `query`: Elasticsearch's simple_query_string -> FTS5;
- `sql`: filters and sorts -> SQL over `records r`;
- `paging`: a page of search results (with the index-order and per-user-order shortcuts);
- `vectors`: similarity search over a per-process cache of matrices;
- `engine`: the `SQLiteSearchEngine` class argilla-server calls.

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

ENGINE_NAME = "curate-sqlite"
DB_ENV = "CURATE_SEARCH_DB"

__all__ = ["DB_ENV", "ENGINE_NAME"]
