"""Dedup: exact, then semantic near-duplicates; each cluster keeps its best row and every decision is explained.

Steps: (1) rows whose compared text is equal after normalisation (NFKC, case, whitespace, punctuation)
form exact groups; (2) one representative per group (its best row) is embedded with sentence-transformers
(normalised, so a dot product is the cosine); (3) pairs of representatives with cosine >= threshold are
found by blocked brute force or a faiss IVF index whose candidates are re-scored exactly; (4) connected
components over exact groups + semantic pairs are the clusters; each keeps its best row (keep rule:
Deita score, else judge rating, else first seen). Removed rows are returned, never dropped.

Written here rather than reusing a library because none keeps the best member of a cluster:
distilabel's EmbeddingDedup drops every row that is someone's neighbour, SemHash keeps the first seen.
"""

from __future__ import annotations

import math
import re
import time
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from datasets import Dataset, Value

from curate.config import Config, ConfigError, DedupConfig, EmbeddingConfig
from curate.console import progress
from curate.embeddings import EMBEDDING, embed, embedding_array, embedding_dim, stored_embeddings
from curate.io import InputError, check_text_column, is_visible_text
from curate.rows import (
    INPUT_SEPARATOR,
    PROMPT_COLUMNS,
    RESPONSE_COLUMNS,
    as_score,
    last_turn_text,
    prompt_text,
    responses_of,
    row_ids,
)
from curate.schemas import DedupStats
from curate.stages import StageResult
from curate.stages.references import Reference, find_matches, load_references

DEDUP_COLUMNS = (
    "duplicate_source",
    "dedup_match",
    "dedup_cluster",
    "dedup_cluster_size",
    "duplicate_of",
    "dedup_similarity",
    "dedup_kind",
    "dedup_keep_rule",
    EMBEDDING,
)
# Bytes of similarity scores held at once by the brute-force backend (one block of rows x all rows).
BLOCK_BYTES = 256 << 20

_SPACES = re.compile(r"[\s]+")


# --------------------------------------------------------------------------------------------- text


class _PunctuationToSpace(dict):
    """str.translate table filled on demand: Unicode punctuation (category P*) -> a space, else itself."""

    def __missing__(self, code: int) -> str:
        char = chr(code)
        self[code] = " " if unicodedata.category(char).startswith("P") else char
        return self[code]


_PUNCTUATION_TO_SPACE = _PunctuationToSpace()


def normalize_text(text: str) -> str:
    """The exact-duplicate key: NFKC, case-folded, punctuation replaced by spaces, whitespace collapsed.

    Punctuation becomes a space (not nothing) so that "3.5" and "35" stay different.
    """
    folded = unicodedata.normalize("NFKC", text).casefold()
    key = _SPACES.sub(" ", folded.translate(_PUNCTUATION_TO_SPACE)).strip()
    return key or _SPACES.sub(" ", folded).strip()  # a text of only punctuation keeps it


def _best_generation(row_generations: Sequence[Any], row_ratings: Sequence[Any] | None) -> Any:
    """The generation a preference row would export as `chosen`: the best rated, else the first."""
    rated = [
        (float(r), -i)
        for i, r in enumerate(row_ratings or [])
        if isinstance(r, (int, float)) and i < len(row_generations)
    ]
    if rated:
        _, neg_index = max(rated)  # highest rating; the earliest on ties
        return row_generations[-neg_index]
    return row_generations[0] if row_generations else None


def compared_texts(ds: Dataset, cfg: DedupConfig, source: Path | str | None = None) -> tuple[list[str], str]:
    """The text compared for each row and a description of it (e.g. "instruction + input + response").

    By default a row's prompt (`rows.prompt_text`: the instruction with its Alpaca `input`, a `prompt`,
    or every turn of a chat): without the `input`, "Summarize this text" rows with different texts
    would all be duplicates. `column` compares another text column instead. With `include_response`
    the response is appended: the best-rated of the row's responses, else its first.
    """
    source = source or "<dataset>"
    if cfg.column is None:
        column = next((c for c in PROMPT_COLUMNS if c in ds.column_names), None)
        if column is None:
            raise InputError(
                source,
                f"no prompt column (one of {', '.join(PROMPT_COLUMNS)}; or set dedup.column)",
                field="instruction",
            )
        wanted = [c for c in (column, "input") if c in ds.column_names]
        texts = [prompt_text(row) for row in ds.select_columns(wanted)]
        parts = [column] + (["input"] if "input" in wanted and any(ds["input"]) else [])
        for i, text in enumerate(texts):
            if not is_visible_text(text):
                bad = sum(not is_visible_text(t) for t in texts)
                raise InputError(
                    source, f"empty or missing text in {bad} row(s), first at row {i + 1}", i + 1, column
                )
    else:
        check_text_column(ds, cfg.column, source)
        texts, parts = list(ds[cfg.column]), [cfg.column]
    if cfg.include_response:
        present = [c for c in RESPONSE_COLUMNS if c in ds.column_names]
        if not present:
            raise InputError(
                source,
                f"include_response needs a response column ({', '.join(RESPONSE_COLUMNS)}); "
                f"has: {', '.join(ds.column_names)}",
                field="response",
            )
        ratings = list(ds["ratings"]) if "ratings" in ds.column_names else [None] * len(ds)
        responses = [
            _best_generation(responses_of(row), r) for row, r in zip(ds.select_columns(present), ratings)
        ]
        for i, r in enumerate(responses):
            if not is_visible_text(r):
                raise InputError(source, f"empty or missing response at row {i + 1}", i + 1, present[0])
        texts = [f"{t}{INPUT_SEPARATOR}{r}" for t, r in zip(texts, responses)]
        parts.append(present[0] if present[0] != "response_a" else "response_a/_b")
    return texts, " + ".join(parts)


# -------------------------------------------------------------------------------------------- search


def _pairs_exact(x: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs i < j with x_i . x_j >= threshold: blocked matrix products over the upper triangle."""
    n = len(x)
    block = max(1, min(n, BLOCK_BYTES // (4 * max(n, 1))))
    rows, cols, sims = [], [], []
    with progress() as bar:
        task = bar.add_task("comparing (exact)", total=n)
        for start in range(0, n, block):
            stop = min(n, start + block)
            s = x[start:stop] @ x[start:].T  # (b, n - start): only columns at or after the block
            r, c = np.nonzero(s >= threshold)
            keep = c > r  # column offset is `start`, so c > r means j > i
            r, c = r[keep], c[keep]
            rows.append(r + start)
            cols.append(c + start)
            sims.append(s[r, c])
            bar.advance(task, stop - start)
    if not rows:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32)
    return np.concatenate(rows).astype(np.int64), np.concatenate(cols).astype(np.int64), np.concatenate(sims)


def ann_params(n: int, nprobe: int | None = None) -> tuple[int, int]:
    """IVF cells and cells probed per vector: sqrt(probe * n) cells balance assignment and comparison cost.

    Near-duplicates sit in the same or an adjacent Voronoi cell, so 8 probes from both ends of a pair find
    nearly all of brute force's pairs (recall measured by benchmarks/dedup_speed.py; see the README).
    """
    probe = nprobe or 8
    nlist = max(1, min(int(math.sqrt(probe * n)), n // 40))
    return nlist, min(nlist, probe)


def _pairs_faiss(
    x: np.ndarray, threshold: float, nprobe: int | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs above threshold in an IVF layout: faiss k-means cells, every vector probes its `nprobe` nearest.

    Each vector lives in its nearest cell and is compared, by exact matrix products, with the members of
    the cells it probes; a pair is found when either end probes the other's cell. Scores are the exact
    float32 dot products, so nothing above the threshold is approximated, only possibly missed.
    Hand-written around faiss' k-means because faiss' own IndexIVFFlat.range_search scans its lists an
    order of magnitude slower than numpy's blocked matrix products on CPU (figures in the README).
    """
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss is in the `scale` extra
        raise ConfigError("dedup.backend faiss needs faiss: pip install 'curate[scale]'") from exc
    n, d = x.shape
    nlist, probe = ann_params(n, nprobe)
    if nlist == 1:  # too few vectors to train cells: one cell, i.e. brute force
        return _pairs_exact(x, threshold)
    kmeans = faiss.Kmeans(
        d, nlist, niter=6, spherical=True, seed=seed, max_points_per_centroid=40, verbose=False
    )
    rng = np.random.default_rng(seed)
    # faiss wants >= 39 training points per centroid; more only slows training (balance is all we need)
    train = x if n <= nlist * 40 else x[np.sort(rng.choice(n, nlist * 40, replace=False))]
    kmeans.train(train)
    cells = faiss.IndexFlatIP(d)
    cells.add(kmeans.centroids)
    _, probed = cells.search(x, probe)  # (n, probe): nearest cells first
    home = probed[:, 0]
    members_order = np.argsort(home, kind="stable")
    members_bounds = np.searchsorted(home[members_order], np.arange(nlist + 1))
    flat = probed.ravel()
    queries_order = np.argsort(flat, kind="stable")
    queries_bounds = np.searchsorted(flat[queries_order], np.arange(nlist + 1))
    query_rows = (queries_order // probe).astype(np.int64)
    keys, sims = [], []
    with progress() as bar:
        task = bar.add_task(f"comparing (IVF, {nlist} cells, {probe} probed)", total=nlist)
        for c in range(nlist):
            members = members_order[members_bounds[c] : members_bounds[c + 1]]
            queries = query_rows[queries_bounds[c] : queries_bounds[c + 1]]
            if len(members) and len(queries):
                xm = x[members]
                step = max(1, BLOCK_BYTES // (4 * len(members)))
                for q0 in range(0, len(queries), step):
                    q = queries[q0 : q0 + step]
                    s = x[q] @ xm.T
                    r, m = np.nonzero(s >= threshold)
                    a, b = q[r], members[m]
                    other = a != b
                    lo, hi = np.minimum(a[other], b[other]), np.maximum(a[other], b[other])
                    keys.append(lo * n + hi)  # both directions of a pair collapse to one key
                    sims.append(s[r[other], m[other]])
            bar.advance(task)
    if not keys:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32)
    key, first = np.unique(np.concatenate(keys), return_index=True)
    return key // n, key % n, np.concatenate(sims)[first]


def similar_pairs(
    x: np.ndarray, threshold: float, backend: str = "exact", nprobe: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index pairs (i < j) of rows of the normalised matrix `x` whose cosine is >= threshold."""
    if backend == "faiss":
        return _pairs_faiss(x, threshold, nprobe)
    return _pairs_exact(x, threshold)


# ------------------------------------------------------------------------------------------ keep rule


def keep_scores(ds: Dataset, rule: str, source: Path | str) -> tuple[str, np.ndarray]:
    """The effective keep rule and each row's score under it (NaN where a row has none)."""
    has = {
        "deita": "deita_score" in ds.column_names,
        "rating": "ratings" in ds.column_names,
    }
    column = {"deita": "deita_score", "rating": "ratings"}
    scores = {}
    for name, present in has.items():
        if present:
            scores[name] = np.array([as_score(v) for v in ds[column[name]]], dtype=np.float64)
    if rule == "auto":
        rule = next(
            (r for r in ("deita", "rating") if r in scores and not np.isnan(scores[r]).all()), "first"
        )
    if rule == "first":
        return rule, np.zeros(len(ds))
    if rule not in scores:
        hint = "run `curate score` first" if rule == "deita" else "use preference rows with judge `ratings`"
        raise InputError(
            source,
            f"dedup.keep={rule} needs this column ({hint}), or use keep=auto|first",
            field=column[rule],
        )
    return rule, scores[rule]


def _preference(scores: np.ndarray) -> np.ndarray:
    """Rank of each row in keep order: scored before unscored, higher first, earlier first on ties."""
    n = len(scores)
    filled = np.where(np.isnan(scores), -np.inf, scores)
    order = np.lexsort((np.arange(n), -filled))
    pref = np.empty(n, dtype=np.int64)
    pref[order] = np.arange(n)
    return pref


# ------------------------------------------------------------------------------------------- dedup


def _same_question(
    ds: Dataset,
    cfg: DedupConfig,
    emb: EmbeddingConfig,
    rep_row: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Keep only the similar pairs that also ask the same question: where either side is a conversation,
    its last user turn must reach the threshold too. Follow-ups that share a long history embed close
    together although they ask different things; a text row's question is its whole prompt.
    Returns the kept pairs and how many were split."""
    chats = [c for c in PROMPT_COLUMNS if c in ds.column_names and not isinstance(ds.features[c], Value)]
    if cfg.column is not None or not len(a) or not chats:  # no chat column: no row is a conversation
        return a, b, 0
    wanted = [c for c in (*PROMPT_COLUMNS, "input") if c in ds.column_names]
    rows = ds.select_columns(wanted)
    involved = np.unique(np.concatenate([a, b]))
    last = {int(g): last_turn_text(rows[int(rep_row[g])]) for g in involved}
    multi = np.array([last[int(x)] is not None or last[int(y)] is not None for x, y in zip(a, b)])
    if not multi.any():
        return a, b, 0
    needed = np.unique(np.concatenate([a[multi], b[multi]]))
    questions = [last[int(g)] or prompt_text(rows[int(rep_row[g])]) for g in needed]
    vectors = embed(questions, emb, f"embedding {len(needed)} last turns")
    left, right = np.searchsorted(needed, a[multi]), np.searchsorted(needed, b[multi])
    same = np.ones(len(a), dtype=bool)
    same[multi] = np.einsum("ij,ij->i", vectors[left], vectors[right]) >= cfg.threshold
    return a[same], b[same], int((~same).sum())


@contextmanager
def _timer(stats: dict[str, float], key: str) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    stats[key] = round(time.perf_counter() - t0, 3)


def dedup(
    ds: Dataset,
    cfg: DedupConfig,
    emb: EmbeddingConfig,
    source: Path | str | None = None,
    references: list[Reference] | None = None,
) -> tuple[Dataset, Dataset, dict[str, Any]]:
    """Remove exact and semantic near-duplicates, keeping each cluster's best row, and rows that duplicate
    a reference or contain a benchmark prompt (`references`); returns (kept, removed, stats)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from curate.models import encoder_name

    t_start = time.perf_counter()
    source = source or "<dataset>"
    if not -1.0 < cfg.threshold <= 1.0:
        raise ConfigError(f"dedup.threshold: {cfg.threshold} is not a cosine similarity in (-1, 1]")
    n = len(ds)
    if n == 0:
        raise InputError(source, "the input has no rows")
    timings: dict[str, float] = {}
    texts, compared = compared_texts(ds, cfg, source)
    ds = ds.remove_columns([c for c in DEDUP_COLUMNS if c in ds.column_names and c != EMBEDDING])
    rule, scores = keep_scores(ds, cfg.keep, source)
    pref = _preference(scores)

    # 1. exact groups on the normalised text; each group's representative is its best row
    with _timer(timings, "exact_s"):
        group_of: dict[str, int] = {}
        group = np.fromiter(
            (group_of.setdefault(normalize_text(t), len(group_of)) for t in texts), dtype=np.int64, count=n
        )
        n_groups = len(group_of)
        best_pref = np.full(n_groups, n, dtype=np.int64)
        np.minimum.at(best_pref, group, pref)
        order = np.argsort(pref)
        rep_row = order[best_pref]  # row index of each group's best member

    # 2. embeddings: reuse a stored column of the right size, else embed the representatives only
    dim = embedding_dim(emb)
    stored = stored_embeddings(ds, dim)
    with _timer(timings, "embed_s"):
        if stored is not None:
            row_vectors, embeddings = stored, "reused"
            rep_vectors = stored[rep_row]
        else:
            rep_vectors = embed([texts[i] for i in rep_row], emb, f"embedding {n_groups} texts")
            row_vectors, embeddings = rep_vectors[group], "computed"

    # 3. semantic pairs between representatives
    backend = cfg.backend
    if backend == "auto":
        backend = "faiss" if n_groups >= cfg.ann_min_rows else "exact"
    with _timer(timings, "search_s"):
        a, b, _ = similar_pairs(rep_vectors, cfg.threshold, backend)
    a, b, split_conversations = _same_question(ds, cfg, emb, rep_row, a, b)

    # 4. clusters = connected components; each keeps its best row
    with _timer(timings, "cluster_s"):
        graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n_groups, n_groups))
        n_comp, comp_of_group = connected_components(graph, directed=False)
        comp = comp_of_group[group]
        comp_best = np.full(n_comp, n, dtype=np.int64)
        np.minimum.at(comp_best, comp, pref)
        kept_row = order[comp_best][comp]  # for every row, the row its cluster keeps
        first_row = np.full(n_comp, n, dtype=np.int64)
        np.minimum.at(first_row, comp, np.arange(n))
        cluster_id = np.empty(n_comp, dtype=np.int64)
        cluster_id[np.argsort(first_row, kind="stable")] = np.arange(n_comp)  # numbered by first appearance
        size = np.bincount(comp, minlength=n_comp)

        ids = row_ids(ds, cfg.column)
        is_dup = kept_row != np.arange(n)
        exact = is_dup & (group == group[kept_row])
        sims = np.einsum("ij,ij->i", row_vectors, row_vectors[kept_row]).clip(-1.0, 1.0)
        sims[exact] = 1.0
        duplicate_of = [ids[k] if d else None for k, d in zip(kept_row.tolist(), is_dup.tolist())]
        similarity = [float(s) if d else None for s, d in zip(sims.tolist(), is_dup.tolist())]
        kind = ["exact" if e else "semantic" if d else None for e, d in zip(exact.tolist(), is_dup.tolist())]
        source_of: list[str | None] = [None] * n
        match_of: list[str | None] = [None] * n

    # 5. rows that duplicate a reference row (an earlier round) or contain a benchmark prompt
    by_kind: dict[str, int] = {"reference": 0, "contamination": 0}
    if references:
        with _timer(timings, "references_s"):
            prompt_cfg = cfg.model_copy(update={"include_response": False})
            if cfg.include_response:  # references are matched on the prompt: embed the prompts too
                prompts, _ = compared_texts(ds, prompt_cfg, source)
                prompt_vectors = embed(prompts, emb, f"embedding {n} prompts")
            else:
                prompts, prompt_vectors = texts, row_vectors
            for row, m in find_matches(prompts, prompt_vectors, references, cfg, normalize_text).items():
                if is_dup[row]:  # already a duplicate of a row kept in this set
                    continue
                is_dup[row] = True
                duplicate_of[row], similarity[row], kind[row] = m.ref_id, round(m.similarity, 6), m.kind
                source_of[row] = m.label
                match_of[row] = f"{cfg.ngram}-gram" if m.how == "ngram" else m.how
                by_kind[m.kind] += 1

    out = ds.remove_columns([c for c in (EMBEDDING, "id") if c in ds.column_names])
    out = out.add_column("id", pa.array([str(i) for i in ids], pa.string()))
    out = out.add_column("dedup_cluster", cluster_id[comp].tolist())
    out = out.add_column("dedup_cluster_size", size[comp].tolist())
    out = out.add_column("duplicate_of", pa.array(duplicate_of, pa.string()))
    out = out.add_column("dedup_similarity", pa.array(similarity, pa.float64()))
    out = out.add_column("dedup_kind", pa.array(kind, pa.string()))
    out = out.add_column("dedup_keep_rule", [rule] * n)
    out = out.add_column("duplicate_source", pa.array(source_of, pa.string()))
    out = out.add_column("dedup_match", pa.array(match_of, pa.string()))
    out = out.add_column(EMBEDDING, embedding_array(row_vectors))

    removed_idx = np.nonzero(is_dup)[0]
    semantic = is_dup & ~exact & np.array([k == "semantic" for k in kind])
    stats: DedupStats = {
        "rows": n,
        "kept": n if cfg.dry_run else n - len(removed_idx),
        "removed": 0 if cfg.dry_run else len(removed_idx),
        "duplicates": int(is_dup.sum()),
        "exact_duplicates": int(exact.sum()),
        "semantic_duplicates": int(semantic.sum()),
        # connected components can chain: a member may be under the threshold to the row kept
        "semantic_below_threshold_to_kept": int((semantic & (sims < cfg.threshold)).sum()),
        "clusters_with_duplicates": int((size > 1).sum()),
        "largest_cluster": int(size.max()),
        "similar_pairs": len(a),
        "conversation_pairs_split": split_conversations,
        "reference_duplicates": by_kind["reference"],
        "contaminated": by_kind["contamination"],
        "references": [
            {**r.describe(), "removed": sum(1 for s in source_of if s == r.label)} for r in references or []
        ],
        "threshold": cfg.threshold,
        "compared_text": compared,
        "keep_rule": rule,
        "keep_rule_configured": cfg.keep,
        "backend": backend,
        "encoder": encoder_name(emb),
        "embeddings": embeddings,
        "dry_run": cfg.dry_run,
        "seconds": {**timings, "total_s": round(time.perf_counter() - t_start, 3)},
    }
    if cfg.dry_run:
        return out, out.select([]), stats
    keep_idx = np.nonzero(~is_dup)[0]
    return out.select(keep_idx), out.select(removed_idx), stats


def run(cfg: Config, ds: Dataset | None, *, source: Path | str | None = None) -> StageResult:
    """The dedup stage: `train` holds the kept rows, `removed` the duplicates with the row each duplicates."""
    if ds is None:
        raise ValueError("the dedup stage needs rows")
    references = load_references(cfg) if cfg.dedup.against or cfg.dedup.decontaminate else None
    kept, removed, stats = dedup(ds, cfg.dedup, cfg.embeddings, source=source, references=references)
    return StageResult({"train": kept, "removed": removed}, stats)
