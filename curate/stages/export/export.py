"""Export reviewed preference pairs: Argilla responses -> policy -> TRL-ready DatasetDict + dataset card.

Splits written (a `datasets.DatasetDict` via save_to_disk, a parquet copy each, README.md card,
summary.json, all atomically):
- `train`: preference pairs for TRL's DPO/ORPO/KTO trainers: `prompt`, `chosen`, `rejected` as strings
  and `*_messages` as chat messages, with ratings, agreement, judge suggestion and provenance.
- `sft`: the chosen responses as `prompt`/`completion` and `messages`.
- `responses`: every human response (any status) with what became of it, so nothing is lost.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

from datasets import Dataset, DatasetDict, Features, Sequence, Value

from curate.config import Config
from curate.io import atomic_dir
from curate.rows import messages_text
from curate.stages.review import client as rc
from curate.stages.review import settings as st
from curate.stages.review.pull import decide, pull, submitted, votes
from curate.stages.review.push import PROVENANCE_KEY

MESSAGES = [{"role": Value("string"), "content": Value("string")}]
PAIR_FEATURES = Features(
    {
        "id": Value("string"),
        "prompt": Value("string"),
        "chosen": Value("string"),
        "rejected": Value("string"),
        "prompt_messages": MESSAGES,
        "chosen_messages": MESSAGES,
        "rejected_messages": MESSAGES,
        "chosen_rating": Value("float64"),
        "rejected_rating": Value("float64"),
        "rating_source": Value("string"),
        "agreement": Value("float64"),
        "num_annotators": Value("int64"),
        "votes_chosen": Value("int64"),
        "votes_rejected": Value("int64"),
        "votes_tie": Value("int64"),
        "annotators": Sequence(Value("string")),
        "decided_by": Value("string"),
        "chosen_position": Value("string"),
        "chosen_index": Value("int64"),
        "rejected_index": Value("int64"),
        "chosen_corrected": Value("bool"),
        "chosen_original": Value("string"),
        "judge_suggestion": Value("string"),
        "judge_agent": Value("string"),
        "judge_score": Value("float64"),
        "human_overrode_judge": Value("bool"),
        "complexity": Value("float64"),
        "quality": Value("float64"),
        "chosen_quality": Value("float64"),
        "rejected_quality": Value("float64"),
        "deita_score": Value("float64"),
        "dedup_cluster": Value("int64"),
        "dedup_cluster_size": Value("int64"),
        "chosen_model": Value("string"),
        "rejected_model": Value("string"),
        "method": Value("string"),
        "comments": Sequence(Value("string")),
        "source_id": Value("string"),
    }
)
SFT_FEATURES = Features(
    {
        "id": Value("string"),
        "prompt": Value("string"),
        "completion": Value("string"),
        "messages": MESSAGES,
        "decided_by": Value("string"),
    }
)
RESPONSE_FEATURES = Features(
    {
        "record_id": Value("string"),
        "annotator": Value("string"),
        "status": Value("string"),
        "preference": Value("string"),
        "preferred_index": Value("int64"),
        "rating_a": Value("int64"),
        "rating_b": Value("int64"),
        "corrected": Value("string"),
        "comment": Value("string"),
        "outcome": Value("string"),
    }
)


class ExportError(rc.ReviewError):
    """The export cannot be written or published; the message says why and what to do."""


def _other(label: str) -> str:
    return "B" if label == "A" else "A"


def _mean(values: list[Any]) -> float | None:
    nums = [float(v) for v in values if isinstance(v, (int, float))]
    return round(sum(nums) / len(nums), 4) if nums else None


def _correction(record: dict[str, Any], winner: str) -> str | None:
    """The latest correction, preferring reviewers who voted for the winner."""
    subs = submitted(record)
    for group in ([r for r in subs if r["preference"] == winner], subs):
        fixes = [r["corrected"] for r in group if r["corrected"]]
        if fixes:
            return fixes[-1]
    return None


def build_pair(
    record: dict[str, Any], label: str, share: float | None, decided_by: str, use_corrections: bool
) -> dict[str, Any]:
    """The TRL row for a record whose chosen response is shown label `label` (A or B)."""
    meta = record["metadata"]
    lo, hi = label.lower(), _other(label).lower()
    messages = [{"role": m.get("role", "user"), "content": m.get("content", "")} for m in record["messages"]]
    chosen, rejected = record[f"response_{lo}"], record[f"response_{hi}"]
    correction = _correction(record, label) if use_corrections and decided_by == "human" else None
    final = correction or chosen
    subs = submitted(record)
    labels = votes(record)
    human_chosen = _mean([r[f"rating_{lo}"] for r in subs])
    human_rejected = _mean([r[f"rating_{hi}"] for r in subs])
    if human_chosen is not None or human_rejected is not None:
        chosen_rating, rejected_rating, rating_source = human_chosen, human_rejected, "human"
    else:
        chosen_rating, rejected_rating = (
            _mean([meta.get(f"judge_rating_{lo}")]),
            _mean([meta.get(f"judge_rating_{hi}")]),
        )
        rating_source = "judge" if chosen_rating is not None or rejected_rating is not None else None
    suggestion = record["suggestions"].get(st.PREFERENCE) or {}
    judged = suggestion.get("value")
    judge = {label: "chosen", _other(label): "rejected", "tie": "tie"}.get(judged) if judged else None
    return {
        "id": record["id"],
        "prompt": messages_text(messages),
        "chosen": final,
        "rejected": rejected,
        "prompt_messages": messages,
        "chosen_messages": [*messages, {"role": "assistant", "content": final}],
        "rejected_messages": [*messages, {"role": "assistant", "content": rejected}],
        "chosen_rating": chosen_rating,
        "rejected_rating": rejected_rating,
        "rating_source": rating_source,
        "agreement": round(share, 4) if share is not None else None,
        "num_annotators": len(subs),
        "votes_chosen": labels.count(label),
        "votes_rejected": labels.count(_other(label)),
        "votes_tie": labels.count("tie"),
        "annotators": [r["user"] for r in subs],
        "decided_by": decided_by,
        "chosen_position": label,
        "chosen_index": meta.get(f"{lo}_index"),
        "rejected_index": meta.get(f"{hi}_index"),
        "chosen_corrected": correction is not None,
        "chosen_original": chosen,
        "judge_suggestion": judge,
        "judge_agent": suggestion.get("agent"),
        "judge_score": suggestion.get("score"),
        "human_overrode_judge": bool(decided_by == "human" and judge is not None and judge != "chosen"),
        "complexity": meta.get("complexity"),
        "quality": meta.get("quality"),
        "chosen_quality": meta.get(f"quality_{lo}"),
        "rejected_quality": meta.get(f"quality_{hi}"),
        "deita_score": meta.get("deita_score"),
        "dedup_cluster": meta.get("dedup_cluster"),
        "dedup_cluster_size": meta.get("dedup_cluster_size"),
        "chosen_model": meta.get(f"generator_model_{lo}"),
        "rejected_model": meta.get(f"generator_model_{hi}"),
        "method": meta.get("method"),
        "comments": [r["comment"] for r in subs if r["comment"]],
        "source_id": meta.get("source_id"),
    }


def decide_records(
    records: list[dict[str, Any]], cfg: Config
) -> tuple[list[dict], dict[str, Any], dict[str, str]]:
    """(pairs, accounting, outcome per record id) under the export policy.

    Accounting: every record and every submitted response ends up exported or excluded with a reason;
    `check_accounting` verifies the sums.
    """
    ex = cfg.export
    pairs: list[dict] = []
    outcome: dict[str, str] = {}
    rec_excluded: Counter[str] = Counter()
    resp_excluded: Counter[str] = Counter()
    resp_exported = 0
    by_judge = 0
    for record in records:
        subs = submitted(record)
        discards = [r for r in record["responses"] if r["status"] == "discarded"]
        if not subs:
            reason = "discarded" if discards else "unreviewed"
            if reason == "unreviewed" and ex.include_unreviewed:
                judged = (record["suggestions"].get(st.PREFERENCE) or {}).get("value")
                if judged in ("A", "B"):
                    pairs.append(build_pair(record, judged, None, "judge", ex.use_corrections))
                    outcome[record["id"]] = "exported (judge)"
                    by_judge += 1
                    continue
                reason = "unreviewed_judge_tie" if judged == "tie" else "unreviewed_no_judge"
            rec_excluded[reason] += 1
            outcome[record["id"]] = reason
            continue
        label, reason, share = decide(votes(record), ex.policy, ex.min_votes, ex.min_agreement)
        if reason is None and label in ("A", "B"):
            pairs.append(build_pair(record, label, share, "human", ex.use_corrections))
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
    accounting = {
        "records": {
            "total": len(records),
            "exported": len(pairs),
            "exported_by_humans": len(pairs) - by_judge,
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
        "corrections_used": sum(p["chosen_corrected"] for p in pairs),
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
    return pairs, accounting, outcome


def check_accounting(acc: dict[str, Any]) -> None:
    """Nothing is lost: exported + excluded adds up, for records and for submitted responses."""
    r, s = acc["records"], acc["submitted_responses"]
    if r["exported"] + sum(r["excluded"].values()) != r["total"]:
        raise AssertionError(f"record accounting does not add up: {r}")
    if s["in_export"] + sum(s["excluded"].values()) != s["total"]:
        raise AssertionError(f"response accounting does not add up: {s}")


def _response_rows(records: list[dict[str, Any]], outcome: dict[str, str]) -> list[dict[str, Any]]:
    rows = []
    for record in records:
        meta = record["metadata"]
        for r in record["responses"]:
            pref = r["preference"]
            index = (
                meta.get(f"{pref.lower()}_index") if pref in ("A", "B") else (-1 if pref == "tie" else None)
            )
            rows.append(
                {
                    "record_id": record["id"],
                    "annotator": r["user"],
                    "status": r["status"],
                    "preference": pref,
                    "preferred_index": index,
                    "rating_a": r["rating_a"],
                    "rating_b": r["rating_b"],
                    "corrected": r["corrected"],
                    "comment": r["comment"],
                    "outcome": outcome.get(record["id"]) if r["status"] == "submitted" else r["status"],
                }
            )
    return rows


def _check_hub(repo_id: str, overwrite: bool) -> Any:
    """Fail before doing any work when the Hub cannot be written: offline, no token, repo exists."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise ExportError(
            "--to-hub: HF_HUB_OFFLINE is set, so the Hub cannot be reached; unset it to push "
            "(the local export is unaffected)"
        )
    from huggingface_hub import HfApi, get_token

    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN") or get_token()
    if not token:
        raise ExportError("--to-hub: no Hugging Face token; set HF_TOKEN to a token with write access")
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(token=token)
    try:
        exists = api.repo_exists(repo_id, repo_type="dataset")
    except HfHubHTTPError as exc:
        status = getattr(exc.response, "status_code", None)
        if status in (401, 403):
            raise ExportError(
                f"--to-hub: the Hub rejected the token (HTTP {status}); check that HF_TOKEN is "
                "valid and has write access"
            ) from exc
        raise ExportError(f"--to-hub: the Hub answered with an error ({exc})") from exc
    except Exception as exc:
        raise ExportError(
            f"--to-hub: cannot reach the Hugging Face Hub ({type(exc).__name__}: {exc})"
        ) from exc
    if exists and not overwrite:
        raise ExportError(
            f"--to-hub: dataset repo '{repo_id}' already exists; pass --overwrite to replace it"
        )
    return api


def _push_to_hub(api: Any, repo_id: str, folder: Path, private: bool) -> str:
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        api.upload_folder(
            repo_id=repo_id,
            repo_type="dataset",
            folder_path=str(folder),
            allow_patterns=["README.md", "summary.json", "parquet/*.parquet"],
            delete_patterns=["parquet/*.parquet"],
            commit_message="curate export",
        )
    except Exception as exc:
        raise ExportError(
            f"--to-hub: upload to '{repo_id}' failed ({type(exc).__name__}: {exc}); "
            f"the local export in {folder} is complete"
        ) from exc
    return f"https://huggingface.co/datasets/{repo_id}"


def export(
    cfg: Config,
    dataset: str,
    workspace: str,
    output: Path | str,
    to_hub: str | None = None,
    overwrite: bool = False,
    client: Any = None,
) -> dict[str, Any]:
    """Pull, decide, measure agreement, write the DatasetDict + card to `output`; optionally push to the Hub."""
    from curate.stages.export.card import render_card
    from curate.stages.review.agreement import summary as agreement_summary

    started = time.perf_counter()
    hub_api = _check_hub(to_hub, overwrite) if to_hub else None
    client = client or rc.connect(cfg)
    rg_dataset = rc.require_dataset(client, dataset, workspace)
    records = pull(client, rg_dataset)
    pulled = time.perf_counter()
    pairs, accounting, outcome = decide_records(records, cfg)
    ex = cfg.export
    agreement = agreement_summary(records, ex.policy, ex.min_votes, ex.min_agreement)
    provenance = rc.dataset_metadata(client, rg_dataset).get(PROVENANCE_KEY) or {}
    sft = [
        {
            "id": p["id"],
            "prompt": p["prompt"],
            "completion": p["chosen"],
            "messages": p["chosen_messages"],
            "decided_by": p["decided_by"],
        }
        for p in pairs
    ]
    splits = DatasetDict(
        {
            "train": Dataset.from_list(pairs, features=PAIR_FEATURES),
            "sft": Dataset.from_list(sft, features=SFT_FEATURES),
            "responses": Dataset.from_list(_response_rows(records, outcome), features=RESPONSE_FEATURES),
        }
    )
    summary: dict[str, Any] = {
        "dataset": dataset,
        "workspace": workspace,
        "api_url": client.api_url,
        "output": str(output),
        "pairs": len(pairs),
        "sft": len(sft),
        "reviewed_records": sum(1 for r in records if submitted(r)),
        "accounting": accounting,
        "agreement": agreement,
        "license": ex.license,
        "pull_seconds": round(pulled - started, 2),
    }
    card = render_card(summary, provenance, cfg)
    with atomic_dir(output) as tmp:
        splits.save_to_disk(str(tmp))
        (tmp / "parquet").mkdir()
        for name, split in splits.items():
            split.to_parquet(str(tmp / "parquet" / f"{name}.parquet"))
        (tmp / "README.md").write_text(card, encoding="utf-8")
        summary["seconds"] = round(time.perf_counter() - started, 2)
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
        (tmp / "stats.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    if hub_api is not None:
        summary["hub_url"] = _push_to_hub(hub_api, to_hub, Path(output), ex.private)
    return summary
