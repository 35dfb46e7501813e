"""Instruction generation with distilabel: prompt, Self-Instruct, Magpie or EvolInstruct.

distilabel runs the LLM steps (cached, resumable, optionally on Ray); the filters it lacks run on
its output here (pipelines/filters.py), each drop counted under its reason in the stats.

Output rows (contract): id = row_id(instruction), instruction, method, generator_model,
parent_id, seed_id, generation_params (JSON: sampling settings + what shaped this row).
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

from datasets import Dataset, Features, Value
from distilabel.pipeline import Pipeline
from distilabel.steps import LoadDataFromDicts
from distilabel.steps.tasks import EvolInstruct, MagpieGenerator, SelfInstruct, TextGeneration

from curate.config import Config, ConfigError
from curate.io import check_text_column, read_rows
from curate.models import generation_kwargs, llm_name
from curate.rows import row_id
from pipelines.filters import (
    RougeNovelty,
    clean_instruction,
    echoes_self_instruct_prompt,
    elimination_reason,
    first_instruction,
    quality_reason,
)
from pipelines.llm import params_json, resolve_pre_query_template, run_llm_pipeline, task_llm
from pipelines.runner import batches, make_pipeline, statistics_tokens

FEATURES = Features(
    {
        "id": Value("string"),
        "instruction": Value("string"),
        "method": Value("string"),
        "generator_model": Value("string"),
        "parent_id": Value("string"),
        "seed_id": Value("string"),
        "generation_params": Value("string"),
    }
)
COLUMNS = list(FEATURES)

# The prompt method crosses topics with kinds of task, so that N prompts are not N paraphrases.
TASK_KINDS = [
    "a question that asks for an explanation",
    "a how-to request with concrete steps",
    "a request to write something (an email, a story, a poem or a description)",
    "a question that compares two things",
    "a request for a list of ideas or recommendations",
    "a small problem to solve or calculate",
]
PROMPT_TEMPLATE = (
    "Write {{ kind }} that a user could send to an AI assistant about {{ topic }}. "
    "Reply with the user's message only, in one or two sentences."
)
SELF_INSTRUCT_PER_CALL = 3  # queries asked per Self-Instruct call: a small model lists few well
MAGPIE_SYSTEM_PROMPT = (
    "You are a helpful AI assistant. The user asks you questions and gives you tasks about {topic}."
)
IN_DEPTH = ("CONSTRAINTS", "DEEPENING", "CONCRETIZING", "INCREASED_REASONING_STEPS")
BUILTIN_SEEDS = "seed_tasks.jsonl"


def builtin_seeds_path() -> Path:
    import curate.config  # a module always has a __file__ (the package may be a namespace in editable installs)

    return Path(curate.config.__file__).parent / "data" / BUILTIN_SEEDS


def load_seeds(path: Path | None) -> list[dict[str, Any]]:
    """Seed tasks: the Self-Instruct seed format (id, instruction, instances[{input, output}]) or any
    rows with an `instruction`; `id` defaults to the instruction's content hash."""
    path = Path(path) if path else builtin_seeds_path()
    ds = read_rows(path, required=["instruction"])
    check_text_column(ds, "instruction", path)
    seeds = []
    for row in ds:
        instances = row.get("instances") or []
        first_input = (
            (instances[0] or {}).get("input") if instances and isinstance(instances[0], dict) else None
        )
        seeds.append(
            {
                "id": str(row.get("id") or row_id(row["instruction"].strip())),
                "instruction": row["instruction"].strip(),
                "input": (first_input or "").strip(),
                "seed_id": row.get("seed_id"),
            }
        )
    return seeds


def generate_instructions(
    cfg: Config, parents: Dataset | None = None, source: Path | str | None = None
) -> tuple[Dataset, dict[str, Any]]:
    """Generate instructions with the configured method; returns the rows and the stats of counts.

    `parents` are the instructions that evol-instruct evolves (default: the seed tasks)."""
    method = cfg.generate.instructions.method
    if parents is not None and method != "evol-instruct":
        raise ConfigError(f"--input is only used by --method evol-instruct (method is {method}); use --seeds")
    if method == "prompt":
        rows, stats = _prompt(cfg)
    elif method == "self-instruct":
        rows, stats = _self_instruct(cfg)
    elif method == "magpie":
        rows, stats = _magpie(cfg)
    else:
        rows, stats = _evol_instruct(cfg, parents, source or "<dataset>")
    stats = {"method": method, "requested": cfg.generate.instructions.num_instructions, **stats}
    return to_dataset(rows, FEATURES), stats


def to_dataset(rows: list[dict[str, Any]], features: Features) -> Dataset:
    """Rows as a Dataset with a fixed schema (also when every row was filtered out)."""
    return Dataset.from_dict({c: [r.get(c) for r in rows] for c in features}, features=features)


# --- shared -----------------------------------------------------------------------------------------


def _sampling(cfg: Config) -> dict[str, Any]:
    return generation_kwargs(cfg.llm)


class _Collector:
    """Applies the quality filters and exact-duplicate removal, counting each drop by reason."""

    def __init__(self, cfg: Config, target: int):
        self.cfg, self.target = cfg, target
        self.rows: list[dict[str, Any]] = []
        self.ids: set[str] = set()
        self.counts: Counter[str] = Counter()

    def full(self) -> bool:
        return len(self.rows) >= self.target

    def drop(self, reason: str) -> None:
        self.counts[f"dropped_{reason}"] += 1

    def offer(self, text: str, extra_check=None, **provenance: Any) -> bool:
        """Count `text` as generated; keep it unless a filter (or `extra_check`) drops it."""
        self.counts["generated"] += 1
        if self.full():
            self.drop("over_target")
            return False
        icfg = self.cfg.generate.instructions
        reason = quality_reason(text, min_words=icfg.min_words)
        if reason is None and extra_check is not None:
            reason = extra_check(text)
        this_id = row_id(text) if text else ""
        if reason is None and this_id in self.ids:
            reason = "duplicate"
        if reason is not None:
            self.drop(reason)
            return False
        self.ids.add(this_id)
        self.rows.append({"id": this_id, "instruction": text, **provenance})
        return True

    def stats(self) -> dict[str, Any]:
        out = dict(sorted(self.counts.items()))
        out.setdefault("generated", 0)
        out["kept"] = len(self.rows)
        return out


def _provenance(
    cfg: Config, method: str, params: dict[str, Any], parent_id=None, seed_id=None
) -> dict[str, Any]:
    return {
        "method": method,
        "generator_model": llm_name(cfg.llm),
        "parent_id": parent_id,
        "seed_id": seed_id,
        "generation_params": params_json(params),
    }


# --- prompt -----------------------------------------------------------------------------------------


def prompt_inputs(cfg: Config) -> list[dict[str, Any]]:
    """The prompt method's rows: topics crossed with kinds of task."""
    icfg = cfg.generate.instructions
    topics = icfg.topics or ["general knowledge"]
    return [
        {"topic": topics[i % len(topics)], "kind": TASK_KINDS[(i // len(topics)) % len(TASK_KINDS)], "n": i}
        for i in range(icfg.num_instructions)
    ]


def prompt_pipeline(cfg: Config, inputs: list[dict[str, Any]]) -> Pipeline:
    """load >> TextGeneration("prompt"): the prompt method's distilabel pipeline."""
    icfg = cfg.generate.instructions
    with make_pipeline(cfg, "instructions-prompt", [cfg.llm]) as pipeline:
        load = LoadDataFromDicts(name="load", data=inputs, batch_size=icfg.batch_size)
        gen = TextGeneration(
            name="prompt",
            llm=task_llm(cfg.llm),
            system_prompt=icfg.system_prompt,
            template=PROMPT_TEMPLATE,
            columns=["topic", "kind"],
            input_batch_size=icfg.batch_size,
        )
        load >> gen
    return pipeline


def _prompt(cfg: Config) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    icfg = cfg.generate.instructions
    inputs = prompt_inputs(cfg)
    out, requests = run_llm_pipeline(
        partial(prompt_pipeline, cfg, inputs),
        cfg,
        {"prompt": batches(len(inputs), icfg.batch_size)},
        [cfg.llm],
    )
    collect = _Collector(cfg, icfg.num_instructions)
    for row in out:
        params = {
            **_sampling(cfg),
            "topic": row["topic"],
            "kind": row["kind"],
            "system_prompt": icfg.system_prompt,
        }
        collect.offer(first_instruction(row.get("generation")), **_provenance(cfg, "prompt", params))
    return collect.rows, {**collect.stats(), **requests}


# --- self-instruct ----------------------------------------------------------------------------------


def _self_instruct_pipeline(cfg: Config, inputs: list[dict[str, Any]]) -> Pipeline:
    icfg = cfg.generate.instructions
    with make_pipeline(cfg, "instructions-self-instruct", [cfg.llm]) as pipeline:
        load = LoadDataFromDicts(name="load", data=inputs, batch_size=icfg.batch_size)
        gen = SelfInstruct(
            name="self_instruct",
            llm=task_llm(cfg.llm),
            num_instructions=SELF_INSTRUCT_PER_CALL,
            input_batch_size=icfg.batch_size,
        )
        load >> gen
    return pipeline


def _self_instruct(cfg: Config) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    icfg = cfg.generate.instructions
    seeds = load_seeds(icfg.seeds)
    order = random.Random(0).sample(seeds, len(seeds))  # deterministic, so resume hits the cache
    calls = max(1, math.ceil(icfg.num_instructions / SELF_INSTRUCT_PER_CALL))
    inputs = []
    for i in range(calls):
        seed = order[i % len(order)]
        context = seed["instruction"] + (f"\n{seed['input']}" if seed["input"] else "")
        inputs.append({"input": context, "seed_id": seed["id"], "n": i})
    build = partial(_self_instruct_pipeline, cfg, inputs)
    out, requests = run_llm_pipeline(
        build, cfg, {"self_instruct": batches(len(inputs), icfg.batch_size)}, [cfg.llm]
    )

    # Self-Instruct's novelty filter: the pool starts with every seed and grows with each kept task.
    novelty = RougeNovelty((s["instruction"] for s in seeds), threshold=icfg.rouge_threshold)

    def novel(text: str) -> str | None:
        if echoes_self_instruct_prompt(text):
            return "prompt_echo"
        return None if novelty.accept(text)[0] else "rouge_similar"

    collect = _Collector(cfg, icfg.num_instructions)
    for row in out:
        candidates = [clean_instruction(c) for c in (row.get("instructions") or [])]
        candidates = [c for c in candidates if c]
        if not candidates:  # the model produced nothing usable at all
            collect.counts["generated"] += 1
            collect.drop("empty")
            continue
        params = {
            **_sampling(cfg),
            "rouge_threshold": icfg.rouge_threshold,
            "per_call": SELF_INSTRUCT_PER_CALL,
        }
        for text in candidates:
            collect.offer(
                text, extra_check=novel, **_provenance(cfg, "self-instruct", params, seed_id=row["seed_id"])
            )
    stats = collect.stats()
    stats.update({"seeds": len(seeds), "calls": len(inputs), **requests})
    return collect.rows, stats


# --- magpie -----------------------------------------------------------------------------------------


def _magpie_batch_size(num_rows: int, batch_size: int) -> int:
    """A batch size dividing num_rows: distilabel 1.5.3's MagpieGenerator only flags its last batch
    when the rows generated so far equal num_rows exactly (otherwise the pipeline never finishes)."""
    if num_rows <= batch_size:
        return max(1, num_rows)
    return max(d for d in range(1, batch_size + 1) if num_rows % d == 0)


def _magpie_pipeline(cfg: Config, template: str, system_prompts: dict[str, str], batch_size: int) -> Pipeline:
    with make_pipeline(cfg, "instructions-magpie", [cfg.llm]) as pipeline:
        MagpieGenerator(
            name="magpie",
            llm=task_llm(cfg.llm, magpie_template=template),
            num_rows=cfg.generate.instructions.num_instructions,
            batch_size=batch_size,
            only_instruction=True,
            system_prompt=system_prompts,
        )
    return pipeline


def _magpie(cfg: Config) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    icfg = cfg.generate.instructions
    template = resolve_pre_query_template(icfg.magpie_pre_query_template, cfg.llm)
    topics = icfg.topics or ["general knowledge"]
    system_prompts = {topic: MAGPIE_SYSTEM_PROMPT.format(topic=topic) for topic in topics}
    n = icfg.num_instructions
    bs = _magpie_batch_size(n, icfg.batch_size)
    out, requests = run_llm_pipeline(
        partial(_magpie_pipeline, cfg, template, system_prompts, bs),
        cfg,
        {"magpie": batches(n, bs)},
        [cfg.llm],
    )
    collect = _Collector(cfg, n)
    for row in out:
        topic = row.get("system_prompt_key")
        params = {
            **_sampling(cfg),
            "pre_query_template": template,
            "topic": topic,
            "system_prompt": system_prompts.get(topic),
        }
        collect.offer(clean_instruction(row.get("instruction")), **_provenance(cfg, "magpie", params))
    tokens = sum(statistics_tokens(row, "magpie") for row in out)
    return collect.rows, {**collect.stats(), **requests, "generated_tokens": tokens}


# --- evol-instruct ----------------------------------------------------------------------------------


def pick_mutation(instruction: str, names: list[str]) -> str:
    """The mutation applied to an instruction: a hash of its text, so provenance can name it."""
    digest = hashlib.sha256(instruction.encode("utf-8")).digest()
    return names[int.from_bytes(digest[:4], "big") % len(names)]


class TrackedEvolInstruct(EvolInstruct):
    """EvolInstruct whose mutation choice is a function of the instruction (distilabel draws it from
    numpy's global RNG and does not record it), so each evolution's provenance names its mutation."""

    def _apply_random_mutation(self, instruction: str) -> str:
        name = pick_mutation(instruction, self.mutation_templates_names)
        return self.mutation_templates[name].replace("<PROMPT>", instruction)


def _load_parents(cfg: Config, ds: Dataset | None, source: Path | str) -> list[dict[str, Any]]:
    if ds is None:
        return load_seeds(cfg.generate.instructions.seeds)
    check_text_column(ds, "instruction", source)
    return [
        {
            "id": str(row.get("id") or row_id(row["instruction"].strip())),
            "instruction": row["instruction"].strip(),
            "seed_id": row.get("seed_id"),
        }
        for row in ds
    ]


def _evol_instruct_pipeline(cfg: Config, inputs: list[dict[str, Any]], steps: int) -> Pipeline:
    icfg = cfg.generate.instructions
    with make_pipeline(cfg, "instructions-evol-instruct", [cfg.llm]) as pipeline:
        load = LoadDataFromDicts(name="load", data=inputs, batch_size=icfg.batch_size)
        evol = TrackedEvolInstruct(
            name="evol_instruct",
            llm=task_llm(cfg.llm),
            num_evolutions=steps,
            store_evolutions=True,
            generate_answers=True,  # WizardLM's elimination looks at the answer to each evolution
            input_batch_size=icfg.batch_size,
        )
        load >> evol
    return pipeline


def _evol_instruct(
    cfg: Config, parents_ds: Dataset | None, source: Path | str
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    icfg = cfg.generate.instructions
    steps = max(1, icfg.evol_steps)
    parents = _load_parents(cfg, parents_ds, source)
    parents = parents[: max(1, math.ceil(icfg.num_instructions / steps))]
    inputs = [
        {"instruction": p["instruction"], "parent_id": p["id"], "parent_seed_id": p["seed_id"] or p["id"]}
        for p in parents
    ]
    build = partial(_evol_instruct_pipeline, cfg, inputs, steps)
    out, requests = run_llm_pipeline(
        build, cfg, {"evol_instruct": batches(len(inputs), icfg.batch_size)}, [cfg.llm]
    )
    names = list(TrackedEvolInstruct.model_fields["mutation_templates"].default)
    collect = _Collector(cfg, icfg.num_instructions)
    for row in out:
        evolved = row.get("evolved_instructions") or [None] * steps
        answers = row.get("answers") or [None] * len(evolved)
        parent_text, parent_id = row["instruction"], row["parent_id"]
        for depth, (raw, answer) in enumerate(zip(evolved, answers), start=1):
            text = clean_instruction(raw)
            mutation = pick_mutation(parent_text, names)
            params = {
                **_sampling(cfg),
                "mutation": mutation,
                "depth": depth,
                "evolution": "in-depth" if mutation in IN_DEPTH else "in-breadth",
            }
            reason = elimination_reason(parent_text, text, answer)
            if reason is not None:
                collect.counts["generated"] += 1
                collect.counts[f"eliminated_{reason}"] += 1
                kept = False
            else:
                prov = _provenance(
                    cfg, "evol-instruct", params, parent_id=parent_id, seed_id=row["parent_seed_id"]
                )
                kept = collect.offer(text, **prov)
            if not kept:
                # Later evolutions grew from a failed one: WizardLM would not have produced them.
                later = len(evolved) - depth
                collect.counts["generated"] += later
                if later:
                    collect.counts["eliminated_descendant_of_eliminated"] += later
                break
            parent_text, parent_id = text, row_id(text)
    stats = collect.stats()
    stats.update({"parents": len(inputs), **requests})
    return collect.rows, stats
