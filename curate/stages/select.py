"""Selection: Deita's diversity-aware "repr filter" (Liu et al. 2024, hkust-nlp/deita).

Rows are visited best score first; a row is taken if its cosine similarity to every row already taken
is below `diversity_threshold` (a similarity, Deita's convention), until `budget` rows are taken.
Written by hand because distilabel's DeitaFiltering thresholds a cosine *distance* and drops whole
clusters. Incremental: candidates are compared in blocks against the taken rows only (no N x N matrix).

Score used: `deita_score`; if the input has none, `quality`; else the best of the judge `ratings`.
Rows without a score are rejected with that reason (never selected silently, never lost).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from datasets import Dataset

from curate.config import Config, ConfigError, DedupConfig, EmbeddingConfig, SelectConfig
from curate.console import progress
from curate.embeddings import EMBEDDING, embed, embedding_array, embedding_dim, stored_embeddings
from curate.io import InputError
from curate.rows import as_score, row_ids
from curate.stages import StageResult
from curate.stages.dedup import compared_texts

SCORE_COLUMNS = ("deita_score", "quality", "ratings")
INSTRUCTION_SCORES = ("complexity", "deita_score")  # before responses exist, complexity ranks
SELECT_COLUMNS = ("selection_rank", "selection_reason", "selection_max_similarity")
BLOCK = 256  # candidates compared against the taken rows per matrix product


def score_column(
    ds: Dataset, source: Path | str, columns: Sequence[str] = SCORE_COLUMNS
) -> tuple[str, np.ndarray]:
    """The first of `columns` with any value (by default deita_score, quality, ratings) and its values
    (NaN = none)."""
    for column in columns:
        if column in ds.column_names:
            values = np.array([as_score(v) for v in ds[column]], dtype=np.float64)
            if not np.isnan(values).all():
                return column, values
    raise InputError(
        source,
        f"no scores to rank by: needs one of {', '.join(columns)} (run `curate score` first)",
        field=columns[0],
    )


def repr_filter(
    x: np.ndarray, order: np.ndarray, budget: int, threshold: float
) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray]:
    """Deita's repr filter over rows `order` (best first) of the normalised matrix `x`.

    Returns the taken rows in order, and for every row whether it was visited before the budget ran out,
    its max similarity to the rows taken before it (NaN if none) and that row (-1 if none).
    """
    n, d = x.shape
    taken: list[int] = []
    bank = np.empty((min(budget, len(order)), d), dtype=np.float32)  # the taken vectors, in order
    visited = np.zeros(n, dtype=bool)
    max_sim = np.full(n, np.nan)
    nearest = np.full(n, -1, dtype=np.int64)
    with progress() as bar:
        task = bar.add_task("selecting", total=budget)
        for start in range(0, len(order), BLOCK):
            if len(taken) >= budget:
                break
            block = order[start : start + BLOCK]
            v = x[block]
            k0 = len(taken)
            # similarity of the whole block to rows taken before it: one matrix product
            before = v @ bank[:k0].T if k0 else np.empty((len(block), 0), dtype=np.float32)
            for t, row in enumerate(block):
                k = len(taken)
                if k >= budget:
                    break
                visited[row] = True
                sims = before[t]
                if k > k0:  # rows taken within this block
                    sims = np.concatenate([sims, bank[k0:k] @ v[t]])
                if len(sims):
                    j = int(np.argmax(sims))
                    max_sim[row], nearest[row] = float(sims[j]), taken[j]
                    if sims[j] >= threshold:
                        continue
                bank[k] = v[t]
                taken.append(int(row))
                bar.advance(task)
    return taken, visited, max_sim, nearest


def select(
    ds: Dataset,
    cfg: SelectConfig,
    emb: EmbeddingConfig,
    source: Path | str | None = None,
    budget: int | None = None,
    columns: Sequence[str] = SCORE_COLUMNS,
) -> tuple[Dataset, Dataset, dict[str, Any]]:
    """Pick up to `budget` rows (default `cfg.budget`), best score first (the first of `columns` that
    has scores), skipping rows too similar to those already picked."""
    from curate.models import encoder_name

    t0 = time.perf_counter()
    source = source or "<dataset>"
    budget = cfg.budget if budget is None else budget
    if budget < 1:
        raise ConfigError(f"select.budget: {budget} must be at least 1")
    if not -1.0 < cfg.diversity_threshold <= 1.0:
        raise ConfigError(
            f"select.diversity_threshold: {cfg.diversity_threshold} is not a cosine similarity in (-1, 1]"
        )
    n = len(ds)
    if n == 0:
        raise InputError(source, "the input has no rows")
    ds = ds.remove_columns([c for c in SELECT_COLUMNS if c in ds.column_names])
    column, scores = score_column(ds, source, columns)

    # Embeddings: the ones dedup stored; else the same text dedup compares by default (instruction).
    dim = embedding_dim(emb)
    vectors = stored_embeddings(ds, dim)
    embeddings = "reused"
    if vectors is None:
        texts, compared = compared_texts(ds, DedupConfig(), source)
        vectors = embed(texts, emb, f"embedding {n} texts")
        embeddings = f"computed ({compared})"
        ds = ds.remove_columns([EMBEDDING]) if EMBEDDING in ds.column_names else ds
        ds = ds.add_column(EMBEDDING, embedding_array(vectors))

    scored = ~np.isnan(scores)
    # best first; ties keep input order (stable sort)
    order = np.nonzero(scored)[0]
    order = order[np.argsort(-scores[order], kind="stable")]
    taken, visited, max_sim, nearest = repr_filter(vectors, order, budget, cfg.diversity_threshold)

    ids = row_ids(ds)
    rank = np.full(n, -1, dtype=np.int64)
    rank[taken] = np.arange(1, len(taken) + 1)
    reasons: list[str | None] = []
    counts = {"similar": 0, "budget": 0, "no_score": 0}
    for i in range(n):
        if rank[i] > 0:
            reasons.append(None)
        elif not scored[i]:
            reasons.append(f"no {column}")
            counts["no_score"] += 1
        elif not visited[i]:
            reasons.append(f"budget of {budget} reached")
            counts["budget"] += 1
        else:
            reasons.append(
                f"similar to selected {ids[nearest[i]]} (cosine {max_sim[i]:.3f} >= {cfg.diversity_threshold})"
            )
            counts["similar"] += 1
    similarity = [None if math.isnan(s) else float(s) for s in max_sim.tolist()]

    out = ds.remove_columns(["id"]) if "id" in ds.column_names else ds
    out = out.add_column("id", pa.array(ids, pa.string()))
    out = out.add_column("selection_rank", pa.array([int(r) if r > 0 else None for r in rank], pa.int64()))
    out = out.add_column("selection_reason", pa.array(reasons, pa.string()))
    out = out.add_column("selection_max_similarity", pa.array(similarity, pa.float64()))
    rejected = np.nonzero(rank < 0)[0]
    stats: dict[str, Any] = {
        "rows": n,
        "selected": len(taken),
        "rejected": len(rejected),
        "rejected_similar": counts["similar"],
        "rejected_budget": counts["budget"],
        "rejected_no_score": counts["no_score"],
        "budget": budget,
        "diversity_threshold": cfg.diversity_threshold,
        "score_column": column,
        "score_min_selected": float(scores[taken].min()) if taken else None,
        "encoder": encoder_name(emb),
        "embeddings": embeddings,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    return out.select(taken), out.select(rejected), stats


def run(cfg: Config, ds: Dataset | None, *, source: Path | str | None = None) -> StageResult:
    """The select stage (the review budget): `train` holds the selected rows in rank order, `rejected` the
    others with the reason."""
    if ds is None:
        raise ValueError("the select stage needs rows")
    selected, rejected, stats = select(ds, cfg.select, cfg.embeddings, source=source)
    return StageResult({"train": selected, "rejected": rejected}, stats)


def instructions(cfg: Config, ds: Dataset | None, *, source: Path | str | None = None) -> StageResult:
    """The instruction budget, before responses are generated: Deita's repr filter on complexity and
    diversity. Without `select.instruction_budget` every instruction flows on."""
    if ds is None:
        raise ValueError("the instruction selection stage needs rows")
    if cfg.select.instruction_budget is None:
        return StageResult({"train": ds, "rejected": ds.select([])}, {"rows": len(ds), "selected": len(ds)})
    selected, rejected, stats = select(
        ds,
        cfg.select,
        cfg.embeddings,
        source,
        budget=cfg.select.instruction_budget,
        columns=INSTRUCTION_SCORES,
    )
    return StageResult({"train": selected, "rejected": rejected}, stats)
