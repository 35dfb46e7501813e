"""Rated pairs in UltraFeedback-binarized's convention: `prompt`, `chosen` / `rejected` as chat messages
(prompt turns + the response), `messages` (the chosen conversation), `score_chosen` / `score_rejected`.

The scores are the reviewers' mean ratings of the two responses where they rated them, else the judge's
(`rating_source` says which); the chosen response is the one the export decided for.
"""

from __future__ import annotations

from typing import Any

from datasets import Features, Value

from curate.stages.export.decide import Decisions
from curate.stages.export.formats import dpo

FEATURES = Features(
    {
        "prompt_id": Value("string"),
        "prompt": Value("string"),
        "chosen": dpo.MESSAGES,
        "rejected": dpo.MESSAGES,
        "messages": dpo.MESSAGES,
        "score_chosen": Value("float64"),
        "score_rejected": Value("float64"),
        "rating_source": Value("string"),
        "decided_by": Value("string"),
    }
)


def rows(decisions: Decisions) -> list[dict[str, Any]]:
    """One row per exported pair, with the two responses' ratings as scores."""
    out = []
    for d in decisions.exported:
        p = dpo.pair(d)
        out.append(
            {
                "prompt_id": p["id"],
                "prompt": p["prompt"],
                "chosen": p["chosen_messages"],
                "rejected": p["rejected_messages"],
                "messages": p["chosen_messages"],
                "score_chosen": p["chosen_rating"],
                "score_rejected": p["rejected_rating"],
                "rating_source": p["rating_source"],
                "decided_by": p["decided_by"],
            }
        )
    return out
