"""Helpers for the review tests: config for the test server, annotators, responses through the API."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import argilla as rg

from curate.config import Config, load_config
from curate.models import EMBEDDED_LLM_NAME


def server_config(server, tmp_path: Path, **sections: dict) -> Config:
    """A config that talks to the session's embedded Argilla (as a remote one, by URL and key)."""
    overrides: dict[str, Any] = {
        "argilla": {"api_url": server.url, "api_key": server.api_key},
        "run": {"runs_dir": str(tmp_path / "runs")},
    }
    for name, values in sections.items():
        overrides.setdefault(name, {}).update(values)
    return load_config(overrides=overrides, environ={})


def owner(server) -> rg.Argilla:
    return rg.Argilla(api_url=server.url, api_key=server.api_key)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def annotators(server, workspace: str, names: list[str]) -> dict[str, tuple[str, rg.Argilla, Any]]:
    """name -> (username, client logged in as that annotator, NewUser); usernames are unique per call."""
    from curate.server.users import add_user

    out = {}
    for name in names:
        user = add_user(server.url, server.api_key, unique(name), "annotator", [workspace])
        out[name] = (user.username, rg.Argilla(api_url=server.url, api_key=user.api_key), user)
    return out


def submit(
    client: rg.Argilla,
    record_server_id: str,
    status: str = "submitted",
    preference: str | None = None,
    rating_a: int | None = None,
    rating_b: int | None = None,
    corrected: str | None = None,
    comment: str | None = None,
) -> None:
    """One annotator's response, exactly as the UI sends it (POST /api/v1/records/{id}/responses)."""
    values = {
        k: {"value": v}
        for k, v in (
            ("preference", preference),
            ("rating_a", rating_a),
            ("rating_b", rating_b),
            ("corrected", corrected),
            ("comment", comment),
        )
        if v is not None
    }
    body: dict[str, Any] = {"status": status, "values": values or None}
    response = client.api.http_client.post(f"/api/v1/records/{record_server_id}/responses", json=body)
    assert response.status_code < 300, response.text


def raw_records(client: rg.Argilla, name: str, workspace: str) -> list[dict]:
    """The server's records, their field texts as pushed (push stores them HTML-escaped for the UI)."""
    from curate.stages.review.client import iter_raw_records, require_dataset
    from curate.stages.review.pull import record_fields

    raws = iter_raw_records(client, require_dataset(client, name, workspace))
    return [{**raw, "fields": record_fields(raw)} for raw in raws]


def scored_rows(n: int, start: int = 0) -> list[dict]:
    """Rows shaped like curate's scored preference output (used where generation is not under test)."""
    import random

    rng = random.Random(start)
    rows = []
    for i in range(start, start + n):
        rows.append(
            {
                "id": f"row{i}",
                "instruction": f"Explain topic number {i} in two sentences.",
                "method": "self-instruct",
                "generations": [f"Topic {i} is short.", f"Topic {i} has a longer, careful explanation."],
                "generation_models": ["gen-small", "gen-large"],
                "ratings": [rng.randint(1, 5), rng.randint(1, 5)],
                "judge_model": EMBEDDED_LLM_NAME,
                "complexity": 1 + rng.random() * 5,
                "quality": 1 + rng.random() * 5,
                "quality_scores": [1 + rng.random() * 5, 1 + rng.random() * 5],
                "deita_score": rng.random() * 36,
                "dedup_cluster": i,
                "dedup_cluster_size": 1,
                "embedding": [rng.random() for _ in range(8)],
            }
        )
    return rows


# --------------------------------------------------------------------------------------------------
# PandaLM: the test set's real human votes replayed as three annotators, then exported. PandaLM's
# codes: 1 = response1 is better, 2 = response2 is better, 0 = tie.
# --------------------------------------------------------------------------------------------------

N_PANDALM = 100


@dataclass
class PandaLMReplay:
    """What the replay did and what a correct export must contain, computed without curate's policy code."""

    items: list[dict]  # the PandaLM test items pushed
    gpt: dict[int, dict]  # idx -> gpt-3.5-turbo verdict (the judge's suggestion)
    records: dict[str, dict]  # source id -> raw server record
    slots: dict[str, tuple[str, str]]  # source id -> shown labels of (response1, response2)
    people: dict[str, tuple[str, rg.Argilla, Any]]
    expected: dict[str, str | None]  # record id -> chosen text under the human majority (None: excluded)
    reasons: dict[str, int]  # exclusion reason -> records
    majority: dict[str, str | None]  # source id -> shown label the human majority chose (None: split vote)
    push_stats: dict[str, Any]
    out: Path  # the export directory
    summary: dict[str, Any]  # what export() returned


def pandalm_verdicts(pandalm: Path) -> dict[int, dict]:
    """PandaLM item idx -> gpt-3.5's verdict record."""
    return {g["idx"]: g for g in json.loads((pandalm / "gpt-3.5-turbo-testset-v1.json").read_text())}


def pandalm_pair(item: dict, verdicts: dict[int, dict], row_id: str) -> dict:
    """A PandaLM test item as a pair to push, gpt-3.5's verdict as the judge's."""
    return {
        "id": row_id,
        "instruction": item["instruction"],
        "input": item["input"],
        "response_a": item["response1"],
        "response_b": item["response2"],
        "judge_preference": str(verdicts[item["idx"]]["gpt_result"]),
        "judge_model": "gpt-3.5-turbo",
    }


def replay_pandalm(shared_data: Path, server, workdir: Path) -> PandaLMReplay:
    """Push PandaLM's first items with gpt-3.5's verdicts as suggestions, submit its three annotators'
    votes through the API as three Argilla users, and export (curate's default policy: majority)."""
    from datasets import Dataset

    from curate.stages.export import export
    from curate.stages.review.push import push

    pandalm = shared_data / "preference" / "pandalm"
    items = json.loads((pandalm / "testset-v1.json").read_text())[:N_PANDALM]
    gpt = pandalm_verdicts(pandalm)
    rows = [pandalm_pair(it, gpt, str(it["idx"])) for it in items]
    cfg = server_config(server, workdir, review={"min_submitted": 3, "vectors": False})
    name, ws = unique("pandalm"), unique("ws")
    stats = push(Dataset.from_list(rows), cfg, name, ws, quarantine=workdir / "quarantine.jsonl")
    client = owner(server)
    people = annotators(server, ws, ["annotator1", "annotator2", "annotator3"])
    records = {r["metadata"]["source_id"]: r for r in raw_records(client, name, ws)}
    items = [it for it in items if str(it["idx"]) in records]
    expected: dict[str, str | None] = {}
    reasons: dict[str, int] = {}
    majority: dict[str, str | None] = {}
    slots: dict[str, tuple[str, str]] = {}
    for it in items:
        sid = str(it["idx"])
        raw = records[sid]
        slot1 = "A" if raw["fields"]["response_a"] == it["response1"] else "B"
        slot2 = "B" if slot1 == "A" else "A"
        slots[sid] = (slot1, slot2)
        for k in (1, 2, 3):
            submit(
                people[f"annotator{k}"][1],
                raw["id"],
                preference={1: slot1, 2: slot2, 0: "tie"}[it[f"annotator{k}"]],
            )
        # the human majority, computed here independently of curate's policy code
        counts = {v: [it[f"annotator{k}"] for k in (1, 2, 3)].count(v) for v in (0, 1, 2)}
        top = max(counts.values())
        winners = [v for v, c in counts.items() if c == top]
        if len(winners) > 1:
            expected[raw["external_id"]], majority[sid] = None, None
            reasons["split_vote"] = reasons.get("split_vote", 0) + 1
        elif winners[0] == 0:
            expected[raw["external_id"]], majority[sid] = None, "tie"
            reasons["tie"] = reasons.get("tie", 0) + 1
        else:
            expected[raw["external_id"]] = it["response1"] if winners[0] == 1 else it["response2"]
            majority[sid] = slot1 if winners[0] == 1 else slot2
    out = workdir / "pandalm-export"
    summary = export(cfg, name, ws, out)
    return PandaLMReplay(items, gpt, records, slots, people, expected, reasons, majority, stats, out, summary)
