"""The review loop end to end against the embedded Argilla: push, annotators respond, status, export.

- a small generated, deduped and scored set; three annotators (different choices, a tie, a discard,
  a correction); every exported pair, the policy counts, alpha and the card's numbers are checked;
- the PandaLM test set's real human votes replayed as three annotators, with the shipped gpt-3.5
  verdicts as the judge's suggestions.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import krippendorff
import numpy as np
import pytest
from datasets import Dataset, load_from_disk
from review_helpers import N_PANDALM, annotators, owner, raw_records, server_config, submit, unique

from curate.io import read_rows, write_dataset
from curate.rows import stable_id
from curate.schemas import ExportSummary, read_json
from curate.stages.export import export
from curate.stages.review.agreement import PREFERENCE_CODES
from curate.stages.review.push import push
from curate.stages.review.status import review_status

PROMPTS = [
    "Give two tips for staying focused while studying.",
    "What is the capital of France? Answer in one sentence.",
    "Write a haiku about autumn leaves.",
    "Explain what a CPU does in simple words.",
    "Name three fruits that are rich in vitamin C.",
    "How do I boil an egg?",
    "Suggest a name for a small bakery.",
    "Why do cats purr?",
]


@pytest.fixture(scope="module")
def scored_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """runs/e2e/{01-instructions,02-preferences,03-dedup,04-score}: the real stages on 6 prompts."""
    from curate.config import load_config
    from curate.stages.dedup import dedup
    from curate.stages.score import score
    from pipelines.preferences import generate_preferences

    run = tmp_path_factory.mktemp("runs") / "e2e"
    cfg = load_config(
        overrides={
            "llm": {"max_new_tokens": 48, "n_ctx": 1024},
            "run": {"runs_dir": str(run.parent), "name": run.name},
        },
        environ={},
    )
    inst = Dataset.from_list(
        [
            {
                "id": stable_id(p),
                "instruction": p,
                "method": "prompt",
                "generator_model": "human",
                "parent_id": None,
                "seed_id": None,
                "generation_params": "{}",
            }
            for p in PROMPTS
        ]
    )
    write_dataset(run / "01-instructions", inst, {"rows": len(inst)})
    prefs, stats = generate_preferences(cfg, inst)
    write_dataset(run / "02-preferences", prefs, stats)
    kept, removed, stats = dedup(prefs, cfg.dedup, cfg.embeddings)
    write_dataset(run / "03-dedup", {"train": kept, "removed": removed}, stats)
    scored, stats = score(kept, cfg)
    write_dataset(run / "04-score", scored, stats)
    return run


# Plan per record (in external-id order): (annotator, status, preference, rating_a, rating_b, corrected)
PLAN = [
    [
        ("u1", "submitted", "A", 4, 2, "CORRECTED: a better first answer."),
        ("u2", "submitted", "A", 5, 2, None),
        ("u3", "submitted", "B", 3, 4, None),
    ],  # A wins 2/3, corrected
    [
        ("u1", "submitted", "B", 1, 5, None),
        ("u2", "submitted", "B", 2, 4, None),
        ("u3", "submitted", "B", None, None, None),
    ],  # B unanimous
    [
        ("u1", "submitted", "tie", 3, 3, None),
        ("u2", "submitted", "tie", None, None, None),
        ("u3", "submitted", "A", None, None, None),
    ],  # tie wins: excluded
    [
        ("u1", "submitted", "A", None, None, None),
        ("u2", "submitted", "B", None, None, None),
        ("u3", "discarded", None, None, None, None),
    ],  # split: excluded
    [
        ("u1", "discarded", None, None, None, None),
        ("u2", "discarded", None, None, None, None),
        ("u3", "discarded", None, None, None, None),
    ],  # discarded
    [("u1", "submitted", "B", None, None, None), ("u2", "draft", "A", None, None, None)],  # B by one vote
]
EXPECTED = {0: "A", 1: "B", 5: "B"}  # record index -> winning shown label


@pytest.mark.slow
@pytest.mark.server
def test_end_to_end_three_annotators(scored_run: Path, argilla_server, tmp_path: Path):
    scored = read_rows(scored_run / "04-score")
    cfg = server_config(argilla_server, tmp_path, review={"min_submitted": 3})
    name, ws = unique("e2e"), unique("ws")
    stats = push(scored, cfg, name, ws, source=scored_run / "04-score", quarantine=tmp_path / "q.jsonl")
    # a tiny model can write an empty or duplicate response: such rows are quarantined, with a reason
    n = stats["created"]
    assert n + stats["rejected"] == len(scored) and stats["vectors"]
    if stats["rejected"]:
        assert all(json.loads(line)["reason"] for line in (tmp_path / "q.jsonl").read_text().splitlines())
    assert n >= len(PLAN), f"need {len(PLAN)} reviewable pairs from {len(PROMPTS)} prompts, got {n}"

    client = owner(argilla_server)
    people = annotators(argilla_server, ws, ["u1", "u2", "u3"])
    records = sorted(raw_records(client, name, ws), key=lambda r: r["external_id"])
    for raw, answers in zip(records, PLAN):
        for who, status, pref, ra, rb, fix in answers:
            submit(
                people[who][1],
                raw["id"],
                status=status,
                preference=pref,
                rating_a=ra,
                rating_b=rb,
                corrected=fix,
            )

    st = review_status(cfg, name, ws)
    assert st["records"] == n and st["completed"] == 3 and st["pending"] == n - 3  # r0-r2 have 3 submitted
    assert st["annotators"][people["u1"][0]] == {"submitted": 5, "discarded": 1}
    assert st["annotators"][people["u2"][0]] == {"submitted": 4, "discarded": 1, "draft": 1}
    assert st["records_with_disagreement"] == 3  # r0, r2, r3

    out = tmp_path / "export"
    summary = export(cfg, name, ws, out)
    pairs = load_from_disk(str(out))["train"]
    assert sorted(pairs["id"]) == sorted(records[i]["external_id"] for i in EXPECTED)
    by_id = {p["id"]: p for p in pairs}
    for i, label in EXPECTED.items():
        raw, p = records[i], by_id[records[i]["external_id"]]
        other = "B" if label == "A" else "A"
        fix = next((a[5] for a in PLAN[i] if a[5] and a[2] == label), None)
        assert p["chosen"] == (fix or raw["fields"][f"response_{label.lower()}"])
        assert p["chosen_original"] == raw["fields"][f"response_{label.lower()}"]
        assert p["rejected"] == raw["fields"][f"response_{other.lower()}"]
        assert p["chosen_index"] == raw["metadata"][f"{label.lower()}_index"]
        assert p["prompt"] == raw["fields"]["prompt"][0]["content"]
        assert p["chosen_messages"] == raw["fields"]["prompt"] + [
            {"role": "assistant", "content": p["chosen"]}
        ]
        votes = [a[2] for a in PLAN[i] if a[1] == "submitted"]
        assert p["num_annotators"] == len(votes) and p["votes_chosen"] == votes.count(label)
        assert p["agreement"] == pytest.approx(votes.count(label) / len(votes), abs=1e-4)
        assert p["decided_by"] == "human" and p["chosen_corrected"] == bool(fix)
        judged = {label: "chosen", other: "rejected", "tie": "tie"}.get(_judge(raw, client, name, ws))
        assert p["judge_suggestion"] == judged
        assert p["human_overrode_judge"] == (judged is not None and judged != "chosen")
        assert p["deita_score"] == raw["metadata"].get("deita_score")
        assert p["chosen_model"] == raw["metadata"].get(f"generator_model_{label.lower()}")
    assert by_id[records[0]["external_id"]]["chosen_rating"] == pytest.approx(4.0)  # mean of 4, 5, 3

    acc = summary["accounting"]
    unreviewed = {"unreviewed": n - len(PLAN)} if n > len(PLAN) else {}
    assert acc["records"]["excluded"] == {"discarded": 1, "split_vote": 1, "tie": 1, **unreviewed}
    sub = acc["submitted_responses"]
    assert (sub["total"], sub["in_export"], sub["excluded"]) == (12, 7, {"split_vote": 2, "tie": 3})
    assert (acc["discarded_responses"], acc["draft_responses"], acc["corrections_used"]) == (4, 1, 1)
    assert len(load_from_disk(str(out))["responses"]) == sum(len(a) for a in PLAN)
    assert load_from_disk(str(out))["sft"]["completion"] == pairs["chosen"]

    # alpha: the same annotators x records matrix, built here from the plan, given to the package
    users = sorted(people[u][0] for u in ("u1", "u2", "u3"))
    matrix = np.full((3, len(PLAN)), np.nan)
    for j, answers in enumerate(PLAN):
        for who, status, pref, *_ in answers:
            if status == "submitted":
                matrix[users.index(people[who][0]), j] = PREFERENCE_CODES[pref]
    expected_alpha = krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal")
    got = summary["agreement"]["krippendorff_alpha"]["preference"]
    assert got["alpha"] == pytest.approx(expected_alpha, abs=1e-4) and got["annotators"] == 3
    assert summary["agreement"]["position_bias"]["A"] == 4 and summary["agreement"]["position_bias"]["B"] == 6

    # the card's numbers
    card = (out / "README.md").read_text()
    assert "license: apache-2.0" in card
    kept = read_rows(scored_run / "03-dedup")
    for stage, rows in (
        ("generated (instructions)", len(PROMPTS)),
        ("generated (responses + judge)", len(read_rows(scored_run / "02-preferences"))),
        ("deduped", len(kept)),
        ("scored", len(scored)),
        ("pushed to Argilla", n),
        ("reviewed (>= 1 submitted response)", 5),
        ("exported preference pairs", 3),
    ):
        assert f"| {stage} | {rows} |" in card, stage
    assert f"| preference | {got['alpha']:.3f} | nominal | 3 |" in card
    assert "| submitted responses | 12 |" in card and "| excluded: tie | 3 |" in card
    assert "3 submitted response(s) per record" in card
    assert json.loads((out / "summary.json").read_text())["pairs"] == 3
    assert (out / "parquet" / "train.parquet").exists() and (out / "parquet" / "sft.parquet").exists()


def _judge(raw: dict, client, name: str, ws: str) -> str | None:
    from curate.stages.review.client import require_dataset

    questions = {str(q.id): q.name for q in require_dataset(client, name, ws).settings.questions}
    return next((s["value"] for s in raw["suggestions"] if questions[s["question_id"]] == "preference"), None)


# --------------------------------------------------------------------------------------------------
# PandaLM: real human votes
# --------------------------------------------------------------------------------------------------


@pytest.mark.server
def test_pandalm_human_votes_replayed(pandalm_export):
    replay = pandalm_export
    out, summary, records = replay.out, replay.summary, replay.records
    assert replay.push_stats["created"] == len(records)
    assert replay.push_stats["created"] + replay.push_stats["rejected"] == N_PANDALM
    pairs = load_from_disk(str(out))["train"]
    got = dict(zip(pairs["id"], pairs["chosen"]))
    assert got == {k: v for k, v in replay.expected.items() if v is not None}
    for p in pairs:
        item = next(it for it in replay.items if str(it["idx"]) == p["source_id"])
        assert {p["chosen"], p["rejected"]} == {item["response1"], item["response2"]}
    acc = summary["accounting"]
    assert acc["records"]["excluded"] == replay.reasons
    assert acc["submitted_responses"]["total"] == 3 * len(records)
    assert acc["submitted_responses"]["in_export"] + sum(
        acc["submitted_responses"]["excluded"].values()
    ) == 3 * len(records)
    agr = summary["agreement"]
    # alpha against the package on the matrix in shown order (what the annotators saw)
    users = sorted(replay.people[f"annotator{k}"][0] for k in (1, 2, 3))
    recs = load_from_disk(str(out))["responses"]
    order = {rid: j for j, rid in enumerate(dict.fromkeys(recs["record_id"]))}
    matrix = np.full((3, len(records)), np.nan)
    for rid, user, pref in zip(recs["record_id"], recs["annotator"], recs["preference"]):
        matrix[users.index(user), order[rid]] = PREFERENCE_CODES[pref]
    assert agr["krippendorff_alpha"]["preference"]["alpha"] == pytest.approx(
        krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal"), abs=1e-4
    )
    if os.environ.get("CURATE_UPDATE_DOCS") == "1":
        shutil.copy(
            out / "README.md", Path(__file__).resolve().parents[1] / "docs" / "example-dataset-card.md"
        )
    # judge vs human: the confusion matrix counted here from gpt-3.5's verdicts and PandaLM's majority
    confusion = {j: dict.fromkeys(("A", "B", "tie"), 0) for j in ("A", "B", "tie")}
    for it in replay.items:
        sid = str(it["idx"])
        verdict = str(replay.gpt[it["idx"]]["gpt_result"]).strip().lower()  # "1", "2", "Tie" or unusable
        slot1, slot2 = replay.slots[sid]
        judged = {"1": slot1, "2": slot2, "tie": "tie"}.get(verdict)
        if judged is not None and replay.majority[sid] is not None:
            confusion[judged][replay.majority[sid]] += 1
    judge = agr["judge_vs_human"]["gpt-3.5-turbo"]
    assert judge["confusion"] == confusion
    decided = sum(sum(row.values()) for row in confusion.values())
    assert judge["records"] == decided
    assert judge["agreement"] == pytest.approx(sum(confusion[k][k] for k in confusion) / decided, abs=1e-4)
    assert 0.3 < judge["agreement"] <= 1.0
    # the written summary is the returned one, and has the shape its readers take
    written = read_json(out / "summary.json", ExportSummary)
    assert written == json.loads(json.dumps(summary))
    print(
        f"\nPandaLM {len(records)} items: alpha={agr['krippendorff_alpha']['preference']['alpha']}, "
        f"percent agreement={agr['percent_agreement']['pairwise']}, gpt-3.5 vs human majority="
        f"{judge['agreement']} over {judge['records']} records, vs single votes={judge['vote_agreement']}, "
        f"A share={agr['position_bias']['a_share']}, excluded={acc['records']['excluded']}"
    )


@pytest.mark.server
def test_cli_push_status_export(argilla_server, tmp_path: Path):
    import os
    import subprocess
    import sys

    from review_helpers import scored_rows

    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in scored_rows(4)))
    name, ws = unique("cli"), unique("ws")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARGILLA_", "CURATE_", "HF_"))}
    env |= {
        "ARGILLA_API_URL": argilla_server.url,
        "ARGILLA_API_KEY": argilla_server.api_key,
        "CURATE_RUN__RUNS_DIR": str(tmp_path / "runs"),
        "HF_HUB_OFFLINE": "1",
    }

    def curate(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "curate", *args], env=env, capture_output=True, text=True, check=False
        )

    pushed = curate("push", "-i", str(data), "-d", name, "-w", ws, "--min-submitted", "2")
    assert pushed.returncode == 0, pushed.stderr[-2000:]
    assert "4 new (round 1), 0 already there, 0 quarantined" in pushed.stderr.replace("\n", " ")
    ((user, ann, _),) = annotators(argilla_server, ws, ["solo"]).values()
    raw = raw_records(owner(argilla_server), name, ws)[0]
    submit(ann, raw["id"], preference="A")
    status = curate("status", "-d", name, "-w", ws, "--json")
    assert status.returncode == 0, status.stderr[-2000:]
    st = json.loads(status.stdout)
    assert (st["records"], st["pending"], st["min_submitted"]) == (4, 4, 2)  # one vote of two needed
    assert st["annotators"] == {user: {"submitted": 1}}
    human = curate("status", "-d", name, "-w", ws)
    assert human.returncode == 0 and "responses per annotator" in human.stdout
    out = tmp_path / "exported"
    done = curate("export", "-d", name, "-w", ws, "-o", str(out), "--include-unreviewed")
    assert done.returncode == 0, done.stderr[-2000:]
    pairs = load_from_disk(str(out))["train"]
    assert len(pairs) >= 1 and pairs["decided_by"].count("human") == 1
    assert raw["external_id"] in pairs["id"]
    hub = curate("export", "-d", name, "-w", ws, "-o", str(tmp_path / "never"), "--to-hub", "me/pairs")
    assert hub.returncode == 1 and "HF_HUB_OFFLINE is set" in hub.stderr and not (tmp_path / "never").exists()
    missing = curate("export", "-d", "no-such-dataset", "-w", ws, "-o", str(tmp_path / "x"))
    assert missing.returncode == 1 and "not found" in missing.stderr


@pytest.mark.server
def test_every_export_format_has_trl_columns_and_the_counts_add_up(pandalm_export):
    """DPO pairs, SFT rows, KTO rows and binarised pairs from the same real votes: the columns and types
    TRL's trainers read, and counts that agree (two KTO rows per pair, one SFT and one binarised row)."""
    splits = load_from_disk(str(pandalm_export.out))
    pairs, sft, kto, binarized = splits["train"], splits["sft"], splits["kto"], splits["binarized"]
    assert len(pairs) > 0 and len(sft) == len(pairs) == len(binarized) and len(kto) == 2 * len(pairs)
    assert pandalm_export.summary["splits"] == {name: len(split) for name, split in splits.items()}
    # DPOTrainer: prompt / chosen / rejected
    assert pairs.features["chosen"].dtype == "string" and pairs.features["prompt"].dtype == "string"
    # KTOTrainer: prompt / completion / label (bool), each pair's chosen desirable and rejected not
    assert kto.features["label"].dtype == "bool" and kto.features["completion"].dtype == "string"
    by_pair = {}
    for row in kto:
        by_pair.setdefault(row["pair_id"], {})[row["label"]] = row["completion"]
    chosen = dict(zip(pairs["id"], zip(pairs["chosen"], pairs["rejected"])))
    assert {k: (v[True], v[False]) for k, v in by_pair.items()} == chosen
    # UltraFeedback-binarized: chosen / rejected as chat messages ending in the response, float scores
    first = binarized[0]
    assert first["chosen"][-1] == {"role": "assistant", "content": chosen[first["prompt_id"]][0]}
    assert first["rejected"][-1]["content"] == chosen[first["prompt_id"]][1]
    assert binarized.features["score_chosen"].dtype == "float64"
    assert set(binarized["rating_source"]) <= {"human", "judge", None}
    for c, r, source in zip(
        binarized["score_chosen"], binarized["score_rejected"], binarized["rating_source"]
    ):
        assert (source is None) == (c is None and r is None)  # PandaLM's votes carry no ratings: no scores
        assert all(x is None or 1 <= x <= 5 for x in (c, r))
