"""Review progress: records done, responses per annotator, disagreements and agreement so far."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from curate.config import Config
from curate.schemas import ReviewStatus
from curate.stages.review import client as rc
from curate.stages.review.calibration import calibration_report
from curate.stages.review.pull import pull, votes


def review_status(cfg: Config, dataset: str, workspace: str, client: Any = None) -> ReviewStatus:
    """The review's progress and agreement so far (`curate status`; its shape is `ReviewStatus`)."""
    from curate.stages.review.agreement import summary as agreement_summary

    client = client or rc.connect(cfg)
    rg_dataset = rc.require_dataset(client, dataset, workspace)
    records = pull(client, rg_dataset)
    statuses = Counter(r["status"] for r in records)
    per_user: dict[str, Counter] = defaultdict(Counter)
    for record in records:
        for response in record["responses"]:
            per_user[response["user"]][response["status"]] += 1
    ex = cfg.export
    agreement = agreement_summary(records, ex.policy, ex.min_votes, ex.min_agreement)
    disagreements = [r["id"] for r in records if len(set(votes(r))) > 1]
    return {
        "dataset": dataset,
        "workspace": workspace,
        "api_url": client.api_url,
        "min_submitted": rg_dataset.settings.distribution.min_submitted,
        "records": len(records),
        "completed": statuses.get("completed", 0),
        "pending": statuses.get("pending", 0),
        "with_responses": sum(1 for r in records if r["responses"]),
        "annotators": {user: dict(c) for user, c in sorted(per_user.items())},
        "records_with_disagreement": len(disagreements),
        "disagreement_ids": disagreements[:20],
        "agreement": agreement,
        **(
            {"calibration": calibration_report(records, ex, dataset, ex.auto_accept_min_agreement)}
            if any(r["metadata"].get("calibration_sample") == "yes" for r in records)
            else {}
        ),
    }
