"""Who won each reviewed record under the export policy, and the accounting of what was left out.

`decide_records` turns pulled records into `Decisions`: the exported records (each a `Decision`: the
shown label of the chosen response, who decided, the correction used), the outcome of every record,
and the `Accounting` in which every record and every submitted response is exported or excluded with
a reason. The export formats (`curate.stages.export.formats`) build their rows from `Decisions`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from curate.config import Config
from curate.schemas import Accounting
from curate.stages.review import settings as st
from curate.stages.review.calibration import (
    NEVER_ACCEPTED,
    accepted,
    calibration_observations,
    export_estimate,
    judge_of,
    level_stats,
    unreviewed_by_level,
    votes_needed,
)
from curate.stages.review.pull import decide, submitted, votes


def other(label: str) -> str:
    """The other shown position: A <-> B."""
    return "B" if label == "A" else "A"


def _correction(record: dict[str, Any], winner: str) -> str | None:
    """The latest correction, preferring reviewers who voted for the winner."""
    subs = submitted(record)
    for group in ([r for r in subs if r["preference"] == winner], subs):
        fixes = [r["corrected"] for r in group if r["corrected"]]
        if fixes:
            return fixes[-1]
    return None


@dataclass(frozen=True)
class Decision:
    """An exported record: its chosen response is the one shown as `label` (A or B)."""

    record: dict[str, Any]  # the pulled record (curate.stages.review.pull.normalize)
    label: str
    share: float | None  # the winning vote share; None when the judge decided
    decided_by: str  # human | judge
    correction: str | None  # a reviewer's correction that replaces the chosen response
    estimated_agreement: float | None = None  # auto-accepted: its confidence level's agreement estimate

    @property
    def rejected_label(self) -> str:
        return other(self.label)

    @property
    def messages(self) -> list[dict[str, str]]:
        """The prompt as chat messages."""
        return [
            {"role": m.get("role", "user"), "content": m.get("content", "")} for m in self.record["messages"]
        ]

    @property
    def chosen_original(self) -> str:
        return self.record[f"response_{self.label.lower()}"]

    @property
    def chosen(self) -> str:
        """The chosen response as exported: the correction if one is used, else the original."""
        return self.correction or self.chosen_original

    @property
    def rejected(self) -> str:
        return self.record[f"response_{self.rejected_label.lower()}"]


def decision(
    record: dict[str, Any], label: str, share: float | None, decided_by: str, use_corrections: bool
) -> Decision:
    """The decision that `record`'s response shown as `label` wins (a correction only from humans)."""
    correction = _correction(record, label) if use_corrections and decided_by == "human" else None
    return Decision(record, label, share, decided_by, correction)


@dataclass(frozen=True)
class Decisions:
    """Everything the export formats build rows from."""

    records: list[dict[str, Any]]  # every pulled record
    exported: list[Decision]  # in record order
    outcome: dict[str, str]  # record id -> "exported", "exported (judge)" or the exclusion reason
    accounting: Accounting
    calibration: dict[str, Any] | None = None  # with auto-accept: the level estimates and the export's


def decide_records(records: list[dict[str, Any]], cfg: Config) -> Decisions:
    """Decide every record under `cfg.export`'s policy; `check_accounting` verifies the sums."""
    ex = cfg.export
    exported: list[Decision] = []
    outcome: dict[str, str] = {}
    rec_excluded: Counter[str] = Counter()
    resp_excluded: Counter[str] = Counter()
    resp_exported = 0
    by_judge = 0
    target = ex.auto_accept_min_agreement
    pending = unreviewed_by_level(records) if ex.auto_accept else Counter()
    stats = level_stats(calibration_observations(records, ex), target, pending) if ex.auto_accept else {}
    judged_levels: Counter[str] = Counter()
    unreviewed_levels: Counter[str] = Counter()
    for record in records:
        subs = submitted(record)
        discards = [r for r in record["responses"] if r["status"] == "discarded"]
        if not subs:
            reason = "discarded" if discards else "unreviewed"
            if reason == "unreviewed" and ex.auto_accept:
                judged, level = judge_of(record)
                unreviewed_levels[level or "none"] += 1
                if judged in ("A", "B") and accepted(level, stats, target):
                    estimate = stats[level]["agreement"]
                    exported.append(Decision(record, judged, None, "judge", None, estimate))
                    outcome[record["id"]] = "exported (judge)"
                    by_judge += 1
                    judged_levels[level] += 1
                    continue
                reason = (
                    "unreviewed_judge_tie"
                    if judged == "tie"
                    else "unreviewed_no_judge"
                    if judged is None
                    else "unreviewed_below_target"
                )
            elif reason == "unreviewed" and ex.include_unreviewed:
                judged = (record["suggestions"].get(st.PREFERENCE) or {}).get("value")
                if judged in ("A", "B"):
                    exported.append(decision(record, judged, None, "judge", ex.use_corrections))
                    outcome[record["id"]] = "exported (judge)"
                    by_judge += 1
                    continue
                reason = "unreviewed_judge_tie" if judged == "tie" else "unreviewed_no_judge"
            rec_excluded[reason] += 1
            outcome[record["id"]] = reason
            continue
        label, reason, share = decide(votes(record), ex.policy, ex.min_votes, ex.min_agreement)
        if reason is None and label in ("A", "B"):
            exported.append(decision(record, label, share, "human", ex.use_corrections))
            outcome[record["id"]] = "exported"
            resp_exported += len(subs)
            continue
        if reason == "unreviewed":
            reason = "no_preference"  # submitted, but without an answer to the preference question
        reason = reason or "no_decision"
        rec_excluded[reason] += 1
        resp_excluded[reason] += len(subs)
        outcome[record["id"]] = reason
    all_responses = [r for rec in records for r in rec["responses"]]
    accounting: Accounting = {
        "records": {
            "total": len(records),
            "exported": len(exported),
            "exported_by_humans": len(exported) - by_judge,
            "exported_by_judge": by_judge,
            "excluded": dict(sorted(rec_excluded.items())),
        },
        "submitted_responses": {
            "total": sum(r["status"] == "submitted" for r in all_responses),
            "in_export": resp_exported,
            "excluded": dict(sorted(resp_excluded.items())),
        },
        "discarded_responses": sum(r["status"] == "discarded" for r in all_responses),
        "draft_responses": sum(r["status"] == "draft" for r in all_responses),
        "corrections_used": sum(d.correction is not None for d in exported),
        "policy": {
            "policy": ex.policy,
            "min_votes": ex.min_votes,
            "min_agreement": ex.min_agreement,
            "include_unreviewed": ex.include_unreviewed,
            "use_corrections": ex.use_corrections,
            "discards": "a discarded response is an abstention; a record with only discards is excluded",
            "ties": "a record whose winning vote is 'tie', or with two labels equally voted, is excluded",
        },
    }
    check_accounting(accounting)
    calibration = None
    if ex.auto_accept:
        calibration = {
            "target": target,
            "levels": stats,
            "needed": {  # level -> more calibration votes it needs (None: cannot reach the target)
                lv: stats[lv]["votes_needed"] if lv in stats else votes_needed(0, 0, target, pending[lv])
                for lv in sorted(unreviewed_levels)
                if lv not in NEVER_ACCEPTED and (lv not in stats or stats[lv]["low"] < target)
            },
            "judged_by_level": dict(judged_levels),
            "export": export_estimate(judged_levels, stats, len(exported) - by_judge),
        }
    return Decisions(records, exported, outcome, accounting, calibration)


def check_accounting(acc: Accounting) -> None:
    """Nothing is lost: exported + excluded adds up, for records and for submitted responses."""
    r, s = acc["records"], acc["submitted_responses"]
    if r["exported"] + sum(r["excluded"].values()) != r["total"]:
        raise AssertionError(f"record accounting does not add up: {r}")
    if s["in_export"] + sum(s["excluded"].values()) != s["total"]:
        raise AssertionError(f"response accounting does not add up: {s}")
