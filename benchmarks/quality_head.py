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
    python benchmarks/quality_head.py --cv --small-model 500   # also the mix with small-model pairs
    python benchmarks/quality_head.py --cv --gpt4   # also the mixes with AlpacaEval's GPT-4 verdicts

`--cv` compares the five-feature head with heads that also see the embeddings themselves (the
response's, and its element-wise product with the instruction's), by 5-fold cross-validation on the
training pairs, grouped by OASST tree: which design to ship is decided there, never on PandaLM. With
`--small-model N` it also scores, and can train on, N pool references paired against SmolLM2-135M's
own answer (generated once, about 25 min on 2 cores, cached under ~/.cache/curate/quality-head). With
`--gpt4` it adds 4,410 pairs of Alpaca-era outputs judged by gpt-4-0314 (AlpacaEval's cached verdicts,
from the alpaca-eval 0.1.7 wheel on PyPI; PandaLM's instructions removed), alone and source-balanced.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from datetime import date
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from scoring_validity import DATA, PANDALM, agreement, gpt_agreement, pandalm  # the same items and measure

from curate.rows import join_input
from curate.scoring import head

FAILURES = ("offtopic", "truncated", "loop", "parrot", "run-on")
SMALL_MODEL_PAIRS = 0  # the shipped head's training mix: no small-model pairs
GPT4_PAIRS = False  # ... and no AlpacaEval GPT-4 verdicts
CACHE = Path.home() / ".cache/curate/quality-head"
# AlpacaEval 0.1.7 is the one release whose wheel carries its annotators' cached verdicts (40 MB; later
# releases fetch them from the Hub). Pinned by digest: the training data must not change under us.
ALPACA_EVAL = (
    "alpaca-eval==0.1.7",
    "alpaca_eval-0.1.7-py3-none-any.whl",
    "38d389bc0281cceb726df8ac110e3ee86149a979021dfa20f7b25a629443f4fd",
)
GPT4_VERDICTS = "alpaca_eval/evaluators_configs/gpt4/annotations_seed0_configs.json"


def oasst_pairs(trees: list[int] | None = None) -> list[tuple[str, str, str]]:
    """(prompt, better reply, worse reply) for every pair of ranked sibling assistant replies; `trees`,
    if given, gets each pair's tree number (the unit of a grouped split)."""
    out = []

    def walk(message: dict, tree: int) -> None:
        replies = [
            r for r in message.get("replies", []) if r.get("rank") is not None and r["role"] == "assistant"
        ]
        for a in replies:
            for b in replies:
                if a["rank"] < b["rank"]:
                    out.append((message["text"], a["text"], b["text"]))
                    if trees is not None:
                        trees.append(tree)
        for r in message.get("replies", []):
            walk(r, tree)

    for tree, line in enumerate(
        (DATA / "preference/oasst/en_100_tree.jsonl").read_text("utf-8").splitlines()
    ):
        walk(json.loads(line)["prompt"], tree)
    return out


def constructed_pairs(seed: int = 0) -> list[tuple[str, str, str]]:
    rng = np.random.default_rng(seed)
    pool = response_pool()
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


def response_pool() -> list[tuple[str, str]]:
    """(instruction, reference response) of the Alpaca demo and LIMA single-turn rows of 8+ words."""
    alpaca = json.loads((DATA / "instructions/alpaca/alpaca_en_demo.json").read_text("utf-8"))
    lima = json.loads((DATA / "instructions/lima/lima_llamafactory.json").read_text("utf-8"))
    pool = [(join_input(r["instruction"], r.get("input")), r["output"]) for r in alpaca]
    pool += [(r["instruction"], r["output"]) for r in lima if not r.get("history")]
    return [p for p in pool if len(p[1].split()) >= 8]


def small_model_pairs(n: int = 500, seed: int = 1) -> list[tuple[str, str, str]]:
    """(instruction, reference, SmolLM2-135M's own response) for n pool rows: the reference is taken to
    win, SPIN's assumption (Chen et al. 2024, "Self-Play Fine-Tuning"). These are realistic weak
    answers (wrong, rambling, vague) where the constructed failures are blatant. The responses are
    generated once with the embedded model and the pipeline's sampling defaults, then cached outside
    the repository (the instructions' licences are non-commercial: nothing of them is shipped)."""
    from llama_cpp import Llama

    from curate.models import embedded_gguf_path, file_sha256

    pool = response_pool()
    rows = [pool[i] for i in np.random.default_rng(seed).permutation(len(pool))[:n]]
    gguf = embedded_gguf_path()
    cache = Path.home() / ".cache/curate/quality-head" / f"smollm2-{file_sha256(gguf)[:8]}-seed{seed}.jsonl"
    cache.parent.mkdir(parents=True, exist_ok=True)
    done = {}
    if cache.exists():
        for line in cache.read_text("utf-8").splitlines():
            r = json.loads(line)
            done[r["instruction"]] = r["response"]
    todo = [q for q, _ in rows if q not in done]
    if todo:
        llm = Llama(model_path=str(gguf), n_ctx=2048, verbose=False, seed=seed)
        with cache.open("a", encoding="utf-8") as out:
            for k, q in enumerate(todo):
                answer = llm.create_chat_completion(
                    [{"role": "user", "content": q}],
                    temperature=0.7,
                    top_p=0.95,
                    max_tokens=256,
                    seed=seed + k,
                )["choices"][0]["message"]["content"]
                done[q] = answer
                out.write(json.dumps({"instruction": q, "response": answer}) + "\n")
                out.flush()
                print(f"\rsmall-model responses: {len(done)}/{n}", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
    return [(q, r, done[q]) for q, r in rows if done[q].strip()]


def gpt4_pairs(groups: list[int] | None = None) -> list[tuple[str, str, str]]:
    """(prompt, preferred output, other output) from AlpacaEval's cached gpt-4-0314 verdicts on pairs of
    Alpaca-era model outputs (text-davinci-003 against 7B-65B open models on AlpacaEval's instructions):
    AI feedback, as in UltraFeedback, on responses like the ones curate scores. Ties, unparsed verdicts and
    identical outputs are dropped, and so is every pair whose instruction is a PandaLM test instruction
    ("identical" and "is" as dedup's exact-duplicate key has it: NFKC, case, punctuation, whitespace).
    `groups`, if given, gets each pair's instruction number (the unit of a grouped split). The wheel is
    downloaded from PyPI once, checked against its digest and read in place; nothing of it is shipped (the
    data licence is CC BY-NC 4.0)."""
    import hashlib
    import subprocess
    import zipfile

    from curate.stages.dedup import normalize_text

    spec, name, digest = ALPACA_EVAL
    wheel = CACHE / name
    if not wheel.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(CACHE), spec], check=True
        )
    if hashlib.sha256(wheel.read_bytes()).hexdigest() != digest:
        sys.exit(f"{wheel}: sha256 differs from the pinned {digest[:12]}...; delete it to download again")
    with zipfile.ZipFile(wheel) as z:
        verdicts = json.loads(z.read(GPT4_VERDICTS))
    held_out = {normalize_text(str(r["instruction"])) for r in json.loads(PANDALM.read_text("utf-8"))}
    number: dict[str, int] = {}
    out = []
    for r in verdicts:
        a, b, key = str(r["output_1"]), str(r["output_2"]), normalize_text(r["instruction"])
        if r["preference"] not in (1, 2) or normalize_text(a) == normalize_text(b) or key in held_out:
            continue
        q = join_input(r["instruction"], r.get("input") or None)
        out.append((q, a, b) if r["preference"] == 1 else (q, b, a))
        if groups is not None:
            groups.append(number.setdefault(key, len(number)))
    return out


def fit_head(small: int, gpt4: bool) -> None:
    oasst, made = oasst_pairs(), constructed_pairs()
    weak = small_model_pairs(small) if small else []
    judged = gpt4_pairs() if gpt4 else []
    pairs = oasst + made + weak + judged
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
        "LIMA single-turn responses vs constructed failures ("
        + ", ".join(FAILURES)
        + ")"
        + (
            f" + {len(weak)} of those responses vs SmolLM2-135M-Instruct's own answer to the row"
            if weak
            else ""
        )
        + (f" + {len(judged)} AlpacaEval gpt-4-0314 pairwise verdicts (alpaca-eval 0.1.7)" if judged else ""),
        "training_pair_accuracy": round(train_acc, 4),
        "fitted": date.today().isoformat(),
    }
    head.HEAD_FILE.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(
        f"wrote {head.HEAD_FILE}: coef {dict(zip(head.FEATURES, out['coef']))}, train accuracy {train_acc:.3f}"
    )
    head.load_head.cache_clear()


def cross_validate(folds: int = 5, seed: int = 0, small: int = 0, gpt4: bool = False) -> None:
    """Held-out pair accuracy of candidate head designs and training mixes (grouped k-fold)."""
    from curate.models import encode

    trees: list[int] = []
    instructions: list[int] = []
    oasst, made = oasst_pairs(trees), constructed_pairs()
    weak = small_model_pairs(small) if small else []
    judged = gpt4_pairs(instructions) if gpt4 else []
    row = {}
    for i, (q, _) in enumerate(response_pool()):  # constructed_pairs makes one pair per pool row, in order
        row.setdefault(q, i)
    pairs = oasst + made + weak + judged
    source = np.array(
        ["OASST"] * len(oasst)
        + ["constructed"] * len(made)
        + ["small-model"] * len(weak)
        + ["GPT-4"] * len(judged)
    )
    # Groups: an OASST tree; ten consecutive pool rows (a row's constructed and small-model pairs share
    # its instruction and reference, so they are always on the same side of a split); an AlpacaEval
    # instruction (its pairs share the text-davinci-003 reference output).
    groups = np.r_[
        trees,
        1000 + np.arange(len(made)) // 10,
        1000 + np.array([row[p[0]] for p in weak], int) // 10,
        10_000 + np.array(instructions, int),
    ]
    q, a, b = ([p[i] for p in pairs] for i in range(3))
    fa, fb = head.features(q, a), head.features(q, b)
    eq, ea, eb = encode(q), encode(a), encode(b)
    rng = np.random.default_rng(seed)
    distinct = np.unique(groups)
    fold = dict(zip(distinct, rng.integers(0, folds, len(distinct))))
    fold_of = np.array([fold[g] for g in groups])
    cs = [0.03, 0.1, 0.3, 1.0, 3.0]

    def five(f, e_q, e_r):
        return f

    base = ("OASST", "constructed")
    candidates = {  # name: (features of a response, Cs, sources trained on, sources weighted equally)
        "five features (shipped)": (five, [1.0], base, False),
        "+ response embedding": (lambda f, e_q, e_r: np.c_[f, e_r], cs, base, False),
        "+ instruction x response embedding": (lambda f, e_q, e_r: np.c_[f, e_q * e_r], cs, base, False),
        "five features, + small-model pairs": (five, [1.0], (*base, "small-model"), False),
        "five features, + GPT-4 pairs": (five, [1.0], (*base, "GPT-4"), False),
        "five features, + GPT-4 pairs, balanced": (five, [1.0], (*base, "GPT-4"), True),
        "+ response embedding, + GPT-4 pairs": (
            lambda f, e_q, e_r: np.c_[f, e_r],
            cs,
            (*base, "GPT-4"),
            False,
        ),
    }
    names = list(dict.fromkeys(source))
    count = {n: int((source == n).sum()) for n in names}
    print(f"{folds}-fold CV, grouped: " + ", ".join(f"{count[n]} {n}" for n in names) + " pairs")
    print(f"  held-out accuracy: {'design':40s} {'C':>5s} " + " ".join(f"{n:>12s}" for n in names))
    for name, (design, c_values, trained_on, balanced) in candidates.items():
        if any(s not in names for s in trained_on):
            continue
        xa, xb = design(fa, eq, ea), design(fb, eq, eb)
        used = np.isin(source, trained_on)
        # Balanced: every source trained on carries the same total weight, whatever its pair count.
        weight = len(source) / np.array([count[s] for s in source]) if balanced else None
        for c in c_values:
            hit = np.zeros(len(pairs), bool)
            for k in range(folds):
                train, test = (fold_of != k) & used, fold_of == k
                w = head.fit(xa[train], xb[train], c=c, weight=None if weight is None else weight[train])
                hit[test] = (xa[test] - xb[test]) @ w > 0
            row_text = " ".join(f"{hit[source == n].mean():12.3f}" for n in names)
            print(f"  {'':19s}{name:40s} {c:5g} {row_text}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fit", action="store_true", help="Refit on the training data and write the weights.")
    ap.add_argument(
        "--cv", action="store_true", help="Compare head designs by CV on the training data, then stop."
    )
    ap.add_argument(
        "--small-model",
        type=int,
        default=SMALL_MODEL_PAIRS,
        metavar="N",
        help="Pool rows whose reference is paired against SmolLM2's own answer (generated once, cached; 0: none).",
    )
    ap.add_argument(
        "--gpt4",
        action=argparse.BooleanOptionalAction,
        default=GPT4_PAIRS,
        help="Also train on AlpacaEval's cached GPT-4 verdicts (downloaded from PyPI once).",
    )
    args = ap.parse_args()
    if args.cv:
        cross_validate(small=args.small_model, gpt4=args.gpt4)
        return
    if not PANDALM.exists():
        sys.exit(f"data not found under {DATA} (set CURATE_SHARED_DATA)")
    if args.fit:
        fit_head(args.small_model, args.gpt4)
    idx, questions, pairs, winner = pandalm(None)
    gpt = gpt_agreement(idx, winner)
    scores = np.array(head.quality_scores(questions, pairs))
    lengths = np.array([[len(a.split()), len(b.split())] for a, b in pairs], dtype=float)
    print(f"PandaLM non-tie items: {len(pairs)}; quality agreement with the human majority")
    print(f"  {head.head_id():48s} {agreement(scores, winner):.3f}")
    print(f"  {'baseline: the longer response wins':48s} {agreement(lengths, winner):.3f}")
    print(
        f"  {'baseline: gpt-3.5-turbo judge (PandaLM file)':48s} {gpt[0]:.3f}  ({gpt[1]:.3f} on the {gpt[2]} items it decided)"
    )
    print("goal for the embedded default: >= 0.72")


if __name__ == "__main__":
    main()
