"""Benchmark of the embedded Argilla and its SQLite search engine.

Part 1 (server, default 20k records): start an embedded server in a temporary data dir, log review-like
records through the argilla SDK (chat prompt, two responses, label/rating questions, suggestions, float
and terms metadata, a 384-d vector), then run the UI's common queries over HTTP. Prints records/s for
logging, per-query latency percentiles, and the time spent inside the search engine as a fraction of the
total (read from the engine's own counters, exposed in /api/v1/status). Baseline measured in the same run:
the plain record listing endpoint (database only, no search engine) with the same page size.

Part 2 (engine, default 100k records): the engine alone, in-process, on stand-ins for the server's ORM
objects: indexing throughput and the latency of the same queries at 100k records, against a baseline of
`SELECT COUNT(*)` over the dataset's records in the same file.

    .venv/bin/python benchmarks/argilla_engine.py [--records 20000] [--engine-records 100000] [--reps 30]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace as NS

import numpy as np

WORDS = [
    "explain",
    "write",
    "summarize",
    "compare",
    "list",
    "describe",
    "translate",
    "classify",
    "python",
    "recipe",
    "history",
    "planet",
    "ocean",
    "music",
    "economy",
    "health",
    "garden",
    "travel",
    "energy",
    "climate",
    "language",
    "poem",
    "story",
    "code",
    "data",
    "network",
    "memory",
    "river",
    "mountain",
    "city",
    "market",
    "science",
    "physics",
    "biology",
    "chemistry",
    "art",
    "film",
    "sport",
    "team",
    "model",
    "learning",
]
DIM = 384


SHARED = Path(os.environ.get("CURATE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


class Texts:
    """Prompt/response texts: real instructions and answers (Alpaca demo + LIMA, from ../shared/data) when
    present, so that word frequencies are realistic; else synthetic text from a small vocabulary."""

    def __init__(self, seed: int):
        import json

        self.rng = random.Random(seed)
        self.prompts: list[str] = []
        self.answers: list[str] = []
        for name in ("instructions/alpaca/alpaca_en_demo.json", "instructions/lima/lima_llamafactory.json"):
            path = SHARED / name
            if path.exists():
                for row in json.loads(path.read_text(encoding="utf-8")):
                    self.prompts.append((row.get("instruction", "") + " " + row.get("input", "")).strip())
                    self.answers.append(row.get("output", ""))
        self.real = bool(self.prompts)
        self.source = "Alpaca demo + LIMA texts" if self.real else "synthetic text"

    def triple(self) -> tuple[str, str, str]:
        if not self.real:
            return sentence(self.rng, 12), sentence(self.rng, 60), sentence(self.rng, 60)
        return (
            self.rng.choice(self.prompts),
            self.rng.choice(self.answers)[:2000],
            self.rng.choice(self.answers)[:2000],
        )

    def query_words(self) -> tuple[str, str]:
        """A typical word (in ~2% of the records) and a very common one (worst case for relevance)."""
        import re
        from collections import Counter

        sample = [self.triple() for _ in range(2000)]
        df = Counter(w for t in sample for w in set(re.findall(r"[a-z]+", " ".join(t).lower())))
        typical = min((w for w in df if len(w) > 4), key=lambda w: (abs(df[w] / len(sample) - 0.02), w))
        return typical, df.most_common(1)[0][0]


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def row(table: list[tuple], name: str, lat_ms: list[float], engine_ms: float | None, base_p50: float | None):
    ratio = f"{pct(lat_ms, 0.5) / base_p50:6.2f}x" if base_p50 else "     - "
    eng = f"{engine_ms:8.2f}" if engine_ms is not None else "       -"
    frac = f"{engine_ms / statistics.mean(lat_ms):6.1%}" if engine_ms is not None else "     -"
    table.append((name, pct(lat_ms, 0.5), pct(lat_ms, 0.95), pct(lat_ms, 0.99), eng, frac, ratio))


def print_table(title: str, table: list[tuple], baseline: str) -> None:
    print(f"\n{title}")
    print(
        f"{'query':<44} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'engine ms':>9} {'engine%':>7} {'vs base':>8}"
    )
    for name, p50, p95, p99, eng, frac, ratio in table:
        print(f"{name:<44} {p50:8.2f} {p95:8.2f} {p99:8.2f} {eng} {frac:>7} {ratio:>8}")
    print(f"(vs base = p50 / p50 of the baseline: {baseline})")


# --------------------------------------------------------------------------------------------------
# Part 1: the real server


def server_part(n_records: int, reps: int, batch: int) -> None:
    import argilla as rg
    import httpx

    from curate.server import launcher
    from curate.server.users import add_user

    data_dir = Path(tempfile.mkdtemp(prefix="curate-bench-"))
    print(f"== Part 1: embedded server, {n_records} records (data dir {data_dir})")
    t0 = time.perf_counter()
    info = launcher.start(data_dir)
    print(f"server start: {time.perf_counter() - t0:.1f}s")
    try:
        _server_part(info, n_records, reps, batch, rg, httpx, add_user)
    finally:
        launcher.stop(data_dir)


def _engine_stats(api) -> dict:
    return api.get("/status").json()["search_engine"]["stats"]


def _engine_seconds(before: dict, after: dict) -> float:
    return sum(after[k]["seconds"] - before.get(k, {}).get("seconds", 0.0) for k in after)


def _server_part(info, n_records, reps, batch, rg, httpx, add_user) -> None:
    client = rg.Argilla(api_url=info.url, api_key=info.api_key, timeout=600)
    annotators = [add_user(info.url, info.api_key, f"bench{i}", "annotator", ["bench"]) for i in range(2)]
    settings = rg.Settings(
        fields=[
            rg.ChatField(name="prompt"),
            rg.TextField(name="response_a"),
            rg.TextField(name="response_b"),
        ],
        questions=[
            rg.LabelQuestion(name="preferred", labels=["A", "B", "tie"]),
            rg.RatingQuestion(name="quality_a", values=[1, 2, 3, 4, 5]),
            rg.RatingQuestion(name="quality_b", values=[1, 2, 3, 4, 5]),
            rg.TextQuestion(name="correction", required=False),
        ],
        metadata=[rg.FloatMetadataProperty(name="deita_score"), rg.TermsMetadataProperty(name="method")],
        vectors=[rg.VectorField(name="prompt_embedding", dimensions=DIM)],
    )
    ds = rg.Dataset(name="bench", workspace="bench", settings=settings, client=client).create()
    rng, nrng = random.Random(0), np.random.default_rng(0)
    texts = Texts(0)
    typical, common = texts.query_words()
    print(f"texts: {texts.source}; query words: typical {typical!r}, common {common!r}")
    vectors = unit(nrng, n_records)
    triples = [texts.triple() for _ in range(n_records)]
    records = [
        rg.Record(
            id=f"r{i}",
            fields={
                "prompt": [{"role": "user", "content": triples[i][0]}],
                "response_a": triples[i][1],
                "response_b": triples[i][2],
            },
            metadata={
                "deita_score": round(rng.uniform(1, 36), 3),
                "method": rng.choice(["self-instruct", "magpie"]),
            },
            vectors={"prompt_embedding": vectors[i].tolist()},
            suggestions=[
                rg.Suggestion("preferred", rng.choice(["A", "B", "tie"]), score=rng.random(), agent="judge"),
                rg.Suggestion("quality_a", rng.randint(1, 5), agent="judge"),
                rg.Suggestion("quality_b", rng.randint(1, 5), agent="judge"),
            ],
        )
        for i in range(n_records)
    ]
    api = httpx.Client(
        base_url=f"{info.url}/api/v1", headers={"X-Argilla-Api-Key": info.api_key}, timeout=600
    )
    before = _engine_stats(api)
    t0 = time.perf_counter()
    ds.records.log(records, batch_size=batch)
    elapsed = time.perf_counter() - t0
    engine = _engine_seconds(before, _engine_stats(api))
    print(
        f"logging: {n_records} records in {elapsed:.1f}s = {n_records / elapsed:.0f} records/s "
        f"(batch {batch}); search engine {engine:.1f}s = {engine / elapsed:.1%} of the total"
    )

    # responses from one annotator on 10% of the records, through the bulk endpoint the UI uses
    listing = []
    offset = 0
    while len(listing) < n_records:
        page = api.get(f"/datasets/{ds.id}/records", params={"offset": offset, "limit": 1000}).json()["items"]
        if not page:
            break
        listing += page
        offset += len(page)
    ids = [it["id"] for it in listing]
    ann = httpx.Client(
        base_url=f"{info.url}/api/v1", headers={"X-Argilla-Api-Key": annotators[0].api_key}, timeout=600
    )
    answered = ids[: n_records // 10]
    before = _engine_stats(api)
    t0 = time.perf_counter()
    for start in range(0, len(answered), 100):
        items = [
            {
                "record_id": rid,
                "status": "submitted",
                "values": {"preferred": {"value": "A"}, "quality_a": {"value": 4}, "quality_b": {"value": 2}},
            }
            for rid in answered[start : start + 100]
        ]
        ann.post("/me/responses/bulk", json={"items": items}).raise_for_status()
    elapsed = time.perf_counter() - t0
    engine = _engine_seconds(before, _engine_stats(api))
    print(
        f"responses: {len(answered)} submitted in {elapsed:.1f}s = {len(answered) / elapsed:.0f}/s; "
        f"search engine {engine / elapsed:.1%} of the total"
    )

    pending = {
        "filters": {
            "and": [
                {
                    "type": "terms",
                    "scope": {"entity": "response", "property": "status"},
                    "values": ["pending"],
                },
                {"type": "terms", "scope": {"entity": "record", "property": "status"}, "values": ["pending"]},
            ]
        }
    }
    submitted = {
        "filters": {
            "and": [
                {
                    "type": "terms",
                    "scope": {"entity": "response", "property": "status"},
                    "values": ["submitted"],
                }
            ]
        }
    }
    queries = [
        ("annotator queue: pending, page of 1", "me", pending, {"limit": 1}),
        ("annotator queue: pending, bulk page of 10", "me", pending, {"limit": 10}),
        ("annotator: own submitted, page of 10", "me", submitted, {"limit": 10}),
        (
            "text query (typical word) + pending",
            "me",
            {"query": {"text": {"q": typical}}, **pending},
            {"limit": 10},
        ),
        (
            "text query (common word) + pending",
            "me",
            {"query": {"text": {"q": common}}, **pending},
            {"limit": 10},
        ),
        (
            "text query, one field",
            "me",
            {"query": {"text": {"q": typical, "field": "response_b"}}},
            {"limit": 10},
        ),
        (
            "metadata range + sort by metadata desc",
            "me",
            {
                "filters": {
                    "and": [
                        {
                            "type": "range",
                            "scope": {"entity": "metadata", "metadata_property": "deita_score"},
                            "ge": 10,
                            "le": 30,
                        }
                    ]
                },
                "sort": [
                    {"scope": {"entity": "metadata", "metadata_property": "deita_score"}, "order": "desc"}
                ],
            },
            {"limit": 10},
        ),
        (
            "suggestion filter + sort by suggestion score",
            "me",
            {
                "filters": {
                    "and": [
                        {
                            "type": "terms",
                            "scope": {"entity": "suggestion", "question": "preferred", "property": "value"},
                            "values": ["A"],
                        }
                    ]
                },
                "sort": [
                    {
                        "scope": {"entity": "suggestion", "question": "preferred", "property": "score"},
                        "order": "desc",
                    }
                ],
            },
            {"limit": 10},
        ),
        (
            "response value filter (owner, all users)",
            "all",
            {
                "filters": {
                    "and": [
                        {
                            "type": "range",
                            "scope": {"entity": "response", "question": "quality_a"},
                            "ge": 3,
                            "le": 5,
                        }
                    ]
                }
            },
            {"limit": 10},
        ),
        (
            "find similar (by record) + pending",
            "me",
            {"query": {"vector": {"name": "prompt_embedding", "record_id": ids[5]}}, **pending},
            {"limit": 50},
        ),
    ]
    table: list[tuple] = []
    base = []
    for _ in range(reps):
        t = time.perf_counter()
        api.get(f"/datasets/{ds.id}/records", params={"limit": 10}).raise_for_status()
        base.append((time.perf_counter() - t) * 1000)
    base_p50 = pct(base, 0.5)
    row(table, "BASELINE list records (DB only), page of 10", base, None, base_p50)
    for name, who, body, params in queries:
        path = f"/me/datasets/{ds.id}/records/search" if who == "me" else f"/datasets/{ds.id}/records/search"
        client_ = ann if who == "me" else api
        lat = []
        before = _engine_stats(api)
        for rep in range(reps):
            p = dict(params, offset=rep % 5, include=["responses", "suggestions"])
            t = time.perf_counter()
            resp = client_.post(path, json=body, params=p)
            lat.append((time.perf_counter() - t) * 1000)
            resp.raise_for_status()
        engine_ms = _engine_seconds(before, _engine_stats(api)) * 1000 / reps
        row(table, name, lat, engine_ms, base_p50)
    for name, path in [
        ("dataset progress", f"/datasets/{ds.id}/progress"),
        ("annotator metrics (/me/.../metrics)", f"/me/datasets/{ds.id}/metrics"),
    ]:
        lat = []
        before = _engine_stats(api)
        for _ in range(reps):
            t = time.perf_counter()
            (ann if "me" in path else api).get(path).raise_for_status()
            lat.append((time.perf_counter() - t) * 1000)
        row(table, name, lat, _engine_seconds(before, _engine_stats(api)) * 1000 / reps, base_p50)
    props = api.get(f"/me/datasets/{ds.id}/metadata-properties").json()["items"]
    for prop in props:
        lat = []
        before = _engine_stats(api)
        for _ in range(reps):
            t = time.perf_counter()
            api.get(f"/metadata-properties/{prop['id']}/metrics").raise_for_status()
            lat.append((time.perf_counter() - t) * 1000)
        row(
            table,
            f"metadata metrics ({prop['settings']['type']})",
            lat,
            _engine_seconds(before, _engine_stats(api)) * 1000 / reps,
            base_p50,
        )
    lat = []
    before = _engine_stats(api)
    ann2 = httpx.Client(
        base_url=f"{info.url}/api/v1", headers={"X-Argilla-Api-Key": annotators[1].api_key}, timeout=600
    )
    for rep in range(reps):
        t = time.perf_counter()
        ann2.post(
            f"/records/{ids[-1 - rep]}/responses",
            json={
                "status": "submitted",
                "values": {"preferred": {"value": "B"}, "quality_a": {"value": 3}, "quality_b": {"value": 5}},
            },
        ).raise_for_status()
        lat.append((time.perf_counter() - t) * 1000)
    row(
        table,
        "submit one response (UI's POST)",
        lat,
        _engine_seconds(before, _engine_stats(api)) * 1000 / reps,
        base_p50,
    )
    print_table(
        f"UI queries over HTTP, {n_records} records, {reps} runs each",
        table,
        "GET /datasets/{id}/records?limit=10",
    )


# --------------------------------------------------------------------------------------------------
# Part 2: the engine alone at scale


def engine_part(n_records: int, reps: int, batch: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="curate-engine-"))
    os.environ["ARGILLA_HOME_PATH"] = str(tmp)
    os.environ["CURATE_SEARCH_DB"] = str(tmp / "search.sqlite3")
    from argilla_server.enums import MetadataPropertyType, SimilarityOrder, SortOrder
    from argilla_server.search_engine.base import (
        AndFilter,
        MetadataFilterScope,
        Order,
        RangeFilter,
        RecordFilterScope,
        ResponseFilterScope,
        SuggestionFilterScope,
        TermsFilter,
        TextQuery,
    )

    from curate.server.search.engine import SQLiteSearchEngine
    from curate.server.search.schema import connect

    print(f"\n== Part 2: the search engine alone, {n_records} records ({tmp})")
    engine = SQLiteSearchEngine()

    def field(name, kind):
        return NS(name=name, settings={"type": kind})

    dataset = NS(
        id=uuid.uuid4(),
        is_draft=False,
        fields=[field("prompt", "chat"), field("response_a", "text"), field("response_b", "text")],
    )
    vs = NS(id=uuid.uuid4(), dimensions=DIM)
    users = [NS(id=uuid.uuid4()) for _ in range(2)]
    rng, nrng = random.Random(1), np.random.default_rng(1)
    texts = Texts(1)
    typical, common = texts.query_words()
    print(f"texts: {texts.source}; query words: typical {typical!r}, common {common!r}")
    question = {q: NS(name=q) for q in ("preferred", "quality_a", "quality_b")}
    t_base = datetime(2025, 1, 1)

    def make(i: int, vec: np.ndarray) -> NS:
        rid = uuid.uuid4()
        prompt, a, b = texts.triple()
        responses = []
        if i % 10 == 0:
            responses.append(
                NS(
                    id=uuid.uuid4(),
                    user_id=users[0].id,
                    status="submitted",
                    record_id=rid,
                    values={"preferred": {"value": "A"}, "quality_a": {"value": rng.randint(1, 5)}},
                )
            )
        return NS(
            id=rid,
            dataset_id=dataset.id,
            external_id=f"r{i}",
            status="completed" if responses else "pending",
            inserted_at=t_base + timedelta(seconds=i),
            updated_at=t_base + timedelta(seconds=i),
            fields=dict(
                zip(("prompt", "response_a", "response_b"), ([{"role": "user", "content": prompt}], a, b))
            ),
            metadata_={
                "deita_score": round(rng.uniform(1, 36), 3),
                "method": rng.choice(["self-instruct", "magpie"]),
            },
            responses=responses,
            suggestions=[
                NS(
                    question=question["preferred"],
                    value=rng.choice(["A", "B", "tie"]),
                    score=rng.random(),
                    agent="judge",
                    type="model",
                ),
                NS(
                    question=question["quality_a"],
                    value=rng.randint(1, 5),
                    score=None,
                    agent="judge",
                    type="model",
                ),
            ],
            vectors=[NS(vector_settings_id=vs.id, value=vec.tolist())],
        )

    async def run() -> None:
        await engine.create_index(dataset)
        total_t, first = 0.0, None
        for start in range(0, n_records, batch):
            vecs = unit(nrng, min(batch, n_records - start))
            recs = [make(start + j, vecs[j]) for j in range(len(vecs))]
            first = first or recs[0]
            t = time.perf_counter()
            await engine.index_records(dataset, recs)
            total_t += time.perf_counter() - t
        print(
            f"indexing: {n_records} records in {total_t:.1f}s = {n_records / total_t:.0f} records/s "
            f"(engine only, batches of {batch})"
        )
        size = sum(
            f.stat().st_size for f in Path(os.environ["CURATE_SEARCH_DB"]).parent.glob("search.sqlite3*")
        )
        print(f"index size on disk: {size / 1e6:.0f} MB")

        me = users[1]
        pending = AndFilter(
            [
                TermsFilter(ResponseFilterScope(property="status", user=me), ["pending"]),
                TermsFilter(RecordFilterScope(property="status"), ["pending"]),
            ]
        )
        cases = [
            ("annotator queue: pending, page of 1", {"filter": pending, "limit": 1, "user_id": me.id}),
            (
                "text query (typical word) + pending",
                {"query": TextQuery(q=typical), "filter": pending, "limit": 10, "user_id": me.id},
            ),
            (
                "text query (common word) + pending",
                {"query": TextQuery(q=common), "filter": pending, "limit": 10, "user_id": me.id},
            ),
            ("text query, one field", {"query": TextQuery(q=typical, field="response_b"), "limit": 10}),
            (
                "metadata range + sort by metadata desc",
                {
                    "filter": AndFilter([RangeFilter(MetadataFilterScope("deita_score"), ge=10, le=30)]),
                    "sort": [Order(MetadataFilterScope("deita_score"), SortOrder.desc)],
                    "limit": 10,
                },
            ),
            (
                "suggestion filter + sort by suggestion score",
                {
                    "filter": AndFilter([TermsFilter(SuggestionFilterScope("preferred", "value"), ["A"])]),
                    "sort": [Order(SuggestionFilterScope("preferred", "score"), SortOrder.desc)],
                    "limit": 10,
                },
            ),
            (
                "response value range (all users)",
                {
                    "filter": AndFilter([RangeFilter(ResponseFilterScope(question="quality_a"), ge=3, le=5)]),
                    "limit": 10,
                },
            ),
            (
                "inserted_at range (ISO strings)",
                {
                    "filter": AndFilter(
                        [
                            RangeFilter(
                                RecordFilterScope("inserted_at"),
                                ge="2025-01-01T05:00:00",
                                le="2025-01-02T00:00:00Z",
                            )
                        ]
                    ),
                    "limit": 10,
                },
            ),
            (
                "sort by inserted_at desc, deep page",
                {
                    "sort": [Order(RecordFilterScope("inserted_at"), SortOrder.desc)],
                    "offset": n_records // 2,
                    "limit": 10,
                },
            ),
        ]
        conn = connect()
        ds_n = conn.execute("SELECT ds FROM datasets WHERE id=?", (str(dataset.id),)).fetchone()[0]
        base = []
        for _ in range(reps):
            t = time.perf_counter()
            conn.execute("SELECT COUNT(*) FROM records WHERE ds=?", (ds_n,)).fetchone()
            base.append((time.perf_counter() - t) * 1000)
        base_p50 = pct(base, 0.5)
        table: list[tuple] = []
        row(table, "BASELINE SELECT COUNT(*) of the dataset", base, None, base_p50)
        for name, kwargs in cases:
            lat = []
            for _ in range(reps):
                t = time.perf_counter()
                res = await engine.search(dataset, **kwargs)
                lat.append((time.perf_counter() - t) * 1000)
            row(table, f"{name} [total {res.total}]", lat, None, base_p50)
        query_vec = unit(nrng, 1)[0].tolist()
        for name, kwargs in [
            ("similarity, top 50", {"value": query_vec, "max_results": 50}),
            (
                "similarity, least similar, top 50",
                {"value": query_vec, "max_results": 50, "order": SimilarityOrder.least_similar},
            ),
            (
                "similarity by record + pending filter",
                {
                    "record": NS(
                        id=first.id, vector_value_by_vector_settings=lambda _vs: first.vectors[0].value
                    ),
                    "filter": pending,
                    "max_results": 50,
                },
            ),
        ]:
            lat = []
            await engine.similarity_search(dataset, vs, **kwargs)  # first call loads the matrix
            for _ in range(reps):
                t = time.perf_counter()
                await engine.similarity_search(dataset, vs, **kwargs)
                lat.append((time.perf_counter() - t) * 1000)
            row(table, name, lat, None, base_p50)
        for name, coro in [
            ("dataset progress", lambda: engine.get_dataset_progress(dataset)),
            ("user progress", lambda: engine.get_dataset_user_progress(dataset, users[0])),
            (
                "metadata metrics (float)",
                lambda: engine.compute_metrics_for(
                    NS(dataset_id=dataset.id, name="deita_score", type=MetadataPropertyType.float)
                ),
            ),
            (
                "metadata metrics (terms)",
                lambda: engine.compute_metrics_for(
                    NS(dataset_id=dataset.id, name="method", type=MetadataPropertyType.terms)
                ),
            ),
        ]:
            lat = []
            for _ in range(reps):
                t = time.perf_counter()
                await coro()
                lat.append((time.perf_counter() - t) * 1000)
            row(table, name, lat, None, base_p50)
        lat = []
        for _rep in range(reps):
            resp = NS(
                id=uuid.uuid4(),
                user_id=me.id,
                status="submitted",
                record_id=first.id,
                values={"preferred": {"value": "B"}},
            )
            t = time.perf_counter()
            await engine.update_record_response(resp)
            lat.append((time.perf_counter() - t) * 1000)
        row(table, "update one response", lat, None, base_p50)
        print_table(
            f"engine calls in-process, {n_records} records, {reps} runs each",
            table,
            "SELECT COUNT(*) FROM records WHERE ds=?",
        )

    asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=20_000, help="records logged through the server")
    parser.add_argument(
        "--engine-records", type=int, default=100_000, help="records for the engine-only part"
    )
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=500, help="records per SDK / engine batch")
    parser.add_argument("--skip-server", action="store_true")
    parser.add_argument("--skip-engine", action="store_true")
    args = parser.parse_args()
    if not args.skip_server:
        server_part(args.records, args.reps, args.batch)
    if not args.skip_engine:
        engine_part(args.engine_records, args.reps, args.batch)


if __name__ == "__main__":
    sys.exit(main())
