"""Generation where it pays: the old loop order against the new one, on the same instructions, in one run.

Old order: responses and a judge verdict for every instruction, then dedup, score and select the review
budget. New order (`curate run`): dedup, complexity and the instruction budget first, responses only for
the instructions kept, then quality and the review budget. Both are composed from the same stage
functions that `curate run` calls. Prints, for each order, generated tokens per pair selected for review,
wall time and the pairs selected, and the ratios old / new.

    python benchmarks/loop_cost.py                        # 40 Magpie instructions, budgets 10 and 5
    python benchmarks/loop_cost.py --instructions 80 --instruction-budget 20 --budget 10
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import curate
from curate.stages import StageResult, dedup, generate, score, select


def tokens(*results: StageResult) -> int:
    """Tokens the LLM generated in these stages (as distilabel counted them)."""
    return sum(int(r.stats.get("generated_tokens") or 0) for r in results)


def old_order(cfg, instructions: StageResult) -> tuple[StageResult, StageResult]:
    prefs = generate.preferences(cfg, instructions.rows)
    kept = dedup.run(cfg, prefs.rows)
    scored = score.run(cfg, kept.rows)
    return prefs, select.run(cfg, scored.rows)


def new_order(cfg, instructions: StageResult) -> tuple[StageResult, StageResult]:
    kept = dedup.run(cfg, instructions.rows)
    rated = score.complexity(cfg, kept.rows)
    budget = select.instructions(cfg, rated.rows)
    prefs = generate.preferences(cfg, budget.rows)
    scored = score.quality(cfg, prefs.rows)
    return prefs, select.run(cfg, scored.rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--instructions", type=int, default=40, help="Magpie instructions to generate.")
    parser.add_argument("--instruction-budget", type=int, default=10)
    parser.add_argument("--budget", type=int, default=5, help="Pairs selected for review.")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    args = parser.parse_args()

    cfg = curate.make_config(
        llm={"max_new_tokens": args.max_new_tokens},
        generate={"instructions": {"num_instructions": args.instructions}, "resume": False},
        select={"instruction_budget": args.instruction_budget, "budget": args.budget},
    )
    t0 = time.perf_counter()
    instructions = generate.instructions(cfg, None)
    t_instructions = time.perf_counter() - t0
    print(f"instructions: {len(instructions.rows)} in {t_instructions:.0f} s, {tokens(instructions)} tokens")

    figures = {}
    for name, order in (("old", old_order), ("new", new_order)):
        t0 = time.perf_counter()
        prefs, picked = order(cfg, instructions)
        seconds = t_instructions + time.perf_counter() - t0  # both orders pay for the instructions
        generated = tokens(instructions, prefs)
        pairs = len(picked.rows)
        figures[name] = (generated / max(pairs, 1), seconds, pairs, len(prefs.rows))
        print(
            f"{name} order: responses for {len(prefs.rows)} instructions, {pairs} pairs for review, "
            f"{generated} generated tokens ({generated / max(pairs, 1):.0f} per pair), {seconds:.0f} s"
        )
    old, new = figures["old"], figures["new"]
    print(
        f"\nold / new: generated tokens per pair for review {old[0] / new[0]:.2f}x (goal >= 3), "
        f"wall time {old[1] / new[1]:.2f}x (goal >= 2), pairs for review {old[2]} vs {new[2]}"
    )


if __name__ == "__main__":
    main()
