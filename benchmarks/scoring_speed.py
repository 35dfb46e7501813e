"""How fast is Deita scoring compared with llama.cpp evaluating the same prompts?

Prompts: Deita complexity prompts for N instructions and quality prompts for N (instruction, response)
pairs from the Alpaca demo rows (realistic synthetic data). In the same run, interleaved in rounds so
that a busy machine slows every contender alike:

- raw:        llama.cpp prompt evaluation of exactly the token sequences we score (reset + eval, nothing
              read back): the ceiling of any llama.cpp scorer.
- ours:       curate's scorer (tokenise, truncate, evaluate, read six logits, softmax), reusing the KV
              cache of the prefix shared with the previous prompt (the default).
- ours-noreuse: the same without prefix reuse: the per-item overhead alone.
- logits_all: llama-cpp-python's documented way (`Llama(logits_all=True)`, read `llm.scores`).

Tokens/s always counts every prompt token (as raw does), so prefix reuse can push the ratio above 1.

    python benchmarks/scoring_speed.py [--n 40] [--rounds 2] [--model PATH.gguf]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from curate.config import LLMConfig, ScoreConfig
from curate.rows import join_input
from curate.scoring.backends import LlamaCppBackend
from curate.stages.score import _Run, complexity_llm, quality_llm

DATA = Path(os.environ.get("CURATE_SHARED_DATA", REPO.parent / "shared" / "data"))


def rows(n: int) -> list[tuple[str, str]]:
    path = DATA / "instructions/alpaca/alpaca_en_demo.json"
    if path.exists():
        data = json.loads(path.read_text())
        return [(join_input(r["instruction"], r["input"]), r["output"]) for r in data[:n]]
    return [
        (f"Explain topic number {i} in detail, with examples.", f"Topic {i} is ... " * 20) for i in range(n)
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=40, help="Instructions (and as many responses) per round.")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--model", default=None, help="GGUF path (default: the embedded SmolLM2).")
    ap.add_argument("--prompt", default="deita", choices=["deita", "deita-anchored"])
    ap.add_argument("--threads", type=int, default=None, help="llama.cpp threads for every contender.")
    ap.add_argument(
        "--skip-logits-all",
        action="store_true",
        help="Leave out logits_all (Gemma's 262k-token vocabulary makes it copy GBs per prompt).",
    )
    args = ap.parse_args()

    threads = {"n_threads": args.threads, "n_threads_batch": args.threads} if args.threads else {}
    cfg = LLMConfig(model=args.model, n_ctx=4096 if args.prompt == "deita-anchored" else 2048, extra=threads)
    sc = ScoreConfig(prompt=args.prompt)
    data = rows(args.n)
    questions, answers = [q for q, _ in data], [[a] for _, a in data]
    ours = LlamaCppBackend(cfg)
    from llama_cpp import Llama

    # The exact token sequences ours evaluates (same truncation, same templates).
    from curate.scoring import prior

    c_tpl, q_tpl = prior.complexity_template(args.prompt), prior.quality_template(args.prompt)
    seqs = []
    for q, (_answer,) in zip(questions, answers):
        q_c = ours.truncate(q, sc.max_instruction_tokens)[0]
        seqs.append(ours.prompt_ids(ours.tokens.prompt(c_tpl.format(instruction=q_c))))
    for q, (a,) in zip(questions, answers):
        q_c, a_c = ours.truncate(q, sc.max_instruction_tokens)[0], ours.truncate(a, sc.max_response_tokens)[0]
        seqs.append(ours.prompt_ids(ours.tokens.prompt(q_tpl.format(instruction=q_c, output=a_c))))
    n_tokens = sum(len(s) for s in seqs)
    raw = Llama(
        model_path=str(ours.llm.model_path), n_ctx=cfg.n_ctx, n_batch=512, logits_all=False, verbose=False
    )
    naive = (
        None
        if args.skip_logits_all
        else Llama(
            model_path=str(ours.llm.model_path), n_ctx=cfg.n_ctx, n_batch=512, logits_all=True, verbose=False
        )
    )
    ids = list(ours.tokens.ids)

    def run_raw() -> float:
        t = time.perf_counter()
        for s in seqs:
            raw.reset()
            raw.eval(s)
        return time.perf_counter() - t

    def run_ours(reuse: bool) -> float:
        ours.reuse_prefix = reuse
        t = time.perf_counter()
        complexity_llm(questions, ours, sc, _Run())
        quality_llm(questions, answers, ours, sc, _Run())
        return time.perf_counter() - t

    def run_naive() -> float:
        t = time.perf_counter()
        for s in seqs:
            naive.reset()
            naive.eval(s)
            row = naive.scores[len(s) - 1][ids]
            np.exp(row - row.max())
        return time.perf_counter() - t

    times: dict[str, float] = {"raw": 0.0, "ours": 0.0, "ours-noreuse": 0.0}
    if naive is not None:
        times["logits_all"] = 0.0
    run_raw()  # warm-up (page in the weights)
    for _ in range(args.rounds):
        times["raw"] += run_raw()
        times["ours"] += run_ours(True)
        times["ours-noreuse"] += run_ours(False)
        if naive is not None:
            times["logits_all"] += run_naive()
    total_tokens, total_items = n_tokens * args.rounds, len(seqs) * args.rounds
    print(
        f"model: {ours.name}; prompt: {args.prompt}; {len(seqs)} Deita items ({args.n} complexity + {args.n} "
        f"quality), {n_tokens} prompt tokens per round, {args.rounds} rounds, {os.cpu_count()} CPUs"
    )
    print(f"{'contender':14s} {'items/s':>9s} {'tokens/s':>9s} {'ratio to raw':>13s}")
    base = total_tokens / times["raw"]
    for name, seconds in times.items():
        tps = total_tokens / seconds
        print(f"{name:14s} {total_items / seconds:9.2f} {tps:9.1f} {tps / base:13.2f}")
    print("target: ours / raw >= 0.80")


if __name__ == "__main__":
    main()
