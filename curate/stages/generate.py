"""Generate: instructions, then responses and judge ratings, with the distilabel pipelines in `pipelines/`.

A thin stage over the pipelines: they build and run distilabel; this module gives them the stage shape.
With `run.input` the loop starts from the user's rows instead: the first stage reads them, and rows
that already carry two or more responses skip response generation.
"""

from __future__ import annotations

from pathlib import Path

from datasets import Dataset, Value, concatenate_datasets

from curate.config import Config
from curate.io import InputError, check_text_column, read_rows
from curate.rows import PROMPT_COLUMNS, row_ids
from curate.stages import StageResult

TEXT_TYPES = ("string", "large_string")


def instructions(cfg: Config, ds: Dataset | None, *, source: Path | str | None = None) -> StageResult:
    """New instructions by the configured method; `ds`, if given, holds the parents that evol-instruct evolves."""
    from pipelines.instructions import generate_instructions

    rows, stats = generate_instructions(cfg, ds, source=source)
    return StageResult({"train": rows}, stats)


def preferences(cfg: Config, ds: Dataset | None, *, source: Path | str | None = None) -> StageResult:
    """N responses per instruction in `ds` (optionally EvolQuality rewrites), judged with UltraFeedback;
    rows that already have responses (the user's pairs) pass through untouched."""
    from pipelines.preferences import generate_preferences

    if ds is None:
        raise ValueError("the preferences stage needs instructions")
    if has_responses(ds):
        return StageResult({"train": ds}, {"rows": len(ds), "skipped": "the rows already have responses"})
    rows, stats = generate_preferences(cfg, ds, source=source)
    return StageResult({"train": carry_columns(ds, rows)}, stats)


def carry_columns(instructions: Dataset, rows: Dataset) -> Dataset:
    """`rows` (one per instruction, by `instruction_id`) with the instruction rows' other columns: what the
    stages before generation found (dedup, complexity, selection, the prompt's embedding) stays with it."""
    carried = [c for c in instructions.column_names if c not in rows.column_names]
    if not carried or len(rows) == 0:
        return rows
    ids = row_ids(instructions)  # the ids generation gave the rows as `instruction_id`
    where = {row_id_: i for i, row_id_ in enumerate(ids)}
    extra = instructions.select([where[i] for i in rows["instruction_id"]]).select_columns(carried)
    return concatenate_datasets([rows, extra], axis=1)


def has_responses(ds: Dataset) -> bool:
    """Whether the rows are pairs or multi-response rows already (`generations`, `response_a`/`response_b`)."""
    return "generations" in ds.column_names or {"response_a", "response_b"} <= set(ds.column_names)


def start(cfg: Config, ds: Dataset | None, *, source: Path | str | None = None) -> StageResult:
    """The loop's first stage: the user's rows from `run.input`, else generated instructions."""
    if cfg.run.input is None:
        return instructions(cfg, ds, source=source)
    rows = user_rows(cfg.run.input)
    return StageResult({"train": rows}, {"rows": len(rows), "input": str(cfg.run.input)})


def user_rows(path: Path) -> Dataset:
    """The user's rows as the loop reads them: a prompt column (a string `prompt` becomes `instruction`,
    the column generation reads), and an `id` on every row. Errors name the file, line and field."""
    ds = read_rows(path)
    if not set(PROMPT_COLUMNS) & set(ds.column_names):
        raise InputError(path, f"no prompt column (one of {', '.join(PROMPT_COLUMNS)})", field="instruction")
    prompt = ds.features.get("prompt")
    if "instruction" not in ds.column_names and isinstance(prompt, Value) and prompt.dtype in TEXT_TYPES:
        ds = ds.rename_column("prompt", "instruction")
    if "instruction" in ds.column_names:
        check_text_column(ds, "instruction", path)
    ids = row_ids(ds)
    ds = ds.remove_columns(["id"]) if "id" in ds.column_names else ds
    return ds.add_column("id", ids)
