"""Inter-annotator agreement on pulled review records.

- Krippendorff's alpha per question (the `krippendorff` package): nominal for the A/B/tie preference,
  ordinal for the 1-5 ratings; units are records, coders are annotators, only submitted responses.
- Percent agreement: mean share of agreeing annotator pairs per record with >= 2 votes.
- Judge vs human: per suggestion agent, how often the judge's pre-filled answer equals the human decision,
  and the confusion matrix of the judge's label (A / B / tie) against that decision.
- Position bias: how often A was chosen among non-tie votes (the order is random, so ~0.5 is unbiased).

The shapes are `curate.schemas.AgreementSummary` and its parts.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from itertools import combinations
from typing import Any

import krippendorff
import numpy as np

from curate.schemas import (
    AgreementSummary,
    JudgeAgreement,
    PercentAgreement,
    PositionBias,
    QuestionAgreement,
)
from curate.stages.review import settings as st
from curate.stages.review.pull import LABEL_SET, decide, submitted, votes

PREFERENCE_CODES = {"A": 0.0, "B": 1.0, "tie": 2.0}
QUESTIONS = {st.PREFERENCE: "nominal", st.RATING_A: "ordinal", st.RATING_B: "ordinal"}
_ANSWER_KEY = {st.PREFERENCE: "preference", st.RATING_A: "rating_a", st.RATING_B: "rating_b"}


def answers(record: dict[str, Any], question: str) -> list[Any]:
    """The submitted answers of one record to `question` (unanswered left out)."""
    key = _ANSWER_KEY[question]
    return [r[key] for r in submitted(record) if r[key] is not None]


def reliability_matrix(records: list[dict[str, Any]], question: str) -> tuple[np.ndarray, list[str]]:
    """annotators x records matrix of submitted answers to `question` (NaN = no answer); rows named."""
    key = _ANSWER_KEY[question]
    cells: dict[str, dict[int, float]] = defaultdict(dict)
    for j, record in enumerate(records):
        for r in submitted(record):
            value = r[key]
            if value is None:
                continue
            cells[r["user"]][j] = PREFERENCE_CODES[value] if question == st.PREFERENCE else float(value)
    coders = sorted(cells)
    matrix = np.full((len(coders), len(records)), np.nan)
    for i, coder in enumerate(coders):
        for j, value in cells[coder].items():
            matrix[i, j] = value
    return matrix, coders


def alpha(matrix: np.ndarray, level: str) -> float | None:
    """Krippendorff's alpha, or None when undefined (fewer than two pairable values, or one value only)."""
    if matrix.size == 0:
        return None
    pairable = (~np.isnan(matrix)).sum(axis=0) >= 2
    if not pairable.any():
        return None
    values = matrix[:, pairable]
    if len(np.unique(values[~np.isnan(values)])) < 2:
        return None  # every answer identical: agreement is perfect but alpha is 0/0
    return float(krippendorff.alpha(reliability_data=values, level_of_measurement=level))


def _pair_shares(groups: list[list[Any]]) -> list[float]:
    """Per group of 2+ answers: the share of annotator pairs that gave the same answer."""
    shares = []
    for labels in groups:
        if len(labels) >= 2:
            pairs = list(combinations(labels, 2))
            shares.append(sum(a == b for a, b in pairs) / len(pairs))
    return shares


def _mean(values: list[float]) -> float | None:
    return round(float(np.mean(values)), 4) if values else None


def percent_agreement(records: list[dict[str, Any]]) -> PercentAgreement:
    groups = [labels for labels in (votes(r) for r in records) if len(labels) >= 2]
    full = sum(len(set(labels)) == 1 for labels in groups)
    n = len(groups)
    return {
        "records_with_2plus_votes": n,
        "pairwise": _mean(_pair_shares(groups)),
        "unanimous_share": round(full / n, 4) if n else None,
        "records_with_disagreement": n - full,
    }


def judge_vs_human(
    records: list[dict[str, Any]], policy: str = "majority", min_votes: int = 1, min_agreement: float = 0.5
) -> dict[str, JudgeAgreement]:
    """Per suggestion agent: agreement with the human decision (records), with single votes, and the
    confusion matrix judge label -> human decision over the records that have both."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    confusion: dict[str, dict[str, dict[str, int]]] = {}
    for record in records:
        suggestion = record["suggestions"].get(st.PREFERENCE)
        if not suggestion or suggestion.get("value") not in PREFERENCE_CODES:
            continue
        agent = suggestion.get("agent") or "unknown"
        judged = suggestion["value"]
        labels = votes(record)
        c = counts[agent]
        grid = confusion.setdefault(agent, {j: dict.fromkeys(LABEL_SET, 0) for j in LABEL_SET})
        c["votes"] += len(labels)
        c["votes_agree"] += sum(label == judged for label in labels)
        label, _, _ = decide(labels, policy, min_votes, min_agreement)
        if label is not None:
            c["records"] += 1
            c["records_agree"] += label == judged
            c["overridden"] += label != judged
            grid[judged][label] += 1
    return {
        agent: {
            "records": c["records"],
            "agreement": round(c["records_agree"] / c["records"], 4) if c["records"] else None,
            "overridden": c["overridden"],
            "votes": c["votes"],
            "vote_agreement": round(c["votes_agree"] / c["votes"], 4) if c["votes"] else None,
            "confusion": confusion[agent],
        }
        for agent, c in sorted(counts.items())
    }


def position_bias(records: list[dict[str, Any]]) -> PositionBias:
    counts = Counter(label for record in records for label in votes(record))
    decisive = counts["A"] + counts["B"]
    p_value = None
    if decisive:
        from scipy.stats import binomtest

        p_value = round(float(binomtest(counts["A"], decisive, 0.5).pvalue), 4)
    return {
        "A": counts["A"],
        "B": counts["B"],
        "tie": counts["tie"],
        "a_share": round(counts["A"] / decisive, 4) if decisive else None,
        "binomial_p": p_value,
    }


def question_agreement(records: list[dict[str, Any]], question: str) -> QuestionAgreement:
    """Krippendorff's alpha and pairwise agreement on one question."""
    level = QUESTIONS[question]
    matrix, coders = reliability_matrix(records, question)
    a = alpha(matrix, level)
    return {
        "alpha": None if a is None else round(a, 4),
        "level": level,
        "annotators": len(coders),
        "units": int(((~np.isnan(matrix)).sum(axis=0) >= 2).sum()) if matrix.size else 0,
        "pairwise": _mean(_pair_shares([answers(r, question) for r in records])),
    }


def summary(
    records: list[dict[str, Any]], policy: str = "majority", min_votes: int = 1, min_agreement: float = 0.5
) -> AgreementSummary:
    """All agreement figures for the export summary, the status command and the dataset card."""
    return {
        "krippendorff_alpha": {q: question_agreement(records, q) for q in QUESTIONS},
        "percent_agreement": percent_agreement(records),
        "judge_vs_human": judge_vs_human(records, policy, min_votes, min_agreement),
        "position_bias": position_bias(records),
    }
