"""Review throughput: `curate push` and `curate export` on 10k pairs against the embedded Argilla.

Baseline, measured in the same run on the same server: the argilla SDK's plain `dataset.records.log`
of exactly the same records (same fields, metadata, suggestions, vectors) into a dataset with the same
settings. Reported: push records/s divided by log records/s (target >= 1.0; push also validates,
checks what is already there, quarantines and records provenance), and export records/s (pull every
record with its responses, apply the vote policy, agreement, write the DatasetDict, parquet and card).

Each side writes into a fresh dataset; the order alternates over `--rounds` so that neither always
gets the emptier database. On a shared machine the wall-clock rates move with other load, so when the
server is started here the script also reports the server's CPU milliseconds per record for each
side (argilla-server + worker + Redis, from psutil), which other processes do not disturb.

Usage: .venv/bin/python benchmarks/review_throughput.py [--n 10000] [--rounds 2] [--data-dir DIR]
(uses ARGILLA_API_URL/ARGILLA_API_KEY when set, else starts an embedded server in a temp dir)
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from datasets import Dataset

WORDS = [
    "model",
    "data",
    "answer",
    "question",
    "example",
    "careful",
    "result",
    "simple",
    "explain",
    "because",
    "first",
    "second",
    "value",
    "people",
    "system",
    "language",
    "common",
    "reason",
    "method",
    "small",
    "large",
    "useful",
    "clear",
    "step",
    "number",
    "time",
    "point",
    "different",
    "important",
    "general",
    "specific",
    "context",
    "detail",
    "summary",
    "review",
]


def synthetic_rows(n: int, dim: int = 384, seed: int = 0) -> list[dict]:
    """Scored preference rows with realistic lengths (prompt ~25 words, responses ~120) and 384-d vectors."""
    rng = random.Random(seed)
    vecs = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)

    def text(k: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(k)).capitalize() + "."

    return [
        {
            "id": f"bench{i}",
            "instruction": f"{i}: {text(25)}",
            "method": rng.choice(["self-instruct", "magpie"]),
            "generations": [text(120), text(120)],
            "generation_models": ["gen-a", "gen-b"],
            "ratings": [rng.randint(1, 5), rng.randint(1, 5)],
            "judge_model": "judge-x",
            "complexity": 1 + 5 * rng.random(),
            "quality": 1 + 5 * rng.random(),
            "quality_scores": [1 + 5 * rng.random(), 1 + 5 * rng.random()],
            "deita_score": 36 * rng.random(),
            "dedup_cluster": i,
            "dedup_cluster_size": 1,
            "embedding": vecs[i].tolist(),
        }
        for i in range(n)
    ]


def sdk_log(client, cfg, ds: Dataset, workspace: str) -> float:
    """The baseline: same settings, same records, one `dataset.records.log` call. Returns seconds."""
    import argilla as rg

    from curate.stages.review import pairs as pr
    from curate.stages.review import settings as st
    from curate.stages.review.client import get_workspace
    from curate.stages.review.push import to_record

    pairs, _ = pr.to_pairs(ds, cfg.review.seed)
    spec = st.build_spec(pr.metadata_names(pairs), len(pairs[0]["embedding"]), cfg.review.min_submitted)
    dataset = rg.Dataset(
        name=f"log-{uuid.uuid4().hex[:6]}",
        workspace=get_workspace(client, workspace, True),
        settings=st.to_rg_settings(spec, client),
        client=client,
    ).create()
    names = {m.name for m in dataset.settings.metadata}
    records = [
        to_record(p, dataset, names, True) for p in pairs
    ]  # built outside the timer: baseline favoured
    start = time.perf_counter()
    dataset.records.log(records)
    return time.perf_counter() - start


def server_cpu(data_dir: Path | None):
    """A function returning the CPU seconds used so far by the embedded server's processes, or None."""
    if data_dir is None:
        return lambda: None
    import json

    import psutil

    state = json.loads((data_dir / "server.json").read_text())
    procs = [psutil.Process(p["pid"]) for p in state["pids"].values()]
    return lambda: sum(sum(p.cpu_times()[:2]) for p in procs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--reviewed", type=int, default=2_000, help="records given 2 human responses")
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()

    import os

    import argilla as rg

    from curate.config import load_config
    from curate.stages.export.export import export
    from curate.stages.review.client import iter_raw_records, require_dataset
    from curate.stages.review.push import push

    started_here = None
    if os.environ.get("ARGILLA_API_URL"):
        url, key = os.environ["ARGILLA_API_URL"], os.environ["ARGILLA_API_KEY"]
    else:
        from curate.server.launcher import start

        started_here = args.data_dir or Path(tempfile.mkdtemp(prefix="curate-bench-"))
        info = start(data_dir=started_here)
        url, key = info.url, info.api_key
    tmp = Path(tempfile.mkdtemp(prefix="curate-bench-out-"))
    cfg = load_config(
        overrides={
            "argilla": {"api_url": url, "api_key": key},
            "run": {"runs_dir": str(tmp)},
            "export": {"include_unreviewed": True},
        },
        environ={},
    )
    client = rg.Argilla(api_url=url, api_key=key, timeout=600)
    workspace = f"bench-{uuid.uuid4().hex[:6]}"
    ds = Dataset.from_list(synthetic_rows(args.n))
    print(f"{args.n} pairs, server {url}")

    push_s, log_s, last = [], [], None
    cpu = server_cpu(started_here)
    cpu_ms: dict[str, list[float]] = {"push": [], "log": []}
    try:
        for r in range(args.rounds):
            order = ("log", "push") if r % 2 == 0 else ("push", "log")
            for side in order:
                c0 = cpu()
                if side == "log":
                    log_s.append(sdk_log(client, cfg, ds, workspace))
                    rate = args.n / log_s[-1]
                else:
                    last = f"push-{uuid.uuid4().hex[:6]}"
                    t0 = time.perf_counter()
                    stats = push(ds, cfg, last, workspace, client=client, progress=False)
                    push_s.append(time.perf_counter() - t0)
                    assert stats["created"] == args.n, stats
                    rate = args.n / push_s[-1]
                used = ""
                if c0 is not None:
                    cpu_ms[side].append(1000 * (cpu() - c0) / args.n)
                    used = f", server CPU {cpu_ms[side][-1]:5.1f} ms/record"
                label = "sdk records.log" if side == "log" else "curate push    "
                print(f"  round {r + 1}: {label} {rate:8.1f} records/s{used}", flush=True)

        # human responses on part of the last pushed dataset (bulk upsert on behalf of 2 annotators)
        from curate.server.users import add_user

        dataset = require_dataset(client, last, workspace)
        users = [
            add_user(url, key, f"bench-{uuid.uuid4().hex[:6]}", "annotator", [workspace]) for _ in range(2)
        ]
        ids = [
            u["id"]
            for u in client.api.http_client.get("/api/v1/users").json()["items"]
            if u["username"] in {x.username for x in users}
        ]
        raws = list(iter_raw_records(client, dataset, include=()))[: args.reviewed]
        rng = random.Random(1)
        for i in range(0, len(raws), 250):
            items = [
                {
                    "id": raw["id"],
                    "responses": [
                        {
                            "user_id": uid,
                            "status": "submitted",
                            "values": {"preference": {"value": rng.choice(["A", "B", "A", "B", "tie"])}},
                        }
                        for uid in ids
                    ],
                }
                for raw in raws[i : i + 250]
            ]
            client.api.http_client.put(
                f"/api/v1/datasets/{dataset.id}/records/bulk", json={"items": items}
            ).raise_for_status()
        t0 = time.perf_counter()
        summary = export(cfg, last, workspace, tmp / "export", client=client)
        export_s = time.perf_counter() - t0
    finally:
        if started_here is not None and args.data_dir is None:
            from curate.server.launcher import stop

            stop(data_dir=started_here)

    push_rate = args.n / statistics.median(push_s)
    log_rate = args.n / statistics.median(log_s)
    print()
    print(f"push:   {push_rate:8.1f} records/s (median of {len(push_s)})")
    print(f"sdk log:{log_rate:8.1f} records/s (median of {len(log_s)})")
    print(f"push / sdk log = {push_rate / log_rate:.2f}  (target >= 1.0)")
    if cpu_ms["push"]:
        p, g = statistics.median(cpu_ms["push"]), statistics.median(cpu_ms["log"])
        print(f"server CPU per record: push {p:.1f} ms, sdk log {g:.1f} ms (log / push = {g / p:.2f})")
    print(
        f"export: {args.n / export_s:8.1f} records/s ({args.n} records, {args.reviewed} with 2 responses, "
        f"{summary['pairs']} pairs written, pull {summary['pull_seconds']}s of {export_s:.1f}s)"
    )


if __name__ == "__main__":
    main()
