"""Scoring on distilabel's RayPipeline (`generate.ray` / `--ray`): load >> score.

`score` is a distilabel Step wrapping curate's scorer (curate.stages.score.Scorer): each replica loads
the scorer once and scores the batches it takes from the step's queue; rows go in with their index and
come out with the same score columns as the in-process path, put back in input order. Replicas:
`score.replicas`, else one per node of the Ray cluster; each reserves all but one CPU of the smallest
node, so Ray places them on different nodes. It runs through pipelines/runner.py `run_pipeline`
(distilabel's cache under the run directory, so an interrupted run resumes; progress; logs to file).
"""

import json
from collections.abc import Sequence
from functools import partial
from typing import Any

from distilabel.pipeline import Pipeline
from distilabel.steps import LoadDataFromDicts, Step, StepInput, StepResources
from distilabel.typing import StepOutput
from pydantic import PrivateAttr

from curate.config import Config
from curate.scoring import prior as priors
from curate.scoring.text import GROUP
from curate.stages.score import Scorer, merge_stats
from pipelines.runner import batches, make_pipeline, run_pipeline

STEP = "score"
COLUMNS = ("complexity", "complexity_llm", "quality_scores", "quality_llm_scores")
# The config sections the scorer reads: the step carries them (and distilabel's cache key with it).
SECTIONS = ("llm", "embeddings", "score")


class ScoreRows(Step):
    """Rows (`row`, `instruction`, optional `responses`) in; curate's score columns and, on the first
    row of each batch, that batch's counters (`score_stats`, JSON) out."""

    config: dict[str, Any]
    parts: list[str]
    _scorer: Scorer | None = PrivateAttr(None)

    @property
    def inputs(self) -> list[str]:
        return ["row", "instruction"]

    @property
    def outputs(self) -> list[str]:
        return ["row", *COLUMNS, "score_stats"]

    def load(self) -> None:
        super().load()
        self._scorer = Scorer(Config.model_validate(self.config), self.parts, show_progress=False)

    def process(self, inputs: StepInput) -> StepOutput:  # type: ignore[override]
        assert self._scorer is not None, "load() runs before process()"
        instructions = [row["instruction"] for row in inputs]
        has_responses = bool(inputs) and inputs[0].get("responses") is not None
        responses = [list(row["responses"]) for row in inputs] if has_responses else None
        columns, stats = self._scorer.columns(instructions, responses)
        for i, row in enumerate(inputs):
            for name in COLUMNS:
                values = columns[name]
                row[name] = values[i] if values is not None else None
            row["score_stats"] = json.dumps(stats) if i == 0 else None
        yield inputs


def replicas(cfg: Config) -> tuple[int, int]:
    """(replicas, CPUs each): `score.replicas` or one per alive Ray node, each with all but one CPU of
    the smallest node. Joins the cluster as RayPipeline would (RAY_ADDRESS, or a local one)."""
    import ray

    if not ray.is_initialized():
        ray.init()
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    cpus = min((int(n["Resources"].get("CPU", 1)) for n in nodes), default=1)
    return cfg.score.replicas or max(1, len(nodes)), max(1, cpus - 1)


def batch_size(cfg: Config, method: str) -> int:
    """score.batch_size; for the text method a multiple of its ranking group, so groups match in-process."""
    size = cfg.score.batch_size
    return -(-size // GROUP) * GROUP if method == "text" else size


def scoring_pipeline(
    cfg: Config, parts: list[str], inputs: list[dict[str, Any]], size: int, n: int, cpus: int
) -> Pipeline:
    """load >> score (n replicas)."""
    _, c_cfg, q_cfg = priors.resolve_scorer(cfg)
    config = cfg.model_dump(mode="json", include=set(SECTIONS))
    with make_pipeline(cfg, "score", [c_cfg, q_cfg]) as pipeline:
        load = LoadDataFromDicts(name="load", data=inputs, batch_size=size)
        step = ScoreRows(
            name=STEP,
            config=config,
            parts=parts,
            input_batch_size=size,
            resources=StepResources(replicas=n, cpus=cpus),
        )
        load >> step
    return pipeline


def score_on_ray(
    cfg: Config, parts: Sequence[str], instructions: list[str], responses: list[list[str]] | None
) -> tuple[dict[str, list | None], dict[str, Any]]:
    """Scorer.columns over the Ray cluster: the same columns and counters, plus `ray` (replicas, batches)."""
    scorer = Scorer(cfg, parts)  # resolves the scorer here; its models load only in the replicas
    size = batch_size(cfg, scorer.method)
    n, cpus = replicas(cfg)
    inputs: list[dict[str, Any]] = [
        {"row": i, "instruction": ins} | ({"responses": responses[i]} if responses is not None else {})
        for i, ins in enumerate(instructions)
    ]
    build = partial(scoring_pipeline, cfg, list(parts), inputs, size, n, cpus)
    rows = run_pipeline(build, cfg, {STEP: batches(len(inputs), size)})
    rows = sorted(rows, key=lambda r: r["row"])
    if [r["row"] for r in rows] != list(range(len(inputs))):
        raise RuntimeError(
            f"the scoring pipeline returned {len(rows)} rows for {len(inputs)}; re-run to resume from "
            "distilabel's cache"
        )
    scored = {
        "complexity": scorer.score_complexity,
        "complexity_llm": scorer.score_complexity,
        "quality_scores": responses is not None,
        "quality_llm_scores": responses is not None and not scorer.use_head,
    }
    columns = {name: [r.get(name) for r in rows] if scored[name] else None for name in COLUMNS}
    stats = merge_stats([json.loads(r["score_stats"]) for r in rows if r.get("score_stats")])
    stats["ray"] = {"replicas": n, "cpus_per_replica": cpus, "batches": batches(len(inputs), size)}
    return columns, stats
