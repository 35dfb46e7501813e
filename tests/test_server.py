"""The embedded Argilla end to end: the real argilla-server, Redis, the rq worker and our SQLite search
engine.

Every expectation is computed from the records we logged (and the responses we sent), never hard-coded.
"""

from __future__ import annotations

import json
import os
import random
import re
import stat
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pytest

pytestmark = pytest.mark.server

N_RECORDS = 1000
DIM = 16
VOCAB = [
    "apple",
    "banana",
    "cherry",
    "delta",
    "echo",
    "falcon",
    "garden",
    "harbor",
    "island",
    "jungle",
    "kettle",
    "lemon",
    "meadow",
    "needle",
    "orbit",
    "pepper",
    "quartz",
    "river",
    "saddle",
    "timber",
    "umbrella",
    "velvet",
    "walnut",
    "yarrow",
    "zephyr",
    "amber",
    "basil",
    "copper",
    "dune",
    "ember",
]
METHODS = ["self-instruct", "magpie", "evol-instruct"]
LABELS = ["A", "B", "tie"]


def _tokens(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


@dataclass
class Local:
    """What we logged, as plain data, to compute every expected answer."""

    fields: dict[str, dict] = field(
        default_factory=dict
    )  # external id -> {"prompt": [...], "response_a": ...}
    metadata: dict[str, dict] = field(default_factory=dict)
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    suggestions: dict[str, dict] = field(
        default_factory=dict
    )  # id -> {"preferred": (value, score, agent), ...}
    responses: dict[str, dict[str, dict]] = field(
        default_factory=dict
    )  # id -> {username: {"status", "values"}}
    server_ids: dict[str, str] = field(default_factory=dict)  # external id -> record UUID
    inserted_at: dict[str, datetime] = field(default_factory=dict)
    updated_at: dict[str, datetime] = field(default_factory=dict)

    def ids(self) -> set[str]:
        return set(self.fields)

    def text(self, rid: str, field_name: str | None = None) -> set[str]:
        f = self.fields[rid]
        parts = {
            "prompt": " ".join(m["content"] for m in f["prompt"]),
            "response_a": f["response_a"],
            "response_b": f["response_b"],
        }
        if field_name:
            return _tokens(parts[field_name])
        return _tokens(" ".join(parts.values()))

    def submitted(self, rid: str) -> int:
        return sum(r["status"] == "submitted" for r in self.responses.get(rid, {}).values())


@dataclass
class Ctx:
    url: str
    owner_key: str
    client: object  # argilla.Argilla
    ds: object  # argilla.Dataset
    local: Local
    annotators: dict[str, object]  # username -> NewUser

    def api(self, key: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.url}/api/v1", headers={"X-Argilla-Api-Key": key or self.owner_key}, timeout=60
        )

    def search(
        self, body: dict, key: str | None = None, me: bool = False, limit: int = 1000, offset: int = 0
    ):
        path = f"/me/datasets/{self.ds.id}/records/search" if me else f"/datasets/{self.ds.id}/records/search"
        with self.api(key) as api:
            resp = api.post(path, json=body, params={"limit": limit, "offset": offset})
        assert resp.status_code == 200, resp.text
        data = resp.json()
        return [it["record"]["external_id"] for it in data["items"]], data["total"], data["items"]


def _make_records(local: Local, start: int, stop: int, rng: random.Random):
    import argilla as rg

    records = []
    for i in range(start, stop):
        rid = f"rec-{i:04d}"
        turns = [{"role": "user", "content": " ".join(rng.sample(VOCAB, 5))}]
        if i % 4 == 0:  # some multi-turn prompts
            turns += [
                {"role": "assistant", "content": " ".join(rng.sample(VOCAB, 3))},
                {"role": "user", "content": " ".join(rng.sample(VOCAB, 3))},
            ]
        fields = {
            "prompt": turns,
            "response_a": " ".join(rng.sample(VOCAB, 7)),
            "response_b": " ".join(rng.sample(VOCAB, 7)),
        }
        metadata = {"complexity": round(rng.uniform(1.0, 6.0), 4), "method": METHODS[i % 3]}
        vector = np.asarray([rng.gauss(0, 1) for _ in range(DIM)], dtype=np.float32)
        pref = (rng.choice(LABELS), round(rng.random(), 4), rng.choice(["judge-a", "judge-b"]))
        qual = rng.randint(1, 5)
        local.fields[rid], local.metadata[rid], local.vectors[rid] = fields, metadata, vector
        local.suggestions[rid] = {"preferred": pref, "quality_a": qual}
        records.append(
            rg.Record(
                id=rid,
                fields=fields,
                metadata=metadata,
                vectors={"emb": vector.tolist()},
                suggestions=[
                    rg.Suggestion("preferred", pref[0], score=pref[1], agent=pref[2]),
                    rg.Suggestion("quality_a", qual, agent="judge-a"),
                ],
            )
        )
    return records


def _refresh_server_view(ctx_url: str, key: str, dataset_id, local: Local) -> None:
    """Server ids and timestamps of every record, from the plain (database) listing endpoint."""
    with httpx.Client(base_url=f"{ctx_url}/api/v1", headers={"X-Argilla-Api-Key": key}, timeout=60) as api:
        offset = 0
        while True:
            page = api.get(f"/datasets/{dataset_id}/records", params={"offset": offset, "limit": 1000}).json()
            for item in page["items"]:
                ext = item["external_id"]
                local.server_ids[ext] = item["id"]
                local.inserted_at[ext] = datetime.fromisoformat(item["inserted_at"])
                local.updated_at[ext] = datetime.fromisoformat(item["updated_at"])
            if len(page["items"]) < 1000:
                break
            offset += 1000


def _submit(url: str, key: str, items: list[dict]) -> None:
    with httpx.Client(base_url=f"{url}/api/v1", headers={"X-Argilla-Api-Key": key}, timeout=60) as api:
        for start in range(0, len(items), 100):
            resp = api.post("/me/responses/bulk", json={"items": items[start : start + 100]})
            assert resp.status_code == 200, resp.text
            errors = [it["error"] for it in resp.json()["items"] if it.get("error")]
            assert not errors, errors


@pytest.fixture(scope="module")
def ctx(argilla_server) -> Ctx:
    """A review-like dataset with 1,000 records, suggestions, and responses from two annotators."""
    import argilla as rg

    from curate.server.users import add_user

    info = argilla_server
    client = rg.Argilla(api_url=info.url, api_key=info.api_key)
    workspace = f"ws-{int(time.time())}"
    annotators = {
        name: add_user(info.url, info.api_key, name, "annotator", [workspace]) for name in ("ann1", "ann2")
    }
    settings = rg.Settings(
        fields=[
            rg.ChatField(name="prompt"),
            rg.TextField(name="response_a"),
            rg.TextField(name="response_b"),
        ],
        questions=[
            rg.LabelQuestion(name="preferred", labels=LABELS),
            rg.RatingQuestion(name="quality_a", values=[1, 2, 3, 4, 5]),
            rg.RankingQuestion(name="ranking", values=["A", "B"], required=False),
            rg.TextQuestion(name="comment", required=False),
        ],
        metadata=[rg.FloatMetadataProperty(name="complexity"), rg.TermsMetadataProperty(name="method")],
        vectors=[rg.VectorField(name="emb", dimensions=DIM)],
        distribution=rg.TaskDistribution(min_submitted=1),
    )
    ds = rg.Dataset(name="review-test", workspace=workspace, settings=settings, client=client).create()

    local, rng = Local(), random.Random(1234)
    ds.records.log(_make_records(local, 0, N_RECORDS // 2, rng))
    time.sleep(1.2)  # two insertion batches, so that date ranges have something to separate
    ds.records.log(_make_records(local, N_RECORDS // 2, N_RECORDS, rng))
    _refresh_server_view(info.url, info.api_key, ds.id, local)
    assert len(local.server_ids) == N_RECORDS

    # ann1 answers records 0..299 (every 10th discarded, every 7th a draft); ann2 answers 200..449.
    ids = sorted(local.ids())
    plans = {"ann1": ids[0:300], "ann2": ids[200:450]}
    for name, chosen in plans.items():
        items = []
        for n, rid in enumerate(chosen):
            status = "discarded" if n % 10 == 3 else ("draft" if n % 7 == 5 else "submitted")
            values = {"preferred": {"value": rng.choice(LABELS)}, "quality_a": {"value": rng.randint(1, 5)}}
            if n % 5 == 0:
                values["ranking"] = {"value": [{"value": "A", "rank": 1}, {"value": "B", "rank": 2}]}
                values["comment"] = {"value": f"note {n}"}
            # (a discard without values is valid for the server, but the argilla SDK 2.8 can't read it back)
            body = {"record_id": local.server_ids[rid], "status": status, "values": values}
            items.append(body)
            local.responses.setdefault(rid, {})[name] = {"status": status, "values": values}
        _submit(info.url, annotators[name].api_key, items)
    return Ctx(info.url, info.api_key, client, ds, local, annotators)


def _sdk_ids(ctx: Ctx, **query) -> list[str]:
    import argilla as rg

    return [r.id for r in ctx.ds.records(query=rg.Query(**query))]


# ------------------------------------------------------------------------------------------------------
# Launcher, credentials, CLI


def test_credentials_are_random_private_and_kept(argilla_server):
    creds_file = argilla_server.data_dir / "credentials.json"
    assert stat.S_IMODE(creds_file.stat().st_mode) == 0o600
    creds = json.loads(creds_file.read_text())
    assert creds["password"] not in ("1234", "12345678", "argilla") and len(creds["password"]) >= 12
    assert creds["api_key"] != "argilla.apikey" and len(creds["api_key"]) >= 32
    assert argilla_server.api_key == creds["api_key"]
    with httpx.Client(base_url=f"{argilla_server.url}/api/v1") as api:
        resp = api.post("/token", data={"username": creds["username"], "password": creds["password"]})
        assert resp.status_code == 201
        me = api.get("/me", headers={"Authorization": f"Bearer {resp.json()['access_token']}"}).json()
        assert me["role"] == "owner"
        assert api.get("/me", headers={"X-Argilla-Api-Key": "wrong"}).status_code == 401


def test_status_and_second_start(argilla_server):
    from curate.server import launcher

    current = launcher.status(argilla_server.data_dir)
    assert current.running and current.url == argilla_server.url
    assert {p.name for p in current.pieces} == {"redis", "server", "worker"}
    assert "curate-sqlite" in next(p.detail for p in current.pieces if p.name == "server")
    again = launcher.start(argilla_server.data_dir)
    assert not again.started and again.url == argilla_server.url
    assert argilla_server.url.startswith("http://127.0.0.1:")
    state = json.loads((argilla_server.data_dir / "server.json").read_text())
    assert state["host"] == "127.0.0.1"


def test_cli_status_users_add_and_start(argilla_server):
    from typer.testing import CliRunner

    from curate.cli import app

    runner = CliRunner(mix_stderr=False)
    data_dir = str(argilla_server.data_dir)
    result = runner.invoke(app, ["server", "status", "--data-dir", data_dir])
    assert result.exit_code == 0, result.stdout + result.stderr
    assert argilla_server.url in result.stdout and "worker" in result.stdout

    result = runner.invoke(
        app, ["server", "users", "add", "cli-user", "--workspace", "cli-ws", "-d", data_dir]
    )
    assert result.exit_code == 0, result.stdout + result.stderr
    password = re.search(r"password: (\S+)", result.stdout).group(1)
    api_key = re.search(r"API key:\s+(\S+)", result.stdout).group(1)
    with httpx.Client(base_url=f"{argilla_server.url}/api/v1") as api:
        me = api.get("/me", headers={"X-Argilla-Api-Key": api_key}).json()
        assert me["username"] == "cli-user" and me["role"] == "annotator"
        workspaces = api.get("/me/workspaces", headers={"X-Argilla-Api-Key": api_key}).json()["items"]
        assert [w["name"] for w in workspaces] == ["cli-ws"]
        assert api.post("/token", data={"username": "cli-user", "password": password}).status_code == 201

    result = runner.invoke(app, ["server", "users", "add", "cli-user", "-d", data_dir])
    assert result.exit_code == 1 and "cli-user" in result.stderr

    result = runner.invoke(app, ["server", "start", "--data-dir", data_dir])
    assert result.exit_code == 0 and "already running" in result.stderr


def test_ensure_server_embedded_and_remote(argilla_server):
    from curate.config import ConfigError, load_config
    from curate.server import ensure_server

    cfg = load_config(overrides={"server": {"data_dir": str(argilla_server.data_dir)}}, environ={})
    assert ensure_server(cfg) == (argilla_server.url, argilla_server.api_key)

    remote = load_config(
        environ={"ARGILLA_API_URL": "https://me-argilla.hf.space/", "ARGILLA_API_KEY": "k123"}
    )
    assert ensure_server(remote) == ("https://me-argilla.hf.space", "k123")
    with pytest.raises(ConfigError, match="ARGILLA_API_KEY"):
        ensure_server(load_config(environ={"ARGILLA_API_URL": "https://me-argilla.hf.space"}))


# ------------------------------------------------------------------------------------------------------
# Search engine through the SDK and the API


def test_text_queries(ctx: Ctx):
    local = ctx.local
    for word in ("apple", "zephyr", "ember"):
        expected = {rid for rid in local.ids() if word in local.text(rid)}
        assert 0 < len(expected) < N_RECORDS
        got = _sdk_ids(ctx, query=word)
        assert len(got) == len(set(got)) and set(got) == expected

    # every term must match (in any field), negation, and one field only
    expected = {rid for rid in local.ids() if {"apple", "river"} <= local.text(rid)}
    assert set(_sdk_ids(ctx, query="apple river")) == expected
    expected = {rid for rid in local.ids() if "apple" in local.text(rid) and "river" not in local.text(rid)}
    assert set(_sdk_ids(ctx, query="apple -river")) == expected
    expected = {rid for rid in local.ids() if "walnut" in local.text(rid, "response_b")}
    got, total, _ = ctx.search({"query": {"text": {"q": "walnut", "field": "response_b"}}})
    assert total == len(expected) and set(got) == expected
    expected = {rid for rid in local.ids() if "walnut" in local.text(rid, "prompt")}  # chat field: every turn
    got, total, items = ctx.search({"query": {"text": {"q": "WALNUT", "field": "prompt"}}})
    assert total == len(expected) and set(got) == expected
    assert all(it["query_score"] is not None and it["query_score"] > 0 for it in items)
    expected = {rid for rid in local.ids() if "walnut" in local.text(rid) or "quartz" in local.text(rid)}
    assert set(_sdk_ids(ctx, query="walnut | quartz")) == expected
    assert _sdk_ids(ctx, query="nonexistentword") == []


def test_offset_limit_and_exact_totals(ctx: Ctx):
    expected = {rid for rid in ctx.local.ids() if "banana" in ctx.local.text(rid)}
    seen: list[str] = []
    for offset in range(0, len(expected) + 40, 40):
        page, total, _ = ctx.search({"query": {"text": {"q": "banana"}}}, limit=40, offset=offset)
        assert total == len(expected)
        seen += page
    assert len(seen) == len(expected) and set(seen) == expected
    page, total, _ = ctx.search({}, limit=7, offset=N_RECORDS - 3)
    assert total == N_RECORDS and len(page) == 3


def test_metadata_suggestion_and_record_filters(ctx: Ctx):
    local = ctx.local
    md, sug = local.metadata, local.suggestions
    cases = [
        (
            [("metadata.complexity", ">=", 3.0), ("metadata.complexity", "<=", 4.5)],
            lambda r: 3.0 <= md[r]["complexity"] <= 4.5,
        ),
        (
            [("metadata.method", "in", ["magpie", "evol-instruct"])],
            lambda r: md[r]["method"] != "self-instruct",
        ),
        ([("preferred", "==", "A")], lambda r: sug[r]["preferred"][0] == "A"),
        ([("preferred.score", ">=", 0.7)], lambda r: sug[r]["preferred"][1] >= 0.7),
        ([("preferred.agent", "==", "judge-b")], lambda r: sug[r]["preferred"][2] == "judge-b"),
        ([("quality_a", ">=", 4)], lambda r: sug[r]["quality_a"] >= 4),
        (
            [("metadata.method", "==", "magpie"), ("preferred", "in", ["B", "tie"])],
            lambda r: md[r]["method"] == "magpie" and sug[r]["preferred"][0] != "A",
        ),
    ]
    for conditions, predicate in cases:
        expected = {rid for rid in local.ids() if predicate(rid)}
        assert 0 < len(expected) < N_RECORDS, conditions
        assert set(_sdk_ids(ctx, filter=conditions)) == expected, conditions

    # a text query combined with a filter
    expected = {rid for rid in local.ids() if "cherry" in local.text(rid) and md[rid]["method"] == "magpie"}
    assert set(_sdk_ids(ctx, query="cherry", filter=[("metadata.method", "==", "magpie")])) == expected


def test_response_and_status_filters(ctx: Ctx):
    local = ctx.local
    resp = local.responses

    def has(rid, predicate):
        return any(predicate(r) for r in resp.get(rid, {}).values())

    cases = [
        ([("response.status", "==", "discarded")], lambda r: has(r, lambda x: x["status"] == "discarded")),
        (
            [("response.status", "in", ["submitted", "draft"])],
            lambda r: has(r, lambda x: x["status"] in ("submitted", "draft")),
        ),
        ([("response.status", "==", "pending")], lambda r: r not in resp),
        (
            [("preferred.response", "==", "B")],
            lambda r: has(r, lambda x: x["values"].get("preferred", {}).get("value") == "B"),
        ),
        (
            [("quality_a.response", ">=", 4)],
            lambda r: has(r, lambda x: x["values"].get("quality_a", {}).get("value", 0) >= 4),
        ),
        ([("status", "==", "completed")], lambda r: local.submitted(r) >= 1),
        ([("status", "==", "pending")], lambda r: local.submitted(r) == 0),
    ]
    for conditions, predicate in cases:
        expected = {rid for rid in local.ids() if predicate(rid)}
        assert 0 < len(expected) < N_RECORDS, conditions
        assert set(_sdk_ids(ctx, filter=conditions)) == expected, conditions


def test_date_range_filters(ctx: Ctx):
    local = ctx.local
    times = sorted(set(local.inserted_at.values()))
    cut = times[len(times) // 2]
    iso = cut.replace(tzinfo=UTC).isoformat()  # an explicit offset, and one without
    expected_ge = {rid for rid, t in local.inserted_at.items() if t >= cut}
    expected_le = {rid for rid, t in local.updated_at.items() if t <= cut}
    assert 0 < len(expected_ge) < N_RECORDS and 0 < len(expected_le) < N_RECORDS
    assert set(_sdk_ids(ctx, filter=[("inserted_at", ">=", iso)])) == expected_ge
    assert set(_sdk_ids(ctx, filter=[("updated_at", "<=", cut.isoformat())])) == expected_le
    body = {
        "filters": {
            "and": [
                {
                    "type": "range",
                    "scope": {"entity": "record", "property": "inserted_at"},
                    "ge": times[0].isoformat(),
                    "le": iso,
                }
            ]
        }
    }
    _, total, _ = ctx.search(body)
    assert total == sum(t <= cut for t in local.inserted_at.values())


def test_pending_for_each_annotator_in_their_own_order(ctx: Ctx):
    """The UI's queue: /me search, response status pending for the user and record status pending."""
    local = ctx.local
    body = {
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
    firsts = {}
    for name, user in ctx.annotators.items():
        expected = {
            rid
            for rid in local.ids()
            if name not in local.responses.get(rid, {}) and local.submitted(rid) == 0
        }
        got, total, _ = ctx.search(body, key=user.api_key, me=True)
        assert total == len(expected) and set(got) == expected
        again, _, _ = ctx.search(body, key=user.api_key, me=True)
        assert again == got  # deterministic per user (the UI pages through it)
        firsts[name] = got[:20]
        # their own submitted records
        mine = {
            rid
            for rid in local.ids()
            if local.responses.get(rid, {}).get(name, {}).get("status") == "submitted"
        }
        sub = {
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
        got, total, _ = ctx.search(sub, key=user.api_key, me=True)
        assert total == len(mine) and set(got) == mine
    assert firsts["ann1"] != firsts["ann2"]  # annotators spread over the dataset


def test_sorting(ctx: Ctx):
    local = ctx.local
    md, sug = local.metadata, local.suggestions
    body = {"sort": [{"scope": {"entity": "metadata", "metadata_property": "complexity"}, "order": "desc"}]}
    got, total, _ = ctx.search(body, limit=1000)
    assert total == N_RECORDS and set(got) == local.ids()
    assert [md[r]["complexity"] for r in got] == sorted((m["complexity"] for m in md.values()), reverse=True)

    body = {
        "sort": [
            {"scope": {"entity": "metadata", "metadata_property": "method"}, "order": "asc"},
            {
                "scope": {"entity": "suggestion", "question": "preferred", "property": "score"},
                "order": "desc",
            },
        ],
        "filters": {
            "and": [
                {
                    "type": "range",
                    "scope": {"entity": "metadata", "metadata_property": "complexity"},
                    "ge": 2.0,
                }
            ]
        },
    }
    got, _, _ = ctx.search(body)
    expected = sorted(
        (r for r in local.ids() if md[r]["complexity"] >= 2.0),
        key=lambda r: (md[r]["method"], -sug[r]["preferred"][1]),
    )
    assert [(md[r]["method"], sug[r]["preferred"][1]) for r in got] == [
        (md[r]["method"], sug[r]["preferred"][1]) for r in expected
    ]

    # by the average of the responses' ratings; records without responses last
    body = {"sort": [{"scope": {"entity": "response", "question": "quality_a"}, "order": "desc"}]}
    got, _, _ = ctx.search(body)

    def avg(rid):
        vals = [
            r["values"]["quality_a"]["value"]
            for r in local.responses.get(rid, {}).values()
            if "quality_a" in r["values"]
        ]
        return sum(vals) / len(vals) if vals else None

    keys = [avg(r) for r in got]
    rated = [k for k in keys if k is not None]
    assert rated == sorted(rated, reverse=True)
    assert keys[: len(rated)] == rated and all(k is None for k in keys[len(rated) :])

    body = {"sort": [{"scope": {"entity": "record", "property": "inserted_at"}, "order": "desc"}]}
    got, _, _ = ctx.search(body)
    stamps = [local.inserted_at[r] for r in got]
    assert stamps == sorted(stamps, reverse=True)


def _cos_top(local: Local, query: np.ndarray, candidates, k: int, least: bool = False):
    ids = sorted(candidates)
    mat = np.stack([local.vectors[r] for r in ids])
    mat = mat / np.linalg.norm(mat, axis=1, keepdims=True)
    cos = mat @ (query / np.linalg.norm(query))
    score = (1 - cos) / 2 if least else (1 + cos) / 2
    order = np.argsort(-score, kind="stable")[:k]
    return [ids[i] for i in order], [float(score[i]) for i in order]


def test_similarity_search(ctx: Ctx):
    import argilla as rg

    local = ctx.local
    query = np.random.default_rng(7).normal(size=DIM).astype(np.float32)
    results = list(ctx.ds.records(query=rg.Query(similar=rg.Similar("emb", query.tolist())), limit=10))
    exp_ids, exp_scores = _cos_top(local, query, local.ids(), 10)
    assert [r.id for r, _ in results] == exp_ids
    assert np.allclose([s for _, s in results], exp_scores, atol=1e-5)

    anchor = sorted(local.ids())[123]
    record = next(iter(ctx.ds.records(query=rg.Query(filter=[("id", "==", anchor)]))))
    for least in (False, True):
        results = list(
            ctx.ds.records(query=rg.Query(similar=rg.Similar("emb", record, most_similar=not least)), limit=8)
        )
        exp_ids, _ = _cos_top(local, local.vectors[anchor], local.ids() - {anchor}, 8, least=least)
        assert [r.id for r, _ in results] == exp_ids

    magpie = {r for r in local.ids() if local.metadata[r]["method"] == "magpie"}
    results = list(
        ctx.ds.records(
            query=rg.Query(
                similar=rg.Similar("emb", query.tolist()), filter=[("metadata.method", "==", "magpie")]
            ),
            limit=10,
        )
    )
    assert [r.id for r, _ in results] == _cos_top(local, query, magpie, 10)[0]


def test_metadata_metrics(ctx: Ctx):
    with ctx.api() as api:
        props = {
            p["name"]: p["id"]
            for p in api.get(f"/me/datasets/{ctx.ds.id}/metadata-properties").json()["items"]
        }
        complexity = api.get(f"/metadata-properties/{props['complexity']}/metrics").json()
        method = api.get(f"/metadata-properties/{props['method']}/metrics").json()
    values = [m["complexity"] for m in ctx.local.metadata.values()]
    assert complexity["min"] == pytest.approx(min(values)) and complexity["max"] == pytest.approx(max(values))
    counts = {m: sum(md["method"] == m for md in ctx.local.metadata.values()) for m in METHODS}
    assert method["total"] == N_RECORDS
    assert {v["term"]: v["count"] for v in method["values"]} == counts


def test_progress_dataset_and_per_user(ctx: Ctx):
    local = ctx.local
    progress = ctx.ds.progress()
    completed = sum(local.submitted(r) >= 1 for r in local.ids())
    assert progress["total"] == N_RECORDS
    assert progress["completed"] == completed and progress["pending"] == N_RECORDS - completed
    for name, user in ctx.annotators.items():
        with ctx.api(user.api_key) as api:
            metrics = api.get(f"/me/datasets/{ctx.ds.id}/metrics").json()["responses"]
        mine = [r[name]["status"] for r in local.responses.values() if name in r]
        for status in ("submitted", "discarded", "draft"):
            assert metrics[status] == mine.count(status), (name, status)
        assert metrics["pending"] == N_RECORDS - len(mine)


def test_updates_and_deletes_stay_in_sync(ctx: Ctx):
    import argilla as rg

    local = ctx.local
    ids = sorted(local.ids())
    ann2 = ctx.annotators["ann2"]
    with ctx.api(ann2.api_key) as api:
        # change one response, delete another: filters and the user's pending queue follow
        changed, removed = ids[420], ids[421]
        me = api.get("/me").json()["id"]
        own = {}
        for rid in (changed, removed):
            body = {
                "filters": {
                    "and": [
                        {
                            "type": "terms",
                            "scope": {"entity": "record", "property": "id"},
                            "values": [local.server_ids[rid]],
                        }
                    ]
                }
            }
            found = api.post(
                f"/me/datasets/{ctx.ds.id}/records/search", json=body, params={"include": "responses"}
            )
            assert found.status_code == 200 and found.json()["total"] == 1, found.text
            own[rid] = next(r for r in found.json()["items"][0]["record"]["responses"] if r["user_id"] == me)
        resp = api.put(
            f"/responses/{own[changed]['id']}",
            json={
                "status": "submitted",
                "values": {"preferred": {"value": "tie"}, "quality_a": {"value": 1}},
            },
        )
        assert resp.status_code == 200, resp.text
        assert api.delete(f"/responses/{own[removed]['id']}").status_code == 200
    local.responses[changed]["ann2"] = {
        "status": "submitted",
        "values": {"preferred": {"value": "tie"}, "quality_a": {"value": 1}},
    }
    del local.responses[removed]["ann2"]
    if not local.responses[removed]:
        del local.responses[removed]
    expected = {
        r
        for r in local.ids()
        if any(
            x["values"].get("preferred", {}).get("value") == "tie"
            for x in local.responses.get(r, {}).values()
        )
    }
    assert set(_sdk_ids(ctx, filter=[("preferred.response", "==", "tie")])) == expected
    body = {
        "filters": {
            "and": [
                {
                    "type": "terms",
                    "scope": {"entity": "response", "property": "status"},
                    "values": ["pending"],
                }
            ]
        }
    }
    got, _, _ = ctx.search(body, key=ann2.api_key, me=True)
    assert removed in got and changed not in got

    # a suggestion replaced and one deleted through the API
    target, dropped = ids[10], ids[11]
    with ctx.api() as api:
        questions = {q["name"]: q["id"] for q in api.get(f"/datasets/{ctx.ds.id}/questions").json()["items"]}
        resp = api.put(
            f"/records/{local.server_ids[target]}/suggestions",
            json={"question_id": questions["preferred"], "value": "tie", "score": 0.999, "agent": "judge-z"},
        )
        assert resp.status_code in (200, 201), resp.text
        sugs = api.get(f"/records/{local.server_ids[dropped]}/suggestions").json()["items"]
        sid = next(s["id"] for s in sugs if s["question_id"] == questions["preferred"])
        assert api.delete(f"/suggestions/{sid}").status_code == 200
    assert _sdk_ids(ctx, filter=[("preferred.agent", "==", "judge-z")]) == [target]
    assert dropped not in set(_sdk_ids(ctx, filter=[("preferred.score", ">=", 0.0)]))

    # a record's metadata updated through the SDK upsert
    record = next(iter(ctx.ds.records(query=rg.Query(filter=[("id", "==", ids[12])]))))
    record.metadata["complexity"] = 99.5
    ctx.ds.records.log([record])
    assert _sdk_ids(ctx, filter=[("metadata.complexity", ">=", 99.0)]) == [ids[12]]
    local.metadata[ids[12]]["complexity"] = 99.5

    # deleted records disappear from text, filter and similarity search
    doomed = ids[-5:]
    ctx.ds.records.delete(list(ctx.ds.records(query=rg.Query(filter=[("id", "in", doomed)]))))
    for rid in doomed:
        for table in (local.fields, local.metadata, local.vectors, local.suggestions):
            table.pop(rid)
        local.responses.pop(rid, None)
    _, total, _ = ctx.search({})
    assert total == N_RECORDS - len(doomed)
    word = "apple"
    assert set(_sdk_ids(ctx, query=word)) == {r for r in local.ids() if word in local.text(r)}
    query = local.vectors[ids[0]] * 1.0
    results = list(ctx.ds.records(query=rg.Query(similar=rg.Similar("emb", query.tolist())), limit=50))
    assert not {r.id for r, _ in results} & set(doomed)
    assert [r.id for r, _ in results] == _cos_top(local, query, local.ids(), 50)[0]


def test_distribution_change_runs_on_the_worker(ctx: Ctx):
    """PATCHing min_submitted queues a job; only the rq worker recomputes the record statuses.
    (Last of the dataset tests: the statuses stay at min_submitted=2.)"""
    import argilla as rg

    local = ctx.local
    ctx.ds.settings.distribution = rg.TaskDistribution(min_submitted=2)
    ctx.ds.update()
    expected = sum(local.submitted(r) >= 2 for r in local.ids())
    assert 0 < expected < sum(local.submitted(r) >= 1 for r in local.ids())
    deadline = time.monotonic() + 180  # a bound so a broken worker fails the test instead of hanging it
    while ctx.ds.progress()["completed"] != expected and time.monotonic() < deadline:
        time.sleep(0.5)
    assert ctx.ds.progress()["completed"] == expected
    assert set(_sdk_ids(ctx, filter=[("status", "==", "completed")])) == {
        r for r in local.ids() if local.submitted(r) >= 2
    }


# ------------------------------------------------------------------------------------------------------
# Restart safety and crash reporting (own data dir)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="start ticks are read from Linux's /proc")
def test_a_piece_is_known_by_its_start_not_by_the_wall_clock(tmp_path: Path):
    """psutil's create_time moves by a second when the wall clock is stepped (it adds /proc/stat's
    whole-second boot time): a live server must still count as running, and a reused pid must not."""
    import sys

    import psutil

    from curate.server import launcher

    entry = launcher.spawn(
        [sys.executable, "-c", "import time; time.sleep(120)"],
        tmp_path / "piece.log",
        dict(os.environ),
        tmp_path,
    )
    try:
        assert entry["start_ticks"] is not None and launcher.is_ours(entry)
        assert launcher.is_ours({**entry, "create_time": entry["create_time"] + 1.0})  # clock stepped
        assert not launcher.is_ours({**entry, "start_ticks": entry["start_ticks"] - 1})  # another process
    finally:
        psutil.Process(entry["pid"]).kill()
    psutil.Process(entry["pid"]).wait()
    assert not launcher.is_ours(entry)


def test_restart_keeps_data_and_logins_and_reports_crashes(tmp_path: Path):
    import argilla as rg

    from curate.server import launcher
    from curate.server.users import add_user

    data_dir = tmp_path / "argilla"
    info = launcher.start(data_dir)
    try:
        assert info.started and info.first_start
        user = add_user(info.url, info.api_key, "restart-ann", "annotator", ["rws"], password="s3cret-pass-1")
        client = rg.Argilla(api_url=info.url, api_key=info.api_key)
        settings = rg.Settings(
            fields=[rg.TextField(name="text")], questions=[rg.LabelQuestion("l", ["x", "y"])]
        )
        ds = rg.Dataset(name="persist", workspace="rws", settings=settings, client=client).create()
        ds.records.log([{"text": f"hello number {i}"} for i in range(20)])
        with httpx.Client(base_url=f"{info.url}/api/v1") as api:
            token = api.post("/token", data={"username": "restart-ann", "password": "s3cret-pass-1"}).json()[
                "access_token"
            ]
        pids = {
            name: entry["pid"]
            for name, entry in json.loads((data_dir / "server.json").read_text())["pids"].items()
        }

        stopped = launcher.stop(data_dir)
        assert stopped == {"worker": "stopped", "server": "stopped", "redis": "stopped"}
        assert not any(_alive(pid) for pid in pids.values())
        assert launcher.status(data_dir).pieces == []
        assert not launcher.status(data_dir).running

        info2 = launcher.start(data_dir)
        assert info2.started and not info2.first_start and info2.api_key == info.api_key
        with httpx.Client(base_url=f"{info2.url}/api/v1") as api:
            # the UI session token from before the restart is still valid (same secret), and so is the
            # password
            assert (
                api.get("/me", headers={"Authorization": f"Bearer {token}"}).json()["username"]
                == "restart-ann"
            )
            assert (
                api.post("/token", data={"username": "restart-ann", "password": "s3cret-pass-1"}).status_code
                == 201
            )
            assert api.get("/me", headers={"X-Argilla-Api-Key": user.api_key}).status_code == 200
        client2 = rg.Argilla(api_url=info2.url, api_key=info2.api_key)
        ds2 = client2.datasets("persist", workspace="rws")
        assert len(list(ds2.records)) == 20
        assert len(list(ds2.records(query=rg.Query(query="number")))) == 20  # the search index survived too

        # a lost search index is rebuilt from the database at the next start
        launcher.stop(data_dir)
        for path in data_dir.glob("search.sqlite3*"):
            path.unlink()
        info2 = launcher.start(data_dir)
        ds2 = rg.Argilla(api_url=info2.url, api_key=info2.api_key).datasets("persist", workspace="rws")
        assert len(list(ds2.records(query=rg.Query(query="number")))) == 20
        assert (
            len(list(ds2.records(query=rg.Query(query="hello", filter=[("status", "==", "pending")])))) == 20
        )
        assert (
            "search index rebuilt for: persist (20 records)" in (data_dir / "logs" / "server.log").read_text()
        )

        # a crashed piece is reported, and the next start brings it back
        worker_pid = json.loads((data_dir / "server.json").read_text())["pids"]["worker"]["pid"]
        os.killpg(worker_pid, 9)
        deadline = time.monotonic() + 30
        while launcher.status(data_dir).running and time.monotonic() < deadline:
            time.sleep(0.2)
        current = launcher.status(data_dir)
        assert not current.running and [p.name for p in current.crashed] == ["worker"]
        info3 = launcher.start(data_dir)
        assert info3.started and info3.recovered == ["worker"]
        assert launcher.status(data_dir).running
    finally:
        launcher.stop(data_dir)
    assert launcher.status(data_dir).pieces == []


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# ------------------------------------------------------------------------------------------------------
# The engine in-process (no server): the index-order sort shortcut agrees with the generic SQL path


def test_index_ordered_sort_matches_generic_path(tmp_path: Path, monkeypatch):
    import asyncio
    import uuid
    from types import SimpleNamespace as NS

    monkeypatch.setenv("ARGILLA_HOME_PATH", str(tmp_path))
    monkeypatch.setenv("CURATE_SEARCH_DB", str(tmp_path / "search.sqlite3"))
    from argilla_server.enums import SortOrder
    from argilla_server.search_engine.base import (
        AndFilter,
        MetadataFilterScope,
        Order,
        RangeFilter,
        SuggestionFilterScope,
        TermsFilter,
    )

    from curate.server.search import paging, schema
    from curate.server.search.engine import SQLiteSearchEngine

    rng = random.Random(5)
    dataset = NS(id=uuid.uuid4(), is_draft=False, fields=[NS(name="text", settings={"type": "text"})])
    question = NS(name="preferred")
    records = []
    for i in range(2500):
        metadata = {"method": rng.choice(METHODS), "tags": rng.sample(["x", "y", "z"], 2)}
        if i % 9:  # some records have no score: they come last, in both orders
            metadata["score"] = rng.randint(0, 40) / 4  # many ties
        suggestions = (
            [
                NS(
                    question=question,
                    value=rng.choice(LABELS),
                    score=rng.randint(0, 20) / 20,
                    agent="judge",
                    type="model",
                )
            ]
            if i % 5
            else []
        )
        records.append(
            NS(
                id=uuid.uuid4(),
                external_id=f"e{i}",
                status="pending",
                inserted_at=datetime(2025, 1, 1),
                updated_at=datetime(2025, 1, 1),
                fields={"text": " ".join(rng.sample(VOCAB, 4))},
                metadata_=metadata,
                responses=[],
                suggestions=suggestions,
                vectors=[],
            )
        )
    engine = SQLiteSearchEngine()

    async def index():
        await engine.create_index(dataset)
        for start in range(0, len(records), 500):
            await engine.index_records(dataset, records[start : start + 500])

    asyncio.run(index())
    sorts = [
        [Order(MetadataFilterScope("score"), SortOrder.desc)],
        [
            Order(MetadataFilterScope("score"), SortOrder.asc),
            Order(MetadataFilterScope("method"), SortOrder.desc),
        ],
        [
            Order(MetadataFilterScope("method"), SortOrder.asc),
            Order(MetadataFilterScope("score"), SortOrder.desc),
        ],
        [Order(SuggestionFilterScope("preferred", "score"), SortOrder.desc)],
        [Order(MetadataFilterScope("tags"), SortOrder.asc)],  # several values per record: generic path
    ]
    filters = [
        None,
        AndFilter([RangeFilter(MetadataFilterScope("score"), ge=2.5, le=8)]),
        AndFilter([TermsFilter(SuggestionFilterScope("preferred", "value"), ["A", "tie"])]),
    ]
    pages = [(0, 10), (0, 2500), (1990, 30), (2240, 50)]

    def run(threshold):
        monkeypatch.setattr(paging, "INDEX_SORT_MIN_TOTAL", threshold)
        out = []
        for sort in sorts:
            for flt in filters:
                for offset, limit in pages:
                    res = asyncio.run(
                        engine.search(dataset, filter=flt, sort=sort, offset=offset, limit=limit)
                    )
                    out.append((res.total, [str(i.record_id) for i in res.items]))
        return out

    fast, generic = run(1), run(10**9)
    assert fast == generic

    # an annotator's random order, read through rnd windows, is the same as sorting every match
    from argilla_server.search_engine.base import RecordFilterScope

    pending = AndFilter([TermsFilter(RecordFilterScope("status"), ["pending"])])

    def user_pages(windows):
        monkeypatch.setattr(paging, "USER_ORDER_WINDOWS", windows)
        out = []
        for user in ("u1", "u2", "u3"):
            for flt in (None, pending, filters[1]):
                for offset, limit in [(0, 1), (0, 10), (7, 10), (300, 50), (0, 2500)]:
                    res = asyncio.run(
                        engine.search(dataset, filter=flt, offset=offset, limit=limit, user_id=user)
                    )
                    out.append((res.total, [str(i.record_id) for i in res.items]))
        return out

    windowed = user_pages(True)
    assert windowed == user_pages(False)
    assert windowed[0] != windowed[15]  # users see different orders
    assert any(len(ids) == 50 for _, ids in fast) and all(len(set(ids)) == len(ids) for _, ids in fast)
    # the shortcut was really taken for single-valued keys, and refused for the list-valued one
    conn = schema.connect()
    assert conn.execute("SELECT key FROM multikeys").fetchall() == [("m:tags",)]
