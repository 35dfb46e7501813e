"""Fallback for LLMs without logits: distilabel's ComplexityScorer / QualityScorer parse a generated ranking.

Scores are only comparable inside one call (a ranking of up to 5 instructions, or of one row's
responses), so they are mapped linearly from distilabel's 1..n+1 onto Deita's 1..6. Rows whose answer
does not parse get None and are counted, never guessed.
"""

from __future__ import annotations

from collections.abc import Sequence

from curate.config import LLMConfig
from curate.models import build_llm, generation_kwargs

GROUP = 5  # 5 instructions ranked together -> distilabel's scale 1..6, the same range as Deita's


def _to_deita(score: float | None, n: int) -> float | None:
    if score is None:
        return None
    return min(6.0, max(1.0, 1.0 + 5.0 * (float(score) - 1.0) / n))


def _task(kind: str, cfg: LLMConfig):
    from distilabel.steps.tasks import ComplexityScorer, QualityScorer

    cls = ComplexityScorer if kind == "complexity" else QualityScorer
    task = cls(
        llm=build_llm(cfg),
        use_default_structured_output=False,
        add_raw_output=False,
        input_batch_size=GROUP,
    )
    task.set_runtime_parameters({"llm": {"generation_kwargs": generation_kwargs(cfg, temperature=0.0)}})
    task.load()
    return task


def complexity_text(instructions: Sequence[str], cfg: LLMConfig) -> list[float | None]:
    task = _task("complexity", cfg)
    out: list[float | None] = []
    groups = [list(instructions[i : i + GROUP]) for i in range(0, len(instructions), GROUP)]
    for group, result in zip(groups, next(task.process([{"instructions": g} for g in groups]))):
        scores = result.get("scores") or [None] * len(group)
        scores = (list(scores) + [None] * len(group))[: len(group)]
        out += [_to_deita(s, len(group)) for s in scores]
    return out


def quality_text(
    instructions: Sequence[str], responses: Sequence[Sequence[str]], cfg: LLMConfig
) -> list[list[float | None]]:
    task = _task("quality", cfg)
    inputs = [{"instruction": i, "responses": list(r)} for i, r in zip(instructions, responses)]
    out: list[list[float | None]] = []
    for item, result in zip(inputs, next(task.process(inputs))):
        n = len(item["responses"])
        scores = (list(result.get("scores") or []) + [None] * n)[:n]
        out.append([_to_deita(s, n) for s in scores])
    return out
