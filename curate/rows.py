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


ROLES = ("system", "user", "assistant")
EARLIER = "Earlier in the conversation (newest first):"


class MessageError(ValueError):
    """Chat messages that are not a conversation curate can review: `field` names the bad part."""

    def __init__(self, field: str, reason: str):
        self.field = field
        self.row: int | None = None
        super().__init__(reason)


def check_messages(value: Any, field: str) -> Messages:
    """A prompt's chat messages as {role, content}: roles among `ROLES` (system only first), text in
    every turn, and a user turn last (the responses answer it); else a `MessageError` naming the field."""
    if not isinstance(value, (list, tuple)) or not value:
        raise MessageError(field, "empty or not a list of chat messages ({role, content} objects)")
    out: Messages = []
    for i, m in enumerate(value):
        where = f"{field}[{i}]"
        if not isinstance(m, Mapping):
            raise MessageError(where, "chat message not an object with role and content")
        role, content = m.get("role"), m.get("content")
        if role is None:
            raise MessageError(f"{where}.role", "chat message without a role")
        if role not in ROLES:
            raise MessageError(f"{where}.role", f"unknown role {role!r} (use {', '.join(ROLES)})")
        if role == "system" and i > 0:
            raise MessageError(f"{where}.role", "a system message is allowed only as the first message")
        if not isinstance(content, str) or not content.strip():
            raise MessageError(f"{where}.content", "chat message without text")
        out.append({"role": role, "content": content})
    if out[-1]["role"] != "user":
        raise MessageError(
            f"{field}[{len(out) - 1}].role",
            f"the conversation ends with a{'n' if out[-1]['role'] == 'assistant' else ''} "
            f"{out[-1]['role']} turn: it must end with the user turn that the responses answer",
        )
    return out


def _completion(value: Any, field: str) -> str:
    """A TRL completion: a text, or a list of exactly one assistant message."""
    if isinstance(value, str):
        return value
    if not isinstance(value, (list, tuple)) or len(value) != 1 or not isinstance(value[0], Mapping):
        raise MessageError(field, "not a text or a list of one assistant message")
    if value[0].get("role") != "assistant":
        raise MessageError(
            f"{field}[0].role", f"the response's role is {value[0].get('role')!r}, not assistant"
        )
    content = value[0].get("content")
    if not isinstance(content, str):
        raise MessageError(f"{field}[0].content", "chat message without text")
    return content


def _split_implicit(chosen: Any, rejected: Any) -> tuple[Messages, str, str]:
    """TRL's implicit-prompt pair (two whole conversations): their shared turns and each last turn."""
    for field, conv in (("chosen", chosen), ("rejected", rejected)):
        if not isinstance(conv, (list, tuple)) or len(conv) < 2:
            raise MessageError(field, "without a prompt column: a whole conversation ending in the response")
    n = 0
    while n < min(len(chosen), len(rejected)) - 1 and chosen[n] == rejected[n]:
        n += 1
    for field, conv in (("chosen", chosen), ("rejected", rejected)):
        if len(conv) != n + 1:
            raise MessageError(
                field, f"differs from the other conversation before its last turn (at turn {n})"
            )
    prompt = check_messages(list(chosen[:n]), "chosen")
    return (
        prompt,
        _completion(list(chosen[n:]), f"chosen[{n}:]"),
        _completion(list(rejected[n:]), f"rejected[{n}:]"),
    )


def conversation_row(row: Mapping[str, Any], check: bool = True) -> dict[str, Any]:
    """A row as curate reads it: a chat prompt checked (`check_messages`), and a TRL preference pair
    (`chosen` / `rejected` as texts or one assistant message each, with `prompt`; or, without `prompt`,
    two whole conversations) as `prompt` + `response_a` (the chosen) / `response_b` and
    `judge_preference: a` (a given one is kept). A `MessageError` names the bad field. `check=False`
    leaves the prompt's messages to the caller (push checks each row and sets the bad ones aside)."""
    out = dict(row)
    history = out.get("history")
    if isinstance(history, (list, tuple)) and history and isinstance(out.get("instruction"), str):
        out["prompt"] = _from_history(history, join_input(out.pop("instruction"), out.pop("input", None)))
        del out["history"]
    column = next((c for c in PROMPT_COLUMNS if out.get(c) is not None), None)
    if check and isinstance(out.get(column), (list, tuple)):
        out[column] = check_messages(out[column], column)
    pair = out.get("chosen") is not None and out.get("rejected") is not None
    if pair and all(out.get(c) is None for c in ("response_a", "response_b", "generations")):
        chosen, rejected = out.pop("chosen"), out.pop("rejected")
        if column is None:
            out["prompt"], out["response_a"], out["response_b"] = _split_implicit(chosen, rejected)
        else:
            out["response_a"], out["response_b"] = (
                _completion(chosen, "chosen"),
                _completion(rejected, "rejected"),
            )
        if out.get("judge_preference") is None:
            out["judge_preference"] = "a"
    return out


def _from_history(history: Sequence[Any], last: str) -> Messages:
    """An Alpaca row's `history` ([user, assistant] pairs, LLaMA-Factory's format) and its instruction
    as chat messages."""
    turns: Messages = []
    for i, turn in enumerate(history):
        if not (isinstance(turn, (list, tuple)) and len(turn) == 2 and all(isinstance(t, str) for t in turn)):
            raise MessageError(f"history[{i}]", "not a [user, assistant] pair of texts")
        turns += [{"role": "user", "content": turn[0]}, {"role": "assistant", "content": turn[1]}]
    return [*turns, {"role": "user", "content": last}]


def conversation_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """`conversation_row` of every row; when some rows are chats and others texts, every prompt becomes
    chat messages under `prompt` (a text as one user turn: the same text and id), so that one column
    holds every row's prompt. A `MessageError` gets `.row`, the 1-based row number."""
    out = []
    for i, row in enumerate(rows):
        try:
            out.append(conversation_row(row))
        except MessageError as exc:
            exc.row = i + 1
            raise
    kinds = {type(prompt_of(r)) for r in out if prompt_of(r) is not None}
    if kinds == {str, list}:
        for r in out:
            prompt = prompt_of(r)
            for column in (*PROMPT_COLUMNS, "input"):
                r.pop(column, None)
            if prompt is not None:
                r["prompt"] = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
    return out


def is_multi_turn(prompt: str | Messages | None) -> bool:
    """Whether a prompt is a conversation of more than one turn (a system message counts as none)."""
    return isinstance(prompt, list) and sum(m["role"] != "system" for m in prompt) > 1


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


def last_turn_text(row: Mapping[str, Any]) -> str | None:
    """The last user turn of a conversation (the question its responses answer); None for a text or a
    one-turn chat, whose `prompt_text` is that question already."""
    prompt = prompt_of(row)
    if not is_multi_turn(prompt):
        return None
    assert isinstance(prompt, list)
    return prompt[-1]["content"]


def scored_text(row: Mapping[str, Any]) -> str:
    """What the Deita scorers read of a row's prompt: `prompt_text` of a text or a one-turn chat; of a
    conversation, the last user turn first, then the turns before it, newest first. The scorers keep the
    head of a long prompt (score.max_instruction_tokens), so the question the responses answer is
    always read, and the oldest context is what a cut drops."""
    prompt = prompt_of(row)
    if not is_multi_turn(prompt):
        return prompt_text(row)
    assert isinstance(prompt, list)
    *earlier, last = prompt
    context = INPUT_SEPARATOR.join(f"{m['role']}: {m['content']}" for m in reversed(earlier))
    return f"{last['content']}{INPUT_SEPARATOR}{EARLIER}{INPUT_SEPARATOR}{context}"


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
