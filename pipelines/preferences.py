"""Preference data with distilabel: N responses per instruction, optional EvolQuality, UltraFeedback.

DAG (one chain, so every column of a row stays with its instruction):
  load >> generate_0 [>> evol_quality_0] >> ... >> generate_{N-1} [>> evol_quality_{N-1}]
       >> collect_generations >> ultrafeedback

Response i uses `generate.preferences.generators[i]` (default: the main `llm`) with sampling settings
`generation_params[i]` (both cycled). The judge's ratings are parsed robustly (ultrafeedback.py). With
`judge_both_orders` a second UltraFeedback step (`ultrafeedback_swapped`) judges the responses in
reverse order, after the first.

Output rows (contract): the instruction's columns (its id as `instruction_id`, its generation params as
`instruction_generation_params`), id = row_id(instruction, generations), generations,
generation_models, generation_params (one JSON per response), ratings (1..5 or None), rationales,
judge_raw, judge_model; ratings_swapped, rationales_swapped (in the responses' order as given) and
judge_raw_swapped (about the reversed order) from the swapped pass, None without `judge_both_orders`.
`judge_generations` runs the judge alone on rows that already have their responses.
"""

import json
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

from datasets import Dataset, Features, Sequence, Value
from distilabel.pipeline import Pipeline
from distilabel.steps import LoadDataFromDicts, Step, StepInput
from distilabel.steps.tasks import EvolQuality, TextGeneration

from curate.config import Config, LLMConfig
from curate.io import check_text_column
from curate.models import generation_kwargs, llm_name
from curate.rows import prompt_text, row_id, row_ids
from pipelines.instructions import to_dataset
from pipelines.llm import params_json, run_llm_pipeline, task_llm
from pipelines.runner import batches, make_pipeline, statistics_tokens

FEATURES = Features(
    {
        "id": Value("string"),
        "instruction_id": Value("string"),
        "instruction": Value("string"),
        "method": Value("string"),
        "generator_model": Value("string"),
        "parent_id": Value("string"),
        "seed_id": Value("string"),
        "instruction_generation_params": Value("string"),
        "generations": Sequence(Value("string")),
        "generation_models": Sequence(Value("string")),
        "generation_params": Sequence(Value("string")),
        "ratings": Sequence(Value("int64")),
        "rationales": Sequence(Value("string")),
        "judge_raw": Value("string"),
        "judge_model": Value("string"),
        "ratings_swapped": Sequence(Value("int64")),
        "rationales_swapped": Sequence(Value("string")),
        "judge_raw_swapped": Value("string"),
    }
)
# Rough size of UltraFeedback's prompt without the responses, in tokens (template + system + instruction).
_JUDGE_PROMPT_TOKENS = 700


def _response_column(i: int, evolved: bool) -> str:
    return f"evolved_{i}" if evolved else f"generation_{i}"


def pick_response(row: dict[str, Any], i: int, evol_quality: bool) -> tuple[str, bool]:
    """Response i of a row and whether it is the EvolQuality rewrite (an empty rewrite falls back)."""
    if evol_quality and (row.get(_response_column(i, True)) or "").strip():
        return row[_response_column(i, True)].strip(), True
    return (row.get(_response_column(i, False)) or "").strip(), False


class CollectGenerations(Step):
    """Gathers the N response columns of a row into the `generations` list UltraFeedback judges."""

    num_generations: int
    evol_quality: bool = False

    @property
    def inputs(self) -> list[str]:
        return [f"generation_{i}" for i in range(self.num_generations)]

    @property
    def outputs(self) -> list[str]:
        return ["generations"]

    def process(self, inputs: StepInput):  # type: ignore[override]
        for row in inputs:
            row["generations"] = [
                pick_response(row, i, self.evol_quality)[0] for i in range(self.num_generations)
            ]
        yield inputs


def _plan(cfg: Config) -> list[tuple[LLMConfig, dict[str, Any]]]:
    """(model, sampling settings) for each of the N responses."""
    pcfg = cfg.generate.preferences
    gens = pcfg.generators or [cfg.llm]
    params = pcfg.generation_params or [{}]
    return [(gens[i % len(gens)], dict(params[i % len(params)])) for i in range(pcfg.num_generations)]


def _judge_cfg(cfg: Config) -> LLMConfig:
    return cfg.generate.preferences.judge or cfg.llm


def _judge_steps(cfg: Config, num_generations: int) -> list[Step]:
    """ultrafeedback [, ultrafeedback_swapped]: the judge in the given order, then in reverse order."""
    pcfg = cfg.generate.preferences
    judge_cfg = _judge_cfg(cfg)
    judge_params = generation_kwargs(judge_cfg)
    # Clip each response so that the judge's prompt and answer fit its context window.
    room = judge_cfg.n_ctx - _JUDGE_PROMPT_TOKENS - judge_params["max_new_tokens"]
    max_chars = max(200, 3 * room // num_generations)
    # Imported here: ultrafeedback.py subclasses a distilabel task, keep import cost where it's used.
    from pipelines.ultrafeedback import JUDGE_PREFIX, RobustUltraFeedback

    return [
        RobustUltraFeedback(
            name=name,
            llm=task_llm(judge_cfg, assistant_prefix=JUDGE_PREFIX),
            aspect=pcfg.aspect,
            max_chars_per_generation=max_chars,
            reverse=reverse,
            input_batch_size=pcfg.batch_size,
        )
        for name, reverse in _judge_step_names(cfg)
    ]


def _judge_step_names(cfg: Config) -> list[tuple[str, bool]]:
    both = cfg.generate.preferences.judge_both_orders
    return [("ultrafeedback", False)] + ([("ultrafeedback_swapped", True)] if both else [])


def _chain(previous: Step, steps: list[Step]) -> None:
    for step in steps:
        previous >> step
        previous = step


def _pipeline(cfg: Config, inputs: list[dict[str, Any]]) -> Pipeline:
    """load >> generate_i [>> evol_quality_i] ... >> collect_generations >> ultrafeedback [>> swapped]."""
    pcfg = cfg.generate.preferences
    plan = _plan(cfg)
    judge_cfg = _judge_cfg(cfg)
    bs = pcfg.batch_size

    llm_cfgs = [c for c, _ in plan] + [judge_cfg]
    with make_pipeline(cfg, "preferences", llm_cfgs) as pipeline:
        previous = LoadDataFromDicts(name="load", data=inputs, batch_size=bs)
        for i, (gen_cfg, params) in enumerate(plan):
            gen = TextGeneration(
                name=f"generate_{i}",
                llm=task_llm(gen_cfg, params),
                input_batch_size=bs,
                output_mappings={"generation": f"generation_{i}", "model_name": f"model_name_{i}"},
            )
            previous >> gen
            previous = gen
            if pcfg.evol_quality:
                evol = EvolQuality(
                    name=f"evol_quality_{i}",
                    llm=task_llm(gen_cfg, params),
                    num_evolutions=1,
                    input_batch_size=bs,
                    input_mappings={"response": f"generation_{i}"},
                    output_mappings={"evolved_response": f"evolved_{i}", "model_name": f"evol_model_{i}"},
                )
                previous >> evol
                previous = evol
        collect = CollectGenerations(
            name="collect_generations",
            num_generations=len(plan),
            evol_quality=pcfg.evol_quality,
            input_batch_size=bs,
        )
        _chain(previous, [collect, *_judge_steps(cfg, len(plan))])

    return pipeline


def _judge_pipeline(cfg: Config, inputs: list[dict[str, Any]], num_generations: int) -> Pipeline:
    """load >> ultrafeedback [>> ultrafeedback_swapped], for rows that have their responses."""
    with make_pipeline(cfg, "judge", [_judge_cfg(cfg)]) as pipeline:
        load = LoadDataFromDicts(name="load", data=inputs, batch_size=cfg.generate.preferences.batch_size)
        _chain(load, _judge_steps(cfg, num_generations))
    return pipeline


def judge_generations(cfg: Config, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The judge's columns (ratings, rationales, judge_raw, the `_swapped` ones with `judge_both_orders`,
    judge_model) for rows of `instruction` + `generations` (same count in every row), in input order."""
    if not rows:
        return []
    n = len(rows[0]["generations"])
    if any(len(r["generations"]) != n for r in rows):
        raise ValueError("judge_generations: every row needs the same number of generations")
    inputs = [
        {"instruction": r["instruction"], "generations": list(r["generations"]), "_i": i}
        for i, r in enumerate(rows)
    ]
    judge_cfg = _judge_cfg(cfg)
    totals = {
        name: batches(len(inputs), cfg.generate.preferences.batch_size) for name, _ in _judge_step_names(cfg)
    }
    out, _ = run_llm_pipeline(partial(_judge_pipeline, cfg, inputs, n), cfg, totals, [judge_cfg])
    by_index = {row["_i"]: row for row in out}
    return [
        {**rows[i], **_judge_columns(by_index[i], n), "judge_model": llm_name(judge_cfg)}
        for i in range(len(rows))
    ]


def _judge_columns(row: dict[str, Any], n: int) -> dict[str, Any]:
    """ratings / rationales / judge_raw and their `_swapped` twins (None when that pass did not run)."""
    out: dict[str, Any] = {}
    for suffix in ("", "_swapped"):
        judged = not suffix or f"judge_raw{suffix}" in row  # the first pass always runs
        ratings = _ratings(row.get(f"ratings{suffix}"), n) if judged else None
        rationales = list(row.get(f"rationales{suffix}") or [None] * n)[:n] if judged else None
        if rationales is not None:
            rationales += [None] * (n - len(rationales))
        out[f"ratings{suffix}"] = ratings
        out[f"rationales{suffix}"] = rationales
        out[f"judge_raw{suffix}"] = (row.get(f"judge_raw{suffix}") or "") if judged else None
    return out


def generate_preferences(
    cfg: Config, instructions: Dataset, source: Path | str | None = None
) -> tuple[Dataset, dict[str, Any]]:
    """Responses, optional EvolQuality rewrites and UltraFeedback ratings for each instruction."""
    source = source or "instructions"
    check_text_column(instructions, "instruction", source)
    pcfg = cfg.generate.preferences
    plan = _plan(cfg)
    judge_cfg = _judge_cfg(cfg)
    bs = pcfg.batch_size

    inputs, seen = [], set()
    duplicates = 0
    for row, instruction_id in zip(instructions, row_ids(instructions), strict=True):
        if instruction_id in seen:
            duplicates += 1
            continue
        seen.add(instruction_id)
        inputs.append(
            {
                "instruction": prompt_text(row).strip(),  # what the model answers: with the row's `input`
                "instruction_text": row["instruction"].strip(),
                "instruction_id": instruction_id,
                "method": row.get("method"),
                "generator_model": row.get("generator_model"),
                "parent_id": row.get("parent_id"),
                "seed_id": row.get("seed_id"),
                "instruction_generation_params": _as_json_str(row.get("generation_params")),
            }
        )

    n_batches = batches(len(inputs), bs)
    totals = {f"generate_{i}": n_batches for i in range(len(plan))}
    if pcfg.evol_quality:
        totals |= {f"evol_quality_{i}": n_batches for i in range(len(plan))}
    totals |= {name: n_batches for name, _ in _judge_step_names(cfg)}
    out, requests = run_llm_pipeline(
        partial(_pipeline, cfg, inputs), cfg, totals, [c for c, _ in plan] + [judge_cfg]
    )

    counts: Counter[str] = Counter()
    rows = []
    llm_steps = [f"generate_{i}" for i in range(len(plan))] + [n for n, _ in _judge_step_names(cfg)]
    llm_steps += [f"evol_quality_{i}" for i in range(len(plan))] if pcfg.evol_quality else []
    for row in out:
        # every row's generated tokens count, also those of rows dropped below: they were paid for
        counts["generated_tokens"] += sum(statistics_tokens(row, step) for step in llm_steps)
        responses, params_list, models = [], [], []
        for i, (gen_cfg, params) in enumerate(plan):
            text, evolved = pick_response(row, i, pcfg.evol_quality)
            responses.append(text)
            models.append(llm_name(gen_cfg))
            p = {**generation_kwargs(gen_cfg, **params)}
            if pcfg.evol_quality:
                p["evol_quality"] = evolved
            params_list.append(params_json(p))
        distinct = {r for r in responses if r}
        if len(distinct) < 2:
            # A preference needs two different responses; empty or identical ones teach nothing.
            counts["dropped_too_few_distinct_responses"] += 1
            continue
        judged = _judge_columns(row, len(plan))
        ratings = judged["ratings"]
        counts["ratings_parsed"] += sum(r is not None for r in ratings)
        counts["ratings_missing"] += sum(r is None for r in ratings)
        if judged["ratings_swapped"] is not None:
            counts["ratings_swapped_parsed"] += sum(r is not None for r in judged["ratings_swapped"])
            counts["ratings_swapped_missing"] += sum(r is None for r in judged["ratings_swapped"])
        rows.append(
            {
                "id": row_id(row["instruction"], responses),
                "instruction_id": row["instruction_id"],
                "instruction": row.get("instruction_text") or row["instruction"],
                "method": row.get("method"),
                "generator_model": row.get("generator_model"),
                "parent_id": row.get("parent_id"),
                "seed_id": row.get("seed_id"),
                "instruction_generation_params": row.get("instruction_generation_params"),
                "generations": responses,
                "generation_models": models,
                "generation_params": params_list,
                **judged,
                "judge_model": llm_name(judge_cfg),
            }
        )
    stats = {
        "instructions": len(instructions),
        "dropped_duplicate_instructions": duplicates,
        "num_generations": len(plan),
        "evol_quality": pcfg.evol_quality,
        **dict(sorted(counts.items())),
        **requests,
        "kept": len(rows),
    }
    return to_dataset(rows, FEATURES), stats


def _ratings(values: Any, n: int) -> list[int | None]:
    """Exactly n ratings, each an int in 1..5 or None (never a misplaced or out-of-range value)."""
    values = list(values or [])
    out: list[int | None] = []
    for i in range(n):
        v = values[i] if i < len(values) else None
        out.append(v if isinstance(v, int) and 1 <= v <= 5 else None)
    return out


def _as_json_str(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)
