"""Preference pairs in TRL's convention: `prompt` / `chosen` / `rejected` as strings and as chat
messages (`*_messages`), with ratings, votes, the judge's suggestion and provenance per pair.

`prompt_messages` holds every turn of a conversation; `chosen` / `rejected` are the last turn's texts
and `chosen_messages` / `rejected_messages` the whole conversation with each (TRL's implicit-prompt
conversational pair: TRL extracts the shared turns as the prompt).

The split DPOTrainer / ORPOTrainer take as `train_dataset`.
"""

from __future__ import annotations

from typing import Any

from datasets import Features, Sequence, Value

from curate.rows import messages_text
from curate.stages.export.decide import Decision, Decisions
from curate.stages.review import settings as st
from curate.stages.review.pull import submitted, votes

MESSAGES = [{"role": Value("string"), "content": Value("string")}]
FEATURES = Features(
    {
        "id": Value("string"),
        "prompt": Value("string"),
        "chosen": Value("string"),
        "rejected": Value("string"),
        "prompt_messages": MESSAGES,
        "chosen_messages": MESSAGES,
        "rejected_messages": MESSAGES,
        "chosen_rating": Value("float64"),
        "rejected_rating": Value("float64"),
        "rating_source": Value("string"),
        "agreement": Value("float64"),
        "num_annotators": Value("int64"),
        "votes_chosen": Value("int64"),
        "votes_rejected": Value("int64"),
        "votes_tie": Value("int64"),
        "annotators": Sequence(Value("string")),
        "decided_by": Value("string"),
        "estimated_agreement": Value("float64"),
        "chosen_position": Value("string"),
        "chosen_index": Value("int64"),
        "rejected_index": Value("int64"),
        "chosen_corrected": Value("bool"),
        "chosen_original": Value("string"),
        "judge_suggestion": Value("string"),
        "judge_agent": Value("string"),
        "judge_score": Value("float64"),
        "human_overrode_judge": Value("bool"),
        "complexity": Value("float64"),
        "quality": Value("float64"),
        "chosen_quality": Value("float64"),
        "rejected_quality": Value("float64"),
        "deita_score": Value("float64"),
        "dedup_cluster": Value("int64"),
        "dedup_cluster_size": Value("int64"),
        "chosen_model": Value("string"),
        "rejected_model": Value("string"),
        "method": Value("string"),
        "comments": Sequence(Value("string")),
        "source_id": Value("string"),
    }
)


def _mean(values: list[Any]) -> float | None:
    nums = [float(v) for v in values if isinstance(v, (int, float))]
    return round(sum(nums) / len(nums), 4) if nums else None


def pair(d: Decision) -> dict[str, Any]:
    """The TRL row of one decision."""
    record, meta = d.record, d.record["metadata"]
    label, lo, hi = d.label, d.label.lower(), d.rejected_label.lower()
    messages = d.messages
    subs = submitted(record)
    labels = votes(record)
    human_chosen = _mean([r[f"rating_{lo}"] for r in subs])
    human_rejected = _mean([r[f"rating_{hi}"] for r in subs])
    if human_chosen is not None or human_rejected is not None:
        chosen_rating, rejected_rating, rating_source = human_chosen, human_rejected, "human"
    else:
        chosen_rating = _mean([meta.get(f"judge_rating_{lo}")])
        rejected_rating = _mean([meta.get(f"judge_rating_{hi}")])
        rating_source = "judge" if chosen_rating is not None or rejected_rating is not None else None
    suggestion = record["suggestions"].get(st.PREFERENCE) or {}
    judged = suggestion.get("value")
    judge = {label: "chosen", d.rejected_label: "rejected", "tie": "tie"}.get(judged) if judged else None
    return {
        "id": record["id"],
        "prompt": messages_text(messages),
        "chosen": d.chosen,
        "rejected": d.rejected,
        "prompt_messages": messages,
        "chosen_messages": [*messages, {"role": "assistant", "content": d.chosen}],
        "rejected_messages": [*messages, {"role": "assistant", "content": d.rejected}],
        "chosen_rating": chosen_rating,
        "rejected_rating": rejected_rating,
        "rating_source": rating_source,
        "agreement": round(d.share, 4) if d.share is not None else None,
        "num_annotators": len(subs),
        "votes_chosen": labels.count(label),
        "votes_rejected": labels.count(d.rejected_label),
        "votes_tie": labels.count("tie"),
        "annotators": [r["user"] for r in subs],
        "decided_by": d.decided_by,
        "estimated_agreement": d.estimated_agreement,
        "chosen_position": label,
        "chosen_index": meta.get(f"{lo}_index"),
        "rejected_index": meta.get(f"{hi}_index"),
        "chosen_corrected": d.correction is not None,
        "chosen_original": d.chosen_original,
        "judge_suggestion": judge,
        "judge_agent": suggestion.get("agent"),
        "judge_score": suggestion.get("score"),
        "human_overrode_judge": bool(d.decided_by == "human" and judge is not None and judge != "chosen"),
        "complexity": meta.get("complexity"),
        "quality": meta.get("quality"),
        "chosen_quality": meta.get(f"quality_{lo}"),
        "rejected_quality": meta.get(f"quality_{hi}"),
        "deita_score": meta.get("deita_score"),
        "dedup_cluster": meta.get("dedup_cluster"),
        "dedup_cluster_size": meta.get("dedup_cluster_size"),
        "chosen_model": meta.get(f"generator_model_{lo}"),
        "rejected_model": meta.get(f"generator_model_{hi}"),
        "method": meta.get("method"),
        "comments": [r["comment"] for r in subs if r["comment"]],
        "source_id": meta.get("source_id"),
    }


def rows(decisions: Decisions) -> list[dict[str, Any]]:
    """One pair per exported record."""
    return [pair(d) for d in decisions.exported]
