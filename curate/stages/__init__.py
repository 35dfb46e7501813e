"""The stages of the loop, in flow order: generate -> dedup -> score -> select -> review -> export.

Every stage is one function `run(cfg, ds, *, source=None) -> StageResult`: it takes the effective
config and the rows the previous stage kept (`source` names them in error messages) and returns its
splits and its stats. `curate run` (the stage table in `curate/run.py`), the stage's own CLI command
and the Python API (`curate.dedup(...)`) all call that same function. A new stage is one module with
such a function plus one row in the stage table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from datasets import Dataset

from curate.config import Config
from curate.io import MAIN_SPLIT  # the rows that flow on; other splits hold what a stage set aside


@dataclass(frozen=True)
class StageResult:
    """What a stage produced: its splits (`train` flows on) and its stats (written as stats.json)."""

    splits: dict[str, Dataset]
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def rows(self) -> Dataset:
        """The rows that flow on to the next stage."""
        return self.splits[MAIN_SPLIT]

    @property
    def rows_out(self) -> int:
        """How many rows flow on (a stage without splits, such as push, counts them in its stats)."""
        if MAIN_SPLIT in self.splits:
            return len(self.splits[MAIN_SPLIT])
        return int(self.stats.get("rows_out", 0))


class StageFn(Protocol):
    """The one signature of a stage."""

    def __call__(
        self, cfg: Config, ds: Dataset | None, *, source: Path | str | None = None
    ) -> StageResult: ...
