"""Fit the embedded quality head (curate/scoring/head.py) on training data, and measure it on PandaLM.

Training pairs (never an evaluation set):
- OASST en_100 trees: sibling assistant replies with a human rank (the better-ranked one wins);
- Alpaca demo + LIMA single-turn rows: the real response against a constructed failure of one of five
  kinds, in turn: the response of another row (off-topic), its first quarter (cut short), its first
  sentence looped, the prompt's last paragraph parroted, half of it running on into "### Instruction:".

Evaluation (read only, never fitted): PandaLM non-tie items, share where the higher-scored response is
the one the human majority preferred; in the same run "the longer response wins" and the gpt-3.5 judge.

    python benchmarks/quality_head.py          # evaluate the shipped head
    python benchmarks/quality_head.py --fit    # refit and write curate/data/quality_head.json
    python benchmarks/quality_head.py --cv     # model choice on the training data only (no PandaLM)

`--cv` compares the five-feature head with heads that also see the embeddings themselves (the
response's, and its element-wise product with the instruction's), by 5-fold cross-validation on the
training pairs, grouped by OASST tree: which design to ship is decided there, never on PandaLM.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import Counter
from datetime import date
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from curate.scoring import head
from curate.scoring.prompts import join_instruction

DATA = Path(os.environ.get("CURATE_SHARED_DATA", REPO.parent / "shared" / "data"))
FAILURES = ("offtopic", "truncated", "loop", "parrot", "run-on")


def oasst_pairs(trees: list[int] | None = None) -> list[tuple[str, str, str]]:
    """(prompt, better reply, worse reply) for every pair of ranked sibling assistant replies; `trees`,
    if given, gets each pair's tree number (the unit of a grouped split)."""
    out = []

    def walk(message: dict, tree: int) -> None:
        replies = [r for r in message.get("replies", []) if r.get("rank") is not None and r["role"] == "assistant"]
        for a in replies:
            for b in replies:
                if a["rank"] < b["rank"]:
                    out.append((message["text"], a["text"], b["text"]))
                    if trees is not None:
                        trees.append(tree)
        for r in message.get("replies", []):
            walk(r, tree)

    for tree, line in enumerate((DATA / "preference/oasst/en_100_tree.jsonl").read_text("utf-8").splitlines()):
        walk(json.loads(line)["prompt"], tree)
    return out


def constructed_pairs(seed: int = 0) -> list[tuple[str, str, str]]:
    rng = np.random.default_rng(seed)
    alpaca = json.loads((DATA / "instructions/alpaca/alpaca_en_demo.json").read_text("utf-8"))
    lima = json.loads((DATA / "instructions/lima/lima_llamafactory.json").read_text("utf-8"))
    pool = [(join_instruction(r["instruction"], r.get("input")), r["output"]) for r in alpaca]
    pool += [(r["instruction"], r["output"]) for r in lima if not r.get("history")]
    pool = [p for p in pool if len(p[1].split()) >= 8]
    out = []
    for i, (q, r) in enumerate(pool):
        kind, words = FAILURES[i % len(FAILURES)], r.split()
        if kind == "offtopic":
            bad = pool[(i + 1 + int(rng.integers(len(pool) - 1))) % len(pool)][1]
        elif kind == "truncated":
            bad = " ".join(words[: max(1, len(words) // 4)])
        elif kind == "loop":
            first = [s for s in re.split(r"(?<=[.!?])\s+", r) if s.strip()][:1] or [r[:80]]
            bad = " ".join(first * int(rng.integers(3, 7)))
        elif kind == "parrot":
            bad = q.split("\n\n")[-1]
        else:
            other = pool[int(rng.integers(len(pool)))][0]
            bad = " ".join(words[: len(words) // 2]) + "\n\n### Instruction:\n" + other
        out.append((q, r, bad))
    return out


def pandalm() -> tuple[list[str], list[list[str]], np.ndarray, tuple[float, float, int]]:
    rows = json.loads((DATA / "preference/pandalm/testset-v1.json").read_text("utf-8"))
    gpt = {
        r["idx"]: str(r["gpt_result"])
        for r in json.loads((DATA / "preference/pandalm/gpt-3.5-turbo-testset-v1.json").read_text("utf-8"))
    }
    questions, pairs, winner, gpt_hits, gpt_decided = [], [], [], [], []
    for r in rows:
        label, count = Counter([r["annotator1"], r["annotator2"], r["annotator3"]]).most_common(1)[0]
        if count < 2 or label not in (1, 2):
            continue
        questions.append(join_instruction(str(r["instruction"]), str(r["input"]) if r["input"] else None))
        pairs.append([str(r["response1"]), str(r["response2"])])
        winner.append(label)
        gpt_hits.append(gpt.get(r["idx"]) == str(label))
        gpt_decided.append(gpt.get(r["idx"]) in ("1", "2"))
    hits, decided = np.array(gpt_hits), np.array(gpt_decided)
    # gpt-3.5 says "Tie" or nothing usable on some items: a miss here (a scorer always decides), and
    # also shown on its decided items only (the 81.4% quoted in issue 3 is that figure).
    return questions, pairs, np.array(winner), (float(hits.mean()), float(hits[decided].mean()), int(decided.sum()))


def agreement(scores: np.ndarray, winner: np.ndarray) -> float:
    diff = scores[:, 0] - scores[:, 1]
    return float(np.mean(np.where(diff == 0, 0.5, (diff > 0) == (winner == 1))))


def fit_head() -> None:
    oasst, made = oasst_pairs(), constructed_pairs()
    pairs = oasst + made
    better = head.features([p[0] for p in pairs], [p[1] for p in pairs])
    worse = head.features([p[0] for p in pairs], [p[2] for p in pairs])
    coef = head.fit(better, worse)
    u = np.vstack([better, worse]) @ coef
    train_acc = float(np.mean((better - worse) @ coef > 0))
    out = {
        "_about": "Weights of curate's embedded quality head (curate/scoring/head.py), fitted by "
        "benchmarks/quality_head.py --fit. Coefficients only: no training text is shipped.",
        "features": list(head.FEATURES),
        "coef": [round(float(c), 6) for c in coef],
        "utility": {"mean": round(float(u.mean()), 6), "std": round(float(u.std()), 6)},
        "encoder": "all-MiniLM-L6-v2",
        "trained_on": f"{len(oasst)} OASST en_100 ranked sibling pairs (CC BY 4.0) + {len(made)} Alpaca demo / "
        "LIMA single-turn responses vs constructed failures (" + ", ".join(FAILURES) + ")",
        "training_pair_accuracy": round(train_acc, 4),
        "fitted": date.today().isoformat(),
    }
    head.HEAD_FILE.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {head.HEAD_FILE}: coef {dict(zip(head.FEATURES, out['coef']))}, train accuracy {train_acc:.3f}")
    head.load_head.cache_clear()


def cross_validate(folds: int = 5, seed: int = 0) -> None:
    """Held-out pair accuracy of candidate head designs on the training data (grouped k-fold)."""
    from curate.models import encode

    trees: list[int] = []
    oasst, made = oasst_pairs(trees), constructed_pairs()
    pairs = oasst + made
    q, a, b = ([p[i] for p in pairs] for i in range(3))
    fa, fb = head.features(q, a), head.features(q, b)
    eq, ea, eb = encode(q), encode(a), encode(b)
    # Groups: an OASST tree; ten consecutive constructed rows (so no row is on both sides of a split).
    groups = np.r_[trees, 1000 + np.arange(len(made)) // 10]
    rng = np.random.default_rng(seed)
    distinct = np.unique(groups)
    fold = dict(zip(distinct, rng.integers(0, folds, len(distinct))))
    fold_of = np.array([fold[g] for g in groups])
    is_oasst = np.r_[np.ones(len(oasst), bool), np.zeros(len(made), bool)]
    designs = {
        "five features (shipped)": (lambda f, e_q, e_r: f, [1.0]),
        "+ response embedding": (lambda f, e_q, e_r: np.c_[f, e_r], [0.03, 0.1, 0.3, 1.0, 3.0]),
        "+ instruction x response embedding": (lambda f, e_q, e_r: np.c_[f, e_q * e_r], [0.03, 0.1, 0.3, 1.0, 3.0]),
    }
    print(f"{folds}-fold CV on {len(oasst)} OASST + {len(made)} constructed pairs (grouped); held-out accuracy")
    print(f"  {'design':36s} {'C':>5s} {'OASST':>7s} {'constructed':>12s}")
    for name, (design, cs) in designs.items():
        xa, xb = design(fa, eq, ea), design(fb, eq, eb)
        for c in cs:
            hit = np.zeros(len(pairs), bool)
            for k in range(folds):
                train, test = fold_of != k, fold_of == k
                w = head.fit(xa[train], xb[train], c=c)
                hit[test] = (xa[test] - xb[test]) @ w > 0
            print(f"  {name:36s} {c:5g} {hit[is_oasst].mean():7.3f} {hit[~is_oasst].mean():12.3f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fit", action="store_true", help="Refit on the training data and write the weights.")
    ap.add_argument("--cv", action="store_true", help="Compare head designs by CV on the training data, then stop.")
    args = ap.parse_args()
    if args.cv:
        cross_validate()
        return
    if not (DATA / "preference/pandalm/testset-v1.json").exists():
        sys.exit(f"data not found under {DATA} (set CURATE_SHARED_DATA)")
    if args.fit:
        fit_head()
    questions, pairs, winner, gpt = pandalm()
    scores = np.array(head.quality_scores(questions, pairs))
    lengths = np.array([[len(a.split()), len(b.split())] for a, b in pairs], dtype=float)
    print(f"PandaLM non-tie items: {len(pairs)}; quality agreement with the human majority")
    print(f"  {head.head_id():48s} {agreement(scores, winner):.3f}")
    print(f"  {'baseline: the longer response wins':48s} {agreement(lengths, winner):.3f}")
    print(f"  {'baseline: gpt-3.5-turbo judge (PandaLM file)':48s} {gpt[0]:.3f}  ({gpt[1]:.3f} on the {gpt[2]} items it decided)")
    print("goal for the embedded default: >= 0.72")


if __name__ == "__main__":
    main()
