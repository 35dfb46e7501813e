"""Export reviewed records: Argilla responses -> policy -> one split per format + dataset card.

Written to the output directory, atomically: a `datasets.DatasetDict` (save_to_disk) with one split
per format in `formats.FORMATS` (`train`: TRL preference pairs, `sft`: chosen responses, `responses`:
every human response and its outcome), a parquet copy of each, the card (README.md) and
`summary.json` (an `ExportSummary`; `stats.json` is the same file, as in every stage directory).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from curate.config import Config
from curate.io import atomic_dir, check_output, write_json, write_splits
from curate.schemas import Accounting, ExportSummary, Provenance, RoundCounts
from curate.stages.export import formats
from curate.stages.export.card import render_card
from curate.stages.export.decide import Decision, decide_records
from curate.stages.export.hub import check_hub, push_to_hub
from curate.stages.review import client as rc
from curate.stages.review.agreement import summary as agreement_summary
from curate.stages.review.calibration import calibration_report
from curate.stages.review.pull import pull, submitted
from curate.stages.review.push import PROVENANCE_KEY
from curate.stages.review.settings import ROUND

SUMMARY = "summary.json"
CALIBRATION = "calibration.json"  # `curate calibrate` writes the same report


def export(
    cfg: Config,
    dataset: str,
    workspace: str,
    output: Path | str,
    to_hub: str | None = None,
    overwrite: bool = False,
    client: Any = None,
) -> ExportSummary:
    """Pull, decide, measure agreement, write every format + card to `output`; optionally push to the Hub."""
    started = time.perf_counter()
    check_output(output)  # before the pull: a refused output path fails in seconds, not after the work
    hub_api = check_hub(to_hub, overwrite) if to_hub else None
    client = client or rc.connect(cfg)
    rg_dataset = rc.require_dataset(client, dataset, workspace)
    records = pull(client, rg_dataset)
    pulled = time.perf_counter()
    ex = cfg.export
    if ex.rounds:
        records = select_rounds(records, ex.rounds, dataset)
    decisions = decide_records(records, cfg)
    provenance: Provenance = rc.dataset_metadata(client, rg_dataset).get(PROVENANCE_KEY) or {}
    splits = formats.build(decisions)
    summary: ExportSummary = {
        "dataset": dataset,
        "workspace": workspace,
        "api_url": client.api_url,
        "output": str(output),
        "pairs": len(splits["train"]),
        "sft": len(splits["sft"]),
        "splits": {name: len(split) for name, split in splits.items()},
        "reviewed_records": sum(1 for r in records if submitted(r)),
        "accounting": decisions.accounting,
        "agreement": agreement_summary(records, ex.policy, ex.min_votes, ex.min_agreement),
        "license": ex.license,
        "pull_seconds": round(pulled - started, 2),
        "rounds": round_counts(records, decisions.exported),
    }
    if ex.rounds:
        summary["rounds_selected"] = sorted(set(ex.rounds))
    if any(r["metadata"].get("calibration_sample") == "yes" for r in records):  # calibration.py
        summary["calibration"] = calibration_report(records, ex, dataset, ex.auto_accept_min_agreement)
    if decisions.calibration is not None:
        summary["auto_accept"] = decisions.calibration
    if not summary["pairs"]:
        summary["empty_because"] = why_empty(decisions.accounting)
    card = render_card(summary, provenance, cfg)
    with atomic_dir(output) as tmp:
        write_splits(tmp, splits)
        (tmp / "README.md").write_text(card, encoding="utf-8")
        summary["seconds"] = round(time.perf_counter() - started, 2)
        write_json(tmp / SUMMARY, summary)
        write_json(tmp / "stats.json", summary)
        if "calibration" in summary:
            write_json(tmp / CALIBRATION, summary["calibration"])
    if hub_api is not None:
        summary["hub_url"] = push_to_hub(hub_api, to_hub, Path(output), ex.private)
    return summary


def record_round(record: dict[str, Any]) -> int:
    """A pulled record's review round: its `round` metadata, 1 for records pushed before rounds existed."""
    value = (record.get("metadata") or {}).get(ROUND)
    return value if isinstance(value, int) else 1


def select_rounds(records: list[dict[str, Any]], rounds: list[int], dataset: str) -> list[dict[str, Any]]:
    """The records of the given rounds; a round the dataset does not have is an error naming those it has."""
    present = {record_round(r) for r in records}
    missing = sorted(set(rounds) - present)
    if missing:
        raise rc.ReviewError(
            f"dataset '{dataset}' has no records of round {', '.join(map(str, missing))} (it has rounds "
            f"{', '.join(map(str, sorted(present))) or 'none'})"
        )
    return [r for r in records if record_round(r) in set(rounds)]


def round_counts(records: list[dict[str, Any]], exported: list[Decision]) -> dict[str, RoundCounts]:
    """Records, reviewed records and exported pairs (by humans / by the judge) per round, in round order."""
    out: dict[int, RoundCounts] = {}
    for r in records:
        c = out.setdefault(
            record_round(r), {"records": 0, "reviewed": 0, "pairs": 0, "by_humans": 0, "by_judge": 0}
        )
        c["records"] += 1
        c["reviewed"] += bool(submitted(r))
    for d in exported:
        c = out[record_round(d.record)]
        c["pairs"] += 1
        c["by_humans" if d.decided_by == "human" else "by_judge"] += 1
    return {str(k): out[k] for k in sorted(out)}


def why_empty(acc: Accounting) -> str:
    """Why no record became a pair: the exclusion reasons, largest first, with the policy that set them."""
    excluded = sorted(acc["records"]["excluded"].items(), key=lambda kv: -kv[1])
    reasons = ", ".join(f"{n} {reason}" for reason, n in excluded if n) or "the dataset has no records"
    policy = acc["policy"]
    return (
        f"no record qualified as a pair ({reasons}) under policy {policy['policy']}, min_votes "
        f"{policy['min_votes']}, min_agreement {policy['min_agreement']}: review more records, or relax the "
        "policy (--min-votes, --min-agreement, --include-unreviewed)"
    )
