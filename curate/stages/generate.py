"""Generate: instructions, then responses and judge ratings, with the distilabel pipelines in `pipelines/`.

A thin stage over the pipelines: they build and run distilabel; this module gives them the stage shape.
"""

from __future__ import annotations

from pathlib import Path

from datasets import Dataset

from curate.config import Config
from curate.stages import StageResult


def instructions(cfg: Config, ds: Dataset | None, *, source: Path | str | None = None) -> StageResult:
    """New instructions by the configured method; `ds`, if given, holds the parents that evol-instruct evolves."""
    from pipelines.instructions import generate_instructions

    rows, stats = generate_instructions(cfg, ds, source=source)
    return StageResult({"train": rows}, stats)


def preferences(cfg: Config, ds: Dataset | None, *, source: Path | str | None = None) -> StageResult:
    """N responses per instruction in `ds` (optionally EvolQuality rewrites), judged with UltraFeedback."""
    from pipelines.preferences import generate_preferences

    if ds is None:
        raise ValueError("the preferences stage needs instructions")
    rows, stats = generate_preferences(cfg, ds, source=source)
    return StageResult({"train": rows}, stats)
