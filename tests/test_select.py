"""Selection: Deita's repr filter respects the budget and the similarity threshold, and explains rejections."""

from __future__ import annotations

import numpy as np
import pytest
from datasets import Dataset

from curate.config import DedupConfig, EmbeddingConfig, SelectConfig
from curate.io import InputError
from curate.stages.select import repr_filter, select

EMB = EmbeddingConfig()


def _naive(x, order, budget, threshold):
    taken = []
    for i in order:
        if len(taken) == budget:
            break
        if all(float(x[i] @ x[j]) < threshold for j in taken):
            taken.append(int(i))
    return taken


def test_repr_filter_matches_the_definition_across_blocks():
    rng = np.random.default_rng(1)
    centers = rng.normal(size=(40, 16))
    x = np.repeat(centers, 15, axis=0) + 0.35 * rng.normal(size=(600, 16))  # dense groups: many rejections
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    order = rng.permutation(600)  # > 2 blocks of 256
    for budget, thr in [(10, 0.9), (60, 0.8), (1000, 0.85)]:
        taken, visited, max_sim, nearest = repr_filter(x, order, budget, thr)
        assert taken == _naive(x, order, budget, thr)
        assert len(taken) <= budget
        sims = x[taken] @ x[taken].T
        assert (sims[np.triu_indices(len(taken), 1)] < thr).all()
        rejected = [i for i in order if visited[i] and i not in set(taken)]
        assert all(max_sim[i] >= thr and nearest[i] in taken for i in rejected)


def test_no_score_column_is_a_clear_error():
    with pytest.raises(InputError, match=r"deita_score.*curate score"):
        select(Dataset.from_list([{"instruction": "Say hi."}]), SelectConfig(), EMB, source="in.jsonl")


def test_empty_text_is_a_clear_error_when_embeddings_must_be_computed():
    ds = Dataset.from_list(
        [{"instruction": "Say hi.", "deita_score": 2.0}, {"instruction": "", "deita_score": 3.0}]
    )
    with pytest.raises(InputError, match=r"in.jsonl:2: field 'instruction'"):
        select(ds, SelectConfig(), EMB, source="in.jsonl")


ROWS = [
    ("a", "How do I bake sourdough bread at home?", 6.0),
    ("b", "What is the best way to bake sourdough bread at home?", 9.0),
    ("c", "What is the capital of France?", 4.0),
    ("d", "Write a haiku about autumn leaves.", 5.0),
    ("e", "Explain how a binary search works.", 3.0),
    ("f", "Name three famous painters.", None),
]


@pytest.mark.slow
def test_selection_respects_budget_and_threshold_and_explains_every_rejection():
    ds = Dataset.from_list([{"id": i, "instruction": t, "deita_score": s} for i, t, s in ROWS])
    selected, rejected, stats = select(ds, SelectConfig(budget=3, diversity_threshold=0.8), EMB)
    assert selected["id"] == ["b", "d", "c"]  # a (6.0) is too similar to b (9.0)
    assert selected["selection_rank"] == [1, 2, 3]
    assert len(selected) + len(rejected) == len(ds)
    reasons = dict(zip(rejected["id"], rejected["selection_reason"]))
    assert reasons["a"].startswith("similar to selected b (cosine 0.")
    assert reasons["e"] == "budget of 3 reached"
    assert reasons["f"] == "no deita_score"
    emb = np.array(selected["embedding"])
    sims = emb @ emb.T
    assert (sims[np.triu_indices(3, 1)] < 0.8).all()
    assert (
        stats["rejected_similar"] == 1 and stats["rejected_budget"] == 1 and stats["rejected_no_score"] == 1
    )

    # with a looser threshold the similar row is taken, and the budget still holds
    selected, _, _ = select(ds, SelectConfig(budget=3, diversity_threshold=0.99), EMB)
    assert selected["id"] == ["b", "a", "d"]


@pytest.mark.slow
def test_reuses_dedup_embeddings_and_falls_back_to_quality_or_ratings():
    from curate.stages.dedup import dedup

    ds = Dataset.from_list([{"id": i, "instruction": t, "quality": s} for i, t, s in ROWS])
    kept, _, _ = dedup(ds, DedupConfig(threshold=0.99), EMB)
    selected, _, stats = select(kept, SelectConfig(budget=2, diversity_threshold=0.8), EMB)
    assert stats["embeddings"] == "reused" and stats["score_column"] == "quality"
    assert selected["id"] == ["b", "d"]

    rated = Dataset.from_list(
        [{"id": i, "instruction": t, "ratings": [1, 5 - k % 3]} for k, (i, t, _) in enumerate(ROWS)]
    )
    selected, _, stats = select(rated, SelectConfig(budget=10, diversity_threshold=0.8), EMB)
    assert stats["score_column"] == "ratings"
    assert selected["id"][0] == "a" and "b" not in selected["id"]  # a and d have 5; a first; b too close to a
