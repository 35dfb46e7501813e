"""How good is the semantic-duplicate decision? Precision / recall / F1 against human labels.

- MRPC (Microsoft Research Paraphrase Corpus): binary human paraphrase labels. Threshold chosen on train,
  reported on test.
- STS-B: human similarity 0-5; a pair is a duplicate when people scored it >= 4 ("mostly equivalent,
  unimportant details differ"). Threshold sweep on train+dev, reported on test.
- Natural instructions (LIMA + Alpaca demo, unlabelled): how many pairs of the ~2,000 distinct originals
  each threshold would merge, with examples at the margin, to see what a false merge looks like.

The decision is exactly the one `curate dedup` makes for a pair: equal after `normalize_text`, or cosine
of the configured encoder's normalised embeddings >= threshold (the same for both backends; the ANN
backend's recall against brute force is measured in dedup_speed.py).

Usage: .venv/bin/python benchmarks/dedup_quality.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
from datasets import Dataset
from scipy.stats import spearmanr

from curate.config import Config, DedupConfig, EmbeddingConfig
from curate.models import encode, encoder_name
from curate.stages.dedup import compared_texts, normalize_text

REPO = Path(__file__).resolve().parents[1]
THRESHOLDS = np.round(np.arange(0.50, 1.0, 0.01), 2)
REPORTED = (0.70, 0.75, 0.80, 0.85, 0.90, 0.95)
# A false merge deletes a distinct example, a miss keeps a redundant one: precision first.
PRECISION_TARGET = 0.85


def read_mrpc(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    a, b, y = [], [], []
    with path.open(encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader)  # header: Quality, #1 ID, #2 ID, #1 String, #2 String
        for row in reader:
            y.append(int(row[0]))
            a.append(row[3])
            b.append(row[4])
    return a, b, np.array(y, dtype=bool)


def read_sts(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    a, b, s = [], [], []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            parts = line.rstrip("\n").split("\t")  # genre, file, year, id, score, s1, s2 [, sources]
            if len(parts) < 7:
                continue
            s.append(float(parts[4]))
            a.append(parts[5])
            b.append(parts[6])
    return a, b, np.array(s)


def similarities(a: list[str], b: list[str], emb: EmbeddingConfig) -> np.ndarray:
    """Cosine of each pair as dedup sees it; pairs equal after normalisation count as 1.0 (exact step)."""
    unique = sorted(set(a) | set(b))
    pos = {t: i for i, t in enumerate(unique)}
    vectors = encode(unique, emb)
    ia, ib = [pos[t] for t in a], [pos[t] for t in b]
    cos = np.einsum("ij,ij->i", vectors[ia], vectors[ib])
    exact = np.array([normalize_text(x) == normalize_text(y) for x, y in zip(a, b)])
    return np.where(exact, 1.0, cos)


def prf(sim: np.ndarray, y: np.ndarray, t: float) -> tuple[float, float, float]:
    pred = sim >= t
    tp = float((pred & y).sum())
    p = tp / pred.sum() if pred.sum() else 1.0
    r = tp / y.sum() if y.sum() else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def best_f1(sim: np.ndarray, y: np.ndarray) -> tuple[float, tuple[float, float, float]]:
    scores = [(prf(sim, y, t)[2], t) for t in THRESHOLDS]
    _, t = max(scores)
    return float(t), prf(sim, y, t)


def lowest_with_precision(sim: np.ndarray, y: np.ndarray, target: float) -> float | None:
    for t in THRESHOLDS:
        if prf(sim, y, t)[0] >= target:
            return float(t)
    return None


def table(title: str, sim: np.ndarray, y: np.ndarray, extra: tuple[float, ...] = ()) -> None:
    print(
        f"  {title}: {len(y)} pairs, {y.mean():.0%} positive (always-duplicate baseline F1 "
        f"{prf(np.ones_like(sim), y, 0.5)[2]:.3f})"
    )
    print("    threshold   P      R      F1")
    for t in sorted(set(REPORTED) | set(extra)):
        p, r, f = prf(sim, y, t)
        print(f"    {t:9.2f}   {p:.3f}  {r:.3f}  {f:.3f}")


def instructions(data: Path, emb: EmbeddingConfig) -> None:
    """Unlabelled, in-domain: what each threshold merges among distinct LIMA + Alpaca instructions."""
    rows = []
    for rel in ("alpaca/alpaca_en_demo.json", "lima/lima_llamafactory.json"):
        rows += [
            {"instruction": r["instruction"], "input": r.get("input") or ""}
            for r in json.loads((data / "instructions" / rel).read_text(encoding="utf-8"))
        ]
    texts, _ = compared_texts(Dataset.from_list(rows), DedupConfig())
    keys = {}
    texts = [keys.setdefault(normalize_text(t), t) for t in texts if normalize_text(t) not in keys]
    x = encode(texts, emb)
    s = x @ x.T
    iu = np.triu_indices(len(x), 1)
    v = s[iu]
    print(
        f"\nnatural instructions (LIMA + Alpaca demo): {len(texts)} distinct after the exact step; "
        "pairs merged at each threshold"
    )
    print("    " + "  ".join(f"{t:.2f}: {(v >= t).sum()}" for t in REPORTED))
    for lo, hi in ((0.80, 0.85), (0.85, 0.90), (0.90, 0.95)):
        idx = np.nonzero((v >= lo) & (v < hi))[0][:6]
        print(f"    examples in [{lo:.2f}, {hi:.2f}):")
        for k in idx:
            a, b = texts[iu[0][k]], texts[iu[1][k]]
            print(f"      {v[k]:.3f}  {a[:70]!r}  ~  {b[:70]!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    args = parser.parse_args()
    emb = EmbeddingConfig()
    default = Config().dedup.threshold
    print(f"encoder: {encoder_name(emb)}; configured default dedup.threshold = {default}")

    t0 = time.perf_counter()
    mrpc = args.data / "pairs" / "mrpc"
    tr_a, tr_b, tr_y = read_mrpc(mrpc / "msr_paraphrase_train.txt")
    te_a, te_b, te_y = read_mrpc(mrpc / "msr_paraphrase_test.txt")
    tr_sim, te_sim = similarities(tr_a, tr_b, emb), similarities(te_a, te_b, emb)
    t_mrpc, _ = best_f1(tr_sim, tr_y)
    t_mrpc_test, (p, r, f) = best_f1(te_sim, te_y)
    print("\nMRPC (human paraphrase labels)")
    table("test", te_sim, te_y, (t_mrpc, default))
    print(
        f"    F1-max threshold on train: {t_mrpc:.2f} -> test P/R/F1 "
        + "/".join(f"{v:.3f}" for v in prf(te_sim, te_y, t_mrpc))
    )
    print(f"    F1-max threshold on test (for the reference figure): {t_mrpc_test:.2f} -> F1 {f:.3f}")

    sts = args.data / "pairs" / "stsbenchmark"
    fit = [read_sts(sts / f"sts-{s}.csv") for s in ("train", "dev")]
    fa = [t for x in fit for t in x[0]]
    fb = [t for x in fit for t in x[1]]
    fs = np.concatenate([x[2] for x in fit])
    ta, tb, ts = read_sts(sts / "sts-test.csv")
    f_sim, t_sim = similarities(fa, fb, emb), similarities(ta, tb, emb)
    rho = spearmanr(t_sim, ts).statistic
    print(
        f"\nSTS-B (human similarity 0-5; duplicate = score >= 4); Spearman rho(cosine, score) on test = {rho:.3f}"
    )
    fy, ty = fs >= 4.0, ts >= 4.0
    t_sts, _ = best_f1(f_sim, fy)
    t_p90 = lowest_with_precision(f_sim, fy, PRECISION_TARGET)
    table("test", t_sim, ty, (t_sts, default) + ((t_p90,) if t_p90 else ()))
    print(
        f"    F1-max threshold on train+dev: {t_sts:.2f} -> test P/R/F1 "
        + "/".join(f"{v:.3f}" for v in prf(t_sim, ty, t_sts))
    )
    if t_p90 is not None:
        print(
            f"    lowest threshold with precision >= {PRECISION_TARGET} on train+dev: {t_p90:.2f} -> test P/R/F1 "
            + "/".join(f"{v:.3f}" for v in prf(t_sim, ty, t_p90))
        )
    # Near-identical pairs (people: 5 = completely equivalent) should be caught at the default.
    p5 = ts >= 4.8
    print(
        f"    recall of pairs scored >= 4.8 at the default {default}: {(t_sim[p5] >= default).mean():.3f} "
        f"({p5.sum()} pairs)"
    )
    below3 = ts < 3.0
    print(
        f"    share of pairs scored < 3 (not duplicates) removed at the default: "
        f"{(t_sim[below3] >= default).mean():.4f} ({below3.sum()} pairs)"
    )

    instructions(args.data, emb)

    print("\nsummary")
    print(
        f"  MRPC F1-max threshold (train) {t_mrpc:.2f}; STS-B F1-max threshold (train+dev) {t_sts:.2f}; "
        f"STS-B precision>={PRECISION_TARGET} threshold (train+dev) {t_p90}"
    )
    for name, sim, y in (("MRPC test", te_sim, te_y), ("STS-B test", t_sim, ty)):
        p, r, f = prf(sim, y, default)
        print(f"  at the default {default}: {name} P {p:.3f} R {r:.3f} F1 {f:.3f}")
    print(f"  ({time.perf_counter() - t0:.0f}s)")


if __name__ == "__main__":
    main()
