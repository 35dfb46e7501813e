"""Inter-annotator agreement on pulled review records.

- Krippendorff's alpha per question (the `krippendorff` package): nominal for the A/B/tie preference,
  ordinal for the 1-5 ratings; units are records, coders are annotators, only submitted responses.
- Percent agreement: mean share of agreeing annotator pairs per record with >= 2 votes.
- Judge vs human: per suggestion agent, how often the judge's pre-filled answer equals the human decision.
- Position bias: how often A was chosen among non-tie votes (the order is random, so ~0.5 is unbiased).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from itertools import combinations
from typing import Any

import krippendorff
import numpy as np

from curate.stages.review import settings as st
from curate.stages.review.pull import decide, submitted, votes

PREFERENCE_CODES = {"A": 0.0, "B": 1.0, "tie": 2.0}
QUESTIONS = {st.PREFERENCE: "nominal", st.RATING_A: "ordinal", st.RATING_B: "ordinal"}


def reliability_matrix(records: list[dict[str, Any]], question: str) -> tuple[np.ndarray, list[str]]:
    """annotators x records matrix of submitted answers to `question` (NaN = no answer); rows named."""
    key = {st.PREFERENCE: "preference", st.RATING_A: "rating_a", st.RATING_B: "rating_b"}[question]
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


def percent_agreement(records: list[dict[str, Any]]) -> dict[str, Any]:
    pair_shares, full = [], 0
    for record in records:
        labels = votes(record)
        if len(labels) < 2:
            continue
        pairs = list(combinations(labels, 2))
        pair_shares.append(sum(a == b for a, b in pairs) / len(pairs))
        full += len(set(labels)) == 1
    n = len(pair_shares)
    return {
        "records_with_2plus_votes": n,
        "pairwise": round(float(np.mean(pair_shares)), 4) if n else None,
        "unanimous_share": round(full / n, 4) if n else None,
        "records_with_disagreement": n - full,
    }


def judge_vs_human(
    records: list[dict[str, Any]], policy: str = "majority", min_votes: int = 1, min_agreement: float = 0.5
) -> dict[str, dict[str, Any]]:
    """Per suggestion agent: agreement with the human decision (records) and with single votes."""
    out: dict[str, dict[str, int]] = defaultdict(Counter)
    for record in records:
        suggestion = record["suggestions"].get(st.PREFERENCE)
        if not suggestion or suggestion.get("value") not in PREFERENCE_CODES:
            continue
        agent = suggestion.get("agent") or "unknown"
        judged = suggestion["value"]
        labels = votes(record)
        c = out[agent]
        c["votes"] += len(labels)
        c["votes_agree"] += sum(label == judged for label in labels)
        label, _, _ = decide(labels, policy, min_votes, min_agreement)
        if label is not None:
            c["records"] += 1
            c["records_agree"] += label == judged
            c["overridden"] += label != judged
    return {
        agent: {
            "records": c["records"],
            "agreement": round(c["records_agree"] / c["records"], 4) if c["records"] else None,
            "overridden": c["overridden"],
            "votes": c["votes"],
            "vote_agreement": round(c["votes_agree"] / c["votes"], 4) if c["votes"] else None,
        }
        for agent, c in sorted(out.items())
    }


def position_bias(records: list[dict[str, Any]]) -> dict[str, Any]:
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


def summary(
    records: list[dict[str, Any]], policy: str = "majority", min_votes: int = 1, min_agreement: float = 0.5
) -> dict[str, Any]:
    """All agreement figures for the export summary, the status command and the dataset card."""
    alphas: dict[str, Any] = {}
    for question, level in QUESTIONS.items():
        matrix, coders = reliability_matrix(records, question)
        alphas[question] = {
            "alpha": None if (a := alpha(matrix, level)) is None else round(a, 4),
            "level": level,
            "annotators": len(coders),
            "units": int(((~np.isnan(matrix)).sum(axis=0) >= 2).sum()) if matrix.size else 0,
        }
    return {
        "krippendorff_alpha": alphas,
        "percent_agreement": percent_agreement(records),
        "judge_vs_human": judge_vs_human(records, policy, min_votes, min_agreement),
        "position_bias": position_bias(records),
    }
