"""Judge confidence, review plan, calibration and auto-accept on real judged pairs (PandaLM, LLMBar)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from curate.config import Config
from curate.stages.export.decide import decide_records
from curate.stages.review import settings as st
from curate.stages.review.calibration import (
    Z90,
    accepted,
    calibration_observations,
    calibration_sample,
    export_estimate,
    level_stats,
    plan,
    prediction,
    unreviewed_by_level,
    votes_needed,
    wilson,
)
from curate.stages.review.confidence import LEVEL_SCORE, LEVELS
from curate.stages.review.pairs import judge_label, judge_score, record_metadata, shown, to_pairs

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "preference"
CODE = {"1": "x", "2": "y", "0": "tie"}


def _code(value) -> str | None:
    return {"1": "1", "2": "2", "0": "0", "tie": "0"}.get(str(value).strip().lower())


@pytest.fixture(scope="module")
def pandalm() -> tuple[list[dict], list[dict]]:
    """(input rows with both judges' verdicts, the items with their three annotators)."""
    d = DATA / "pandalm"
    items = json.loads((d / "testset-v1.json").read_text())
    gpt = {r["idx"]: r["gpt_result"] for r in json.loads((d / "gpt-3.5-turbo-testset-v1.json").read_text())}
    pl = {r["idx"]: r["pandalm_result"] for r in json.loads((d / "pandalm-7b-testset-v1.json").read_text())}
    rows = [
        {
            "instruction": r["instruction"],
            "input": r["input"],
            "response_a": r["response1"],
            "response_b": r["response2"],
            "judge_preference": _code(gpt[r["idx"]]),
            "judge_preference_2": _code(pl[r["idx"]]),
            "judge_model": "gpt-3.5-turbo",
        }
        for r in items
    ]
    return rows, items


def test_levels_follow_the_two_judges(pandalm):
    rows, _ = pandalm
    pairs, _ = to_pairs(rows, seed=0)
    assert pairs
    for p in pairs:
        first, second = p["judge_preference"], p["judge_preference_2"]
        level = p["judge_confidence"]
        if first is None and second is None:
            assert level == "none"
        elif first == second and first != "tie":
            assert (p["judge_decision"], level) == (first, "agree")
        elif {first, second} == {"x", "y"}:
            assert (p["judge_decision"], level) == (first, "split")  # the first judge decides a split
        elif "tie" in (first, second) and {first, second} - {"tie", None}:
            assert level == "partial" and p["judge_decision"] in ("x", "y")
        elif {first, second} <= {"tie", None}:
            assert (p["judge_decision"], level) == ("tie", "tie")
        else:
            assert level == "single"
    assert {p["judge_confidence"] for p in pairs} >= {"agree", "split", "partial", "tie"}


def test_the_suggestion_is_the_combined_decision_with_its_level_score(pandalm):
    rows, _ = pandalm
    pairs, _ = to_pairs(rows, seed=0)
    split = next(p for p in pairs if p["judge_confidence"] == "split")
    a, _ = shown(split)
    expected = "A" if (split["judge_decision"] == "x") == (a == 0) else "B"
    assert judge_label(split) == expected
    assert judge_score(split) == LEVEL_SCORE["split"]
    assert record_metadata(split)["judge_confidence"] == "split"
    tie = next(p for p in pairs if p["judge_confidence"] == "tie")
    assert judge_label(tie) == "tie"


def test_a_verdict_that_flips_with_the_order_is_split():
    """LLMBar: GPT-4 judged each pair in both orders; a flip is low confidence, a repeat is `agree`."""
    sub = DATA / "llmbar" / "Natural"
    items = json.loads((sub / "GPT-4" / "Vanilla.json").read_text())
    rows, flips = [], []
    for it in items:
        res = ast.literal_eval(it["results"]) if isinstance(it["results"], str) else it["results"]
        w = {k: v["winner"] for k, v in res[0].items()}
        rows.append(
            {
                "prompt": it["input"],
                "response_a": it["output_1"],
                "response_b": it["output_2"],
                "judge_preference": _code(w["swap = False"]),
                "judge_preference_swapped": _code(w["swap = True"]),
            }
        )
        flips.append(w["swap = False"] != w["swap = True"])
    pairs, rejected = to_pairs(rows, seed=0)
    assert not rejected and any(flips)
    for p, flip in zip(pairs, flips, strict=True):
        assert p["judge_confidence"] == ("split" if flip else "agree")


def test_a_bad_swapped_verdict_is_rejected_with_its_field(pandalm):
    rows, _ = pandalm
    bad = {**rows[0], "judge_preference_swapped": "maybe"}
    pairs, rejected = to_pairs([bad], seed=0)
    assert not pairs and rejected[0]["field"] == "judge_preference_swapped"


def test_plan_is_a_stable_stratified_permutation(pandalm):
    rows, _ = pandalm
    pairs, _ = to_pairs(rows, seed=0)
    items = [(p["id"], p["judge_confidence"]) for p in pairs]
    planned = plan(items, 100, seed=3)
    assert sorted(pr for pr, _ in planned.values()) == list(range(1, len(items) + 1))
    assert plan(list(reversed(items)), 100, seed=3) == planned  # input order does not matter
    assert plan(items, 100, seed=4) != planned
    sample = {rid for rid, (_, s) in planned.items() if s}
    assert len(sample) == 100
    assert all(planned[rid][0] <= 100 for rid in sample)  # the calibration sample comes first
    level = dict(items)
    eligible = [lv for _, lv in items if lv not in ("tie", "none")]
    for lv in set(eligible):
        share = eligible.count(lv) / len(eligible)
        got = sum(level[rid] == lv for rid in sample)
        assert abs(got - 100 * share) <= 1, (lv, got, share)
    assert not any(level[rid] == "tie" for rid in sample)
    rest = sorted((planned[rid][0], LEVELS.index(level[rid])) for rid in level if rid not in sample)
    ranks = [r for _, r in rest]
    assert ranks == sorted(ranks, reverse=True)  # lowest confidence first


def test_sample_size_is_capped_and_every_level_gets_a_vote(pandalm):
    rows, _ = pandalm
    pairs, _ = to_pairs(rows[:50], seed=0)
    items = [(p["id"], p["judge_confidence"]) for p in pairs]
    assert len(calibration_sample(items, 10_000, 0)) == sum(lv not in ("tie", "none") for _, lv in items)
    few = calibration_sample(items, 3, 0)
    assert len({dict(items)[rid] for rid in few}) == min(3, len({lv for _, lv in items} - {"tie", "none"}))


def test_wilson_and_votes_needed():
    n = 40
    assert wilson(n, n)[0] == pytest.approx(n / (n + Z90**2))
    lo, hi = wilson(30, 40)
    assert lo < 0.75 < hi and wilson(10, 40) == pytest.approx((1 - hi, 1 - lo))
    more = votes_needed(45, 50, 0.85)
    assert more is not None and more > 0
    assert wilson(round(0.9 * (50 + more)), 50 + more)[0] >= 0.85
    assert wilson(round(0.9 * (49 + more)), 49 + more)[0] < 0.85
    assert votes_needed(40, 50, 0.8) is None  # at 0.8 it can never clear 0.8


def _records(pairs, votes_of, reviewed, sample):
    """Records as pull returns them, one submitted vote each on `reviewed` (a real annotator's)."""
    out = []
    for p in pairs:
        a, b = shown(p)
        responses = []
        if p["id"] in reviewed:
            side = votes_of[p["row"]]
            label = "tie" if side == "tie" else ("A" if (side == "x") == (a == 0) else "B")
            responses.append({"user": "u1", "status": "submitted", "preference": label, "corrected": None})
        out.append(
            {
                "id": p["id"],
                "messages": p["messages"],
                "response_a": p["responses"][a],
                "response_b": p["responses"][b],
                "metadata": {
                    "judge_confidence": p["judge_confidence"],
                    "calibration_sample": "yes" if p["id"] in sample else "no",
                },
                "suggestions": {st.PREFERENCE: {"value": judge_label(p), "score": None, "agent": "j"}},
                "responses": responses,
            }
        )
    return out


def test_auto_accept_uses_only_the_calibration_sample_and_the_lower_bound(pandalm):
    rows, items = pandalm
    pairs, _ = to_pairs(rows, seed=0)
    votes_of = {i + 1: CODE[str(it["annotator1"])] for i, it in enumerate(items)}
    planned = plan([(p["id"], p["judge_confidence"]) for p in pairs], 200, seed=0)
    ranked = sorted(pairs, key=lambda p: planned[p["id"]][0])
    reviewed = {p["id"] for p in ranked[:260]}
    sample = {rid for rid in reviewed if planned[rid][1]}
    records = _records(pairs, votes_of, reviewed, sample)
    ex = Config().export
    obs = calibration_observations(records, ex)
    assert len(obs) == len(sample) == 200  # the 60 low-confidence reviews after the sample do not count
    stats = level_stats(obs, 0.75)
    # the agreement of each level is the share of its sampled votes the judge matched, counted by hand
    by_id = {p["id"]: p for p in pairs}
    for level, s in stats.items():
        ids = [rid for rid in sample if by_id[rid]["judge_confidence"] == level]
        hits = sum(by_id[rid]["judge_decision"] == votes_of[by_id[rid]["row"]] for rid in ids)
        assert (s["votes"], s["agree"]) == (len(ids), hits)
    cfg = Config.model_validate({"export": {"auto_accept": True, "auto_accept_min_agreement": 0.7}})
    out = decide_records(records, cfg)
    judged = [d for d in out.exported if d.decided_by == "judge"]
    ok = {lv for lv, s in out.calibration["levels"].items() if s["low"] >= 0.7}
    assert ok and judged
    # each level's interval is about its unreviewed records, counted by hand
    pending = unreviewed_by_level(records)
    for level, s in out.calibration["levels"].items():
        by_hand = sum(p["judge_confidence"] == level and p["id"] not in reviewed for p in pairs)
        assert s["unreviewed"] == pending[level] == by_hand
        assert (s["low"], s["high"]) == pytest.approx(prediction(s["agree"], s["votes"], by_hand), abs=1e-4)
    assert all(by_id[d.record["id"]]["judge_confidence"] in ok for d in judged)
    assert all(d.record["id"] not in reviewed for d in judged)
    assert all(
        d.estimated_agreement
        == out.calibration["levels"][d.record["metadata"]["judge_confidence"]]["agreement"]
        for d in judged
    )
    assert all(d.label in ("A", "B") for d in judged)
    acc = out.accounting["records"]
    assert acc["exported_by_judge"] == len(judged)
    assert acc["exported"] + sum(acc["excluded"].values()) == len(records)
    est = out.calibration["export"]
    assert est["low"] <= est["agreement"] <= est["high"] and est["records"] == len(out.exported)
    # a target no level reaches: nothing is auto-accepted and the levels say how many more votes
    strict = Config.model_validate({"export": {"auto_accept": True, "auto_accept_min_agreement": 0.99}})
    none = decide_records(records, strict)
    assert none.accounting["records"]["exported_by_judge"] == 0
    assert none.calibration["needed"] and "unreviewed_below_target" in none.accounting["records"]["excluded"]


def test_prediction_interval_is_about_the_unreviewed_records():
    assert prediction(30, 40, None) == wilson(30, 40) and prediction(0, 0, 10) == (0.0, 1.0)
    lo, hi = prediction(30, 40, 40)
    rate_lo, rate_hi = wilson(30, 40)
    assert lo < rate_lo and hi > rate_hi  # the 40 unreviewed records add their own sampling noise
    assert prediction(30, 40, 10**9) == pytest.approx(wilson(30, 40), abs=1e-6)
    # more votes the level needs, each taking one of its unreviewed records: none when they run out
    more = votes_needed(90, 100, 0.85, unreviewed=500)
    assert more and prediction(round(0.9 * (100 + more)), 100 + more, 500 - more)[0] >= 0.85
    assert votes_needed(90, 100, 0.85, unreviewed=5) is None


def test_prediction_interval_covers_the_unreviewed_agreement_on_real_votes(pandalm):
    """Over repeated random samples of PandaLM's `agree` level, the interval covers the agreement of
    the level's unreviewed records (with annotator 1) about 90% of the time; the rate's Wilson
    interval, which ignores those records' own noise, covers it less often."""
    rows, items = pandalm
    pairs, _ = to_pairs(rows, seed=0)
    votes_of = {i + 1: CODE[str(it["annotator1"])] for i, it in enumerate(items)}
    hits = [p["judge_decision"] == votes_of[p["row"]] for p in pairs if p["judge_confidence"] == "agree"]
    import random

    covered = {"prediction": 0, "rate": 0}
    seeds, n = 400, 150
    for seed in range(seeds):
        order = random.Random(seed).sample(range(len(hits)), len(hits))
        k, rest = sum(hits[i] for i in order[:n]), [hits[i] for i in order[n:]]
        actual = sum(rest) / len(rest)
        lo, hi = prediction(k, n, len(rest))
        covered["prediction"] += lo <= actual <= hi
        lo, hi = wilson(k, n)
        covered["rate"] += lo <= actual <= hi
    assert 0.86 <= covered["prediction"] / seeds <= 0.95
    assert covered["rate"] < covered["prediction"]


def test_export_estimate_weights_levels():
    stats = level_stats(
        [("agree", True)] * 9 + [("agree", False)] + [("split", True)] * 5 + [("split", False)] * 5, 0.5
    )
    est = export_estimate({"agree": 10, "split": 10}, stats, humans=20)
    assert est["agreement"] == pytest.approx((20 + 9 + 5) / 40, abs=1e-4)
    assert accepted("agree", stats, 0.5) and not accepted("tie", stats, 0.0)


def test_random_sample_estimate_is_unbiased_on_real_votes(pandalm):
    """Over repeated plans, the calibration estimate of the `agree` level centres on the level's
    actual agreement with annotator 1 over all its pairs."""
    rows, items = pandalm
    pairs, _ = to_pairs(rows, seed=0)
    votes_of = {i + 1: CODE[str(it["annotator1"])] for i, it in enumerate(items)}
    agree = [p for p in pairs if p["judge_confidence"] == "agree"]
    actual = sum(p["judge_decision"] == votes_of[p["row"]] for p in agree) / len(agree)
    estimates = []
    for seed in range(30):
        sample = calibration_sample([(p["id"], p["judge_confidence"]) for p in pairs], 100, seed)
        hits = [p["judge_decision"] == votes_of[p["row"]] for p in agree if p["id"] in sample]
        estimates.append(sum(hits) / len(hits))
    assert abs(sum(estimates) / len(estimates) - actual) < 0.02
    assert len(set(estimates)) > 1  # the seeds draw different samples


@pytest.mark.server
def test_push_calibrate_auto_accept_on_the_embedded_argilla(pandalm, argilla_server, tmp_path):
    """Push judged PandaLM pairs, vote (annotator 1's real votes) through the API on the calibration
    sample and a few planned records after it, then check calibrate's and export's figures by hand."""
    from datasets import load_from_disk
    from review_helpers import annotators, owner, raw_records, server_config, submit, unique

    from curate.stages.export import export
    from curate.stages.review.push import push
    from curate.stages.review.status import review_status

    rows, items = pandalm
    n = 120
    cfg = server_config(
        argilla_server,
        tmp_path,
        review={"vectors": False, "calibration_size": 60},
        export={"auto_accept": True, "auto_accept_min_agreement": 0.6},
    )
    name, ws = unique("calib"), unique("ws")
    src = [{**r, "id": str(i)} for i, r in enumerate(rows[:n])]
    push(src, cfg, name, ws, quarantine=tmp_path / "q.jsonl")
    raw = raw_records(owner(argilla_server), name, ws)
    meta = {r["id"]: r["metadata"] for r in raw}
    priorities = sorted(m["review_priority"] for m in meta.values())
    assert priorities == list(range(1, len(raw) + 1))
    sample = [r for r in raw if r["metadata"]["calibration_sample"] == "yes"]
    assert len(sample) == 60 and max(r["metadata"]["review_priority"] for r in sample) == 60
    # a second push of the same rows keeps every priority
    push(src, cfg, name, ws, quarantine=tmp_path / "q.jsonl")
    assert {r["id"]: r["metadata"] for r in raw_records(owner(argilla_server), name, ws)} == meta

    ((_, ann, _),) = annotators(argilla_server, ws, ["rev"]).values()
    by_id = {p["id"]: p for p in to_pairs(src, cfg.review.seed)[0]}
    after = sorted(
        (r for r in raw if r["metadata"]["calibration_sample"] == "no"),
        key=lambda r: r["metadata"]["review_priority"],
    )[:10]
    expected: dict[str, list[bool]] = {}
    for r in sample + after:
        it = items[int(r["metadata"]["source_id"])]
        vote = CODE[str(it["annotator1"])]
        shown_1 = "A" if r["fields"]["response_a"].strip() == _escaped(it["response1"]).strip() else "B"
        label = "tie" if vote == "tie" else shown_1 if vote == "x" else ("B" if shown_1 == "A" else "A")
        submit(ann, r["id"], preference=label)
        judged = judge_label(by_id[r["external_id"]])  # the suggestion pushed, from the same rows
        if r in sample:
            expected.setdefault(r["metadata"]["judge_confidence"], []).append(judged == label)
    status = review_status(cfg, name, ws)
    levels = status["calibration"]["levels"]
    assert {lv: (s["votes"], s["agree"]) for lv, s in levels.items()} == {
        lv: (len(v), sum(v)) for lv, v in expected.items()
    }
    out = tmp_path / "export"
    summary = export(cfg, name, ws, out)
    assert json.loads((out / "calibration.json").read_text())["levels"] == levels
    train = load_from_disk(str(out))["train"]
    reviewed = {r["external_id"] for r in sample + after}
    ok = {lv for lv, s in levels.items() if s["low"] >= 0.6}
    judged_rows = [row for row in train if row["decided_by"] == "judge"]
    assert all(row["id"] not in reviewed for row in judged_rows)
    for row in judged_rows:
        level = by_id[row["id"]]["judge_confidence"]
        assert level in ok and row["estimated_agreement"] == levels[level]["agreement"]
    acc = summary["accounting"]["records"]
    unreviewed_ok = [rid for rid, p in by_id.items() if p["judge_confidence"] in ok and rid not in reviewed]
    assert acc["exported_by_judge"] == len(judged_rows) == len(unreviewed_ok) > 0
    assert acc["exported"] + sum(acc["excluded"].values()) == acc["total"] == len(raw)
    assert "Judge calibration" in (out / "README.md").read_text()
    # curate plan: the sample keeps its priorities, the rest follows the estimates, the votes stay
    from curate.stages.review.replan import replan

    result = replan(cfg, name, ws)
    after_meta = {r["id"]: r["metadata"] for r in raw_records(owner(argilla_server), name, ws)}
    assert all(after_meta[r["id"]]["review_priority"] == meta[r["id"]]["review_priority"] for r in sample)
    rest = sorted(
        (m for m in after_meta.values() if m["calibration_sample"] == "no"),
        key=lambda m: m["review_priority"],
    )
    est = result["estimates"]
    keys = [
        -1.0 if m["judge_confidence"] in ("tie", "none") else est.get(m["judge_confidence"], 0) for m in rest
    ]
    assert keys == sorted(keys) and result["changed"] > 0
    assert review_status(cfg, name, ws)["calibration"]["levels"] == levels


def _escaped(text: str) -> str:
    return st.shown_text(text)
