"""The review plan, the judge's calibration on human votes, and the auto-accept rule.

Plan: a calibration sample (random, stratified over the confidence levels a judge decision can be
accepted at, proportional allocation with at least one record per level) comes first, in random order; then the other records, lowest confidence
first. Every choice is a hash of (seed, record id), so the same records get the same plan on every push.

Calibration: per confidence level, the share of calibration-sample votes where the judge's decision
equals the human decision (a human tie against a judge pick is a disagreement). The 90% interval is
about what auto-accept exports: the agreement of the level's unreviewed records, a finite set with
its own sampling noise, so it is a prediction interval (Wilson at the effective size n m / (n + m) for
n votes and m unreviewed records; plain Wilson for the level's rate when m is not known). Only the
calibration sample is used: it is drawn at random within each level before any vote, so no choice
made by people or by earlier votes (a reviewer picking records, a re-plan) can enter the estimate.

Auto-accept: an unreviewed record is decided by the judge only when the lower bound of its level's
interval is >= the target, and never on a judge tie.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from curate.schemas import CalibrationReport, LevelCalibration
from curate.stages.review import settings as st
from curate.stages.review.confidence import LEVELS
from curate.stages.review.pull import decide, votes

Z90 = 1.6448536269514722  # two-sided 90% normal quantile
NEVER_ACCEPTED = ("tie", "none")


def unit(seed: int, record_id: str) -> float:
    """A uniform number in [0, 1) fixed by (seed, record id)."""
    digest = hashlib.sha256(f"plan:{seed}:{record_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def calibration_size(requested: int, n: int) -> int:
    """The sample size: `requested` records, at most all of them."""
    return max(0, min(requested, n))


def calibration_sample(items: Sequence[tuple[str, str]], size: int, seed: int) -> set[str]:
    """Ids of the calibration sample from (record id, level) pairs: `size` records stratified over the
    levels (largest-remainder proportional allocation, at least one per level while size allows). Levels
    the judge is never trusted with (tie, none) are left out: their votes could not auto-accept anything."""
    items = [(rid, level) for rid, level in items if level not in NEVER_ACCEPTED]
    by_level: dict[str, list[str]] = {}
    for rid, level in items:
        by_level.setdefault(level, []).append(rid)
    size = calibration_size(size, len(items))
    if not size:
        return set()
    levels = sorted(by_level, key=LEVELS.index)
    quota = {lv: size * len(by_level[lv]) / len(items) for lv in levels}
    alloc = {lv: min(len(by_level[lv]), max(1, math.floor(quota[lv]))) for lv in levels}
    while sum(alloc.values()) > size:  # the minimum of one overshot: take from the largest first
        over = [lv for lv in levels if alloc[lv] > 1]
        if over:
            lv = max(over, key=lambda lv: (alloc[lv] - quota[lv], alloc[lv]))
        else:  # more levels than the sample has room for: drop the smallest
            lv = min((lv for lv in levels if alloc[lv]), key=lambda lv: (quota[lv], -LEVELS.index(lv)))
        alloc[lv] -= 1
    for lv in sorted(levels, key=lambda lv: (alloc[lv] - quota[lv], LEVELS.index(lv))):
        if sum(alloc.values()) >= size:
            break
        if alloc[lv] < len(by_level[lv]):
            alloc[lv] += 1
    chosen: set[str] = set()
    for lv in levels:
        ranked = sorted(by_level[lv], key=lambda rid: (unit(seed, rid), rid))
        chosen.update(ranked[: alloc[lv]])
    return chosen


def plan(
    items: Sequence[tuple[str, str]],
    size: int,
    seed: int,
    estimates: Mapping[str, float] | None = None,
    sample: set[str] | None = None,
) -> dict[str, tuple[int, bool]]:
    """record id -> (review priority, 1 = first; in the calibration sample). After the sample come the
    other records, lowest confidence first: by `estimates` (level -> agreement) where given, else by
    the order of `LEVELS`; a level never auto-accepted (tie, none) counts as agreement 0. `sample`
    keeps a sample already pushed (a re-plan must not change what the estimates are drawn from)."""
    sample = calibration_sample(items, size, seed) if sample is None else sample

    def confidence(level: str) -> float:
        if level in NEVER_ACCEPTED:
            return -1.0
        if estimates is not None and level in estimates:
            return estimates[level]
        return -LEVELS.index(level) / len(LEVELS)

    first = sorted((rid for rid, _ in items if rid in sample), key=lambda rid: (unit(seed, rid), rid))
    rest = sorted(
        ((rid, lv) for rid, lv in items if rid not in sample),
        key=lambda it: (confidence(it[1]), LEVELS.index(it[1]), unit(seed, it[0]), it[0]),
    )
    order = first + [rid for rid, _ in rest]
    return {rid: (i + 1, rid in sample) for i, rid in enumerate(order)}


def wilson(k: int, n: int, z: float = Z90) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials (0, 1 when n is 0)."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def prediction(k: int, n: int, unreviewed: int | None, z: float = Z90) -> tuple[float, float]:
    """Interval for the agreement over `unreviewed` further records of a level whose sample agreed on
    k of n: Wilson at the effective size n m / (n + m), since the estimate and the m records each carry
    sampling noise; the rate's Wilson interval when `unreviewed` is None; (0, 1) with no votes."""
    if n == 0:
        return 0.0, 1.0
    if not unreviewed:
        return wilson(k, n, z)
    n_eff = n * unreviewed / (n + unreviewed)
    p = k / n
    centre = (p + z * z / (2 * n_eff)) / (1 + z * z / n_eff)
    half = z * math.sqrt(p * (1 - p) / n_eff + z * z / (4 * n_eff * n_eff)) / (1 + z * z / n_eff)
    return max(0.0, centre - half), min(1.0, centre + half)


def votes_needed(
    k: int, n: int, target: float, unreviewed: int | None = None, limit: int = 100_000
) -> int | None:
    """More votes the level needs before its lower bound can reach `target`, if the agreement stays at
    its current rate (1 with no votes yet), each vote taking one of its `unreviewed` records; None when
    that rate is not above the target or the unreviewed records run out first."""
    rate = k / n if n else 1.0
    if rate <= target:
        return None
    for m in range(limit):
        total = n + m
        rest = None if unreviewed is None else unreviewed - m
        if rest is not None and rest <= 0:
            return None
        if total and prediction(round(rate * total), total, rest)[0] >= target:
            return m
    return None


def agrees(judge: str | None, human: str) -> bool:
    """Whether the judge's shown label (A | B | tie) matches the human decision (A | B | tie)."""
    return judge is not None and judge == human


def level_stats(
    observations: Iterable[tuple[str, bool]],
    target: float,
    unreviewed: Mapping[str, int] | None = None,
) -> dict[str, LevelCalibration]:
    """Per level, from (level, judge agreed with the human decision) of calibration-sample records; with
    `unreviewed` (level -> unreviewed records, `unreviewed_by_level`) the interval is the prediction
    interval for those records' agreement."""
    n: Counter[str] = Counter()
    k: Counter[str] = Counter()
    for level, agreed in observations:
        n[level] += 1
        k[level] += bool(agreed)
    out: dict[str, LevelCalibration] = {}
    for level in sorted(n, key=LEVELS.index):
        m = None if unreviewed is None else unreviewed.get(level, 0)
        low, high = prediction(k[level], n[level], m)
        out[level] = {
            "votes": n[level],
            "agree": k[level],
            "agreement": round(k[level] / n[level], 4),
            "low": round(low, 4),
            "high": round(high, 4),
            "unreviewed": m,
            "votes_needed": 0
            if low >= target
            else (None if level in NEVER_ACCEPTED else votes_needed(k[level], n[level], target, m)),
        }
    return out


def unreviewed_by_level(records: Iterable[dict[str, Any]]) -> Counter[str]:
    """Level -> records without any submitted or discarded response (what auto-accept may export)."""
    out: Counter[str] = Counter()
    for record in records:
        if not any(r["status"] in ("submitted", "discarded") for r in record["responses"]):
            out[record["metadata"].get("judge_confidence") or "none"] += 1
    return out


def accepted(level: str | None, stats: Mapping[str, LevelCalibration], min_agreement: float) -> bool:
    """Whether an unreviewed record of `level` is exported with the judge's decision."""
    if level is None or level in NEVER_ACCEPTED or level not in stats:
        return False
    return stats[level]["low"] >= min_agreement


def export_estimate(
    judged: Mapping[str, int], stats: Mapping[str, LevelCalibration], humans: int
) -> dict[str, float | int | None]:
    """Estimated agreement of a whole export with the human decision: human-decided records count as
    agreeing; judge-decided ones as their level's estimate, with the level bounds (conservative)."""
    total = humans + sum(judged.values())
    if not total:
        return {"records": 0, "agreement": None, "low": None, "high": None}
    parts = [(c, stats[lv]) for lv, c in judged.items() if c]
    est = (humans + sum(c * s["agreement"] for c, s in parts)) / total
    low = (humans + sum(c * s["low"] for c, s in parts)) / total
    high = (humans + sum(c * s["high"] for c, s in parts)) / total
    return {"records": total, "agreement": round(est, 4), "low": round(low, 4), "high": round(high, 4)}


def apply_plan(pairs: list[dict], size: int, seed: int) -> None:
    """Set each pair's `review_priority` and `calibration_sample` ("yes" | "no") from `plan`."""
    planned = plan([(p["id"], p["judge_confidence"]) for p in pairs], size, seed)
    for p in pairs:
        priority, in_sample = planned[p["id"]]
        p["review_priority"], p["calibration_sample"] = priority, "yes" if in_sample else "no"


def human_label(record: dict[str, Any], ex: Any) -> str | None:
    """The human decision on a record (A | B | tie) under the export policy; None if there is none."""
    label, reason, _ = decide(votes(record), ex.policy, ex.min_votes, ex.min_agreement)
    return label if label in ("A", "B", "tie") and reason in (None, "tie") else None


def judge_of(record: dict[str, Any]) -> tuple[str | None, str | None]:
    """(the judge's shown label A | B | tie, its confidence level) as pushed."""
    judged = (record["suggestions"].get(st.PREFERENCE) or {}).get("value")
    return judged, record["metadata"].get("judge_confidence")


def calibration_observations(records: list[dict[str, Any]], ex: Any) -> list[tuple[str, bool]]:
    """(level, judge agreed) for every calibration-sample record with a human decision."""
    out = []
    for record in records:
        if record["metadata"].get("calibration_sample") != "yes":
            continue
        human = human_label(record, ex)
        judged, level = judge_of(record)
        if human is not None and level is not None:
            out.append((level, judged is not None and judged == human))
    return out


INTERVAL = "90% prediction interval for the unreviewed records (Wilson, effective size n m / (n + m))"
ESTIMATE_FROM = (
    "the calibration sample only (records pushed with calibration_sample=yes): a uniform random sample "
    "within each confidence level, so each level's agreement is estimated without bias"
)


def calibration_report(
    records: list[dict[str, Any]], ex: Any, dataset: str, target: float
) -> CalibrationReport:
    """`curate calibrate`: per level, the judge's agreement with the human decisions of the sample."""
    sample = [r for r in records if r["metadata"].get("calibration_sample") == "yes"]
    obs = calibration_observations(records, ex)
    unreviewed = unreviewed_by_level(records)
    return {
        "dataset": dataset,
        "target": target,
        "interval": INTERVAL,
        "estimate_from": ESTIMATE_FROM,
        "sample_records": len(sample),
        "sample_decided": len(obs),
        "levels": level_stats(obs, target, unreviewed),
    }
