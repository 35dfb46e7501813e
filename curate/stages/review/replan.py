"""`curate plan`: re-plan a pushed dataset's `review_priority` from the calibration so far.

The calibration sample stays as pushed (its records keep the first priorities); the other records
are ordered by their level's estimated agreement, lowest first (levels without votes by `LEVELS`).
Only records whose priority changes are written (a bulk upsert of their metadata).
"""

from __future__ import annotations

from typing import Any

from curate.config import Config
from curate.stages.review import client as rc
from curate.stages.review.calibration import calibration_report, plan
from curate.stages.review.pull import pull

BATCH = 250


def replan(cfg: Config, dataset: str, workspace: str, client: Any = None) -> dict[str, Any]:
    """Write the new priorities; returns {records, changed, estimates}."""
    client = client or rc.connect(cfg, roles=rc.WRITER_ROLES)
    rg_dataset = rc.require_dataset(client, dataset, workspace)
    raw = list(rc.iter_raw_records(client, rg_dataset))
    records = pull(client, rg_dataset)
    ex = cfg.export
    report = calibration_report(records, ex, dataset, ex.auto_accept_min_agreement)
    estimates = {lv: s["agreement"] for lv, s in report["levels"].items()}
    meta = {r["external_id"]: r.get("metadata") or {} for r in raw}
    items = [(rid, m.get("judge_confidence") or "none") for rid, m in meta.items()]
    sample = {rid for rid, m in meta.items() if m.get("calibration_sample") == "yes"}
    planned = plan(items, len(sample), cfg.review.seed, estimates, sample=sample)
    updates = [
        {
            "id": r["id"],
            "metadata": {**meta[r["external_id"]], "review_priority": planned[r["external_id"]][0]},
        }
        for r in raw
        if meta[r["external_id"]].get("review_priority") != planned[r["external_id"]][0]
    ]
    http = client.api.http_client
    for i in range(0, len(updates), BATCH):
        response = http.put(
            f"/api/v1/datasets/{rg_dataset.id}/records/bulk", json={"items": updates[i : i + BATCH]}
        )
        if response.status_code >= 300:
            raise rc.ReviewError(f"re-planning {workspace}/{dataset} failed: {rc.cut(response.text)}")
    return {"records": len(raw), "changed": len(updates), "estimates": estimates}
