"""How far each known scorer agrees with people: the figures in curate/data/scorer_validity.json.

Complexity: Spearman rho with the human Difficulty (1-10) of WizardLM test instructions. Quality: share
of PandaLM test items with a human majority (no tie) where the response with the higher quality score
is the one people preferred. `curate score` prints them for the configured scorer and warns when it has
none; each entry names the benchmark run it was copied from.
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from curate.config import LLMConfig, ScoreConfig
from curate.models import llm_name


@dataclass(frozen=True)
class Validity:
    complexity_rho: float | None
    quality_agreement: float | None
    provenance: str
    baselines: dict[str, float] | None = None  # measured on these items, where they differ from the file's


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


VALIDITY_FILE = Path(__file__).resolve().parent.parent / "data" / "scorer_validity.json"


def scorer_key(model: str, quality_model: str, method: str, prompt: str, length_prior: float) -> str:
    return f"{model} | {quality_model} | {method} | prompt={prompt} | length_prior={length_prior:g}"


@functools.lru_cache(maxsize=1)
def known() -> tuple[dict[str, float], dict[str, Validity]]:
    """The baselines and the measured validity of every known scorer, by scorer key (from VALIDITY_FILE)."""
    data = json.loads(VALIDITY_FILE.read_text(encoding="utf-8"))
    scorers = {
        scorer_key(e["model"], e["quality_model"], e["method"], e["prompt"], e["length_prior"]): Validity(
            e["complexity_rho"], e["quality_agreement"], e["provenance"], e.get("baselines")
        )
        for e in data["scorers"]
    }
    return data["baselines"]["values"], scorers


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
    return Profile(key, model, q_model, row_method, sc.prompt, prior, known()[1].get(key))


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
    base = v.baselines or known()[0]
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
