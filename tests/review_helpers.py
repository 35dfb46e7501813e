"""Helpers for the review tests: config for the test server, annotators, responses through the API."""

from __future__ import annotations

import uuid
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
    from curate.stages.review.client import iter_raw_records, require_dataset

    return list(iter_raw_records(client, require_dataset(client, name, workspace)))


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
