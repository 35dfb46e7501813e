"""The one recipe for the values every stage computes from a row: its id, its prompt text, its responses.

Row ids are content hashes: the same prompt and responses get the same id in every stage, run and
machine, so that a row can be followed from generation through dedup, selection, review and export.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from datasets import Dataset

# Where a row keeps its prompt and its responses, in the order they are looked for.
PROMPT_COLUMNS = ("instruction", "prompt", "messages")
RESPONSE_COLUMNS = ("generations", "response_a", "response", "output")
INPUT_SEPARATOR = "\n\n"

Messages = list[dict[str, str]]


def stable_id(*parts: Any) -> str:
    """A content hash: the same content always gets the same id, across runs and machines."""
    h = hashlib.sha256()
    for part in parts:
        h.update(json.dumps(part, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8"))
        h.update(b"\x1f")
    return h.hexdigest()[:16]


def join_input(instruction: str, extra_input: Any) -> str:
    """Alpaca-style rows keep part of the prompt in `input`: it goes under the instruction."""
    if isinstance(extra_input, str) and extra_input.strip():
        return f"{instruction}{INPUT_SEPARATOR}{extra_input}"
    return instruction


def messages_text(messages: Messages) -> str:
    """The text of a chat prompt: a single user turn as is, else role-tagged turns."""
    if len(messages) == 1:
        return messages[0]["content"]
    return INPUT_SEPARATOR.join(f"{m['role']}: {m['content']}" for m in messages)


def prompt_of(row: Mapping[str, Any]) -> str | Messages | None:
    """A row's prompt: its text (instruction + input), or its chat messages; None if it has none."""
    for column in PROMPT_COLUMNS:
        value = row.get(column)
        if value is None:
            continue
        if isinstance(value, str):
            return join_input(value, row.get("input"))
        if isinstance(value, list) and all(isinstance(m, Mapping) for m in value):
            return [
                {"role": str(m.get("role") or "user"), "content": str(m.get("content") or "")} for m in value
            ]
        return None
    return None


def prompt_text(row: Mapping[str, Any]) -> str:
    """A row's prompt as one text (what is embedded, scored and shown); '' if it has none."""
    prompt = prompt_of(row)
    if prompt is None:
        return ""
    return prompt if isinstance(prompt, str) else messages_text(prompt)


def responses_of(row: Mapping[str, Any]) -> list[Any]:
    """A row's responses, in order: `generations`, else `response_a` / `response_b`, else `response` / `output`."""
    if isinstance(row.get("generations"), (list, tuple)):
        return list(row["generations"])
    if "response_a" in row or "response_b" in row:
        return [row.get("response_a"), row.get("response_b")]
    for column in ("response", "output"):
        if row.get(column) is not None:
            return [row[column]]
    return []


def row_id(prompt: str | Messages, responses: Sequence[Any] = ()) -> str:
    """The id of a prompt and its responses; a one-turn chat prompt has the id of its text."""
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]["content"]
    return stable_id(prompt, *responses)


def row_ids(ds: Dataset, text_column: str | None = None) -> list[str]:
    """Each row's id: its own `id` where it has one, else `row_id` of its prompt and responses.

    `text_column` names the prompt of rows that keep it elsewhere than the usual columns (e.g. `text`).
    """
    given = ds["id"] if "id" in ds.column_names else [None] * len(ds)
    if all(i is not None and i != "" for i in given):
        return [str(i) for i in given]
    own = text_column is not None and text_column not in PROMPT_COLUMNS
    wanted = (text_column,) if own else (*PROMPT_COLUMNS, "input", *RESPONSE_COLUMNS)
    plain = ds.select_columns([c for c in wanted if c in ds.column_names])
    out = []
    for i, row in zip(given, plain, strict=True):
        if i is not None and i != "":
            out.append(str(i))
        elif own:
            out.append(row_id(str(row[text_column] or "")))
        else:
            prompt = prompt_of(row)
            out.append(row_id(prompt if prompt is not None else "", responses_of(row)))
    return out


def as_score(value: Any) -> float:
    """A score cell as a float: a number, the best of a list (one rating per response), else NaN."""
    if isinstance(value, bool) or value is None:
        return math.nan
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else math.nan
    if isinstance(value, (list, tuple)):
        numbers = [as_score(v) for v in value if not isinstance(v, (list, tuple))]
        numbers = [v for v in numbers if not math.isnan(v)]
        return max(numbers) if numbers else math.nan
    return math.nan
