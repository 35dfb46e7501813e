"""Dedup speed against baselines measured in the same run, and ANN recall / growth.

1. 20k realistic rows: the LIMA + Alpaca demo instructions, repeated with perturbations (case, whitespace,
   punctuation = exact duplicates after normalisation; prefixes, suffixes, dropped or swapped words,
   typos, synonyms = near-duplicates), so every row's original is known. Timed with the same encoder:
     curate dedup end to end  /  (a) embedding the same texts only   (target <= 1.10)
                              /  (b) SemHash self_deduplicate          (target <= 1.00)
                              /  (c) distilabel EmbeddingGeneration + FaissNearestNeighbour + EmbeddingDedup
   plus what each kept: false merges (a row removed for a row of another original) and originals lost.
2. ANN backend vs brute force on the real embeddings (pair recall), by probes.
3. Synthetic vectors 100k -> 1M through the ANN path: time, growth, recall of planted near-duplicates
   (and of every pair, against brute force, at the smallest size).

Usage: .venv/bin/python benchmarks/dedup_speed.py [--rows 20000] [--rounds 2] [--ann-sizes 100000,...,1000000]
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
from datasets import Dataset

from curate.config import Config, DedupConfig, EmbeddingConfig
from curate.models import embedded_encoder_path, encode, encoder_name, load_encoder
from curate.stages.dedup import ann_params, dedup, normalize_text, similar_pairs

REPO = Path(__file__).resolve().parents[1]

PREFIXES = ["Please ", "Can you help: ", "Quick question: ", "I need this: ", "Hey, "]
SUFFIXES = [" Thanks!", " Please be concise.", " Explain briefly.", " Answer in detail.", " Thank you."]
SYNONYMS = {
    "describe": "explain",
    "explain": "describe",
    "write": "compose",
    "list": "name",
    "create": "make",
    "give": "provide",
    "generate": "produce",
    "what": "which",
    "how": "in what way",
    "find": "identify",
    "make": "create",
    "best": "top",
    "good": "great",
    "use": "utilize",
}


# ------------------------------------------------------------------------------------------- data


def originals(data: Path) -> list[str]:
    rows = []
    for rel in ("alpaca/alpaca_en_demo.json", "lima/lima_llamafactory.json"):
        rows += json.loads((data / "instructions" / rel).read_text(encoding="utf-8"))
    # the text dedup compares by default: instruction (+ Alpaca's input)
    return [r["instruction"] + (f"\n\n{r['input']}" if (r.get("input") or "").strip() else "") for r in rows]


def _exact_variant(text: str, rng: np.random.Generator) -> str:
    ops = [
        lambda t: t.lower(),
        lambda t: t.upper() if len(t) < 80 else t.swapcase(),
        lambda t: re.sub(" ", lambda _: " " * int(rng.integers(1, 3)), t),
        lambda t: f"  {t}\n",
        lambda t: t.rstrip("?.!") + rng.choice(["", "!", "?!", " ..."]),
        lambda t: t.replace(",", ""),
    ]
    for k in rng.choice(len(ops), int(rng.integers(1, 3)), replace=False):
        text = ops[k](text)
    return text


def _semantic_variant(text: str, rng: np.random.Generator) -> str:
    def drop(t: str) -> str:
        w = t.split(" ")
        return " ".join(w[:i] + w[i + 1 :]) if len(w) > 3 and (i := int(rng.integers(len(w)))) >= 0 else t

    def swap(t: str) -> str:
        w = t.split(" ")
        if len(w) > 3:
            i = int(rng.integers(len(w) - 1))
            w[i], w[i + 1] = w[i + 1], w[i]
        return " ".join(w)

    def typo(t: str) -> str:
        w = t.split(" ")
        long = [i for i, x in enumerate(w) if len(x) > 4]
        if long:
            i = long[int(rng.integers(len(long)))]
            j = int(rng.integers(1, len(w[i]) - 2))
            x = w[i]
            w[i] = x[:j] + x[j + 1] + x[j] + x[j + 2 :]
        return " ".join(w)

    def synonym(t: str) -> str:
        w = t.split(" ")
        hits = [i for i, x in enumerate(w) if x.lower() in SYNONYMS]
        if hits:
            i = hits[int(rng.integers(len(hits)))]
            w[i] = SYNONYMS[w[i].lower()]
        return " ".join(w)

    ops = [
        lambda t: rng.choice(PREFIXES) + t[:1].lower() + t[1:],
        lambda t: t + rng.choice(SUFFIXES),
        drop,
        swap,
        typo,
        synonym,
    ]
    for k in rng.choice(len(ops), int(rng.integers(1, 3)), replace=False):
        text = ops[k](text)
    return text


def realistic_rows(data: Path, n: int, seed: int = 0) -> tuple[list[str], np.ndarray, int]:
    """n rows: every original once, then perturbed copies; returns texts, origin of each row, #origins.

    The origin is the first original with the same normalised text (the demo sets repeat a few rows).
    """
    base = originals(data)
    key_origin: dict[str, int] = {}
    base_origin = [key_origin.setdefault(normalize_text(t), i) for i, t in enumerate(base)]
    rng = np.random.default_rng(seed)
    texts, origin = list(base), list(base_origin)
    for _ in range(n - len(base)):
        i = int(rng.integers(len(base)))
        variant = _exact_variant(base[i], rng) if rng.random() < 0.35 else _semantic_variant(base[i], rng)
        if rng.random() < 0.3:
            variant = _exact_variant(variant, rng)
        texts.append(variant)
        origin.append(base_origin[i])
    order = rng.permutation(n)  # copies interleaved with originals, as generated data would be
    return [texts[i] for i in order], np.array(origin)[order], len(set(base_origin))


# ---------------------------------------------------------------------------------------- methods


CPU: dict[str, float] = {}  # "last": process CPU seconds of the last timed call


def timed(fn, *args, **kw) -> tuple[float, Any]:
    """Wall seconds of fn(...); the process CPU seconds are kept too (steadier on a shared machine)."""
    gc.collect()
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn(*args, **kw)
    seconds = time.perf_counter() - t0
    CPU["last"] = time.process_time() - c0
    return seconds, out


def run_curate(texts: list[str], threshold: float, emb: EmbeddingConfig) -> dict[str, Any]:
    ds = Dataset.from_dict({"id": [str(i) for i in range(len(texts))], "instruction": texts})
    cfg = DedupConfig(threshold=threshold)
    seconds, (kept, removed, stats) = timed(dedup, ds, cfg, emb)
    cpu = CPU["last"]
    kept_rows = np.array([int(i) for i in kept["id"]])
    pairs = [(int(r), int(k)) for r, k in zip(removed["id"], removed["duplicate_of"])]
    return {"seconds": seconds, "cpu": cpu, "kept_rows": kept_rows, "removed_pairs": pairs, "stats": stats}


def run_semhash(texts: list[str], threshold: float, emb: EmbeddingConfig) -> dict[str, Any]:
    from semhash import SemHash

    model = load_encoder(emb)

    def go():
        sh = SemHash.from_records(records=texts, model=model)
        return sh.self_deduplicate(threshold=threshold)

    seconds, result = timed(go)
    cpu = CPU["last"]
    first_row: dict[str, int] = {}
    for i, t in enumerate(texts):
        first_row.setdefault(t, i)
    kept_rows = np.array([first_row[t] for t in result.selected])
    pairs = [(first_row[d.record], first_row[d.duplicate_of]) for d in result.filtered]
    return {"seconds": seconds, "cpu": cpu, "kept_rows": kept_rows, "removed_pairs": pairs}


def run_distilabel(texts: list[str], threshold: float, emb: EmbeddingConfig) -> dict[str, Any]:
    import faiss
    from distilabel.models.embeddings import SentenceTransformerEmbeddings
    from distilabel.steps import EmbeddingDedup, EmbeddingGeneration, FaissNearestNeighbour

    model = str(embedded_encoder_path()) if emb.model is None else emb.model
    generate = EmbeddingGeneration(
        embeddings=SentenceTransformerEmbeddings(model=model, device=emb.device),
        input_batch_size=emb.batch_size,
    )
    nn = FaissNearestNeighbour(k=10, metric_type=faiss.METRIC_INNER_PRODUCT)
    dd = EmbeddingDedup(threshold=threshold)
    for step in (generate, nn, dd):
        step.load()  # model loading is not timed, for any method

    def go():
        rows: list[dict[str, Any]] = []
        for s in range(0, len(texts), emb.batch_size):  # distilabel feeds the step input_batch_size rows
            rows += next(generate.process([{"text": t} for t in texts[s : s + emb.batch_size]]))
        rows = next(nn.process(rows))
        return next(dd.process(rows))

    seconds, rows = timed(go)
    kept_rows = np.array([i for i, r in enumerate(rows) if r["keep_row_after_embedding_filtering"]])
    return {"seconds": seconds, "cpu": CPU["last"], "kept_rows": kept_rows, "removed_pairs": None}


def embed_only(texts: list[str], emb: EmbeddingConfig) -> dict[str, Any]:
    seconds, vectors = timed(encode, texts, emb)
    return {"seconds": seconds, "cpu": CPU["last"], "vectors": vectors}


def quality(result: dict[str, Any], origin: np.ndarray, n_origins: int) -> str:
    kept = result["kept_rows"]
    lost = n_origins - len(set(origin[kept].tolist()))
    text = f"kept {len(kept)} (ideal {n_origins}), originals lost {lost}"
    if result["removed_pairs"] is not None:
        wrong = sum(origin[r] != origin[k] for r, k in result["removed_pairs"])
        text += f", false merges {wrong} of {len(result['removed_pairs'])} removed"
    return text


# -------------------------------------------------------------------------------------------- ANN


def pair_set(a: np.ndarray, b: np.ndarray) -> set[tuple[int, int]]:
    return set(zip(a.tolist(), b.tolist()))


def synthetic(n: int, topics: np.ndarray, seed: int = 0, dup_share: float = 0.05):
    """n unit vectors around real embeddings (topics) with planted near-duplicates (cosine 0.86-0.99)."""
    rng = np.random.default_rng(seed)
    d = topics.shape[1]
    x = np.empty((n, d), np.float32)
    t = rng.integers(0, len(topics), n)
    spread = 0.6  # cosine of a point to its topic: points of one topic are ~0.36 similar
    for s in range(0, n, 100_000):
        e = min(n, s + 100_000)
        g = rng.standard_normal((e - s, d), dtype=np.float32)
        g /= np.linalg.norm(g, axis=1, keepdims=True)
        x[s:e] = spread * topics[t[s:e]] + np.sqrt(1 - spread**2) * g
        x[s:e] /= np.linalg.norm(x[s:e], axis=1, keepdims=True)
    nd = int(n * dup_share)
    src = rng.choice(n - nd, nd, replace=False)
    cos = rng.uniform(0.86, 0.99, nd).astype(np.float32)[:, None]
    g = rng.standard_normal((nd, d), dtype=np.float32)
    g -= (g * x[src]).sum(1, keepdims=True) * x[src]  # orthogonal to the source: exact cosine `cos`
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    x[n - nd :] = cos * x[src] + np.sqrt(1 - cos**2) * g
    x[n - nd :] /= np.linalg.norm(x[n - nd :], axis=1, keepdims=True)
    return x, src, np.arange(n - nd, n)


def ann_section(real: np.ndarray, threshold: float, sizes: list[int], topics: np.ndarray) -> None:
    print(f"\n2. ANN vs brute force on the {len(real)} real embeddings (pairs with cosine >= t)")
    for t in sorted({threshold, 0.8}):
        sec_e, (a, b, _) = timed(similar_pairs, real, t, "exact")
        exact = pair_set(a, b)
        line = f"   t={t:.2f}: exact {len(exact)} pairs in {sec_e:.1f}s;"
        for probe in (1, 2, 4, 8):
            sec, (a, b, _) = timed(similar_pairs, real, t, "faiss", probe)
            found = pair_set(a, b)
            line += f"  probe {probe}: recall {len(found & exact) / max(1, len(exact)):.4f} ({sec:.1f}s)"
            if found - exact:  # would be a scoring bug: ANN scores are exact dot products
                line += f" [{len(found - exact)} pairs not in brute force]"
        print(line)

    if not sizes:
        return
    print(f"\n3. ANN path on synthetic vectors (t={threshold}, default {ann_params(sizes[0])[1]} probes)")
    print("   rows      cells  seconds  growth(time)  growth(rows)  planted>=t recall")
    base = None
    for n in sizes:
        x, src, dup = synthetic(n, topics)
        cos = np.einsum("ij,ij->i", x[src], x[dup])
        must = pair_set(np.minimum(src, dup)[cos >= threshold], np.maximum(src, dup)[cos >= threshold])
        sec, (a, b, _) = timed(similar_pairs, x, threshold, "faiss")
        found = pair_set(a, b)
        base = base or sec
        nlist, _ = ann_params(n)
        print(
            f"   {n:>8}  {nlist:>5}  {sec:7.1f}  {sec / base:10.2f}x  {n / sizes[0]:10.1f}x  "
            f"{len(found & must) / max(1, len(must)):.4f} of {len(must)}"
        )
        if n == sizes[0]:
            sec_e, (ea, eb, _) = timed(similar_pairs, x, threshold, "exact")
            exact = pair_set(ea, eb)
            print(
                f"   {n:>8}  brute force {sec_e:.1f}s, {len(exact)} pairs; ANN recall of all pairs "
                f"{len(found & exact) / max(1, len(exact)):.4f}, ANN pairs not in brute force {len(found - exact)}"
            )
        del x
        gc.collect()


# ------------------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="timing rounds of embed / curate / semhash (the minimum is reported)",
    )
    parser.add_argument("--ann-sizes", default="100000,200000,500000,1000000")
    parser.add_argument("--skip-distilabel", action="store_true", help="leave out baseline (c), the slowest")
    parser.add_argument(
        "--only-ann", action="store_true", help="only sections 2 and 3 (ANN recall and growth)"
    )
    args = parser.parse_args()
    emb = EmbeddingConfig()
    threshold = Config().dedup.threshold
    sizes = [int(s) for s in args.ann_sizes.split(",") if s]

    texts, origin, n_origins = realistic_rows(args.data, args.rows)
    n_exact_unique = len({normalize_text(t) for t in texts})
    print(
        f"encoder {encoder_name(emb)}, threshold {threshold}; {len(texts)} rows from {n_origins} originals, "
        f"{n_exact_unique} distinct after normalisation"
    )
    encode(texts[:256], emb)  # load and warm the model once, outside every timing
    if args.only_ann:
        ann_section(encode(texts, emb), threshold, sizes, encode(originals(args.data), emb))
        return

    runs: dict[str, list[dict[str, Any]]] = {"embed": [], "curate": [], "semhash": []}
    if not args.skip_distilabel:
        runs["distilabel"] = []
    for r in range(args.rounds):
        runs["embed"].append(embed_only(texts, emb))
        runs["curate"].append(run_curate(texts, threshold, emb))
        runs["semhash"].append(run_semhash(texts, threshold, emb))
        if r == 0 and not args.skip_distilabel:  # far from any target and the slowest: one round is enough
            runs["distilabel"].append(run_distilabel(texts, threshold, emb))
        print(
            f"   round {r + 1}: "
            + ", ".join(
                f"{k} {v[-1]['seconds']:.1f}s (cpu {v[-1]['cpu']:.1f}s)"
                for k, v in runs.items()
                if len(v) == r + 1
            ),
            flush=True,
        )
    best = {k: min(v, key=lambda x: x["seconds"]) for k, v in runs.items()}
    sec = {k: v["seconds"] for k, v in best.items()}
    cpu = {k: min(x["cpu"] for x in v) for k, v in runs.items()}
    st = best["curate"]["stats"]
    print(f"\n1. {len(texts)} rows, best of {args.rounds} rounds")
    print(f"   embed only            {sec['embed']:7.1f}s")
    print(
        f"   curate dedup          {sec['curate']:7.1f}s  (embedded {len({normalize_text(t) for t in texts})} "
        f"texts in {st['seconds']['embed_s']:.1f}s; search {st['seconds']['search_s']:.2f}s, backend "
        f"{st['backend']}; everything but embedding {sec['curate'] - st['seconds']['embed_s']:.1f}s)"
    )
    print(f"   semhash               {sec['semhash']:7.1f}s")
    if "distilabel" in sec:
        print(f"   distilabel            {sec['distilabel']:7.1f}s")
    print("   ratios (wall, best round; CPU seconds of the process, best round)")
    for k, target in (("embed", "<= 1.10"), ("semhash", "<= 1.00"), ("distilabel", "")):
        if k not in sec:
            continue
        print(
            f"   curate / {k:<10}  wall {sec['curate'] / sec[k]:.3f}  cpu {cpu['curate'] / cpu[k]:.3f}  "
            f"{'(target ' + target + ')' if target else ''}"
        )
    print("   what they kept (known originals):")
    for k in [m for m in ("curate", "semhash", "distilabel") if m in best]:
        print(f"     {k:<11} {quality(best[k], origin, n_origins)}")

    topics = encode(originals(args.data), emb)
    ann_section(best["embed"]["vectors"], threshold, sizes, topics)


if __name__ == "__main__":
    main()
