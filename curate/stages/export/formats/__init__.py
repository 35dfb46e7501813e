"""The export's output formats: each a module with its `FEATURES` and `rows(decisions)`, one row here.

A format is written as one split of the export's DatasetDict (and `parquet/<split>.parquet`) and is
one config of the dataset card. A new format (KTO, binarised ratings, ...) is one module with the
same two names plus one row in `FORMATS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from datasets import Dataset, DatasetDict, Features

from curate.stages.export.decide import Decisions
from curate.stages.export.formats import binarized, dpo, kto, responses, sft


@dataclass(frozen=True)
class Format:
    split: str  # the split and parquet file name
    config: str  # the dataset card's config name
    features: Features
    rows: Callable[[Decisions], list[dict[str, Any]]]


FORMATS: tuple[Format, ...] = (
    Format("train", "default", dpo.FEATURES, dpo.rows),
    Format("sft", "sft", sft.FEATURES, sft.rows),
    Format("responses", "responses", responses.FEATURES, responses.rows),
    Format("kto", "kto", kto.FEATURES, kto.rows),
    Format("binarized", "binarized", binarized.FEATURES, binarized.rows),
)


def build(decisions: Decisions) -> DatasetDict:
    """Every format's split, built from the same decisions (an empty one keeps its columns)."""
    splits = {}
    for f in FORMATS:
        rows = f.rows(decisions)
        splits[f.split] = (
            Dataset.from_list(rows, features=f.features)
            if rows
            else Dataset.from_dict({name: [] for name in f.features}, features=f.features)  # from_list fails
        )
    return DatasetDict(splits)
