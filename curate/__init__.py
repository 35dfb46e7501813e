"""curate: human-in-the-loop curation of synthetic LLM training data.

The Python API: each stage as a function over a `datasets.Dataset` (or a list of row dicts), with the
config's defaults for every option not given. Options are the fields of the stage's config section
(`curate init` lists them); `config=` takes a curate.yaml path or a `Config` to start from.

    import curate

    rows = curate.read("pairs.jsonl")
    kept = curate.dedup(rows, threshold=0.9).rows
    scored = curate.score(kept).rows
    picked = curate.select(scored, budget=200).rows
    curate.push(picked, dataset="my-review")
    # ... people review in Argilla ...
    curate.export(dataset="my-review", output="out/my-export")

Each stage returns a `StageResult`: `.rows` (what flows on), `.splits` (also what was set aside, with
the reason on every row) and `.stats`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datasets import Dataset

    from curate.config import Config
    from curate.stages import StageFn, StageResult

__version__ = "0.1.0"
__all__ = [
    "dedup",
    "export",
    "generate_instructions",
    "generate_preferences",
    "make_config",
    "push",
    "read",
    "score",
    "select",
]


def make_config(path: Path | str | Config | None = None, **sections: Mapping[str, Any]) -> Config:
    """The effective config: defaults < `path` (a curate.yaml, or a Config) < environment < `sections`."""
    from curate.config import Config, deep_merge, dump_config, load_config

    if isinstance(path, Config):
        return load_config(overrides=deep_merge(dump_config(path, mask_secrets=False), sections), environ={})
    return load_config(path, overrides=dict(sections))


def read(path: Path | str, split: str = "train") -> Dataset:
    """Rows from jsonl / json / parquet / csv, a saved dataset or a curate stage directory."""
    from curate.io import read_rows

    return read_rows(path, split=split)


def generate_instructions(
    num: int | None = None, *, config: Path | str | Config | None = None, **options: Any
) -> StageResult:
    """New instructions with distilabel (options: `generate.instructions`, e.g. method="magpie")."""
    from curate.stages import generate

    if num is not None:
        options["num_instructions"] = num
    cfg = _stage_config(config, {"generate": {"instructions": options}})
    return generate.instructions(cfg, None)


def generate_preferences(
    rows: Dataset | Sequence[Mapping[str, Any]], *, config: Path | str | Config | None = None, **options: Any
) -> StageResult:
    """Responses and UltraFeedback ratings for each instruction (options: `generate.preferences`)."""
    from curate.stages import generate

    return _run(generate.preferences, rows, config, {"generate": {"preferences": options}})


def dedup(
    rows: Dataset | Sequence[Mapping[str, Any]], *, config: Path | str | Config | None = None, **options: Any
) -> StageResult:
    """Exact and semantic near-duplicates removed, each explained (options: `dedup`, e.g. threshold=0.9)."""
    from curate.stages import dedup as stage

    return _run(stage.run, rows, config, {"dedup": options})


def score(
    rows: Dataset | Sequence[Mapping[str, Any]], *, config: Path | str | Config | None = None, **options: Any
) -> StageResult:
    """Deita complexity, quality and score on every row (options: `score`)."""
    from curate.stages import score as stage

    return _run(stage.run, rows, config, {"score": options})


def select(
    rows: Dataset | Sequence[Mapping[str, Any]], *, config: Path | str | Config | None = None, **options: Any
) -> StageResult:
    """Deita's diversity-aware selection of a budget (options: `select`, e.g. budget=200)."""
    from curate.stages import select as stage

    return _run(stage.run, rows, config, {"select": options})


def push(
    rows: Dataset | Sequence[Mapping[str, Any]],
    *,
    dataset: str | None = None,
    workspace: str | None = None,
    config: Path | str | Config | None = None,
    **options: Any,
) -> StageResult:
    """Pairs pushed to Argilla for review, idempotently (options: `review`; `dataset`, `workspace`)."""
    from curate.stages.review import push as stage

    target = _given(dataset=dataset, workspace=workspace)
    cfg = _stage_config(config, {"argilla": target, "review": options})
    # row dicts go in as they are: a row of the wrong types is quarantined, not the whole push refused
    return stage.run(cfg, rows if hasattr(rows, "column_names") else [dict(r) for r in rows])


def export(
    output: Path | str,
    *,
    dataset: str | None = None,
    workspace: str | None = None,
    to_hub: str | None = None,
    config: Path | str | Config | None = None,
    **options: Any,
) -> dict[str, Any]:
    """The reviewed records exported to `output` (pairs, SFT rows, card); returns the export summary."""
    from curate.stages.export import export as run_export

    cfg = _stage_config(config, {"argilla": _given(dataset=dataset, workspace=workspace), "export": options})
    return dict(run_export(cfg, cfg.argilla.dataset, cfg.argilla.workspace, Path(output), to_hub=to_hub))


def _run(
    fn: StageFn, rows: Dataset | Sequence[Mapping[str, Any]], cfg: Any, sections: dict[str, Any]
) -> StageResult:
    from datasets import Dataset

    ds = rows if isinstance(rows, Dataset) else Dataset.from_list([dict(r) for r in rows])
    return fn(_stage_config(cfg, sections), ds)


def _stage_config(base: Path | str | Config | None, sections: dict[str, Any]) -> Config:
    return make_config(base, **{name: values for name, values in sections.items() if values})


def _given(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}
