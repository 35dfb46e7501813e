"""Input rows -> review pairs: one prompt, two responses, judge suggestion, metadata, shown order.

Accepts curate's preference rows (`instruction` + `generations`, `ratings`, `judge_model`, Deita and
dedup columns) and plain rows (`prompt` + `response_a`/`response_b` or `generations`, optionally
`ratings`, `judge_preference` (a|b|tie or 1|2|0), `judge_model`; `ratings_swapped` from the judge
shown the responses in reverse order gives `judge_preference_swapped`). `prompt` may be a list of chat
messages. Rows with more than two responses are reviewed as best vs worst by the judge's ratings
(UltraFeedback binarisation), so the pair carries the most signal; with an explicit
`judge_preference`, as the first two, the pair that verdict is about.

A value is used as given or the row is rejected (quarantined by push with its row number, field
and reason), never dropped or coerced: a rating must be a whole number on the 1-5 scale, a
`judge_preference` one of the codes above, a response text, a prompt text or chat messages with
text. Absent values (None, a blank CSV cell, NaN) are absent, not bad.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from datasets import Dataset

from curate.io import InputError, is_visible_text
from curate.rows import PROMPT_COLUMNS, MessageError, check_messages, join_input, row_id
from curate.stages.review import settings as st
from curate.stages.review.confidence import LEVEL_SCORE, annotate

RESPONSE_COLUMNS = ("generations", "response_a")


def ab_swapped(record_id: str, seed: int) -> bool:
    """Whether the second response is shown as A: random-looking, but fixed by (seed, record id)."""
    digest = hashlib.sha256(f"{seed}:{record_id}".encode()).digest()
    return bool(digest[0] & 1)


def _num(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) or math.isinf(out) else out


def _int(value: Any) -> int | None:
    out = _num(value)
    return None if out is None else round(out)


class BadValue(ValueError):
    """A row's value that cannot be pushed as it is: the row is quarantined with `field` and the reason."""

    def __init__(self, field: str, reason: str):
        self.field = field
        super().__init__(reason)


def _kind(value: Any) -> str:
    """How a value of the wrong type is named in a quarantine reason."""
    if isinstance(value, bool):
        return f"a boolean: {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"a number: {value}"
    if isinstance(value, str):
        return f"text: {value[:40]!r}"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    return type(value).__name__


def _missing(value: Any) -> bool:
    """No value: None, an empty string (a blank CSV cell) or NaN (a null in a pandas-written column)."""
    return (
        value is None
        or (isinstance(value, str) and not value.strip())
        or (isinstance(value, float) and math.isnan(value))
    )


def _rating(value: Any, field: str) -> int | None:
    """A judge rating on the 1-5 scale, None when absent; anything else is a `BadValue`."""
    if _missing(value):
        return None
    number: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = float(value.strip())
    if number is None:
        raise BadValue(field, f"rating not a number ({field} is {_kind(value)})")
    if not math.isfinite(number) or not 1 <= number <= 5:
        raise BadValue(field, f"rating outside the 1-5 scale ({field} is {value})")
    if number != int(number):
        raise BadValue(field, f"rating not a whole number ({field} is {value})")
    return int(number)


def _ratings(value: Any, n: int, field: str = "ratings") -> list[int | None]:
    """The judge's ratings, one per response (all None when the row has none)."""
    if _missing(value):
        return [None] * n
    if isinstance(value, str) and value.strip().startswith("["):  # a list written into a CSV cell
        with contextlib.suppress(ValueError):
            value = json.loads(value)
    if not isinstance(value, (list, tuple)):
        raise BadValue(field, f"{field} not a list ({field} is {_kind(value)})")
    if len(value) != n:
        raise BadValue(
            field, f"{field} count differs from responses ({len(value)} ratings for {n} responses)"
        )
    return [_rating(v, f"{field}[{i}]") for i, v in enumerate(value)]


def rating_verdict(rx: int | None, ry: int | None) -> str | None:
    """'x' | 'y' | 'tie' from the judge's ratings of the two responses; None if one is missing. The one
    recipe for `judge_preference` (from `ratings`) and `judge_preference_swapped` (`ratings_swapped`)."""
    if rx is None or ry is None:
        return None
    return "x" if rx > ry else "y" if ry > rx else "tie"


PREFERENCES = {"a": "x", "1": "x", "b": "y", "2": "y", "tie": "tie", "0": "tie"}


def _judge_preference(value: Any, field: str = "judge_preference") -> str | None:
    """a|b|tie or 1|2|0 (PandaLM-style) -> 'x' | 'y' | 'tie' in the original response order; None when
    absent; any other value is a `BadValue`."""
    if _missing(value):
        return None
    key = None
    if isinstance(value, str):
        key = value.strip().lower()
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer():
        key = str(int(value))  # 1.0: a code column that pandas stored as floats
    if key not in PREFERENCES:
        raise BadValue(field, f"unknown {field} ({_kind(value)}; use a, b, tie or 1, 2, 0)")
    return PREFERENCES[key]


def _message(m: Any, field: str) -> dict[str, str]:
    if not isinstance(m, Mapping):
        raise BadValue(field, f"chat message not an object ({field} is {_kind(m)})")
    role, content = m.get("role"), m.get("content")
    if role is not None and not (isinstance(role, str) and role.strip()):
        raise BadValue(f"{field}.role", f"chat message role not text ({field}.role is {_kind(role)})")
    if not isinstance(content, str) or not is_visible_text(content):
        what = "empty" if content is None or isinstance(content, str) else _kind(content)
        raise BadValue(f"{field}.content", f"chat message without text ({field}.content is {what})")
    return {"role": role or "user", "content": content}


def _messages(row: Mapping[str, Any]) -> list[dict[str, str]] | None:
    """The row's prompt as chat messages; None if it has none; a `BadValue` if it is not text or messages."""
    column = next((c for c in PROMPT_COLUMNS if row.get(c) is not None), None)
    if column is None:
        return None
    prompt = row[column]
    if isinstance(prompt, str):
        extra = row.get("input")
        if not _missing(extra) and not isinstance(extra, str):
            raise BadValue("input", f"input not text (input is {_kind(extra)})")
        text = join_input(prompt, extra)
        return [{"role": "user", "content": text}] if is_visible_text(text) else None
    if isinstance(prompt, (list, tuple)):
        if not prompt:
            return None
        messages = [_message(m, f"{column}[{i}]") for i, m in enumerate(prompt)]
        try:
            check_messages(prompt, column)  # a role in each, known roles, system first only, a user turn last
        except MessageError as exc:
            raise BadValue(exc.field, str(exc)) from None
        return messages
    raise BadValue(column, f"prompt not text or chat messages ({column} is {_kind(prompt)})")


def _responses(row: Mapping[str, Any]) -> list[Any]:
    """The row's responses (None where one is missing); a response that is not text is a `BadValue`."""
    generations = row.get("generations")
    if generations is not None and not _missing(generations):
        if not isinstance(generations, (list, tuple)):
            raise BadValue("generations", f"generations not a list (generations is {_kind(generations)})")
        fields = [f"generations[{i}]" for i in range(len(generations))]
        responses = list(generations)
    else:
        fields = ["response_a", "response_b"]
        responses = [row.get("response_a"), row.get("response_b")]
    for field, response in zip(fields, responses):
        if response is not None and not isinstance(response, str):
            raise BadValue(field, f"response not text ({field} is {_kind(response)})")
    return responses


def _pick(responses: list[Any], ratings: list[int | None], explicit: bool) -> tuple[int, int] | str:
    """Indices of the two responses to review, or the reason the row cannot be reviewed. With an explicit
    judge preference the pair is the first two responses, the ones that verdict compares."""
    usable = [i for i, r in enumerate(responses) if isinstance(r, str) and is_visible_text(r)]
    if len(usable) < 2:
        empty = [i for i in range(len(responses)) if i not in usable]
        return f"fewer than 2 non-empty responses (empty: generation {empty})"
    if explicit and usable[:2] != [0, 1]:
        return "judge_preference compares responses 1 and 2, and one of them is empty"
    if not explicit and len(usable) > 2 and any(ratings[i] is not None for i in usable):
        ranked = sorted(usable, key=lambda i: (-(ratings[i] or 0), i))
        best, worst = ranked[0], ranked[-1]
        if best == worst or ratings[best] == ratings[worst]:
            best, worst = usable[0], usable[1]
        pair = (min(best, worst), max(best, worst))
    else:
        pair = (usable[0], usable[1])
    if responses[pair[0]].strip() == responses[pair[1]].strip():
        return "the two responses are identical"
    return pair


def _list(row: Mapping[str, Any], column: str, n: int) -> list[Any]:
    value = row.get(column)
    value = list(value) if isinstance(value, (list, tuple)) else []
    return (value + [None] * n)[:n]


def columns_of(rows: Dataset | Sequence[Mapping[str, Any]]) -> list[str]:
    """The column names of a Dataset, or every key any row dict has."""
    if isinstance(rows, Dataset):
        return list(rows.column_names)
    return list(dict.fromkeys(key for row in rows for key in row))


def check_columns(rows: Dataset | Sequence[Mapping[str, Any]], source: Path | str | None) -> None:
    """Fail early (naming the file) when the input is not preference data at all."""
    where = source or "<input>"
    cols = set(columns_of(rows))
    if not cols & set(PROMPT_COLUMNS):
        raise InputError(
            where,
            f"no prompt column (need one of {', '.join(PROMPT_COLUMNS)}; has {', '.join(sorted(cols))})",
            field="prompt",
        )
    if "generations" not in cols and not {"response_a", "response_b"} <= cols:
        raise InputError(
            where,
            "no responses (need `generations` or `response_a` and `response_b`; "
            f"has {', '.join(sorted(cols))})",
            field="generations",
        )


_MARKUP = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>|<!--|&#?[A-Za-z0-9]+;")


def has_markup(pair: dict[str, Any]) -> bool:
    """Whether a pair's prompt or responses hold HTML tags, comments or entities (shown to reviewers as
    literal text, and exported as they are)."""
    texts = [m["content"] for m in pair["messages"]] + list(pair["responses"])
    return any(_MARKUP.search(t) for t in texts)


def to_pairs(
    rows: Dataset | Sequence[Mapping[str, Any]], seed: int, source: Path | str | None = None
) -> tuple[list[dict], list[dict]]:
    """(pairs, rejected): one review pair per usable row; a rejected row carries its row number (1-based,
    in input order), the field at fault where there is one, and the reason."""
    check_columns(rows, source)
    pairs: list[dict] = []
    rejected: list[dict] = []
    seen: dict[str, int] = {}

    def reject(lineno: int, reason: str, row: Mapping[str, Any], field: str | None = None) -> None:
        entry = {"row": lineno, "field": field, "reason": reason, "stage": "validation", "data": dict(row)}
        rejected.append({k: v for k, v in entry.items() if v is not None})

    for i, row in enumerate(rows):
        lineno = i + 1
        try:
            messages = _messages(row)
            responses = _responses(row)
            n = len(responses)
            ratings = _ratings(row.get("ratings"), n)
            # the same judge's ratings with the responses shown in reverse order, in the order as given
            ratings_swapped = _ratings(row.get("ratings_swapped"), n, "ratings_swapped")
            judge_pref = _judge_preference(row.get("judge_preference"))
            extra_verdicts = {  # confidence.VERDICT_FIELDS: the other order, a second judge
                f: _judge_preference(row.get(f), f)
                for f in ("judge_preference_swapped", "judge_preference_2")
            }
        except BadValue as exc:
            reject(lineno, str(exc), row, exc.field)
            continue
        if messages is None:
            reject(lineno, "empty or missing prompt", row)
            continue
        explicit = judge_pref is not None or any(v is not None for v in extra_verdicts.values())
        picked = _pick(responses, ratings, explicit=explicit)
        if isinstance(picked, str):
            reject(lineno, picked, row)
            continue
        xi, yi = picked
        rx, ry = responses[xi], responses[yi]
        record_id = row_id(messages, [rx, ry])
        if record_id in seen:
            reject(lineno, f"duplicate of row {seen[record_id]} (same prompt and responses)", row)
            continue
        seen[record_id] = lineno
        if judge_pref is None:
            judge_pref = rating_verdict(ratings[xi], ratings[yi])
        if extra_verdicts["judge_preference_swapped"] is None:
            extra_verdicts["judge_preference_swapped"] = rating_verdict(
                ratings_swapped[xi], ratings_swapped[yi]
            )
        models = _list(row, "generation_models", n)
        quality_scores = _list(row, "quality_scores", n)
        embedding = row.get("embedding")
        if not (
            isinstance(embedding, (list, tuple)) and embedding and all(_num(v) is not None for v in embedding)
        ):
            embedding = None
        pairs.append(
            {
                "id": record_id,
                "row": lineno,
                "messages": messages,
                "responses": [rx, ry],
                "indices": [xi, yi],
                "ratings": [ratings[xi], ratings[yi]],
                "judge_preference": judge_pref,
                "judge_model": str(row["judge_model"]) if row.get("judge_model") else None,
                "generator_models": [
                    str(models[xi]) if models[xi] else None,
                    str(models[yi]) if models[yi] else None,
                ],
                "quality_scores": [_num(quality_scores[xi]), _num(quality_scores[yi])],
                "complexity": _num(row.get("complexity")),
                "quality": _num(row.get("quality")),
                "deita_score": _num(row.get("deita_score")),
                "dedup_cluster": _int(row.get("dedup_cluster")),
                "dedup_cluster_size": _int(row.get("dedup_cluster_size")),
                "method": str(row["method"]) if row.get("method") else None,
                "source_id": str(row["id"]) if row.get("id") is not None else None,
                "embedding": [float(v) for v in embedding] if embedding is not None else None,
                "swapped": ab_swapped(record_id, seed),
                **extra_verdicts,
            }
        )
        annotate(pairs[-1])
    return pairs, rejected


def shown(pair: dict[str, Any]) -> tuple[int, int]:
    """Positions in `pair['responses']` shown as (A, B)."""
    return (1, 0) if pair["swapped"] else (0, 1)


def judge_label(pair: dict[str, Any]) -> str | None:
    """The judge's preference as the shown label A | B | tie."""
    pref = pair.get("judge_decision", pair["judge_preference"])  # the combined decision (confidence.py)
    if pref is None or pref == "tie":
        return pref
    a, _ = shown(pair)
    return "A" if (pref == "x") == (a == 0) else "B"


def record_metadata(pair: dict[str, Any]) -> dict[str, Any]:
    """The record's metadata in shown (A/B) order; None values are left out."""
    a, b = shown(pair)
    meta = {
        "complexity": pair["complexity"],
        "quality": pair["quality"],
        "quality_a": pair["quality_scores"][a],
        "quality_b": pair["quality_scores"][b],
        "deita_score": pair["deita_score"],
        "judge_rating_a": pair["ratings"][a],
        "judge_rating_b": pair["ratings"][b],
        "dedup_cluster": pair["dedup_cluster"],
        "dedup_cluster_size": pair["dedup_cluster_size"],
        "generator_model_a": pair["generator_models"][a],
        "generator_model_b": pair["generator_models"][b],
        "method": pair["method"],
        "judge_model": pair["judge_model"],
        "a_index": pair["indices"][a],
        "b_index": pair["indices"][b],
        "source_id": pair["source_id"],
        "text_format": st.TEXT_FORMAT,
        "judge_confidence": pair.get("judge_confidence"),
        "review_priority": pair.get("review_priority"),
        "calibration_sample": pair.get("calibration_sample"),
    }
    return {k: v for k, v in meta.items() if v is not None}


def metadata_names(pairs: list[dict[str, Any]]) -> set[str]:
    """Metadata properties the data has at least one value for."""
    names: set[str] = set()
    for pair in pairs:
        names.update(record_metadata(pair))
    return names


def judge_score(pair: dict[str, Any]) -> float | None:
    """Confidence of the judge's decision: the rating gap on the 1-5 scale, scaled to 0..1, when the
    ratings differ; else its confidence level's score (confidence.LEVEL_SCORE), if it has one."""
    rx, ry = pair["ratings"]
    if rx is None or ry is None or rx == ry:
        return LEVEL_SCORE.get(pair.get("judge_confidence") or "")
    return round(abs(rx - ry) / 4, 3)
