"""How often curate's own judge flips with the order of the responses (`judge_both_orders`).

Real pairs, responses as given in the data: PandaLM's test set (the three annotators' majority as the
reference) or LLMBar's Natural set (its gold label). Each pair is judged by UltraFeedback with the
configured judge (default: the embedded SmolLM2, its default sampling) in the given order and in
reverse order (`pipelines.preferences.judge_generations`; `--max-new-tokens` caps the judge's answer:
its two ratings come first, and the cap saves the rambling after them). Both verdicts come from the
judge's ratings by the one recipe of `pairs.to_pairs`, the pair's level from `confidence.py`.

Printed: how many pairs got a verdict in each order (both ratings parsed) and in both, the flip rate
(opposite sides), how often the verdict changed at all (a side and a tie), the share of verdicts for
the response shown first, agreement with the reference for consistent and for flipped pairs (the
first order's verdict), and the per-level counts. For LLMBar, GPT-4's own verdicts in both orders (in
the data) on the same pairs, for comparison.

    .venv/bin/python benchmarks/judge_swap.py [--set pandalm|llmbar] [--pairs 40] [--seed 0]
        [--max-new-tokens 128] [--threads N]
"""

from __future__ import annotations

import argparse
import ast
import json
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

from curate.config import load_config
from curate.rows import join_input
from curate.stages.review.pairs import to_pairs
from pipelines.preferences import judge_generations

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "preference"
CODES = {"1": "x", "2": "y", "0": "tie"}


def pandalm() -> list[dict[str, Any]]:
    """Rows with the three annotators' majority (x | y | tie, None when all three differ)."""
    items = json.loads((DATA / "pandalm" / "testset-v1.json").read_text())
    rows = []
    for it in items:
        votes = [CODES[str(it[f"annotator{k}"])] for k in (1, 2, 3)]
        top = max(set(votes), key=votes.count)
        rows.append(
            {
                "instruction": join_input(it["instruction"], it["input"]),
                "generations": [it["response1"], it["response2"]],
                "reference": top if votes.count(top) >= 2 else None,
            }
        )
    return rows


def _winners(item: dict[str, Any]) -> dict[str, str | None]:
    res = item["results"]
    res = ast.literal_eval(res) if isinstance(res, str) else res
    return {k: CODES.get(str(v.get("winner"))) for k, v in res[0].items()}


def llmbar() -> list[dict[str, Any]]:
    """LLMBar Natural: rows with the gold label and GPT-4's verdicts in both orders."""
    d = DATA / "llmbar" / "Natural"
    gpt4 = json.loads((d / "GPT-4" / "Vanilla.json").read_text())
    rows = []
    for g in gpt4:
        w = _winners(g)
        rows.append(
            {
                "instruction": g["input"],
                "generations": [g["output_1"], g["output_2"]],
                "reference": CODES[str(g["label"])],
                "gpt4": (w.get("swap = False"), w.get("swap = True")),
            }
        )
    return rows


def _share(k: int, n: int) -> str:
    return f"{k}/{n} = {k / n:.3f}" if n else f"{k}/0"


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The flip figures for judged rows (each with `reference`)."""
    pairs, rejected = to_pairs(rows, seed=0)  # a pair with an empty response is no review pair
    ref = {p["row"]: rows[p["row"] - 1]["reference"] for p in pairs}
    both = [p for p in pairs if p["judge_preference"] and p["judge_preference_swapped"]]
    sides = [p for p in both if "tie" not in (p["judge_preference"], p["judge_preference_swapped"])]
    flipped = [p for p in sides if p["judge_preference"] != p["judge_preference_swapped"]]
    consistent = [p for p in sides if p["judge_preference"] == p["judge_preference_swapped"]]
    changed = [p for p in both if p["judge_preference"] != p["judge_preference_swapped"]]
    # the response shown first: x in the given order, y in the reversed one
    first = sum(p["judge_preference"] == "x" for p in both) + sum(
        p["judge_preference_swapped"] == "y" for p in both
    )
    picks = sum(v != "tie" for p in both for v in (p["judge_preference"], p["judge_preference_swapped"]))

    def agree(ps: list[dict]) -> str:
        scored = [p for p in ps if ref[p["row"]] is not None]
        return _share(sum(p["judge_preference"] == ref[p["row"]] for p in scored), len(scored))

    return {
        "pairs": len(pairs),
        "not_reviewable": len(rejected),
        "verdict_given_order": sum(p["judge_preference"] is not None for p in pairs),
        "verdict_reversed_order": sum(p["judge_preference_swapped"] is not None for p in pairs),
        "both_verdicts": len(both),
        "both_sides": len(sides),
        "flip_rate": _share(len(flipped), len(sides)),
        "changed_rate": _share(len(changed), len(both)),
        "first_shown_share": _share(first, picks),
        "agreement_consistent": agree(consistent),
        "agreement_flipped": agree(flipped),
        "agreement_all_first_order": agree([p for p in pairs if p["judge_preference"] not in (None, "tie")]),
        "levels": dict(Counter(p["judge_confidence"] for p in pairs).most_common()),
    }


def gpt4_flips(rows: list[dict[str, Any]]) -> str:
    sides = [r["gpt4"] for r in rows if None not in r["gpt4"] and "tie" not in r["gpt4"]]
    return _share(sum(a != b for a, b in sides), len(sides))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", choices=("pandalm", "llmbar"), default="pandalm")
    ap.add_argument("--pairs", type=int, default=40)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=None, help="llama.cpp threads per judge step")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs-dir", default="runs/bench-judge-swap", help="distilabel's cache goes here")
    args = ap.parse_args()
    rows = pandalm() if args.set == "pandalm" else llmbar()
    rows = random.Random(args.seed).sample(rows, min(args.pairs, len(rows)))
    # a few PandaLM items hold a JSON true as a response: not a text to judge
    rows = [r for r in rows if all(isinstance(g, str) for g in r["generations"])]
    cfg = load_config(
        overrides={
            "llm": {
                "max_new_tokens": args.max_new_tokens,
                "extra": {"n_threads": args.threads} if args.threads else {},
            },
            "generate": {"preferences": {"judge_both_orders": True}},
            "run": {"runs_dir": args.runs_dir, "name": f"{args.set}-{args.seed}-{args.pairs}"},
        }
    )
    start = time.perf_counter()
    judged = judge_generations(cfg, rows)
    seconds = time.perf_counter() - start
    out = summarize(judged)
    out |= {"set": args.set, "seed": args.seed, "judge": judged[0]["judge_model"], "seconds": round(seconds)}
    out["max_new_tokens"] = args.max_new_tokens
    if args.set == "llmbar":
        out["gpt4_flip_rate_same_pairs"] = gpt4_flips(rows)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
