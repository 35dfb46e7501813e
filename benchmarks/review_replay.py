"""Replay recorded human votes through curate's plan, calibration and auto-accept (no server).

The pairs go through `pairs.to_pairs` (the judge decision and confidence level of `confidence.py`), the
plan is `calibration.plan`, and the export is `decide.decide_records` on records shaped as `pull`
returns them, each reviewed record carrying one recorded human vote. Datasets:
- PandaLM (999 items, three annotators): gpt-3.5 verdict = `judge_preference`, PandaLM-7B verdict =
  `judge_preference_2`; the vote cast is one random annotator's; exported pairs are scored against the
  three-annotator majority (a majority tie counts against).
- LLMBar (all sets): GPT-4 in both orders (`judge_preference`, `judge_preference_swapped`) and ChatGPT
  (`judge_preference_2`); the vote and the reference are the gold label.

Settings per human budget (share of pairs reviewed, one vote each): review-all-once (budget 100%),
random order with/without auto-accept (the random reviewed pairs are the calibration sample), and
curate's plan with/without auto-accept. Printed per setting, as the mean over seeds: exported pairs per
vote, agreement of the export with the reference, and for auto-accepted pairs the estimated vs actual
agreement with a reviewer's vote (actual: the mean over the recorded annotators, on the pairs that
were auto-accepted), how often the 90% interval covered it, over the replays that auto-accepted
anything, the share of replays that did (`acc`), and of those the share in which every auto-accepted
level's pairs agreed at least at the target (`held`: the claim the lower bound makes).

    .venv/bin/python benchmarks/review_replay.py [--seeds 100] [--min-agreement 0.75]
"""

from __future__ import annotations

import argparse
import ast
import json
import random
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from curate.config import Config
from curate.stages.export.decide import decide_records
from curate.stages.review import settings as st
from curate.stages.review.calibration import export_estimate, plan
from curate.stages.review.pairs import judge_label, shown, to_pairs

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "preference"
CODES = {"1": "x", "2": "y", "0": "tie"}


def _code(value: Any) -> str | None:
    """A PandaLM/LLMBar verdict as a judge_preference value (1 | 2 | 0); None for anything else."""
    v = str(value).strip().lower()
    return {"1": "1", "2": "2", "0": "0", "tie": "0"}.get(v)


def pandalm() -> tuple[list[dict], dict[int, list[str]]]:
    """(input rows, row index -> the annotators' votes as x | y | tie)."""
    d = DATA / "pandalm"
    items = json.loads((d / "testset-v1.json").read_text())
    gpt = {r["idx"]: r["gpt_result"] for r in json.loads((d / "gpt-3.5-turbo-testset-v1.json").read_text())}
    pl = {r["idx"]: r["pandalm_result"] for r in json.loads((d / "pandalm-7b-testset-v1.json").read_text())}
    rows, votes = [], {}
    for i, r in enumerate(items):
        rows.append(
            {
                "instruction": r["instruction"],
                "input": r["input"],
                "response_a": r["response1"],
                "response_b": r["response2"],
                "judge_preference": _code(gpt[r["idx"]]),
                "judge_preference_2": _code(pl[r["idx"]]),
                "judge_model": "gpt-3.5-turbo",
            }
        )
        votes[i + 1] = [CODES[str(r[f"annotator{k}"])] for k in (1, 2, 3)]
    return rows, votes


def _results(item: dict) -> dict[str, str]:
    res = item["results"]
    res = ast.literal_eval(res) if isinstance(res, str) else res
    return {k: v.get("winner") for k, v in res[0].items()}


def llmbar() -> tuple[list[dict], dict[int, list[str]]]:
    """(input rows, row index -> [gold label as x | y]) over every LLMBar set."""
    rows, votes = [], {}
    for sub in sorted(p for p in (DATA / "llmbar").iterdir() if p.is_dir()):
        mode = next(m for m in ("Vanilla", "Vanilla_NoRules") if (sub / "GPT-4" / f"{m}.json").exists())
        gpt4 = json.loads((sub / "GPT-4" / f"{mode}.json").read_text())
        chat = json.loads((sub / "ChatGPT" / f"{mode}.json").read_text())
        for g4, cg in zip(gpt4, chat, strict=True):
            w4, wc = _results(g4), _results(cg)
            rows.append(
                {
                    "prompt": g4["input"],
                    "response_a": g4["output_1"],
                    "response_b": g4["output_2"],
                    "judge_preference": _code(w4.get("swap = False")),
                    "judge_preference_swapped": _code(w4.get("swap = True")),
                    "judge_preference_2": _code(wc.get("swap = False")),
                    "judge_model": "gpt-4",
                }
            )
            votes[len(rows)] = [CODES[str(g4["label"])]]
    return rows, votes


def shown_label(pair: dict, side: str) -> str:
    """A vote about the original order (x | y | tie) as the shown label."""
    if side == "tie":
        return "tie"
    return "A" if (side == "x") == (shown(pair)[0] == 0) else "B"


def record(pair: dict, vote: str | None, in_sample: bool) -> dict[str, Any]:
    """The pair as `pull.normalize` returns it, with one submitted vote (or none)."""
    responses = []
    if vote is not None:
        responses.append(
            {
                "user": "replay",
                "status": "submitted",
                "preference": shown_label(pair, vote),
                "corrected": None,
            }
        )
    a, b = shown(pair)
    return {
        "id": pair["id"],
        "status": "completed" if vote else "pending",
        "messages": pair["messages"],
        "response_a": pair["responses"][a],
        "response_b": pair["responses"][b],
        "metadata": {
            "judge_confidence": pair["judge_confidence"],
            "calibration_sample": "yes" if in_sample else "no",
        },
        "suggestions": {st.PREFERENCE: {"value": judge_label(pair), "score": None, "agent": "judge"}},
        "responses": responses,
    }


def majority(votes: Sequence[str]) -> str:
    top = max(set(votes), key=votes.count)
    return top if votes.count(top) * 2 > len(votes) else "tie"


def replay(
    pairs: list[dict],
    votes: dict[int, list[str]],
    budget: float,
    order: str,
    auto: bool,
    seed: int,
    min_agreement: float,
    calibration_size: int,
) -> dict[str, Any]:
    """One replay: which pairs get a vote, the export, and its figures."""
    rng = random.Random(seed)
    n_votes = len(pairs) if order == "all" else round(budget * len(pairs))
    if order == "plan":
        planned = plan([(p["id"], p["judge_confidence"]) for p in pairs], calibration_size, seed)
        ranked = sorted(pairs, key=lambda p: planned[p["id"]][0])
        reviewed = {p["id"] for p in ranked[:n_votes]}
        sample = {p["id"] for p in ranked[:n_votes] if planned[p["id"]][1]}
    else:
        reviewed = {p["id"] for p in rng.sample(pairs, n_votes)}
        sample = reviewed  # a uniform random sample: all of it calibrates
    records = [
        record(p, rng.choice(votes[p["row"]]) if p["id"] in reviewed else None, p["id"] in sample)
        for p in pairs
    ]
    cfg = Config.model_validate({"export": {"auto_accept": auto, "auto_accept_min_agreement": min_agreement}})
    decisions = decide_records(records, cfg)
    by_id = {p["id"]: p for p in pairs}
    right = 0
    judged_hits: list[float] = []
    by_level: dict[str, list[float]] = {}
    for d in decisions.exported:
        pair = by_id[d.record["id"]]
        truth = votes[pair["row"]]
        right += shown_label(pair, majority(truth)) == d.label
        if d.decided_by == "judge":
            judged_hits.append(sum(shown_label(pair, v) == d.label for v in truth) / len(truth))
            by_level.setdefault(pair["judge_confidence"], []).append(judged_hits[-1])
    out: dict[str, Any] = {
        "votes": n_votes,
        "exported": len(decisions.exported),
        "per_vote": len(decisions.exported) / n_votes,
        "agreement": right / len(decisions.exported) if decisions.exported else None,
        "judged": len(judged_hits),
    }
    if judged_hits and decisions.calibration:
        cal = decisions.calibration
        judged = export_estimate(cal["judged_by_level"], cal["levels"], 0)  # the auto-accepted part only
        actual = sum(judged_hits) / len(judged_hits)
        out.update(
            {
                "estimated": judged["agreement"],
                "actual": actual,
                "covered": judged["low"] <= actual <= judged["high"],
                # auto-accept's own claim: every accepted level's pairs agree at least at the target
                "held": all(sum(h) / len(h) >= min_agreement for h in by_level.values()),
            }
        )
    return out


def with_quality_scores(rows: list[dict]) -> None:
    """Set each row's `quality_scores` to the embedded quality head's scores of its two responses (the
    head was fitted on OASST and Alpaca / LIMA rows, never on these sets)."""
    from curate.models import encode
    from curate.rows import prompt_text
    from curate.scoring import head

    scores = head.quality_scores(
        [prompt_text(r) for r in rows], [[str(r["response_a"]), str(r["response_b"])] for r in rows], encode
    )
    for row, q in zip(rows, scores, strict=True):
        row["quality_scores"] = q


def mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def fmt(v: float | None, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--min-agreement", type=float, default=0.75)
    ap.add_argument("--calibration-size", type=int, default=Config().review.calibration_size)
    ap.add_argument(
        "--quality-head",
        action="store_true",
        help="Add the embedded quality head's scores of both responses (quality_scores) as a signal.",
    )
    ap.add_argument("--sets", nargs="+", default=["pandalm", "llmbar"], choices=["pandalm", "llmbar"])
    args = ap.parse_args()
    for name, load in (("pandalm", pandalm), ("llmbar", llmbar)):
        if name not in args.sets:
            continue
        rows, votes = load()
        if args.quality_head:
            with_quality_scores(rows)
        pairs, rejected = to_pairs(rows, seed=0)
        levels: dict[str, int] = {}
        for p in pairs:
            levels[p["judge_confidence"]] = levels.get(p["judge_confidence"], 0) + 1
        print(f"\n## {name}: {len(pairs)} pairs ({len(rejected)} rows rejected by to_pairs); levels {levels}")
        print(
            f"{'budget':>6} {'setting':<18} {'votes':>5} {'exported':>8} {'per vote':>8} {'agree':>6} "
            f"{'judged':>6} {'est':>6} {'actual':>6} {'|e-a|':>6} {'cover':>6} {'acc':>6} {'held':>6}"
        )
        settings = [(1.0, "all", False)] + [
            (b, order, auto)
            for b in (0.10, 0.25, 0.50)
            for order in ("random", "plan")
            for auto in (False, True)
        ]
        for budget, order, auto in settings:
            runs = [
                replay(pairs, votes, budget, order, auto, s, args.min_agreement, args.calibration_size)
                for s in range(args.seeds if auto else min(args.seeds, 20))  # no estimate: 20 suffice
            ]
            est = [r for r in runs if "estimated" in r]
            label = "review-all-once" if order == "all" else f"{order}{' +auto' if auto else ''}"
            print(
                f"{budget:>6.0%} {label:<18} {runs[0]['votes']:>5} "
                f"{fmt(mean([r['exported'] for r in runs]), 1):>8} {fmt(mean([r['per_vote'] for r in runs]), 2):>8} "
                f"{fmt(mean([r['agreement'] for r in runs if r['agreement'] is not None])):>6} "
                f"{fmt(mean([r['judged'] for r in runs]), 1):>6} "
                f"{fmt(mean([r['estimated'] for r in est])):>6} {fmt(mean([r['actual'] for r in est])):>6} "
                f"{fmt(mean([abs(r['estimated'] - r['actual']) for r in est])):>6} "
                f"{fmt(mean([float(r['covered']) for r in est]) if est else None, 2):>6} "
                f"{len(est) / len(runs):>6.2f} "
                f"{fmt(mean([float(r['held']) for r in est]) if est else None, 2):>6}"
            )


if __name__ == "__main__":
    main()
