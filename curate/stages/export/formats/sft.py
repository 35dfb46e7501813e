"""SFT rows: each exported record's chosen response as `prompt` / `completion` and as chat `messages`."""

from __future__ import annotations

from typing import Any

from datasets import Features, Value

from curate.rows import messages_text
from curate.stages.export.decide import Decisions
from curate.stages.export.formats.dpo import MESSAGES

FEATURES = Features(
    {
        "id": Value("string"),
        "prompt": Value("string"),
        "completion": Value("string"),
        "messages": MESSAGES,
        "decided_by": Value("string"),
        "estimated_agreement": Value("float64"),
    }
)


def rows(decisions: Decisions) -> list[dict[str, Any]]:
    """One row per exported record, the (corrected) chosen response as the completion."""
    return [
        {
            "id": d.record["id"],
            "prompt": messages_text(d.messages),
            "completion": d.chosen,
            "messages": [*d.messages, {"role": "assistant", "content": d.chosen}],
            "decided_by": d.decided_by,
            "estimated_agreement": d.estimated_agreement,
        }
        for d in decisions.exported
    ]
