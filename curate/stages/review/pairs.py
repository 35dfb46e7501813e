"""Input rows -> review pairs: one prompt, two responses, judge suggestion, metadata, shown order.

Accepts curate's preference rows (`instruction` + `generations`, `ratings`, `judge_model`, Deita and
dedup columns) and plain rows (`prompt` + `response_a`/`response_b` or `generations`, optionally
`ratings`, `judge_preference` (a|b|tie or 1|2|0), `judge_model`). `prompt` may be a list of chat
messages. Rows with more than two responses are reviewed as best vs worst by the judge's ratings
(UltraFeedback binarisation), so the pair carries the most signal.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

from datasets import Dataset

from curate.io import InputError
from curate.rows import prompt_of, row_id

PROMPT_COLUMNS = ("instruction", "prompt", "messages")
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


def _rating(value: Any) -> int | None:
    out = _int(value)
    return out if out is not None and 1 <= out <= 5 else None


def _messages(prompt: Any) -> list[dict[str, str]] | None:
    """A prompt as chat messages, or None if it is not a usable prompt."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}] if prompt.strip() else None
    if isinstance(prompt, list) and prompt:
        return prompt if any(m["content"].strip() for m in prompt) else None
    return None


def _judge_preference(value: Any) -> str | None:
    """a|b|tie or 1|2|0 (PandaLM-style) -> 'x' | 'y' | 'tie' in the original response order."""
    if value is None:
        return None
    key = str(value).strip().lower()
    return {"a": "x", "1": "x", "b": "y", "2": "y", "tie": "tie", "0": "tie"}.get(key)


def _pick(responses: list[Any], ratings: list[int | None]) -> tuple[int, int] | str:
    """Indices of the two responses to review, or the reason the row cannot be reviewed."""
    usable = [i for i, r in enumerate(responses) if isinstance(r, str) and r.strip()]
    if len(usable) < 2:
        empty = [i for i in range(len(responses)) if i not in usable]
        return f"fewer than 2 non-empty responses (empty or not text: generation {empty})"
    if len(usable) > 2 and any(ratings[i] is not None for i in usable):
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


def _list(row: dict[str, Any], column: str, n: int) -> list[Any]:
    value = row.get(column)
    value = list(value) if isinstance(value, (list, tuple)) else []
    return (value + [None] * n)[:n]


def check_columns(ds: Dataset, source: Path | str | None) -> None:
    """Fail early (naming the file) when the input is not preference data at all."""
    where = source or "<input>"
    cols = set(ds.column_names)
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


def to_pairs(ds: Dataset, seed: int, source: Path | str | None = None) -> tuple[list[dict], list[dict]]:
    """(pairs, rejected): one review pair per usable row; rejected rows carry the row number and reason."""
    check_columns(ds, source)
    pairs: list[dict] = []
    rejected: list[dict] = []
    seen: dict[str, int] = {}
    for i, row in enumerate(ds):
        lineno = i + 1
        messages = _messages(prompt_of(row))
        if messages is None:
            rejected.append(
                {"row": lineno, "reason": "empty or missing prompt", "stage": "validation", "data": row}
            )
            continue
        if isinstance(row.get("generations"), (list, tuple)):
            responses = list(row["generations"])
        else:
            responses = [row.get("response_a"), row.get("response_b")]
        n = len(responses)
        ratings = [_rating(r) for r in _list(row, "ratings", n)]
        picked = _pick(responses, ratings)
        if isinstance(picked, str):
            rejected.append({"row": lineno, "reason": picked, "stage": "validation", "data": row})
            continue
        xi, yi = picked
        rx, ry = responses[xi], responses[yi]
        record_id = row_id(messages, [rx, ry])
        if record_id in seen:
            rejected.append(
                {
                    "row": lineno,
                    "reason": f"duplicate of row {seen[record_id]} (same prompt and responses)",
                    "stage": "validation",
                    "data": row,
                }
            )
            continue
        seen[record_id] = lineno
        judge_pref = _judge_preference(row.get("judge_preference"))
        if judge_pref is not None and (xi, yi) != (0, 1):
            judge_pref = None  # an explicit a/b verdict refers to the first two responses only
        if judge_pref is None and ratings[xi] is not None and ratings[yi] is not None:
            judge_pref = "x" if ratings[xi] > ratings[yi] else "y" if ratings[yi] > ratings[xi] else "tie"
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
            }
        )
    return pairs, rejected


def shown(pair: dict[str, Any]) -> tuple[int, int]:
    """Positions in `pair['responses']` shown as (A, B)."""
    return (1, 0) if pair["swapped"] else (0, 1)


def judge_label(pair: dict[str, Any]) -> str | None:
    """The judge's preference as the shown label A | B | tie."""
    pref = pair["judge_preference"]
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
    }
    return {k: v for k, v in meta.items() if v is not None}


def metadata_names(pairs: list[dict[str, Any]]) -> set[str]:
    """Metadata properties the data has at least one value for."""
    names: set[str] = set()
    for pair in pairs:
        names.update(record_metadata(pair))
    return names


def judge_score(pair: dict[str, Any]) -> float | None:
    """Confidence of the judge's preference: the rating gap on the 1-5 scale, scaled to 0..1."""
    rx, ry = pair["ratings"]
    if rx is None or ry is None or rx == ry:
        return None
    return round(abs(rx - ry) / 4, 3)
