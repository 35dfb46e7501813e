"""Pull reviewed records from Argilla into plain dicts, and decide each record under a vote policy."""

from __future__ import annotations

from collections import Counter
from typing import Any

import argilla as rg

from curate.stages.review import client as rc
from curate.stages.review import settings as st

LABEL_SET = tuple(st.LABELS)  # A, B, tie


def _value(values: dict[str, Any] | None, name: str) -> Any:
    item = (values or {}).get(name)
    return item.get("value") if isinstance(item, dict) else None


def record_fields(raw: dict[str, Any]) -> dict[str, Any]:
    """A server record's field values as the texts that were pushed (push stores them HTML-escaped, so
    that the UI shows them literally, and says so in the record's `text_format` metadata)."""
    fmt = (raw.get("metadata") or {}).get("text_format")
    out: dict[str, Any] = {}
    for name, value in (raw.get("fields") or {}).items():
        if isinstance(value, list):  # chat messages
            out[name] = [
                {**m, "content": st.stored_text(m.get("content"), fmt)} if isinstance(m, dict) else m
                for m in value
            ]
        else:
            out[name] = st.stored_text(value, fmt)
    return out


def normalize(raw: dict[str, Any], questions: dict[str, str], users: dict[str, str]) -> dict[str, Any]:
    """One server record (JSON) -> {id, status, messages, response_a/b, metadata, suggestions, responses}."""
    fields = record_fields(raw)
    metadata = raw.get("metadata") or {}
    suggestions: dict[str, dict[str, Any]] = {}
    for s in raw.get("suggestions") or []:
        name = questions.get(str(s.get("question_id")))
        if name:
            suggestions[name] = {"value": s.get("value"), "score": s.get("score"), "agent": s.get("agent")}
    responses = []
    for r in sorted(
        raw.get("responses") or [], key=lambda r: (r.get("updated_at") or "", str(r.get("user_id")))
    ):
        values = r.get("values") or {}
        pref = _value(values, st.PREFERENCE)
        user_id = str(r.get("user_id"))
        responses.append(
            {
                "user_id": user_id,
                "user": users.get(user_id, user_id),
                "status": r.get("status"),
                "preference": pref if pref in LABEL_SET else None,
                "rating_a": _value(values, st.RATING_A),
                "rating_b": _value(values, st.RATING_B),
                "corrected": (_value(values, st.CORRECTED) or "").strip() or None,
                "comment": (_value(values, st.COMMENT) or "").strip() or None,
                "updated_at": r.get("updated_at"),
            }
        )
    return {
        "id": str(raw.get("external_id") or raw.get("id")),
        "server_id": str(raw.get("id")),
        "status": raw.get("status"),
        "messages": fields.get(st.PROMPT) or [],
        "response_a": fields.get(st.RESPONSE_A),
        "response_b": fields.get(st.RESPONSE_B),
        "metadata": metadata,
        "suggestions": suggestions,
        "responses": responses,
    }


def pull(client: rg.Argilla, dataset: rg.Dataset) -> list[dict[str, Any]]:
    """Every record with all its responses (any status) and suggestions, normalised."""
    questions = {str(q.id): q.name for q in dataset.settings.questions}
    users = rc.usernames(client)
    return [normalize(raw, questions, users) for raw in rc.iter_raw_records(client, dataset)]


def submitted(record: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in record["responses"] if r["status"] == "submitted"]


def votes(record: dict[str, Any]) -> list[str]:
    """The preference labels of submitted responses."""
    return [r["preference"] for r in submitted(record) if r["preference"] is not None]


def decide(
    labels: list[str], policy: str = "majority", min_votes: int = 1, min_agreement: float = 0.5
) -> tuple[str | None, str | None, float | None]:
    """(label, exclusion reason, winner share) for one record's votes.

    majority: the most voted label wins if it has strictly more votes than any other, at least
    `min_votes` votes were cast and its share is >= `min_agreement`. unanimous: every vote agrees.
    A winning `tie` is returned as label 'tie' with reason 'tie' (no pair can be built from it).
    """
    if not labels:
        return None, "unreviewed", None
    if len(labels) < min_votes:
        return None, "too_few_votes", None
    ranked = Counter(labels).most_common()
    top, count = ranked[0]
    share = count / len(labels)
    if policy == "unanimous" and len(ranked) > 1:
        return None, "not_unanimous", share
    if len(ranked) > 1 and ranked[1][1] == count:
        return None, "split_vote", share
    if share < min_agreement:
        return None, "below_min_agreement", share
    if top == "tie":
        return "tie", "tie", share
    return top, None, share
