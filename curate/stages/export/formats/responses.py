"""Every human response (any status) with what became of its record, so nothing reviewed is lost."""

from __future__ import annotations

from typing import Any

from datasets import Features, Value

from curate.stages.export.decide import Decisions

FEATURES = Features(
    {
        "record_id": Value("string"),
        "annotator": Value("string"),
        "status": Value("string"),
        "preference": Value("string"),
        "preferred_index": Value("int64"),
        "rating_a": Value("int64"),
        "rating_b": Value("int64"),
        "corrected": Value("string"),
        "comment": Value("string"),
        "outcome": Value("string"),
    }
)


def rows(decisions: Decisions) -> list[dict[str, Any]]:
    """One row per response; `preferred_index` maps the shown A/B back to the generation order (-1: tie)."""
    out = []
    for record in decisions.records:
        meta = record["metadata"]
        for r in record["responses"]:
            pref = r["preference"]
            index = (
                meta.get(f"{pref.lower()}_index") if pref in ("A", "B") else (-1 if pref == "tie" else None)
            )
            out.append(
                {
                    "record_id": record["id"],
                    "annotator": r["user"],
                    "status": r["status"],
                    "preference": pref,
                    "preferred_index": index,
                    "rating_a": r["rating_a"],
                    "rating_b": r["rating_b"],
                    "corrected": r["corrected"],
                    "comment": r["comment"],
                    "outcome": decisions.outcome.get(record["id"])
                    if r["status"] == "submitted"
                    else r["status"],
                }
            )
    return out
