"""Tokens/s of the embedded LLM decoding 1, 2, 4, 8 sequences at once (llm.parallel), same prompts, same
run, as ratios against the single stream measured in that run; and whether greedy (temperature 0)
outputs of N parallel sequences equal the single stream's.

Each round runs every setting once, in turn, so that the machine's load falls on all of them alike.
Wall-clock tokens/s is what a run gets; tokens per CPU-second (this process's CPU time) says how much
work a token costs, which a shared machine's load distorts less.

    python benchmarks/batched_decoding.py [--prompts 8] [--max-new-tokens 32] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from curate.models import embedded_gguf_path
from pipelines.batched_llm import BatchedGGUFChatLlamaCppLLM

QUESTIONS = [
    "Explain how a refrigerator keeps food cold.",
    "Write a short poem about the sea at night.",
    "What are three tips for saving money on groceries?",
    "Describe the water cycle in simple terms.",
    "How do I reverse a list in Python?",
    "Why did the Roman Empire fall?",
    "Give me a recipe for a quick tomato soup.",
    "What should I pack for a weekend hiking trip?",
    "What is the difference between weather and climate?",
    "Summarise the plot of Romeo and Juliet.",
    "How does compound interest work?",
    "Suggest a name for a friendly robot.",
    "What is photosynthesis?",
    "List some good habits for learning a language.",
    "How do vaccines train the immune system?",
    "Write a haiku about autumn leaves.",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--parallel", type=int, nargs="+", default=[1, 2, 4, 8])
    args = ap.parse_args()
    print(f"load average (1, 5, 15 min) at start: {os.getloadavg()}; {os.cpu_count()} cores")

    inputs = [[{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}] for i in range(args.prompts)]
    settings = sorted({1, *args.parallel})
    llms = {}
    for p in settings:
        llm = BatchedGGUFChatLlamaCppLLM(model_path=str(embedded_gguf_path()), n_ctx=1024, parallel=p)
        llm.load()
        llms[p] = llm
    wall: dict[int, list[float]] = {p: [] for p in settings}
    cpu: dict[int, list[float]] = {p: [] for p in settings}
    texts: dict[int, list[str]] = {}
    for r in range(args.rounds):
        for p in settings:
            w, c = time.perf_counter(), time.process_time()
            out = llms[p].generate(inputs, max_new_tokens=args.max_new_tokens, temperature=0.0)
            dw, dc = time.perf_counter() - w, time.process_time() - c
            tokens = sum(sum(o["statistics"]["output_tokens"]) for o in out)
            wall[p].append(tokens / dw)
            cpu[p].append(tokens / dc)
            texts[p] = [o["generations"][0] for o in out]
            print(
                f"round {r + 1} parallel {p}: {tokens} tokens in {dw:.1f} s wall, {dc:.1f} s CPU", flush=True
            )

    base_w, base_c = statistics.median(wall[1]), statistics.median(cpu[1])
    print(f"\nload average at end: {os.getloadavg()}")
    print("| parallel | tokens/s (wall) | x single | tokens per CPU-s | x single | greedy = single stream |")
    print("|---|---|---|---|---|---|")
    for p in settings:
        same = sum(a == b for a, b in zip(texts[p], texts[1], strict=True))
        mw, mc = statistics.median(wall[p]), statistics.median(cpu[p])
        print(
            f"| {p} | {mw:.1f} | {mw / base_w:.2f} | {mc:.1f} | {mc / base_c:.2f} | {same} of {len(texts[1])} |"
        )
    for p in settings:
        for i, (a, b) in enumerate(zip(texts[p], texts[1], strict=True)):
            if a != b:
                print(f"\nparallel {p}, prompt {i}: differs from the single stream\n  1: {b!r}\n  {p}: {a!r}")


if __name__ == "__main__":
    main()
