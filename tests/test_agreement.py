"""Agreement figures and the vote policy, on pulled-record dicts (pure logic, no server)."""

from __future__ import annotations

import krippendorff
import numpy as np
import pytest

from curate.stages.review.agreement import (
    PREFERENCE_CODES,
    alpha,
    percent_agreement,
    position_bias,
    reliability_matrix,
    summary,
)
from curate.stages.review.pull import decide


def record(rid: str, answers: list[tuple], judge: str | None = None, agent: str = "judge-x") -> dict:
    """answers: (user, status, preference, rating_a, rating_b, corrected)."""
    return {
        "id": rid,
        "status": "completed",
        "messages": [{"role": "user", "content": f"prompt {rid}"}],
        "response_a": f"A of {rid}",
        "response_b": f"B of {rid}",
        "metadata": {"a_index": 0, "b_index": 1},
        "suggestions": {"preference": {"value": judge, "score": 0.5, "agent": agent}} if judge else {},
        "responses": [
            {
                "user": u,
                "user_id": u,
                "status": s,
                "preference": p,
                "rating_a": ra,
                "rating_b": rb,
                "corrected": c,
                "comment": None,
                "updated_at": str(i),
            }
            for i, (u, s, p, ra, rb, c) in enumerate(answers)
        ],
    }


def sub(user: str, pref: str, ra: int | None = None, rb: int | None = None, corrected: str | None = None):
    return (user, "submitted", pref, ra, rb, corrected)


@pytest.mark.parametrize(
    "labels,policy,min_votes,min_agreement,expected",
    [
        ([], "majority", 1, 0.5, (None, "unreviewed")),
        (["A"], "majority", 1, 0.5, ("A", None)),
        (["A"], "majority", 2, 0.5, (None, "too_few_votes")),
        (["A", "A", "B"], "majority", 1, 0.5, ("A", None)),
        (["A", "A", "B"], "unanimous", 1, 0.5, (None, "not_unanimous")),
        (["B", "B", "B"], "unanimous", 1, 0.5, ("B", None)),
        (["A", "B"], "majority", 1, 0.5, (None, "split_vote")),
        (["A", "B", "tie"], "majority", 1, 0.3, (None, "split_vote")),
        (["A", "A", "B"], "majority", 1, 0.7, (None, "below_min_agreement")),
        (["tie", "tie", "A"], "majority", 1, 0.5, ("tie", "tie")),
    ],
)
def test_decide(labels, policy, min_votes, min_agreement, expected):
    label, reason, _ = decide(labels, policy, min_votes, min_agreement)
    assert (label, reason) == expected


def test_alpha_matches_krippendorff_package_on_the_same_matrix():
    records = [
        record("r1", [sub("ann1", "A", 4, 2), sub("ann2", "A", 5, 2), sub("ann3", "B", 3, 3)], judge="A"),
        record("r2", [sub("ann1", "B", 1, 4), sub("ann2", "B", 2, 5)], judge="A"),
        record(
            "r3", [sub("ann1", "tie", 3, 3), sub("ann2", "A", 4, 3), sub("ann3", "tie", 3, 3)], judge="tie"
        ),
        record("r4", [sub("ann2", "A", 5, 1)]),  # single coder: not pairable
        record("r5", [("ann1", "discarded", None, None, None, None), sub("ann3", "B", 2, 4)]),
        record("r6", [("ann1", "draft", "A", None, None, None)]),  # drafts are not answers
    ]
    # The matrix the package gets: rows ann1..ann3, columns r1..r6, NaN where no submitted answer.
    nan = np.nan
    codes = PREFERENCE_CODES
    expected = np.array(
        [
            [codes["A"], codes["B"], codes["tie"], nan, nan, nan],
            [codes["A"], codes["B"], codes["A"], codes["A"], nan, nan],
            [codes["B"], nan, codes["tie"], nan, codes["B"], nan],
        ]
    )
    matrix, coders = reliability_matrix(records, "preference")
    assert coders == ["ann1", "ann2", "ann3"]
    np.testing.assert_array_equal(matrix, expected)
    ours = alpha(matrix, "nominal")
    theirs = krippendorff.alpha(reliability_data=expected, level_of_measurement="nominal")
    assert ours == pytest.approx(theirs)
    ratings = np.array(
        [[4, 1, 3, nan, nan, nan], [5, 2, 4, 5, nan, nan], [3, nan, 3, nan, 2, nan]], dtype=float
    )
    m, _ = reliability_matrix(records, "rating_a")
    np.testing.assert_array_equal(m, ratings)
    assert alpha(m, "ordinal") == pytest.approx(
        krippendorff.alpha(reliability_data=ratings, level_of_measurement="ordinal")
    )
    s = summary(records)
    assert s["krippendorff_alpha"]["preference"]["alpha"] == pytest.approx(theirs, abs=1e-4)
    assert s["krippendorff_alpha"]["preference"]["units"] == 3  # r1, r2, r3 have 2+ answers


def test_alpha_undefined_cases():
    assert alpha(np.full((2, 3), np.nan), "nominal") is None
    assert alpha(np.array([[0.0, 1.0], [0.0, 1.0]]), "nominal") == pytest.approx(1.0)
    assert alpha(np.array([[0.0, 0.0], [0.0, 0.0]]), "nominal") is None  # one value only: 0/0


def test_percent_agreement_and_position_bias():
    records = [
        record("r1", [sub("u1", "A"), sub("u2", "A"), sub("u3", "B")]),  # pairs: AA agree, AB, AB -> 1/3
        record("r2", [sub("u1", "B"), sub("u2", "B")]),  # 1
        record("r3", [sub("u1", "tie")]),  # single vote: not counted
    ]
    pa = percent_agreement(records)
    assert pa["records_with_2plus_votes"] == 2
    assert pa["pairwise"] == pytest.approx((1 / 3 + 1) / 2, abs=1e-4)
    assert pa["unanimous_share"] == 0.5 and pa["records_with_disagreement"] == 1
    pb = position_bias(records)
    assert (pb["A"], pb["B"], pb["tie"]) == (2, 3, 1)
    assert pb["a_share"] == pytest.approx(2 / 5)
    assert 0 < pb["binomial_p"] <= 1


def test_judge_vs_human_per_agent():
    records = [
        record("r1", [sub("u1", "A"), sub("u2", "A")], judge="A", agent="gpt"),  # agree
        record("r2", [sub("u1", "B"), sub("u2", "B")], judge="A", agent="gpt"),  # overridden
        record("r3", [sub("u1", "B"), sub("u2", "A")], judge="B", agent="gpt"),  # split: no decision
        record("r4", [sub("u1", "tie")], judge="tie", agent="small"),  # agree on tie
    ]
    jv = summary(records)["judge_vs_human"]
    none = dict.fromkeys(("A", "B", "tie"), 0)
    assert jv["gpt"] == {
        "records": 2,
        "agreement": 0.5,
        "overridden": 1,
        "votes": 6,
        "vote_agreement": 0.5,
        # judge label -> human decision; r3 has no decision, so it is in no cell
        "confusion": {"A": {"A": 1, "B": 1, "tie": 0}, "B": none, "tie": none},
    }
    assert jv["small"]["agreement"] == 1.0 and jv["small"]["records"] == 1
    assert jv["small"]["confusion"]["tie"] == {"A": 0, "B": 0, "tie": 1}


def test_confusion_follows_the_export_policy():
    records = [
        record("r1", [sub("u1", "A"), sub("u2", "A"), sub("u3", "B")], judge="B"),  # majority A
        record("r2", [sub("u1", "tie"), sub("u2", "tie"), sub("u3", "B")], judge="B"),  # majority tie
        record("r3", [sub("u1", "B")], judge="tie"),  # one vote: B
    ]
    majority = summary(records)["judge_vs_human"]["judge-x"]
    assert majority["confusion"] == {
        "A": {"A": 0, "B": 0, "tie": 0},
        "B": {"A": 1, "B": 0, "tie": 1},
        "tie": {"A": 0, "B": 1, "tie": 0},
    }
    assert majority["records"] == 3 and majority["agreement"] == 0.0
    unanimous = summary(records, policy="unanimous", min_votes=2)["judge_vs_human"]["judge-x"]
    assert unanimous["records"] == 0  # no record is unanimous with 2+ votes
    assert sum(n for row in unanimous["confusion"].values() for n in row.values()) == 0


def test_pairwise_agreement_per_question():
    records = [
        record("r1", [sub("u1", "A", 4, 2), sub("u2", "A", 4, 3), sub("u3", "B", 4, 2)]),
        record("r2", [sub("u1", "B", 1), sub("u2", "B", 2)]),  # rating_b: one answer only
    ]
    questions = summary(records)["krippendorff_alpha"]
    # preference: r1 1 of 3 pairs agree, r2 1 of 1 -> mean 2/3
    assert questions["preference"]["pairwise"] == pytest.approx(2 / 3, abs=1e-4)
    # rating_a: r1 all three 4 (3 of 3), r2 1 vs 2 (0 of 1) -> 1/2
    assert questions["rating_a"]["pairwise"] == 0.5
    # rating_b: only r1 has 2+ answers: (2, 3, 2) -> 1 of 3
    assert questions["rating_b"]["pairwise"] == pytest.approx(1 / 3, abs=1e-4)
    assert questions["rating_b"]["units"] == 1
