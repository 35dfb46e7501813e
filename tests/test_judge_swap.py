"""curate's own judge in both orders (`generate.preferences.judge_both_orders`), with the embedded
SmolLM2 on real PandaLM pairs: the swapped pass is shown the responses reversed, its ratings come back
in the order as given, and `judge_preference` / `judge_preference_swapped` come from the ratings by one
recipe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from curate.rows import join_input
from curate.stages.review.pairs import to_pairs
from pipelines.ultrafeedback import parse_judgement

N_PAIRS = 2


def _cfg(runs: Path):
    from curate.config import load_config

    return load_config(
        overrides={
            # the judge's default sampling: greedy, SmolLM2 echoes the template's placeholders
            "llm": {"max_new_tokens": 64, "n_ctx": 1024},
            "generate": {"preferences": {"judge_both_orders": True}},
            "run": {"runs_dir": str(runs)},
        },
        environ={},
    )


@pytest.fixture(scope="module")
def judged(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    from pipelines.preferences import judge_generations

    items = json.loads((shared_data / "preference" / "pandalm" / "testset-v1.json").read_text())[:N_PAIRS]
    rows = [
        {
            "instruction": join_input(it["instruction"], it["input"]),
            "generations": [it["response1"], it["response2"]],
        }
        for it in items
    ]
    return judge_generations(_cfg(tmp_path_factory.mktemp("runs")), rows)


def _by_hand(x: int | None, y: int | None) -> str | None:
    if x is None or y is None:
        return None
    return {True: "x", False: "y"}[x > y] if x != y else "tie"


@pytest.mark.slow
def test_the_swapped_ratings_are_the_reversed_judgement_put_back_in_order(judged: list[dict]) -> None:
    assert len(judged) == N_PAIRS
    for row in judged:
        assert row["judge_model"].startswith("SmolLM2-135M")
        for suffix in ("", "_swapped"):
            assert row[f"judge_raw{suffix}"].startswith("#### Output for Text 1")  # kept verbatim
            assert len(row[f"ratings{suffix}"]) == len(row[f"rationales{suffix}"]) == 2
        assert parse_judgement(row["judge_raw"], 2)[0] == row["ratings"]
        # the swapped pass's "Text 1" is response_b: its raw ratings are the given order reversed
        text1, text2 = parse_judgement(row["judge_raw_swapped"], 2)[0]
        assert row["ratings_swapped"] == [text2, text1]


@pytest.mark.slow
def test_both_verdicts_come_from_the_ratings_by_one_recipe(judged: list[dict]) -> None:
    pairs, rejected = to_pairs(judged, seed=0)
    assert not rejected and len(pairs) == N_PAIRS
    for pair, row in zip(pairs, judged, strict=True):
        assert pair["responses"] == row["generations"]
        text1, text2 = parse_judgement(row["judge_raw_swapped"], 2)[0]  # text 1 = response_b
        assert pair["judge_preference"] == _by_hand(*row["ratings"])
        assert pair["judge_preference_swapped"] == _by_hand(text2, text1)
        assert pair["judge_preference"] in ("x", "y", "tie", None)
        assert pair["judge_preference_swapped"] in ("x", "y", "tie", None)
        verdicts = {pair["judge_preference"], pair["judge_preference_swapped"]}
        if verdicts == {"x", "y"}:
            assert pair["judge_confidence"] == "split"  # flipped with the order: low confidence


# SmolLM2's answers (trimmed) on a PandaLM pair of benchmarks/judge_swap.py, in both orders
FIRST = "#### Output for Text 1\nRating: Excellent 1\nRationale: [Excellent 1]\n\n#### Output for Text 2\nRating: Good 2"
SWAPPED = (
    "#### Output for Text 1\nRating: Excellent 1. The content is coherent, concise and informative.\n\n"
    "#### Output for Text 2\nRating: Good 2. The content provides comprehensive information, correct and accurate."
)


def test_a_swapped_answer_is_put_back_in_order_and_gives_the_verdict_by_the_same_recipe(tiny_config) -> None:
    from pipelines.llm import task_llm
    from pipelines.ultrafeedback import JUDGE_PREFIX, RobustUltraFeedback

    llm = task_llm(tiny_config.llm, assistant_prefix=JUDGE_PREFIX)  # not loaded: only parsing runs
    row = {"instruction": "Explain overfitting.", "generations": ["Response one.", "Response two."]}
    first = RobustUltraFeedback(llm=llm, name="uf").format_output(FIRST, row)
    swapped = RobustUltraFeedback(llm=llm, name="uf_swapped", reverse=True).format_output(SWAPPED, row)
    assert first["ratings"] == [1, 2] and first["judge_raw"] == FIRST
    # "Text 1" of the swapped answer is response two: rated 1; response one, shown second, rated 2
    assert swapped["ratings_swapped"] == [2, 1] and swapped["judge_raw_swapped"] == SWAPPED
    (pair,), _ = to_pairs([{**row, **first, **swapped}], seed=0)
    assert (pair["judge_preference"], pair["judge_preference_swapped"]) == ("y", "x")  # it flipped
    assert (pair["judge_decision"], pair["judge_confidence"]) == ("y", "split")
    # the same answers as a single order's ratings give the same verdicts: one recipe for both
    (as_first,), _ = to_pairs([{**row, "ratings": swapped["ratings_swapped"]}], seed=0)
    assert as_first["judge_preference"] == pair["judge_preference_swapped"]


@pytest.mark.slow
def test_the_swapped_pass_shows_the_responses_in_reverse_order(tiny_config) -> None:
    from pipelines.llm import task_llm
    from pipelines.ultrafeedback import JUDGE_PREFIX, RobustUltraFeedback

    prompts = {}
    for reverse in (False, True):
        step = RobustUltraFeedback(
            llm=task_llm(tiny_config.llm, assistant_prefix=JUDGE_PREFIX), reverse=reverse, name=f"uf{reverse}"
        )
        step.load()
        chat = step.format_input({"instruction": "Name a colour.", "generations": ["Red.", "Blue."]})
        prompts[reverse] = chat[-1]["content"]
        assert step.outputs[:3] == (
            ["ratings_swapped", "rationales_swapped", "judge_raw_swapped"]
            if reverse
            else ["ratings", "rationales", "judge_raw"]
        )
    assert prompts[False].index("Red.") < prompts[False].index("Blue.")
    assert prompts[True].index("Blue.") < prompts[True].index("Red.")
    assert prompts[True] == prompts[False].replace("Red.", "@").replace("Blue.", "Red.").replace("@", "Blue.")
