"""Review push/pull: pure input handling first, then against the embedded Argilla (marked `server`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import Dataset

from curate.io import InputError, stable_id
from curate.review import pairs as pr
from curate.review import settings as st


def pref_row(i: int, **over) -> dict:
    """A row as curate's preference/dedup/score stages write it."""
    row = {
        "id": f"row{i}", "instruction": f"Explain topic number {i} briefly.", "method": "self-instruct",
        "generations": [f"Short answer {i}.", f"A longer, more careful answer about topic {i}."],
        "generation_models": ["gen-small", "gen-large"], "ratings": [2, 4], "judge_model": "judge-x",
        "complexity": 2.5, "quality": 4.0, "quality_scores": [3.0, 4.0], "deita_score": 10.0,
        "dedup_cluster": i, "dedup_cluster_size": 1, "embedding": [1.0, 0.0, 0.0],
    }
    row.update(over)
    return row


def test_pairs_from_preference_rows():
    ds = Dataset.from_list([pref_row(0), pref_row(1, ratings=[5, 1]), pref_row(2, ratings=[3, 3])])
    pairs, rejected = pr.to_pairs(ds, seed=0)
    assert rejected == []
    p = pairs[0]
    assert p["id"] == stable_id("Explain topic number 0 briefly.", "Short answer 0.",
                                "A longer, more careful answer about topic 0.")
    assert p["judge_preference"] == "y" and pairs[1]["judge_preference"] == "x" and pairs[2]["judge_preference"] == "tie"
    assert pr.judge_score(p) == 0.5
    assert p["messages"] == [{"role": "user", "content": "Explain topic number 0 briefly."}]
    for pair in pairs:
        a, b = pr.shown(pair)
        meta = pr.record_metadata(pair)
        assert (meta["a_index"], meta["b_index"]) == (pair["indices"][a], pair["indices"][b])
        assert meta["generator_model_a"] == pair["generator_models"][a]
        assert meta["judge_rating_a"] == pair["ratings"][a]
        # the judge's label follows the response wherever it is shown
        if pair["judge_preference"] in ("x", "y"):
            better = 0 if pair["judge_preference"] == "x" else 1
            assert pr.judge_label(pair) == ("A" if a == better else "B")
    assert pr.metadata_names(pairs) >= {"complexity", "deita_score", "dedup_cluster", "judge_rating_a", "method"}


def test_ab_order_is_random_but_recorded():
    ids = [stable_id(i) for i in range(400)]
    flips = [pr.ab_swapped(i, 0) for i in ids]
    assert flips == [pr.ab_swapped(i, 0) for i in ids]  # deterministic
    assert 150 < sum(flips) < 250  # and balanced
    assert flips != [pr.ab_swapped(i, 1) for i in ids]  # the seed changes it


def test_plain_jsonl_and_chat_prompts(tmp_path: Path):
    from curate.io import read_rows

    path = tmp_path / "pairs.jsonl"
    rows = [
        {"prompt": "What is 2+2?", "response_a": "4", "response_b": "5", "judge_preference": "a"},
        {"prompt": "Translate 'cat'", "response_a": "chat", "response_b": "gato", "judge_preference": "2"},
        {"prompt": "Say hi", "response_a": "hi", "response_b": "hello", "judge_preference": "0"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    pairs, rejected = pr.to_pairs(read_rows(path), seed=0, source=path)
    assert not rejected and [p["judge_preference"] for p in pairs] == ["x", "y", "tie"]
    chat = Dataset.from_list([{"prompt": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"},
                                          {"role": "user", "content": "and now?"}],
                               "generations": ["now this", "now that"]}])
    pairs, _ = pr.to_pairs(chat, seed=0)
    assert len(pairs[0]["messages"]) == 3 and pr.prompt_text(pairs[0]["messages"]).startswith("user: hi")


def test_more_than_two_generations_reviews_best_vs_worst():
    ds = Dataset.from_list([pref_row(0, generations=["g0", "g1", "g2", "g3"], ratings=[3, 5, 1, 4],
                                     generation_models=["m0", "m1", "m2", "m3"], quality_scores=[1.0, 2.0, 3.0, 4.0])])
    (p,), _ = pr.to_pairs(ds, seed=0)
    assert p["indices"] == [1, 2] and p["responses"] == ["g1", "g2"] and p["ratings"] == [5, 1]
    assert p["generator_models"] == ["m1", "m2"] and p["judge_preference"] == "x"


def test_bad_rows_are_rejected_with_reasons_and_bad_inputs_fail():
    ds = Dataset.from_list([
        pref_row(0),
        pref_row(1, instruction="   "),
        pref_row(2, generations=["only one", ""]),
        pref_row(3, generations=["same", "same "]),
        pref_row(4, id="dup-of-0", instruction="Explain topic number 0 briefly.",
                 generations=["Short answer 0.", "A longer, more careful answer about topic 0."]),
    ])
    pairs, rejected = pr.to_pairs(ds, seed=0)
    assert [p["row"] for p in pairs] == [1]
    assert [(r["row"], r["reason"].split(" (")[0]) for r in rejected] == [
        (2, "empty or missing prompt"), (3, "fewer than 2 non-empty responses"),
        (4, "the two responses are identical"), (5, "duplicate of row 1")]
    with pytest.raises(InputError, match="no prompt column"):
        pr.to_pairs(Dataset.from_list([{"text": "x", "generations": ["a", "b"]}]), seed=0, source="in.jsonl")
    with pytest.raises(InputError, match="no responses"):
        pr.to_pairs(Dataset.from_list([{"prompt": "x", "response_a": "a"}]), seed=0, source="in.jsonl")


def test_settings_diff_explains_and_knows_what_is_fixable():
    want = st.build_spec({"complexity", "dedup_cluster"}, 384, min_submitted=2)
    assert set(want["metadata"]) == {"complexity", "dedup_cluster", *st.ALWAYS_METADATA}
    assert st.diff_specs(want, want) == ([], [])
    current = json.loads(json.dumps(want))
    current["questions"]["preference"]["labels"] = ["A", "B"]
    current["vectors"]["prompt_embedding"]["dimensions"] = 768
    del current["metadata"]["complexity"]
    current["distribution"]["min_submitted"] = 1
    current["metadata"]["extra_on_server"] = {"type": "float", "visible": True, "title": "x"}
    diffs, fixable = st.diff_specs(current, want)
    assert "question 'preference': labels is ['A', 'B'] on the server, ['A', 'B', 'tie'] wanted" in diffs
    assert any("768 dimensions on the server, 384 wanted" in d for d in diffs)
    assert set(fixable) == {"metadata property 'complexity' is missing on the server",
                            "task distribution: min_submitted is 1 on the server, 2 wanted"}
    assert not any("extra_on_server" in d for d in diffs)
