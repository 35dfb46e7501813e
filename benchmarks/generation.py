"""distilabel pipeline overhead: generated tokens/s through the `prompt` pipeline divided by raw
llama-cpp-python tokens/s on the same prompts, in the same run.

Both sides load the model (the pipeline in its step process) and generate greedily (temperature 0)
with the same settings, so they do the same work; the rounds alternate raw/pipeline to share the
machine's load fairly. The pipeline side is timed end to end: process pool, model load, queues.
Target: ratio >= 0.8.

    .venv/bin/python benchmarks/generation.py [--prompts 12] [--max-new-tokens 64] [--rounds 3]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path

from jinja2 import Template

from curate.config import load_config
from curate.models import llm_model_path
from pipelines.instructions import PROMPT_TEMPLATE, prompt_inputs, prompt_pipeline
from pipelines.runner import batches, run_pipeline, statistics_tokens


def messages_for(cfg, row) -> list[dict[str, str]]:
    """What TextGeneration sends for a row (checked against the pipeline's recorded raw input)."""
    return [
        {"role": "system", "content": cfg.generate.instructions.system_prompt},
        {"role": "user", "content": Template(PROMPT_TEMPLATE).render(topic=row["topic"], kind=row["kind"])},
    ]


def run_raw(cfg, inputs) -> tuple[int, float]:
    """In a spawned process, like the pipeline's step: this process stays free of llama.cpp, so the
    pipeline forks its steps as it does from the CLI (timing is taken inside the child)."""
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(_raw, (cfg, inputs))


def _raw(cfg, inputs) -> tuple[int, float]:
    from llama_cpp import Llama

    started = time.perf_counter()
    llm = Llama(model_path=str(llm_model_path(cfg.llm)), n_ctx=cfg.llm.n_ctx, n_gpu_layers=0, verbose=False)
    tokens = 0
    for row in inputs:
        out = llm.create_chat_completion(
            messages=messages_for(cfg, row),
            max_tokens=cfg.llm.max_new_tokens,
            temperature=cfg.llm.temperature,
            top_p=cfg.llm.top_p,
        )
        tokens += out["usage"]["completion_tokens"]
    elapsed = time.perf_counter() - started
    llm.close()
    return tokens, elapsed


def run_distilabel(cfg, inputs) -> tuple[int, float]:
    started = time.perf_counter()
    rows = run_pipeline(
        partial(prompt_pipeline, cfg, inputs),
        cfg,
        {"prompt": batches(len(inputs), cfg.generate.instructions.batch_size)},
    )
    elapsed = time.perf_counter() - started
    by_n = {row["n"]: row for row in rows}
    for row in inputs:  # same prompts on both sides, or the comparison means nothing
        sent = by_n[row["n"]]["distilabel_metadata"]["raw_input_prompt"]
        assert sent == messages_for(cfg, row), (sent, messages_for(cfg, row))
    return sum(statistics_tokens(r, "prompt") for r in rows), elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=12)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(
            overrides={
                "llm": {
                    "max_new_tokens": args.max_new_tokens,
                    "n_ctx": 1024,
                    "temperature": 0.0,
                    "top_p": 1.0,
                },
                "generate": {"resume": False, "instructions": {"num_instructions": args.prompts}},
                "run": {"runs_dir": str(Path(tmp) / "runs")},
            },
            environ={},
        )
        inputs = prompt_inputs(cfg)
        totals = {"raw": [0, 0.0], "pipeline": [0, 0.0]}
        round_ratios = []
        for r in range(args.rounds):
            tps = {}
            for side, fn in (("raw", run_raw), ("pipeline", run_distilabel)):
                tokens, seconds = fn(cfg, inputs)
                totals[side][0] += tokens
                totals[side][1] += seconds
                tps[side] = tokens / seconds
                print(
                    f"round {r + 1} {side:8s}: {tokens:5d} tokens in {seconds:6.1f} s = {tps[side]:6.1f} tok/s",
                    flush=True,
                )
            round_ratios.append(tps["pipeline"] / tps["raw"])
    raw_tps = totals["raw"][0] / totals["raw"][1]
    pipe_tps = totals["pipeline"][0] / totals["pipeline"][1]
    print(f"raw llama-cpp-python : {raw_tps:6.1f} tok/s ({totals['raw'][0]} tokens)")
    print(f"distilabel pipeline  : {pipe_tps:6.1f} tok/s ({totals['pipeline'][0]} tokens)")
    print(
        f"ratio pipeline/raw   : {pipe_tps / raw_tps:.2f}  (target >= 0.8; median of rounds "
        f"{statistics.median(round_ratios):.2f}, rounds {', '.join(f'{x:.2f}' for x in round_ratios)})"
    )


if __name__ == "__main__":
    main()
