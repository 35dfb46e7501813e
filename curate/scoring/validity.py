"""How far each known scorer agrees with people, as measured by benchmarks/scoring_validity.py.

Complexity: Spearman rho with the human Difficulty (1-10) of the 109 odd-idx WizardLM test instructions.
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


# key -> figures. Keys are `scorer_key(...)`; filled from benchmarks/scoring_validity.py runs.
KNOWN: dict[str, Validity] = {}


def scorer_key(model: str, quality_model: str, method: str, prompt: str, length_prior: float) -> str:
    return f"{model} | {quality_model} | {method} | prompt={prompt} | length_prior={length_prior:g}"


def scorer_profile(sc: ScoreConfig, c_cfg: LLMConfig, q_cfg: LLMConfig, method: str) -> Profile:
    """`sc` is the resolved score config (curate.scoring.prior.resolve_scorer)."""
    model, q_model = llm_name(c_cfg), llm_name(q_cfg)
    prior = sc.length_prior if method == "logits" else 0.0
    row_method = method if prior == 0 else f"{method}+length-prior"
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
    return f"[bold]scorer validity[/] ({p.key}): " + "; ".join(parts) + f" [dim]({v.provenance})[/]"
