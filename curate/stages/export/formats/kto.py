"""Unpaired rows in TRL's KTO convention: `prompt` / `completion` / `label` (True = desirable).

Each exported pair gives two rows: its chosen response (desirable) and its rejected one (undesirable).
The split KTOTrainer takes as `train_dataset`.
"""

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
        "label": Value("bool"),
        "prompt_messages": MESSAGES,
        "completion_messages": MESSAGES,
        "pair_id": Value("string"),
        "decided_by": Value("string"),
    }
)


def rows(decisions: Decisions) -> list[dict[str, Any]]:
    """Two rows per exported pair, the chosen response first."""
    out = []
    for d in decisions.exported:
        for text, desirable in ((d.chosen, True), (d.rejected, False)):
            out.append(
                {
                    "id": f"{d.record['id']}-{'chosen' if desirable else 'rejected'}",
                    "prompt": messages_text(d.messages),
                    "completion": text,
                    "label": desirable,
                    "prompt_messages": d.messages,
                    "completion_messages": [{"role": "assistant", "content": text}],
                    "pair_id": d.record["id"],
                    "decided_by": d.decided_by,
                }
            )
    return out
