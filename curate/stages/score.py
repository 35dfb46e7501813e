"""`curate score`: Deita complexity (instruction) and quality (instruction + response) scores.

Logits method (Deita's): fill Deita's prompt, run one forward pass, softmax over the logits of the next
tokens "1".."6", expected value with weights 1..6. Preference rows (`generations`) get one quality score
per response (`quality_scores`, `quality` = their max); SFT rows use `response` or `output` (Alpaca
`input` is appended to the instruction). Text method (fallback for LLMs without logits): distilabel's
ComplexityScorer / QualityScorer. `deita_score` = complexity x quality. Each row records `score_method`
and `scorer_model`; no row is dropped, and empty texts fail with the file, row and column.

The default scorer (no `score.llm` set, `local` extra installed): complexity from the embedded
Gemma-3-270M with Deita's template after hand-written anchors, mixed with a length prior (the pure Deita
value stays in `complexity_llm`), and quality from the embedded quality head (curate/scoring/head.py:
embedding + text features, fitted on non-evaluation preference data), because tiny models on Deita's
prompts do not agree with people. score_method says "complexity: logits+length-prior; quality: head";
the measured agreement of each known scorer is in curate/data/scorer_validity.json. A configured scorer
(e.g. hkust-nlp/deita-complexity-scorer through transformers) gets Deita's exact prompts for both, no
prior, no head.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from datasets import Dataset, Value
from rich.progress import Progress

from curate.config import Config, LLMConfig, ScoreConfig
from curate.console import console, progress
from curate.io import InputError, check_text_column, require_columns
from curate.rows import scored_text
from curate.scoring import prior as priors
from curate.scoring.backends import build_backend, expected_score, logits_supported, request_stats
from curate.scoring.validity import describe_validity, scorer_profile
from curate.stages import StageResult

INSTRUCTION_COLUMNS = ("instruction", "prompt", "messages")
RESPONSE_COLUMNS = ("response", "output")
PAIR_COLUMNS = "response_a, response_b"  # a pair's two responses: scored like `generations`
MULTI_RESPONSE = ("generations", PAIR_COLUMNS)
SCORE_COLUMNS = (
    "complexity",
    "quality_scores",
    "quality",
    "deita_score",
    "score_method",
    "scorer_model",
    "complexity_llm",
    "quality_llm_scores",
    "quality_llm",
)


def _instruction_column(ds: Dataset, source: Any) -> str:
    for col in INSTRUCTION_COLUMNS:
        if col in ds.column_names:
            return col
    raise InputError(
        source or "<dataset>",
        f"no instruction column (one of {', '.join(INSTRUCTION_COLUMNS)})",
        field=INSTRUCTION_COLUMNS[0],
    )


def _responses(ds: Dataset, source: Any) -> tuple[str | None, list[list[str]] | None]:
    """Per row, the responses to score: all `generations`, both of `response_a` / `response_b`, or the
    single `response` / `output`."""
    if "generations" in ds.column_names:
        rows = ds["generations"]
        for i, gens in enumerate(rows):
            if not isinstance(gens, list) or not gens:
                raise InputError(
                    source or "<dataset>",
                    "`generations` must be a non-empty list of strings",
                    i + 1,
                    "generations",
                )
            for j, g in enumerate(gens):
                if not isinstance(g, str) or not g.strip():
                    raise InputError(
                        source or "<dataset>",
                        f"empty or missing response at generations[{j}]",
                        i + 1,
                        "generations",
                    )
        return "generations", [list(g) for g in rows]
    if {"response_a", "response_b"} <= set(ds.column_names):
        for col in ("response_a", "response_b"):
            check_text_column(ds, col, source or "<dataset>")
        return PAIR_COLUMNS, [[a, b] for a, b in zip(ds["response_a"], ds["response_b"])]
    for col in RESPONSE_COLUMNS:
        if col in ds.column_names:
            check_text_column(ds, col, source or "<dataset>")
            return col, [[r] for r in ds[col]]
    return None, None


class _Run:
    """Counters shared by one scoring run (truncations, answers without score tokens, tokens, time)."""

    def __init__(self) -> None:
        self.truncated = 0
        self.missing = 0
        self.items = 0
        self.seconds = 0.0
        self.tokens = 0

    def ev(self, backend, prompt: str) -> float:
        if backend.tokens is not None:
            prompt = backend.tokens.prompt(prompt)
        before = backend.prompt_tokens
        logits = backend.score_logits(prompt)
        self.tokens += backend.prompt_tokens - before
        self.items += 1
        if logits is None:
            self.missing += 1
            return 3.0  # Deita's own value when the score tokens are absent
        return float(expected_score(logits)[0])

    def cut(self, backend, text: str, limit: int) -> str:
        text, cut = backend.truncate(text, limit)
        self.truncated += cut
        return text


def _bar(show: bool) -> Progress:
    return progress(remaining=True) if show else Progress(disable=True)


def complexity_llm(
    instructions: Sequence[str], backend, sc: ScoreConfig, run: _Run | None = None, show_progress: bool = True
) -> np.ndarray:
    """Deita complexity expected values, one forward pass per instruction."""
    run = run or _Run()
    tpl = priors.complexity_template(sc.prompt)
    out = np.empty(len(instructions))
    started = time.perf_counter()
    with _bar(show_progress) as bar:
        task = bar.add_task("Deita complexity", total=len(instructions))
        for i, ins in enumerate(instructions):
            out[i] = run.ev(backend, tpl.format(instruction=run.cut(backend, ins, sc.max_instruction_tokens)))
            bar.advance(task)
    run.seconds += time.perf_counter() - started
    return out


def quality_llm(
    instructions: Sequence[str],
    responses: Sequence[Sequence[str]],
    backend,
    sc: ScoreConfig,
    run: _Run | None = None,
    show_progress: bool = True,
) -> list[list[float]]:
    """Deita quality expected values for every response of every row (the row's question is cached)."""
    run = run or _Run()
    tpl = priors.quality_template(sc.prompt)
    out: list[list[float]] = []
    started = time.perf_counter()
    with _bar(show_progress) as bar:
        task = bar.add_task("Deita quality", total=sum(len(r) for r in responses))
        for full, resps in zip(instructions, responses):
            ins = run.cut(backend, full, sc.max_instruction_tokens)
            row = []
            for r in resps:
                row.append(
                    run.ev(
                        backend,
                        tpl.format(instruction=ins, output=run.cut(backend, r, sc.max_response_tokens)),
                    )
                )
                bar.advance(task)
            out.append(row)
    run.seconds += time.perf_counter() - started
    return out


def _tokens_info(backend) -> Any:
    if backend is None:
        return None
    if backend.tokens is None:
        return "matched by text in top log-probabilities"
    return {"ids": list(backend.tokens.ids), "leading_space": backend.tokens.leading_space}


def _text_scores(
    instructions: list[str],
    responses: list[list[str]] | None,
    c_cfg: LLMConfig,
    q_cfg: LLMConfig,
    score_complexity: bool = True,
):
    from curate.scoring.text import complexity_text, quality_text

    complexity = complexity_text(instructions, c_cfg) if score_complexity else []
    quality = quality_text(instructions, responses, q_cfg) if responses is not None else None
    return complexity, quality


PARTS = ("complexity", "quality")
# Counters of a scoring run that add up over batches (the Ray path scores batch by batch).
SUMMED_STATS = (
    "fields_truncated",
    "answers_without_score_tokens",
    "items",
    "seconds",
    "prompt_tokens",
    "llm_requests",
    "llm_retries",
    "unparsed_scores",
    "quality_head_seconds",
)


class Scorer:
    """The configured scorer, its models loaded on first use and kept: scores rows a batch at a time.

    The in-process path gives it every row at once; the Ray path (pipelines/scoring.py) one batch per
    call, in each replica. Every score depends on its own row only, so both give the same columns."""

    def __init__(self, cfg: Config, parts: Sequence[str] = PARTS, show_progress: bool = True):
        unknown = set(parts) - set(PARTS)
        if unknown or not parts:
            raise ValueError(f"score parts must be among {PARTS}, got {tuple(parts)}")
        self.sc, self.c_cfg, self.q_cfg = priors.resolve_scorer(cfg)
        method = self.sc.method
        if method == "auto":
            method = "logits" if logits_supported(self.c_cfg) and logits_supported(self.q_cfg) else "text"
        self.method = method
        self.profile = scorer_profile(self.sc, self.c_cfg, self.q_cfg, method)
        self.use_head = self.sc.quality_scorer == "head"
        self.score_complexity = "complexity" in parts
        self.show_progress = show_progress
        self._c_backend: Any = None
        self._q_backend: Any = None

    def _backends(self, quality: bool) -> tuple[Any, Any]:
        if self.score_complexity and self._c_backend is None:
            self._c_backend = build_backend(self.c_cfg)
        if quality and self._q_backend is None:
            same = self._c_backend is not None and self.q_cfg == self.c_cfg
            self._q_backend = self._c_backend if same else build_backend(self.q_cfg)
        return self._c_backend, self._q_backend if quality else None

    def _logit_scores(
        self, instructions: list[str], responses: list[list[str]] | None
    ) -> tuple[np.ndarray, list[list[float]] | None, dict[str, Any]]:
        c_backend, q_backend = self._backends(responses is not None)
        before = request_stats(c_backend, q_backend)
        run = _Run()
        show, sc = self.show_progress, self.sc
        complexity = complexity_llm(instructions, c_backend, sc, run, show) if c_backend else np.empty(0)
        quality = (
            quality_llm(instructions, responses, q_backend, sc, run, show) if responses is not None else None
        )
        requests = {k: v - before.get(k, 0) for k, v in request_stats(c_backend, q_backend).items()}
        stats = {
            "complexity_model": c_backend.name if c_backend else None,
            "quality_model": q_backend.name if q_backend else None,
            "score_tokens": {"complexity": _tokens_info(c_backend), "quality": _tokens_info(q_backend)},
            "fields_truncated": run.truncated,
            "answers_without_score_tokens": run.missing,
            "items": run.items,
            "seconds": round(run.seconds, 2),
            "prompt_tokens": run.tokens,
            **requests,
        }
        return complexity, quality, stats

    def columns(
        self, instructions: list[str], responses: list[list[str]] | None
    ) -> tuple[dict[str, list | None], dict[str, Any]]:
        """The score columns of these rows: `complexity` and `complexity_llm` (None when complexity is not
        scored), `quality_scores` and `quality_llm_scores` (a list per row; None without responses or
        without an LLM quality pass), and the run's counters."""
        llm_responses = None if self.use_head else responses  # the responses the LLM scores
        stats: dict[str, Any] = {}
        profile = self.profile
        complexity_col: list | None
        c_llm_col: list | None
        q_llm_col: list | None
        if self.method == "logits":
            if self.score_complexity or llm_responses is not None:
                c_llm, q_llm, run_stats = self._logit_scores(instructions, llm_responses)
                stats.update(run_stats)
            else:  # quality from the head, complexity kept: no LLM runs at all
                c_llm, q_llm = np.empty(0), None
            if self.use_head:
                stats["quality_model"] = profile.quality_model
            complexity = (
                priors.complexity_final(c_llm, instructions, profile) if self.score_complexity else None
            )
            quality = None
            if llm_responses is not None:
                quality = [
                    priors.quality_final(np.asarray(q), ins, resps, profile)
                    for q, ins, resps in zip(q_llm, instructions, llm_responses)
                ]
            c_llm_col = [round(float(x), 4) for x in c_llm] if self.score_complexity else None
            q_llm_col = [[round(float(x), 4) for x in q] for q in q_llm] if q_llm is not None else None
            complexity_col = [round(float(x), 4) for x in complexity] if complexity is not None else None
            quality_lists = (
                [[round(float(x), 4) for x in q] for q in quality] if quality is not None else None
            )
        else:
            complexity_col, quality_lists = _text_scores(
                instructions, llm_responses, self.c_cfg, self.q_cfg, self.score_complexity
            )
            if not self.score_complexity:
                complexity_col = None
            c_llm_col = list(complexity_col) if complexity_col is not None else None
            q_llm_col = quality_lists
            stats["unparsed_scores"] = sum(x is None for x in complexity_col or []) + (
                sum(x is None for q in quality_lists for x in q) if quality_lists else 0
            )
        if self.use_head and responses is not None:
            from curate.models import encode
            from curate.scoring import head

            started = time.perf_counter()
            embed = partial(encode, show_progress=self.show_progress)  # embedding is the head's long step
            head_scores = head.quality_scores(instructions, responses, embed)
            quality_lists = [[round(x, 4) for x in q] for q in head_scores]
            stats["quality_head_seconds"] = round(time.perf_counter() - started, 2)
        columns = {
            "complexity": complexity_col,
            "complexity_llm": c_llm_col,
            "quality_scores": quality_lists,
            "quality_llm_scores": q_llm_col,
        }
        return columns, stats


def merge_stats(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The counters of several scoring batches as one run's: sums, with the rates recomputed; the other
    fields (models, score tokens) from the first batch that has them."""
    merged: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if key in SUMMED_STATS:
                merged[key] = merged.get(key, 0) + value
            elif merged.get(key) is None:
                merged[key] = value
    for key in ("seconds", "quality_head_seconds"):
        if key in merged:
            merged[key] = round(merged[key], 2)
    return merged


def _rates(stats: dict[str, Any]) -> dict[str, Any]:
    if "items" not in stats:
        return {}
    seconds, tokens = stats.get("seconds") or 0, stats.get("prompt_tokens") or 0
    return {
        "items_per_second": round(stats["items"] / seconds, 2) if seconds else None,
        "prompt_tokens_per_second": round(tokens / seconds, 1) if seconds and tokens else None,
    }


def score(
    ds: Dataset, cfg: Config, source: Path | str | None = None, parts: Sequence[str] = PARTS
) -> tuple[Dataset, dict[str, Any]]:
    """Add complexity, quality(_scores), deita_score, score_method, scorer_model to every row (none dropped).

    `parts` says what to score: complexity alone (the instruction), or quality alone, which keeps the
    complexity an earlier pass wrote; both by default."""
    where = source or "<dataset>"
    if len(ds) == 0:
        raise InputError(where, "no rows to score")
    scorer = Scorer(cfg, parts)  # resolves the scorer; models load only when it first scores
    score_complexity = scorer.score_complexity
    if not score_complexity:
        require_columns(ds, ["complexity"], where)  # written by the complexity pass
    ins_col = _instruction_column(ds, source)
    if isinstance(ds.features[ins_col], Value):  # chat prompts were checked when read (rows.check_messages)
        check_text_column(ds, ins_col, where)
    resp_col, responses = _responses(ds, source) if "quality" in parts else (None, None)
    extra = ds["input"] if "input" in ds.column_names else [None] * len(ds)
    # a conversation is scored as its last user turn, then the earlier turns (rows.scored_text)
    instructions = [scored_text({ins_col: i, "input": x}) for i, x in zip(ds[ins_col], extra)]

    method, profile, use_head = scorer.method, scorer.profile, scorer.use_head
    llm_responses = None if use_head else responses  # the responses the LLM scores
    if method == "logits" and profile.length_prior > 0:  # fail before any model runs
        priors.reference(profile, "complexity")
        if llm_responses is not None:
            priors.reference(profile, "quality")
    console.print(describe_validity(profile))

    stats: dict[str, Any] = {
        "rows": len(ds),
        "method": method,
        "instruction_column": ins_col,
        "response_column": resp_col,
    }
    if cfg.generate.ray:  # the same scorer as a distilabel step, replicated over the Ray cluster
        from pipelines.scoring import score_on_ray

        columns, run_stats = score_on_ray(cfg, parts, instructions, responses)
    else:
        columns, run_stats = scorer.columns(instructions, responses)
    stats.update(run_stats)
    stats.update(_rates(stats))
    if stats.get("answers_without_score_tokens"):
        console.print(
            f"[yellow]warning:[/] {stats['answers_without_score_tokens']} answer(s) had no score token in "
            "the top log-probabilities; scored 3.0 as Deita does"
        )
    complexity_col = columns["complexity"] or []
    c_llm_col = columns["complexity_llm"] or []
    quality_lists, q_llm_col = columns["quality_scores"], columns["quality_llm_scores"]
    if not score_complexity:  # the complexity pass's values stay as they were
        complexity_col = list(ds["complexity"])
        c_llm_col = (
            list(ds["complexity_llm"]) if "complexity_llm" in ds.column_names else list(complexity_col)
        )

    quality_col = (
        [max((x for x in q if x is not None), default=None) for q in quality_lists]
        if quality_lists
        else [None] * len(ds)
    )
    deita = [
        round(c * q, 4) if c is not None and q is not None else None
        for c, q in zip(complexity_col, quality_col)
    ]
    row_method = profile.method
    scorer_model = (
        profile.model
        if profile.model == profile.quality_model or responses is None
        else (f"complexity: {profile.model}; quality: {profile.quality_model}")
    )
    out = ds.remove_columns([c for c in SCORE_COLUMNS if c in ds.column_names])
    out = out.add_column("complexity", complexity_col)
    if resp_col in MULTI_RESPONSE:
        out = out.add_column("quality_scores", quality_lists)
    out = out.add_column("quality", quality_col)
    out = out.add_column("deita_score", deita)
    out = out.add_column("score_method", [row_method] * len(ds))
    out = out.add_column("scorer_model", [scorer_model] * len(ds))
    if row_method != method:  # an ensemble: keep the pure Deita values beside the final ones
        out = out.add_column("complexity_llm", c_llm_col)
        if resp_col in MULTI_RESPONSE and q_llm_col is not None:
            out = out.add_column("quality_llm_scores", q_llm_col)
        elif q_llm_col is not None:
            out = out.add_column("quality_llm", [q[0] for q in q_llm_col])
    if responses is None and "quality" in parts:
        console.print(
            "[yellow]warning:[/] no response column (generations, response_a/_b, response or output): only "
            "complexity was scored; quality and deita_score are empty"
        )

    def summary(values: list) -> dict[str, float] | None:
        v = np.array([x for x in values if x is not None], dtype=float)
        return (
            None
            if not len(v)
            else {
                "mean": round(float(v.mean()), 3),
                "std": round(float(v.std()), 3),
                "min": round(float(v.min()), 3),
                "max": round(float(v.max()), 3),
            }
        )

    stats.update(
        {
            "score_method": row_method,
            "scorer_model": scorer_model,
            "complexity": summary(complexity_col),
            "quality": summary(quality_col),
            "deita_score": summary(deita),
            "validity": profile.validity_dict(),
        }
    )
    return out, stats


def run(cfg: Config, ds: Dataset | None, *, source: Path | str | None = None) -> StageResult:
    """The score stage: every row with its complexity, quality and Deita score (none dropped)."""
    if ds is None:
        raise ValueError("the score stage needs rows")
    scored, stats = score(ds, cfg, source=source)
    return StageResult({"train": scored}, stats)


def complexity(cfg: Config, ds: Dataset | None, *, source: Path | str | None = None) -> StageResult:
    """The complexity stage: Deita complexity of each instruction, before any response is generated."""
    if ds is None:
        raise ValueError("the complexity stage needs rows")
    scored, stats = score(ds, cfg, source=source, parts=("complexity",))
    return StageResult({"train": scored}, stats)


def quality(cfg: Config, ds: Dataset | None, *, source: Path | str | None = None) -> StageResult:
    """The quality stage: quality of every response and the Deita score, keeping the earlier complexity."""
    if ds is None:
        raise ValueError("the quality stage needs rows")
    scored, stats = score(ds, cfg, source=source, parts=("quality",))
    return StageResult({"train": scored}, stats)
