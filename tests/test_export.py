"""Export policy, the formats' rows, accounting and the card, on pulled-record dicts (no server)."""

from __future__ import annotations

import pytest
import yaml
from test_agreement import record, sub

from curate.config import load_config
from curate.stages.export.card import render_card
from curate.stages.export.decide import decide_records, decision
from curate.stages.export.formats import FORMATS, build, dpo, sft
from curate.stages.review.agreement import summary as agreement_summary


def decided(records, c):
    """(TRL pairs, accounting, outcome per record) as the export writes them."""
    d = decide_records(records, c)
    return dpo.rows(d), d.accounting, d.outcome


def cfg(**export):
    return load_config(overrides={"export": export}, environ={})


def swapped(rec: dict) -> dict:
    """Generation 1 shown as A (the recorded order the export must map back)."""
    rec["metadata"].update(
        {
            "a_index": 1,
            "b_index": 0,
            "generator_model_a": "m1",
            "generator_model_b": "m0",
            "judge_rating_a": 2,
            "judge_rating_b": 5,
            "quality_a": 3.5,
            "quality_b": 4.5,
        }
    )
    return rec


RECORDS = [
    swapped(record("win_b", [sub("u1", "B", 2, 5), sub("u2", "B", 1, 4), sub("u3", "A", 4, 3)], judge="B")),
    record("win_a_fix", [sub("u1", "A", corrected="A, but better"), sub("u2", "A")], judge="B"),
    record("tie", [sub("u1", "tie"), sub("u2", "tie"), sub("u3", "A")]),
    record("split", [sub("u1", "A"), sub("u2", "B")]),
    record("discarded", [("u1", "discarded", None, None, None, None)]),
    record("draft_only", [("u2", "draft", "A", None, None, None)], judge="A"),
    record("untouched", [], judge="B"),
    record("untouched_tie", [], judge="tie"),
    record("mixed", [("u1", "discarded", None, None, None, None), sub("u2", "B")]),
]


def test_policy_counts_and_nothing_lost():
    pairs, acc, outcome = decided(RECORDS, cfg())
    assert [p["id"] for p in pairs] == ["win_b", "win_a_fix", "mixed"]
    assert acc["records"]["excluded"] == {"discarded": 1, "split_vote": 1, "tie": 1, "unreviewed": 3}
    subs = acc["submitted_responses"]
    assert subs["total"] == 11
    assert subs["in_export"] == 3 + 2 + 1
    assert subs["excluded"] == {"split_vote": 2, "tie": 3}
    assert subs["in_export"] + sum(subs["excluded"].values()) == subs["total"]
    assert acc["discarded_responses"] == 2 and acc["draft_responses"] == 1
    assert outcome["tie"] == "tie" and outcome["win_b"] == "exported"


def test_pair_maps_shown_order_back():
    pairs, _, _ = decided(RECORDS, cfg())
    p = pairs[0]  # win_b: B chosen by 2 of 3; B shows generation 0
    assert p["chosen"] == "B of win_b" and p["rejected"] == "A of win_b"
    assert (p["chosen_index"], p["rejected_index"]) == (0, 1)
    assert p["chosen_position"] == "B" and p["chosen_model"] == "m0" and p["rejected_model"] == "m1"
    assert p["agreement"] == pytest.approx(2 / 3, abs=1e-4)
    assert (p["votes_chosen"], p["votes_rejected"], p["votes_tie"], p["num_annotators"]) == (2, 1, 0, 3)
    assert p["chosen_rating"] == pytest.approx(4.0) and p["rejected_rating"] == pytest.approx(7 / 3, abs=1e-3)
    assert p["rating_source"] == "human" and p["chosen_quality"] == 4.5
    assert p["judge_suggestion"] == "chosen" and p["human_overrode_judge"] is False
    assert p["prompt_messages"] == [{"role": "user", "content": "prompt win_b"}]
    assert p["chosen_messages"][-1] == {"role": "assistant", "content": "B of win_b"}
    assert p["rejected_messages"][-1] == {"role": "assistant", "content": "A of win_b"}


def test_correction_replaces_chosen_unless_disabled():
    pairs, acc, _ = decided(RECORDS, cfg())
    fix = pairs[1]
    assert fix["chosen"] == "A, but better" and fix["chosen_original"] == "A of win_a_fix"
    assert fix["chosen_corrected"] is True and fix["chosen_messages"][-1]["content"] == "A, but better"
    assert fix["judge_suggestion"] == "rejected" and fix["human_overrode_judge"] is True
    assert acc["corrections_used"] == 1
    pairs, _, _ = decided(RECORDS, cfg(use_corrections=False))
    assert pairs[1]["chosen"] == "A of win_a_fix" and pairs[1]["chosen_corrected"] is False


def test_include_unreviewed_uses_the_judge_and_marks_it():
    pairs, acc, _ = decided(RECORDS, cfg(include_unreviewed=True))
    judged = [p for p in pairs if p["decided_by"] == "judge"]
    assert sorted(p["id"] for p in judged) == ["draft_only", "untouched"]
    assert {p["id"]: p["chosen"] for p in judged} == {
        "draft_only": "A of draft_only",
        "untouched": "B of untouched",
    }
    assert acc["records"]["exported_by_judge"] == 2
    assert acc["records"]["excluded"]["unreviewed_judge_tie"] == 1
    assert all(p["num_annotators"] == 0 and p["human_overrode_judge"] is False for p in judged)


def test_unanimous_and_min_votes():
    pairs, acc, _ = decided(RECORDS, cfg(policy="unanimous"))
    assert [p["id"] for p in pairs] == ["win_a_fix", "mixed"]
    assert acc["records"]["excluded"]["not_unanimous"] == 3  # win_b, tie, split
    pairs, acc, _ = decided(RECORDS, cfg(min_votes=2))
    assert [p["id"] for p in pairs] == ["win_b", "win_a_fix"]
    assert acc["records"]["excluded"]["too_few_votes"] == 1
    assert acc["submitted_responses"]["excluded"]["too_few_votes"] == 1


def test_build_pair_without_human_ratings_uses_judge_ratings():
    rec = swapped(record("j", [sub("u1", "A")]))
    p = dpo.pair(decision(rec, "A", 1.0, "human", True))
    assert (p["chosen_rating"], p["rejected_rating"], p["rating_source"]) == (2.0, 5.0, "judge")


def test_card_shows_the_numbers():
    c = cfg()
    pairs, acc, _ = decided(RECORDS, c)
    summary = {
        "dataset": "demo",
        "pairs": len(pairs),
        "sft": len(pairs),
        "splits": {"train": len(pairs), "sft": len(pairs)},
        "reviewed_records": 6,
        "accounting": acc,
        "agreement": agreement_summary(RECORDS),
    }
    provenance = {
        "pushes": [
            {
                "source": "/x/05-select",
                "models": {"judges": ["judge-x"]},
                "push": {"created": 9, "rejected": 1, "min_submitted": 3},
                "stages": [
                    {"stage": "preferences", "rows": {"train": 20}, "stats": {}},
                    {"stage": "dedup", "rows": {"train": 15, "removed": 5}, "stats": {"threshold": 0.9}},
                    {"stage": "select", "rows": {"train": 10, "rejected": 5}, "stats": {"budget": 10}},
                ],
            }
        ]
    }
    card = render_card(summary, provenance, c)
    assert card.startswith("---\nlicense: apache-2.0\n")
    for line in (
        "| generated (responses + judge) | 20 |",
        "| deduped | 15 | removed: 5, threshold=0.900 |",
        "| selected | 10 | rejected: 5, budget=10 |",
        "| pushed to Argilla | 9 |",
        "| reviewed (>= 1 submitted response) | 6 |",
        "| exported preference pairs | 3 |",
        "| submitted responses | 11 |",
        "| in exported pairs | 6 |",
        "| excluded: tie | 3 |",
        "3 submitted response(s) per record",
    ):
        assert line in card, line
    alpha = summary["agreement"]["krippendorff_alpha"]["preference"]["alpha"]
    assert f"| preference | {alpha:.3f} | nominal |" in card


def test_every_format_is_one_split_with_its_features_and_the_same_pairs():
    d = decide_records(RECORDS, cfg(include_unreviewed=True))
    splits = build(d)
    assert list(splits) == [f.split for f in FORMATS] == ["train", "sft", "responses", "kto", "binarized"]
    for f in FORMATS:
        assert splits[f.split].features == f.features
    pairs, rows = splits["train"], splits["sft"]
    assert rows["id"] == pairs["id"] and rows["completion"] == pairs["chosen"]
    assert rows["messages"] == pairs["chosen_messages"] and rows["decided_by"] == pairs["decided_by"]
    assert sft.rows(d)[1]["completion"] == "A, but better"  # the correction, as in the pair
    responses = splits["responses"]
    assert len(responses) == sum(len(r["responses"]) for r in RECORDS)
    by = {(r["record_id"], r["annotator"]): r for r in responses}
    assert by[("win_b", "u1")]["preferred_index"] == 0  # B shows generation 0 in this record
    assert by[("tie", "u1")]["preferred_index"] == -1 and by[("tie", "u1")]["outcome"] == "tie"
    assert by[("discarded", "u1")]["outcome"] == "discarded"
    assert by[("draft_only", "u2")]["outcome"] == "draft"


def test_card_has_one_config_per_format():
    c = cfg()
    d = decide_records(RECORDS, c)
    summary = {
        "dataset": "demo",
        "pairs": len(d.exported),
        "sft": len(d.exported),
        "splits": {},
        "reviewed_records": 6,
        "accounting": d.accounting,
        "agreement": agreement_summary(RECORDS),
    }
    header = yaml.safe_load(render_card(summary, {}, c).split("---")[1])
    assert [(x["config_name"], x["data_files"][0]["path"]) for x in header["configs"]] == [
        ("default", "parquet/train.parquet"),
        ("sft", "parquet/sft.parquet"),
        ("responses", "parquet/responses.parquet"),
        ("kto", "parquet/kto.parquet"),
        ("binarized", "parquet/binarized.parquet"),
    ]


def test_to_hub_fails_clearly_before_any_work(tmp_path, monkeypatch):
    from curate.stages.export import ExportError, export

    out = tmp_path / "out"
    c = load_config(overrides={"argilla": {"api_url": "http://127.0.0.1:9", "api_key": "unused"}}, environ={})
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ExportError, match="HF_HUB_OFFLINE is set"):
        export(c, "d", "w", out, to_hub="someone/pairs")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "no-tokens"))
    with pytest.raises(ExportError, match="no Hugging Face token; set HF_TOKEN"):
        export(c, "d", "w", out, to_hub="someone/pairs")
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    with pytest.raises(ExportError, match=r"cannot reach the Hugging Face Hub|rejected the token"):
        export(c, "d", "w", out, to_hub="someone/pairs")
    assert not out.exists()  # nothing written
