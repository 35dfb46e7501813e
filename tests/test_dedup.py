"""Dedup: exact and semantic clusters, keep-the-best, explanations, dry run, removed split, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset

from curate.config import DedupConfig, EmbeddingConfig
from curate.io import InputError
from curate.stages.dedup import dedup, normalize_text, similar_pairs

EMB = EmbeddingConfig()
BREAD = "How do I bake sourdough bread at home?"
BREAD_PARAPHRASE = "What is the best way to bake sourdough bread at home?"
OTHERS = [
    "What is the capital of France?",
    "Write a haiku about autumn leaves.",
    "Explain how a binary search works.",
]


def _rows(**extra_cols):
    texts = [BREAD, OTHERS[0], BREAD_PARAPHRASE, OTHERS[1], OTHERS[2]]
    rows = [{"id": f"r{i}", "instruction": t} for i, t in enumerate(texts)]
    for col, values in extra_cols.items():
        for row, v in zip(rows, values):
            row[col] = v
    return rows


# ------------------------------------------------------------------------------ no model needed


def test_normalize_text_catches_case_space_punctuation_and_width():
    assert normalize_text("  Hello,   WORLD!\n") == normalize_text("hello world")
    assert normalize_text("ｈｅｌｌｏ　ｗｏｒｌｄ") == "hello world"  # NFKC folds full-width forms
    assert normalize_text("Is 3.5 > 35?") != normalize_text("Is 35 > 3.5?")
    assert normalize_text("?!") == "?!"  # a text of only punctuation is not emptied


def test_blocked_brute_force_and_faiss_find_the_same_pairs(monkeypatch):
    import curate.stages.dedup as mod

    rng = np.random.default_rng(0)
    base = rng.normal(size=(400, 32)).astype(np.float32)
    dups = base[:60] + 0.15 * rng.normal(size=(60, 32)).astype(np.float32)
    x = np.vstack([base, dups])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    full = x @ x.T
    i, j = np.nonzero(np.triu(full >= 0.9, k=1))
    truth = set(zip(i.tolist(), j.tolist()))
    assert len(truth) >= 50

    monkeypatch.setattr(mod, "BLOCK_BYTES", 4 * len(x) * 37)  # 37 rows a block: many blocks
    a, b, s = similar_pairs(x, 0.9, "exact")
    assert set(zip(a.tolist(), b.tolist())) == truth
    assert np.allclose(s, full[a, b], atol=1e-5)
    a, b, s = similar_pairs(x, 0.9, "faiss")
    assert set(zip(a.tolist(), b.tolist())) == truth
    assert (s >= 0.9).all()


def test_empty_text_is_a_clear_error_naming_column_and_row():
    ds = Dataset.from_list([{"instruction": "Say hi."}, {"instruction": "   "}, {"instruction": "Bye."}])
    with pytest.raises(InputError) as err:
        dedup(ds, DedupConfig(), EMB, source="in.jsonl")
    msg = str(err.value)
    assert "in.jsonl:2" in msg and "'instruction'" in msg and "1 row(s)" in msg


def test_missing_text_column_is_a_clear_error():
    ds = Dataset.from_list([{"text": "Say hi."}, {"text": "Bye."}])
    with pytest.raises(InputError, match=r"in\.jsonl: field 'instruction': no prompt column"):
        dedup(ds, DedupConfig(), EMB, source="in.jsonl")
    with pytest.raises(InputError, match="field 'text': missing column"):
        dedup(Dataset.from_list([{"prompt": "Say hi."}]), DedupConfig(column="text"), EMB)
    with pytest.raises(InputError, match=r"in\.jsonl:2: field 'prompt': empty or missing text"):
        dedup(
            Dataset.from_list([{"prompt": "Say hi."}, {"prompt": None}]),
            DedupConfig(),
            EMB,
            source="in.jsonl",
        )


def test_keep_rule_deita_without_scores_fails_clearly():
    with pytest.raises(InputError, match=r"deita_score.*curate score"):
        dedup(Dataset.from_list(_rows()), DedupConfig(keep="deita"), EMB)


# ----------------------------------------------------------------------------- real encoder


@pytest.mark.slow
def test_near_paraphrase_clusters_with_original_and_better_scored_is_kept():
    ds = Dataset.from_list(_rows(deita_score=[2.0, 5.0, 7.5, 1.0, 3.0]))
    kept, removed, stats = dedup(ds, DedupConfig(threshold=0.8), EMB)
    assert removed["id"] == ["r0"]  # the original, worse scored than its paraphrase
    row = removed[0]
    assert row["duplicate_of"] == "r2" and row["dedup_kind"] == "semantic"
    assert 0.8 <= row["dedup_similarity"] < 1.0
    assert row["dedup_keep_rule"] == "deita" and stats["keep_rule"] == "deita"
    by_id = {r["id"]: r for r in kept}
    assert by_id["r2"]["dedup_cluster"] == row["dedup_cluster"]
    assert by_id["r2"]["dedup_cluster_size"] == 2 and by_id["r2"]["duplicate_of"] is None
    assert all(by_id[i]["dedup_cluster_size"] == 1 for i in ("r1", "r3", "r4"))
    assert len({r["dedup_cluster"] for r in kept}) == 4
    assert stats["semantic_duplicates"] == 1 and stats["kept"] == 4


@pytest.mark.slow
def test_keep_falls_back_to_judge_rating_then_first_seen():
    ratings = [[2, 5], [3, 3], [1, 4], [None, None], [2, 2]]  # r0's best (5) beats r2's best (4)
    _, removed, stats = dedup(Dataset.from_list(_rows(ratings=ratings)), DedupConfig(threshold=0.8), EMB)
    assert stats["keep_rule"] == "rating" and removed["id"] == ["r2"] and removed[0]["duplicate_of"] == "r0"

    _, removed, stats = dedup(Dataset.from_list(_rows()), DedupConfig(threshold=0.8), EMB)
    assert stats["keep_rule"] == "first" and removed["id"] == ["r2"]

    # the configured rule wins over auto: first seen although scores exist
    ds = Dataset.from_list(_rows(deita_score=[2.0, 5.0, 7.5, 1.0, 3.0]))
    _, removed, stats = dedup(ds, DedupConfig(threshold=0.8, keep="first"), EMB)
    assert removed["id"] == ["r2"] and stats["keep_rule"] == "first"


@pytest.mark.slow
def test_exact_duplicates_with_different_whitespace_and_case_are_caught():
    rows = [
        {"instruction": "Explain  photosynthesis to a child."},
        {"instruction": "Name three prime numbers."},
        {"instruction": "explain photosynthesis\tto a child"},
        {"instruction": "\nExplain photosynthesis to a child. "},
    ]
    # threshold 1.0: nothing is a semantic duplicate, so only the exact step can catch these
    kept, removed, stats = dedup(Dataset.from_list(rows), DedupConfig(threshold=1.0), EMB)
    assert kept["instruction"] == [rows[0]["instruction"], rows[1]["instruction"]]
    assert len(removed) == 2 and set(removed["dedup_kind"]) == {"exact"}
    assert removed["dedup_similarity"] == [1.0, 1.0]
    assert set(removed["duplicate_of"]) == {kept[0]["id"]}  # ids were added (plain rows had none)
    assert stats["exact_duplicates"] == 2 and stats["largest_cluster"] == 3


@pytest.mark.slow
def test_dry_run_keeps_every_row_and_explains_the_decisions():
    ds = Dataset.from_list(_rows(deita_score=[2.0, 5.0, 7.5, 1.0, 3.0]))
    kept, removed, stats = dedup(ds, DedupConfig(threshold=0.8, dry_run=True), EMB)
    assert len(kept) == 5 and len(removed) == 0 and stats["removed"] == 0 and stats["duplicates"] == 1
    assert kept["id"] == ["r0", "r1", "r2", "r3", "r4"]
    assert kept[0]["duplicate_of"] == "r2" and kept[0]["dedup_kind"] == "semantic"
    assert removed.column_names == kept.column_names


@pytest.mark.slow
def test_cli_writes_removed_rows_to_the_removed_split(tmp_path):
    import json

    from typer.testing import CliRunner

    from curate.cli import app
    from curate.io import read_splits

    src = tmp_path / "in.jsonl"
    rows = [
        *_rows(deita_score=[2.0, 5.0, 7.5, 1.0, 3.0]),
        {"id": "r5", "instruction": "what is THE capital of france"},
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["dedup", "-i", str(src), "-o", str(out), "--threshold", "0.8"])
    assert result.exit_code == 0, result.output
    splits = read_splits(out)
    assert sorted(splits["removed"]["id"]) == ["r0", "r5"]
    assert sorted(splits["train"]["id"]) == ["r1", "r2", "r3", "r4"]
    assert len(splits["train"]) + len(splits["removed"]) == len(rows)
    assert len(splits["train"][0]["embedding"]) == 384
    stats = json.loads((out / "stats.json").read_text())
    assert stats["removed"] == 2 and stats["exact_duplicates"] == 1


@pytest.mark.slow
def test_faiss_backend_matches_exact_and_stored_embeddings_are_reused():
    ds = Dataset.from_list(_rows(deita_score=[2.0, 5.0, 7.5, 1.0, 3.0]))
    kept, _, stats = dedup(ds, DedupConfig(threshold=0.8, dry_run=True), EMB)
    assert stats["embeddings"] == "computed" and stats["backend"] == "exact"
    again, _, stats2 = dedup(kept, DedupConfig(threshold=0.8, dry_run=True, backend="faiss"), EMB)
    assert stats2["embeddings"] == "reused" and stats2["backend"] == "faiss"
    assert again["duplicate_of"] == kept["duplicate_of"]
    assert np.allclose(np.array(again["embedding"]), np.array(kept["embedding"]))

    # an embedding of another size (another model) is not reused
    wrong = kept.remove_columns("embedding").add_column("embedding", [[1.0, 0.0]] * len(kept))
    _, _, stats3 = dedup(wrong, DedupConfig(threshold=0.8), EMB)
    assert stats3["embeddings"] == "computed"


@pytest.mark.slow
def test_alpaca_input_and_response_are_part_of_the_compared_text():
    rows = [
        {
            "instruction": "Summarize the text.",
            "input": "The stock market fell sharply on Monday.",
            "output": "Stocks dropped.",
        },
        {
            "instruction": "Summarize the text.",
            "input": "My cat loves sleeping in the sun all day.",
            "output": "The cat naps.",
        },
    ]
    _, removed, stats = dedup(Dataset.from_list(rows), DedupConfig(), EMB)
    assert len(removed) == 0 and stats["compared_text"] == "instruction + input"
    _, _, stats = dedup(Dataset.from_list(rows), DedupConfig(include_response=True), EMB)
    assert stats["compared_text"] == "instruction + input + output"
    with pytest.raises(InputError, match="include_response needs a response column"):
        dedup(Dataset.from_list(_rows()), DedupConfig(include_response=True), EMB)


@pytest.mark.slow
def test_declared_embedding_size_matches_the_loaded_encoder():
    from curate.embeddings import embedding_dim
    from curate.models import load_encoder

    assert embedding_dim(EMB) == load_encoder(EMB).encode(["x"]).shape[1] == 384


@pytest.mark.slow
def test_long_texts_are_compared_whole_not_by_their_first_window(shared_data: Path) -> None:
    """Real long LIMA answers: two different texts that share a beginning longer than the encoder's window
    are not duplicates (read as one window they were identical, similarity 1.0); a long text and the same
    text with one sentence added still are."""
    lima = json.loads((shared_data / "instructions" / "lima" / "lima_llamafactory.json").read_text())
    long = [r["output"] for r in lima if len(r["output"]) > 4000][:3]
    shared, first, second = long
    beginning = shared[:2000]  # several hundred tokens: beyond all-MiniLM-L6-v2's 256
    rows = [
        {"id": "first", "instruction": beginning + "\n\n" + first},
        {"id": "second", "instruction": beginning + "\n\n" + second},
        {"id": "whole", "instruction": shared},
        {"id": "plus", "instruction": shared + " I hope this helps with your question."},
    ]
    kept, removed, _ = dedup(Dataset.from_list(rows), DedupConfig(), EMB)
    assert removed["id"] == ["plus"] and removed["duplicate_of"] == ["whole"]
    assert set(kept["id"]) == {"first", "second", "whole"}
    sims = np.asarray(kept["embedding"]) @ np.asarray(kept["embedding"]).T
    assert sims[0, 1] < DedupConfig().threshold  # the shared beginning alone does not make them duplicates
