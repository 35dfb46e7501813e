"""Plain-data views of the server's ORM objects, and the value conversions the index uses.

The views are built on the event loop (attribute access may not lazy load there) and only touch what the
Elasticsearch engine touches, which the server preloads.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from argilla_server.models import Dataset, Record, Response, Suggestion


def timestamp(value: datetime | None) -> float | None:
    """Epoch seconds of a server datetime (naive = UTC), or None."""
    if value is None:
        return None
    if value.tzinfo is None:  # argilla-server stores naive UTC datetimes
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def parse_date(value: Any) -> float:
    """A date bound as Elasticsearch reads it: ISO 8601 (naive = UTC) or epoch milliseconds."""
    if isinstance(value, (int, float)):
        return float(value) / 1000.0
    text = str(value).strip()
    if re.fullmatch(r"-?\d+(\.\d+)?", text):
        return float(text) / 1000.0
    parsed = datetime.fromisoformat(text)  # 3.11 reads "Z" and offsets
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def enum_value(value: Any) -> Any:
    """An enum's value, anything else unchanged."""
    return getattr(value, "value", value)


def scalars(value: Any) -> list[Any]:
    """The filterable scalars in a value: itself, or the scalar items of a list (dicts are skipped,
    like Elasticsearch's disabled objects for ranking/span answers)."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, (str, int, float, bool))]
    if isinstance(value, (str, int, float, bool)):
        return [value]
    return []


def term_num(value: Any) -> tuple[str, float | None]:
    """The keyword form (as Elasticsearch's keyword of a JSON value) and the numeric form, if any."""
    if isinstance(value, bool):
        return ("true" if value else "false"), None
    if isinstance(value, (int, float)):
        return str(value), float(value)
    return str(value), None


def field_text(value: Any, kind: str) -> str | None:
    """The searchable text of a field value (chat: the messages' contents; custom: its JSON)."""
    if value is None:
        return None
    if kind == "chat":
        if isinstance(value, list):
            return "\n".join(str(m.get("content", "")) if isinstance(m, dict) else str(m) for m in value)
        return str(value)
    if kind == "custom" and not isinstance(value, str):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def response_doc(response: Response) -> dict:
    """A response as {id, user, status, values: question -> value}."""
    return {
        "id": str(response.id),
        "user": str(response.user_id),
        "status": str(enum_value(response.status)),
        "values": {q: (v or {}).get("value") for q, v in (response.values or {}).items()},
    }


def suggestion_doc(suggestion: Suggestion) -> dict:
    """A suggestion as {question, value, score, agent, type}."""
    return {
        "question": suggestion.question.name,
        "value": suggestion.value,
        "score": suggestion.score,
        "agent": suggestion.agent,
        "type": enum_value(suggestion.type),
    }


def record_doc(record: Record) -> dict:
    """A record with its fields, metadata, responses, suggestions and vectors, as plain data."""
    return {
        "id": str(record.id),
        "external_id": record.external_id,
        "status": str(enum_value(record.status)) if record.status is not None else None,
        "inserted_at": timestamp(record.inserted_at),
        "updated_at": timestamp(record.updated_at),
        "fields": dict(record.fields or {}),
        "metadata": dict(record.metadata_ or {}),
        "responses": [response_doc(r) for r in (record.responses or [])],
        "suggestions": [suggestion_doc(s) for s in (record.suggestions or [])],
        "vectors": [(str(v.vector_settings_id), v.value) for v in (record.vectors or [])],
    }


def fields_spec(dataset: Dataset) -> dict:
    """Field name -> (FTS column or None, type). Image fields are not searchable (as in Elasticsearch)."""
    spec, col = {}, 0
    for field in sorted(dataset.fields, key=lambda f: f.name):
        kind = str(field.settings.get("type"))
        if kind in ("text", "chat", "custom"):
            spec[field.name] = [f"c{col}", kind]
            col += 1
        else:
            spec[field.name] = [None, kind]
    return spec
