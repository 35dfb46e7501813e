"""The dataset card (README.md) of an export: pipeline counts, policy, agreement, models, licence.

It reads the export summary (`ExportSummary`) and the push provenance (`Provenance`), whose stage
stats are the stages' own stats.json (`DedupStats`, `SelectStats`, ...).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from curate.config import Config
from curate.schemas import AgreementSummary, ExportSummary, Provenance
from curate.stages.export.formats import FORMATS

STAGE_LABELS = {
    "instructions": "generated (instructions)",
    "generate": "generated",
    "preferences": "generated (responses + judge)",
    "dedup": "deduped",
    "score": "scored",
    "complexity": "scored (complexity)",
    "select-instructions": "selected (instruction budget)",
    "quality": "scored (quality)",
    "select": "selected",
}
# The settings shown beside each stage's row count: keys of its stats.json (curate.schemas).
STAGE_SETTINGS: dict[str, tuple[str, ...]] = {
    "instructions": ("method",),
    "generate": ("method",),
    "preferences": ("num_generations", "evol_quality"),
    "dedup": ("threshold", "keep_rule", "backend"),  # DedupStats
    "score": ("score_method", "scorer_model"),
    "complexity": ("score_method", "scorer_model"),
    "select-instructions": ("budget", "diversity_threshold"),  # SelectStats
    "quality": ("score_method", "scorer_model"),
    "select": ("budget", "diversity_threshold"),  # SelectStats
}


def _size_category(n: int) -> str:
    for limit, name in (
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
    ):
        if n < limit:
            return name
    return "n>1M"


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def stage_rows(provenance: Provenance, summary: ExportSummary) -> list[tuple[str, Any, str]]:
    """(stage, rows, notes) from generation to export; earlier stages summed over the pushes' sources."""
    totals: dict[str, dict[str, int]] = {}
    settings: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    pushes = provenance.get("pushes", [])
    latest = list({p.get("source") or f"#{i}": p for i, p in enumerate(pushes)}.values())  # last per source
    for push in latest:
        for stage in push.get("stages", []):
            name = stage["stage"]
            if name not in totals:
                totals[name], settings[name] = {}, {}
                order.append(name)
            for split, n in (stage.get("rows") or {}).items():
                if isinstance(n, int):
                    totals[name][split] = totals[name].get(split, 0) + n
            stats = stage.get("stats") or {}
            for key in STAGE_SETTINGS.get(name, ()):
                if isinstance(stats.get(key), (int, float, str, bool)):
                    settings[name][key] = stats[key]
    rows = []
    for name in order:
        splits = totals[name]
        main = splits.get("train")
        notes = [f"{split}: {n}" for split, n in splits.items() if split != "train"]
        notes += [f"{k}={_fmt(v)}" for k, v in settings[name].items()]
        rows.append((STAGE_LABELS.get(name, name), main, ", ".join(notes)))
    acc = summary["accounting"]
    rejected = sum(p.get("push", {}).get("rejected", 0) for p in latest)
    rows.append(
        (
            "pushed to Argilla",
            acc["records"]["total"],
            f"pushes: {len(pushes)}, rows quarantined (not reviewable or refused): {rejected}",
        )
    )
    rows.append(
        (
            "reviewed (>= 1 submitted response)",
            summary["reviewed_records"],
            f"submitted responses: {acc['submitted_responses']['total']}, "
            f"discarded: {acc['discarded_responses']}, drafts: {acc['draft_responses']}",
        )
    )
    excluded = ", ".join(f"{k}: {v}" for k, v in acc["records"]["excluded"].items()) or "none"
    rows.append(
        (
            "exported preference pairs",
            summary["pairs"],
            f"by humans: {acc['records']['exported_by_humans']}, by judge fallback: "
            f"{acc['records']['exported_by_judge']}; excluded records: {excluded}",
        )
    )
    return rows


def round_lines(summary: ExportSummary, provenance: Provenance) -> list[str]:
    """The card's review rounds: per round, when and from what it was pushed, and its counts."""
    rounds = summary.get("rounds") or {}
    if not rounds:
        return []
    pushed: dict[str, list[dict[str, Any]]] = {}
    for p in provenance.get("pushes", []):
        if p.get("push", {}).get("created") or p.get("round") is not None:
            pushed.setdefault(str(p.get("round", 1)), []).append(dict(p))
    selected = summary.get("rounds_selected")
    out = [
        "",
        "## Review rounds",
        "",
        "Records are pushed in rounds; a later round only adds records (each keeps the round it came in, "
        "`round` metadata; records pushed before rounds were recorded count as round 1)."
        + (f" This export holds round(s) {', '.join(map(str, selected))} only." if selected else ""),
        "",
        "| round | pushed | from | records | reviewed | pairs (by humans / judge) |",
        "|---:|---|---|---:|---:|---|",
    ]
    for key, c in rounds.items():
        pushes = pushed.get(key, [])
        when = ", ".join(p["at"] for p in pushes) or "n/a"
        sources = sorted(
            {Path(p["source"]).parent.name + "/" + Path(p["source"]).name for p in pushes if p.get("source")}
        )
        out.append(
            f"| {key} | {when} | {', '.join(f'`{x}`' for x in sources) or 'n/a'} | {c['records']} | "
            f"{c['reviewed']} | {c['pairs']} ({c['by_humans']} / {c['by_judge']}) |"
        )
    return out


def calibration_lines(summary: ExportSummary) -> list[str]:
    """The card's judge calibration (per confidence level) and auto-accept estimate, if any."""
    cal, auto = summary.get("calibration"), summary.get("auto_accept")
    out: list[str] = []
    if cal:
        out += [
            "",
            "## Judge calibration",
            "",
            f"Agreement of the judge with the human decision per confidence level ({cal['interval']}), "
            f"estimated from {cal['estimate_from']}.",
            "",
            "| level | votes | agreement | 90% interval | more votes for the target |",
            "|---|---:|---:|---|---:|",
        ]
        out += [
            f"| {lv} | {s['votes']} | {_fmt(s['agreement'])} | {_fmt(s['low'])} - {_fmt(s['high'])} | "
            f"{_fmt(s['votes_needed'])} |"
            for lv, s in cal["levels"].items()
        ]
    if auto:
        est = auto["export"]
        acc = summary["accounting"]["records"]
        out += [
            "",
            f"- Auto-accept: unreviewed pairs exported with the judge's decision where the lower bound of "
            f"their level's interval is >= {auto['target']} (`decided_by=judge`, `estimated_agreement`): "
            f"{acc['exported_by_judge']} by the judge, {acc['exported_by_humans']} by humans.",
            f"- Estimated agreement of the whole export with a human decision: {_fmt(est['agreement'])} "
            f"(conservative interval {_fmt(est['low'])} - {_fmt(est['high'])}; human-decided pairs count "
            "as agreeing).",
        ]
    return out


def render_card(summary: ExportSummary, provenance: Provenance, cfg: Config) -> str:
    """The card's markdown, with the Hub's YAML header (one config per export format)."""
    acc, agr = summary["accounting"], summary["agreement"]
    pol = acc["policy"]
    header = {
        "license": cfg.export.license,
        "task_categories": ["text-generation"],
        "tags": ["dpo", "preference", "human-feedback", "synthetic", "argilla", "curate"],
        "size_categories": [_size_category(summary["pairs"])],
        "configs": [
            {
                "config_name": f.config,
                "data_files": [{"split": "train", "path": f"parquet/{f.split}.parquet"}],
            }
            for f in FORMATS
        ],
    }
    out = ["---", yaml.safe_dump(header, sort_keys=False).strip(), "---", ""]
    out += [
        f"# {summary['dataset']}: human-reviewed preference pairs",
        "",
        _intro(provenance) + " Each row is a preference pair decided by human votes "
        f"(see the policy below). {summary['pairs']} pairs, {summary['sft']} SFT rows.",
        "",
        "## Pipeline",
        "",
        "| stage | rows | notes |",
        "|---|---:|---|",
    ]
    out += [f"| {stage} | {_fmt(rows)} | {notes} |" for stage, rows, notes in stage_rows(provenance, summary)]
    out += [
        "",
        "## Review policy",
        "",
        f"- Decision: **{pol['policy']}** vote over submitted responses, at least {pol['min_votes']} vote(s), "
        f"winning share >= {pol['min_agreement']} and strictly more votes than any other answer.",
        f"- {pol['ties'].capitalize()}.",
        f"- {pol['discards'].capitalize()}.",
        f"- Unreviewed records: {'exported from the judge suggestion, marked `decided_by=judge`' if pol['include_unreviewed'] else 'excluded'}.",
        f"- Corrections: {'a reviewer correction replaces `chosen` (original in `chosen_original`)' if pol['use_corrections'] else 'ignored'}"
        f" ({acc['corrections_used']} used).",
        "- Responses were shown in a random but recorded order (A/B); `chosen_position` and "
        "`chosen_index` map each pair back to the generation order.",
        f"- Task distribution: {_fmt(_min_submitted(provenance))} submitted response(s) per record.",
        "",
        "Every submitted response is in the export or counted here:",
        "",
        "| | count |",
        "|---|---:|",
        f"| submitted responses | {acc['submitted_responses']['total']} |",
        f"| in exported pairs | {acc['submitted_responses']['in_export']} |",
    ]
    out += [f"| excluded: {k} | {v} |" for k, v in acc["submitted_responses"]["excluded"].items()]
    out += [
        "",
        "## Agreement",
        "",
        "| question | Krippendorff's alpha | level | annotators | records with 2+ answers |",
        "|---|---:|---|---:|---:|",
    ]
    out += [
        f"| {q} | {_fmt(a['alpha'])} | {a['level']} | {a['annotators']} | {a['units']} |"
        for q, a in agr["krippendorff_alpha"].items()
    ]
    pa, pb = agr["percent_agreement"], agr["position_bias"]
    out += [
        "",
        f"- Percent agreement (pairwise, records with 2+ votes): {_fmt(pa['pairwise'])}; unanimous records: "
        f"{_fmt(pa['unanimous_share'])}; records with disagreement: {pa['records_with_disagreement']}.",
        f"- Position bias: A chosen in {_fmt(pb['a_share'])} of non-tie votes (A {pb['A']}, B {pb['B']}, "
        f"tie {pb['tie']}; binomial p = {_fmt(pb['binomial_p'])}).",
    ]
    for agent, j in agr["judge_vs_human"].items():
        out.append(
            f"- Judge `{agent}` vs human decision: {_fmt(j['agreement'])} over {j['records']} records "
            f"(overridden {j['overridden']}); vs single votes: {_fmt(j['vote_agreement'])}."
        )
    out += round_lines(summary, provenance)
    out += calibration_lines(summary)
    out += ["", "## Models", ""]
    models = _models(provenance, agr)
    out += [f"- {role}: {', '.join(f'`{m}`' for m in names)}" for role, names in models.items()] or [
        "- not recorded"
    ]
    out += [
        "",
        "## Columns",
        "",
        "`prompt`, `chosen`, `rejected` (strings) and `prompt_messages`, `chosen_messages`, `rejected_messages` "
        "(chat messages) for TRL; `chosen_rating`/`rejected_rating` (mean human 1-5 rating, else the judge's; see "
        "`rating_source`), `agreement` (winning vote share), `num_annotators`, `votes_*`, `judge_suggestion` "
        "(chosen/rejected/tie) with `judge_agent`, `human_overrode_judge`, Deita `complexity`/`quality`/"
        "`deita_score`, `dedup_cluster(_size)`, `chosen_model`/`rejected_model`, `id` (Argilla record id). "
        "The `sft` config holds the chosen responses; `responses` holds every human response and its outcome.",
        "",
        "```python",
        "from datasets import load_dataset",
        'pairs = load_dataset("<repo>", split="train")  # DPOTrainer(train_dataset=pairs, ...)',
        "```",
        "",
        "## Licence",
        "",
        f"`{cfg.export.license}`. The prompts and responses are model outputs: check the licences of the "
        "generator models listed above before use.",
        "",
    ]
    return "\n".join(out)


def _intro(provenance: Provenance) -> str:
    pushes = provenance.get("pushes") or []
    if any(p.get("stages") for p in pushes):
        return (
            "Synthetic prompt/response pairs generated and curated with `curate` (distilabel generation, "
            "embedding dedup, Deita scoring), then reviewed by people in Argilla."
        )
    sources = sorted({Path(p["source"]).name for p in pushes if p.get("source")})
    origin = f" from {', '.join(f'`{s}`' for s in sources)}" if sources else ""
    return f"Prompt/response pairs pushed{origin} with `curate push`, then reviewed by people in Argilla."


def _min_submitted(provenance: Provenance) -> Any:
    pushes = provenance.get("pushes") or []
    return pushes[-1].get("push", {}).get("min_submitted") if pushes else None


def _models(provenance: Provenance, agreement: AgreementSummary) -> dict[str, list[str]]:
    roles: dict[str, set[str]] = {}
    names = {
        "generators": "response generators",
        "instruction_generators": "instruction generators",
        "judges": "judges (suggestions)",
        "scorers": "Deita scorers",
    }
    for push in provenance.get("pushes", []):
        for key, values in (push.get("models") or {}).items():
            roles.setdefault(names.get(key, key), set()).update(values)
    for agent in agreement.get("judge_vs_human", {}):
        roles.setdefault(names["judges"], set()).add(agent)
    return {role: sorted(v) for role, v in roles.items() if v}
