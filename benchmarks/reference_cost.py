"""What does `curate dedup --against REF` cost on top of deduplicating the new rows alone?

New rows (N): real instructions that are in no reference (OASST prompts, the WizardLM test set, the
self-instruct seed tasks). Reference (M): Alpaca + LIMA instructions (~2k), and for the larger size the
MRPC and STS-B sentences too, written as a jsonl file the way an earlier round's output would be.
Measured in one run, each through the functions `curate dedup` uses (curate.stages.dedup.run, which
loads the references with curate.stages.references.load_references):

- embedding N alone (curate.embeddings.embed of the compared texts): the floor of any dedup;
- dedup of N with no reference;
- dedup of N against M, first round (cold cache: M is embedded and cached);
- dedup of N against M, later rounds (warm cache: the reference's vectors come from the cache).

Ratios are against embedding N. The cache is a fresh CURATE_CACHE_DIR for the run.

Usage: .venv/bin/python benchmarks/reference_cost.py [--data ../shared/data] [--new 500] [--refs 2000 10000]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from datasets import Dataset

REPO = Path(__file__).resolve().parents[1]


def new_rows(data: Path, n: int) -> list[dict[str, str]]:
    """Instructions from sources the reference does not contain, distinct, in file order."""
    ins = data / "instructions"
    texts = [json.loads(line) for line in (ins / "oasst" / "prompt_lottery_en_250_text.jsonl").open()]
    texts += [json.loads(line) for line in (ins / "oasst" / "en_100_text.jsonl").open()]
    texts += [
        json.loads(line)["Instruction"] for line in (ins / "wizardlm" / "WizardLM_testset_odd.jsonl").open()
    ]
    texts += [json.loads(line)["instruction"] for line in (ins / "self_instruct_seed_tasks.jsonl").open()]
    seen: dict[str, None] = {}
    for t in texts:
        if isinstance(t, str) and t.strip():
            seen.setdefault(t.strip(), None)
    rows = [{"instruction": t} for t in seen]
    if len(rows) < n:
        raise SystemExit(f"only {len(rows)} distinct new rows in {ins}; ask for --new {len(rows)} or fewer")
    return rows[:n]


def reference_rows(data: Path, lima: bool) -> list[dict[str, str]]:
    """Alpaca, then (with `lima`) LIMA, then MRPC and STS-B sentences: real text rows in a fixed order."""
    rows: list[dict[str, str]] = []
    for rel in ("alpaca/alpaca_en_demo.json", *(("lima/lima_llamafactory.json",) if lima else ())):
        rows += [
            {"instruction": r["instruction"], "input": r.get("input") or ""}
            for r in json.loads((data / "instructions" / rel).read_text(encoding="utf-8"))
        ]
    seen = {r["instruction"] for r in rows}
    mrpc = data / "pairs" / "mrpc" / "msr_paraphrase_train.txt"
    with mrpc.open(encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader)
        sentences = [s for row in reader for s in (row[3], row[4])]
    for split in ("train", "dev"):
        for line in (data / "pairs" / "stsbenchmark" / f"sts-{split}.csv").open(encoding="utf-8"):
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 7:
                sentences += [parts[5], parts[6]]
    for s in sentences:
        if s not in seen:
            seen.add(s)
            rows.append({"instruction": s, "input": ""})
    return rows


def timed(fn, repeat: int) -> tuple[float, float]:
    """Median wall time and median CPU time (all threads of this process) of `repeat` calls. On a shared
    machine the CPU time is the steadier figure: waiting for a core does not count."""
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--new", type=int, default=500)
    parser.add_argument("--refs", type=int, nargs="+", default=[2000, 10000])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each warm measurement (median)")
    parser.add_argument(
        "--no-lima", action="store_true", help="leave LIMA's long prompts out of the reference"
    )
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="curate-refcost-"))
    os.environ["CURATE_CACHE_DIR"] = str(tmp / "cache")  # before curate reads it: a cold cache

    from curate.config import Config
    from curate.embeddings import embed
    from curate.models import encoder_name, load_encoder
    from curate.stages import dedup as dedup_stage
    from curate.stages.dedup import compared_texts

    cfg = Config()
    ds = Dataset.from_list(new_rows(args.data, args.new))
    texts, _ = compared_texts(ds, cfg.dedup)
    pool = reference_rows(args.data, lima=not args.no_lima)
    load_encoder(cfg.embeddings)
    embed(texts[:64], cfg.embeddings)  # warm-up: first-call costs are not the encoder's
    print(
        f"encoder: {encoder_name(cfg.embeddings)}; N = {len(ds)} new rows; load average {os.getloadavg()[0]:.2f}"
    )
    (w_embed, c_embed) = timed(lambda: embed(texts, cfg.embeddings), args.repeat)
    (w_plain, c_plain) = timed(lambda: dedup_stage.run(cfg, ds), args.repeat)
    print("  wall s (x embed N) / CPU s (x embed N)")
    print(f"  embed N alone             {w_embed:8.2f} (1.00x) / {c_embed:8.2f} (1.00x)")
    print(
        f"  dedup N (no reference)    {w_plain:8.2f} ({w_plain / w_embed:.2f}x) / "
        f"{c_plain:8.2f} ({c_plain / c_embed:.2f}x)"
    )
    for m in args.refs:
        if m > len(pool):
            print(f"  {m}: only {len(pool)} reference rows available; skipped")
            continue
        path = tmp / f"reference-{m}.jsonl"
        with path.open("w", encoding="utf-8") as fh:
            for row in pool[:m]:
                fh.write(json.dumps(row) + "\n")
        with_ref = cfg.model_copy(update={"dedup": cfg.dedup.model_copy(update={"against": [str(path)]})})
        results = []
        (w_cold, c_cold) = timed(lambda c=with_ref, out=results: out.append(dedup_stage.run(c, ds)), 1)
        (w_warm, c_warm) = timed(lambda c=with_ref: dedup_stage.run(c, ds), args.repeat)
        removed = len(results[0].splits["removed"])
        print(f"  against M = {m} rows ({removed} new rows removed as reference duplicates)")
        print(
            f"    first round (cold cache) {w_cold:8.2f} ({w_cold / w_embed:.2f}x) / "
            f"{c_cold:8.2f} ({c_cold / c_embed:.2f}x)"
        )
        print(
            f"    later round (warm cache) {w_warm:8.2f} ({w_warm / w_embed:.2f}x) / "
            f"{c_warm:8.2f} ({c_warm / c_embed:.2f}x); the reference adds {c_warm - c_plain:+.2f} CPU s"
        )
    print(f"  load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
