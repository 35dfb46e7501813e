"""How far each known scorer agrees with people, as measured by benchmarks/scoring_validity.py.

Complexity: Spearman rho with the human Difficulty (1-10) of WizardLM test instructions (odd idx: the
shared copy; even idx: the held-out half of the same public file).
Quality: share of PandaLM test items with a human majority (no tie) where the response with the higher
quality score is the one people preferred. Figures are copied from a benchmark run (provenance below);
`curate score` prints them for the configured scorer and warns when it has none.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from curate.config import LLMConfig, ScoreConfig
from curate.models import llm_name


@dataclass(frozen=True)
class Validity:
    complexity_rho: float | None
    quality_agreement: float | None
    provenance: str
    baselines: dict[str, float] | None = None  # measured on the same items, when not BASELINES' items


@dataclass(frozen=True)
class Profile:
    """The configured scorer: models, prompt, ensemble, and its measured validity if known."""

    key: str
    model: str
    quality_model: str
    method: str  # score_method written to the rows
    prompt: str
    length_prior: float
    validity: Validity | None = field(default=None)

    def validity_dict(self) -> dict[str, Any] | None:
        return asdict(self.validity) if self.validity else None


# Measured in the same runs on the same items (PandaLM non-tie items 0-399): log word count of the
# instruction; "the longer response (in words) wins"; the gpt-3.5-turbo verdicts shipped with PandaLM.
BASELINES = {"length_rho": 0.274, "longer_wins": 0.607, "gpt35": 0.783}
GEMMA = "gemma-3-270m-q4_k_m.gguf"
SMOL = "SmolLM2-135M-Instruct (GGUF, embedded)"
ANCHORED = "deita-anchored@60e86b15"
_RUN = "benchmarks/scoring_validity.py --threads 1, --limit 200 and --offset 200 --limit 200, 2026-11-24"
_SAMPLE = "109 WizardLM odd-idx instructions; PandaLM non-tie items 0-399"
HEAD = "quality-head@0cbd6159 (all-MiniLM-L6-v2)"
_RUN_HEAD = (
    "benchmarks/quality_head.py; scoring_validity.py --skip-quality --threads 2 "
    "(--wizard <full WizardLM test set> --parity even), 2026-12-01"
)


def scorer_key(model: str, quality_model: str, method: str, prompt: str, length_prior: float) -> str:
    return f"{model} | {quality_model} | {method} | prompt={prompt} | length_prior={length_prior:g}"


# key -> figures, copied from benchmarks/scoring_validity.py runs (provenance in each entry).
KNOWN: dict[str, Validity] = {
    # The embedded default since the quality head: complexity as below (Gemma, anchored, length prior 0.5),
    # quality from curate/scoring/head.py, fitted on OASST + constructed failures, measured on all 894
    # PandaLM non-tie items by benchmarks/quality_head.py (same run: longer wins 0.673, gpt-3.5 0.774);
    # the only other variant ever scored there, without the OASST pairs, gave 0.705.
    # Complexity on the 109 even-idx WizardLM instructions, held out (never looked at while the anchors
    # were written; the odd ones, which were, give 0.495).
    scorer_key(GEMMA, HEAD, "complexity: logits+length-prior; quality: head", ANCHORED, 0.5): Validity(
        0.545,
        0.713,
        f"{_RUN_HEAD}; 109 WizardLM even-idx instructions (held out; odd-idx: 0.495); PandaLM non-tie items 0-893",
        {"length_rho": 0.266, "longer_wins": 0.673, "gpt35": 0.774},
    ),
    # The embedded default before the quality head (quality_scorer: llm). Quality: 0.650 on
    # items 0-199 (seen when the model was chosen), 0.560 on 200-399 (held out): 0.605 on both.
    scorer_key(GEMMA, GEMMA, "logits+length-prior", ANCHORED, 0.5): Validity(
        0.490, 0.605, f"{_RUN}; {_SAMPLE}"
    ),
    # Pure Deita values of the same scorer: 0.550 on items 0-199, 0.590 on 200-399.
    scorer_key(GEMMA, GEMMA, "logits", ANCHORED, 0): Validity(0.490, 0.570, f"{_RUN}; {_SAMPLE}"),
    scorer_key(SMOL, SMOL, "logits", ANCHORED, 0): Validity(
        0.317,
        0.570,
        "benchmarks/scoring_validity.py --limit 200 --threads 1, 2026-11-24; 109 WizardLM odd-idx instructions; "
        "PandaLM non-tie items 0-199",
    ),
    # Deita's exact zero-shot prompt on the embedded SmolLM2: anti-correlated with people.
    scorer_key(SMOL, SMOL, "logits", "deita", 0): Validity(
        -0.226,
        None,
        "benchmarks/scoring_validity.py --skip-quality --threads 1, 2026-11-24; 109 WizardLM odd-idx",
    ),
}


def scorer_profile(sc: ScoreConfig, c_cfg: LLMConfig, q_cfg: LLMConfig, method: str) -> Profile:
    """`sc` is the resolved score config (curate.scoring.prior.resolve_scorer)."""
    model, q_model = llm_name(c_cfg), llm_name(q_cfg)
    prior = sc.length_prior if method == "logits" else 0.0
    row_method = method if prior == 0 else f"{method}+length-prior"
    if sc.quality_scorer == "head":
        from curate.scoring.head import head_id

        q_model, row_method = head_id(), f"complexity: {row_method}; quality: head"
    from curate.scoring.prior import prompt_id

    key = scorer_key(
        model, q_model, row_method, prompt_id(sc.prompt) if method == "logits" else "distilabel", prior
    )
    return Profile(key, model, q_model, row_method, sc.prompt, prior, KNOWN.get(key))


def describe_validity(p: Profile) -> str:
    if p.validity is None:
        return (
            f"[yellow]warning:[/] no validity figures for this scorer ({p.key}): nobody has measured "
            "whether its scores agree with people; run benchmarks/scoring_validity.py to find out"
        )
    v = p.validity
    parts = []
    if v.complexity_rho is not None:
        parts.append(f"complexity vs human difficulty Spearman rho = {v.complexity_rho:.2f}")
    if v.quality_agreement is not None:
        parts.append(f"quality agrees with human preference on {100 * v.quality_agreement:.1f}% of pairs")
    base = v.baselines or BASELINES
    text = f"[bold]scorer validity[/] ({p.key}): " + "; ".join(parts) + f" [dim]({v.provenance})[/]"
    text += (
        f"\n  for scale: instruction length rho = {base['length_rho']:.2f}, the longer response wins "
        f"{100 * base['longer_wins']:.1f}%, the gpt-3.5-turbo judge {100 * base['gpt35']:.1f}% (same items)"
    )
    if v.complexity_rho is not None and v.complexity_rho < 0:
        text += "\n  [yellow]warning:[/] complexity is ANTI-correlated with human difficulty for this scorer"
    if v.quality_agreement is not None and v.quality_agreement < base["longer_wins"]:
        text += (
            "\n  [yellow]note:[/] these quality scores agree with people less often than response length does"
        )
    return text
