"""`curate report`: one self-contained HTML page about a run, to look at rather than read logs.

Plots are drawn with matplotlib and embedded as base64 PNG, so the file opens offline and can be
mailed around. Sections appear as their data exists: for a run directory the funnel of rows per
stage (from the run manifest), judge ratings, dedup clusters and the score histograms with the
selection cut; for an export directory (its `summary.json`) agreement per question, the
judge-vs-human confusion matrix and position bias, and (its `calibration.json`) the judge's reliability
per confidence level. Every input is read through its type in
`curate.schemas`; each plot's `alt` names its chart.
"""

from __future__ import annotations

import base64
import html
import io
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt
from datasets import Dataset

from curate.io import read_splits
from curate.run import STAGES, load_manifest, stage_named
from curate.schemas import (
    AgreementSummary,
    CalibrationReport,
    ExportSummary,
    JudgeAgreement,
    PositionBias,
    RunManifest,
    SelectStats,
    read_json,
)
from curate.stages.export.export import CALIBRATION, SUMMARY
from curate.stages.review.confidence import LEVELS

REPORT_NAME = "report.html"
HISTOGRAM_COLUMNS = ("complexity", "quality", "deita_score")
LABELS = ("A", "B", "tie")


def _png(fig: plt.Figure, alt: str) -> str:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _load(stage_dir: Path) -> dict[str, Dataset]:
    try:
        return dict(read_splits(stage_dir)) if stage_dir.exists() else {}
    except (FileNotFoundError, ValueError):
        return {}


def funnel_counts(manifest: RunManifest, summary: ExportSummary | None) -> dict[str, int]:
    """Rows at each step: every finished stage of the manifest in flow order, then review and export."""
    counts: dict[str, int] = {}
    for stage in STAGES:
        rows = manifest["stages"].get(stage.name, {}).get("rows_out")
        if isinstance(rows, int):
            counts[stage.short] = rows
    if summary is not None:
        counts.setdefault(stage_named("push").short, summary["accounting"]["records"]["total"])
        counts["reviewed"] = summary["reviewed_records"]
        counts["exported"] = summary["pairs"]
    return counts


def tokens_saved(manifest: RunManifest) -> dict[str, int]:
    """Per stage before response generation: the generated tokens its dropped rows did not cost (rows
    dropped x the tokens generation spent per row in this run); empty when generation did not run."""
    pref = stage_named("preferences")
    entry = manifest["stages"].get(pref.name, {})
    spent, rows = (entry.get("stats") or {}).get("generated_tokens"), entry.get("rows_in")
    if not spent or not rows:
        return {}
    per_row = spent / rows
    saved = {}
    for stage in STAGES[: STAGES.index(pref)]:
        e = manifest["stages"].get(stage.name, {})
        if isinstance(e.get("rows_in"), int) and isinstance(e.get("rows_out"), int):
            saved[stage.name] = round(max(0, e["rows_in"] - e["rows_out"]) * per_row)
    return saved


def _funnel(counts: dict[str, int]) -> str:
    labels = list(counts)
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(labels) + 1))
    bars = ax.barh(labels[::-1], [counts[k] for k in labels][::-1], color="#4c72b0")
    ax.bar_label(bars, padding=3)
    ax.set_xlabel("rows")
    ax.set_title("Rows at each stage")
    return _png(fig, "funnel")


def _histograms(scored: Dataset, cut: tuple[str, float] | None) -> str:
    cols = [c for c in HISTOGRAM_COLUMNS if c in scored.column_names]
    fig, axes = plt.subplots(1, len(cols), figsize=(4 * len(cols), 3))
    axes = [axes] if len(cols) == 1 else list(axes)
    for ax, col in zip(axes, cols):
        values = [v for v in scored[col] if v is not None]
        ax.hist(values, bins=20, color="#55a868")
        ax.set_title(col)
        if cut is not None and cut[0] == col:
            ax.axvline(cut[1], color="#c44e52", linestyle="--", label=f"selection cut {cut[1]:.2f}")
            ax.legend(fontsize=8)
    return _png(fig, "score histograms")


def selection_cut(stats: SelectStats, selected: Dataset | None) -> tuple[str, float] | None:
    """(score column, lowest selected score): from the select stage's stats, else from its rows."""
    column, cut = stats.get("score_column"), stats.get("score_min_selected")
    if isinstance(column, str) and isinstance(cut, (int, float)):
        return column, float(cut)
    if selected is not None and "deita_score" in selected.column_names:
        values = [v for v in selected["deita_score"] if v is not None]
        if values:
            return "deita_score", min(values)
    return None


def _ratings(prefs: Dataset) -> str:
    counts = Counter(
        "unparsed" if r is None else str(r) for ratings in prefs["ratings"] for r in (ratings or [])
    )
    labels = [k for k in ("1", "2", "3", "4", "5", "unparsed") if k in counts]
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(labels, [counts[k] for k in labels], color="#8172b2")
    ax.set_title("Judge ratings (UltraFeedback)")
    ax.set_xlabel("rating")
    return _png(fig, "judge ratings")


def _clusters(kept: Dataset, removed: Dataset, examples: int = 4) -> str:
    sizes = Counter(kept["dedup_cluster_size"]) if "dedup_cluster_size" in kept.column_names else Counter()
    parts = []
    if sizes:
        fig, ax = plt.subplots(figsize=(5, 3))
        xs = sorted(sizes)
        ax.bar([str(x) for x in xs], [sizes[x] for x in xs], color="#dd8452")
        ax.set_xlabel("cluster size")
        ax.set_ylabel("clusters")
        ax.set_title("Dedup cluster sizes")
        parts.append(_png(fig, "dedup cluster sizes"))
    text_col = "instruction" if "instruction" in kept.column_names else kept.column_names[0]
    if len(removed) and "duplicate_of" in removed.column_names:
        by_id = {row["id"]: row for row in kept} if "id" in kept.column_names else {}
        groups: dict[str, list[dict[str, Any]]] = {}
        for row in removed:
            groups.setdefault(row["duplicate_of"], []).append(row)
        biggest = sorted(groups.items(), key=lambda kv: -len(kv[1]))[:examples]
        for kept_id, dupes in biggest:
            head = by_id.get(kept_id, {})
            rows = [f"<tr><td>kept</td><td></td><td>{_esc(head.get(text_col, kept_id))}</td></tr>"]
            rows += [
                f"<tr><td>{_esc(d.get('dedup_kind'))}</td><td>{_fmt(d.get('dedup_similarity'))}</td>"
                f"<td>{_esc(d.get(text_col))}</td></tr>"
                for d in dupes
            ]
            parts.append(
                "<table class='cluster'><tr><th>decision</th><th>similarity</th><th>text</th></tr>"
                + "".join(rows)
                + "</table>"
            )
    return "\n".join(parts)


def _agreement(agreement: AgreementSummary) -> str:
    questions = agreement["krippendorff_alpha"]
    names = list(questions)
    alphas = [questions[n]["alpha"] for n in names]
    fig, ax = plt.subplots(figsize=(5, 3))
    bars = ax.bar(names, [a if a is not None else 0 for a in alphas], color="#64b5cd")
    ax.bar_label(bars, labels=["n/a" if a is None else f"{a:.2f}" for a in alphas], padding=2)
    ax.set_ylim(min(0.0, *(a for a in alphas if a is not None)) - 0.05, 1.05)
    ax.axhline(0, color="#999", linewidth=0.8)
    ax.set_title("Krippendorff's alpha per question")
    rows = "".join(
        f"<tr><td>{_esc(n)}</td><td>{_esc(q['level'])}</td><td>{_num(q['alpha'])}</td>"
        f"<td>{_num(q['pairwise'])}</td><td>{q['annotators']}</td><td>{q['units']}</td></tr>"
        for n, q in questions.items()
    )
    pa = agreement["percent_agreement"]
    return (
        _png(fig, "agreement per question")
        + "<table><tr><th>question</th><th>level</th><th>Krippendorff's alpha</th>"
        "<th>pairwise agreement</th><th>annotators</th><th>records with 2+ answers</th></tr>"
        + rows
        + "</table>"
        + f"<p>Preference: {pa['records_with_2plus_votes']} records with 2+ votes, unanimous share "
        f"{_num(pa['unanimous_share'])}, {pa['records_with_disagreement']} with disagreement.</p>"
    )


def _confusion(agent: str, judge: JudgeAgreement) -> str:
    grid = [[judge["confusion"].get(j, {}).get(h, 0) for h in LABELS] for j in LABELS]
    fig, ax = plt.subplots(figsize=(4.6, 4))
    ax.imshow(grid, cmap="Blues")
    ax.set_xticks(range(len(LABELS)), LABELS)
    ax.set_yticks(range(len(LABELS)), LABELS)
    ax.set_xlabel("human decision")
    ax.set_ylabel("judge suggestion")
    top = max(v for row in grid for v in row)
    for i, row in enumerate(grid):
        for j, value in enumerate(row):
            ax.text(j, i, str(value), ha="center", va="center", color="white" if value > top / 2 else "black")
    ax.set_title(f"Judge {agent} vs humans")
    agreement = judge["agreement"]
    return _png(fig, f"confusion matrix {agent}") + (
        f"<p>Judge <b>{_esc(agent)}</b> agrees with the human decision on "
        f"{'n/a' if agreement is None else f'{agreement:.0%}'} of {judge['records']} records "
        f"(overridden {judge['overridden']}), and with {_num(judge['vote_agreement'])} of "
        f"{judge['votes']} single votes.</p>"
    )


def _position_bias(bias: PositionBias) -> str:
    fig, ax = plt.subplots(figsize=(5, 3))
    counts = [bias[k] for k in LABELS]
    bars = ax.bar(list(LABELS), counts, color="#937860")
    ax.bar_label(bars, padding=2)
    ax.set_ylim(0, max(1, *counts) * 1.18)  # room for the labels under the title
    ax.set_ylabel("votes")
    share = "n/a" if bias["a_share"] is None else f"{bias['a_share']:.2f}"
    p = "n/a" if bias["binomial_p"] is None else f"{bias['binomial_p']:.3f}"
    ax.set_title(f"Votes per shown position (A share {share}, p = {p})")
    return _png(fig, "position bias")


def _reliability(calibration: CalibrationReport) -> str:
    """The reliability diagram: per confidence level (most confident first), the estimated agreement of
    the judge with the human decision, its interval and votes, against the auto-accept target."""
    levels = [lv for lv in LEVELS if lv in calibration["levels"]] + sorted(
        lv for lv in calibration["levels"] if lv not in LEVELS
    )
    stats = [calibration["levels"][lv] for lv in levels]
    target = calibration.get("target")
    fig, ax = plt.subplots(figsize=(6, 3.6))
    xs = list(range(len(levels)))
    ys = [s["agreement"] for s in stats]
    below = [s["agreement"] - s["low"] for s in stats]
    above = [s["high"] - s["agreement"] for s in stats]
    ax.errorbar(
        xs, ys, yerr=[below, above], fmt="o", color="#4c72b0", capsize=4, label="agreement, 90% interval"
    )
    for x, s in zip(xs, stats, strict=True):
        ax.annotate(f"n={s['votes']}", (x, s["high"]), textcoords="offset points", xytext=(0, 4), ha="center")
    if isinstance(target, (int, float)) and 0 < target <= 1:
        ax.axhline(target, color="#c44e52", linestyle="--", linewidth=1, label=f"target {target:g}")
    ax.set_xticks(xs, levels)
    ax.set_xlim(-0.5, max(0.5, len(levels) - 0.5))
    ax.set_ylim(0, 1.12)
    ax.set_xlabel("judge confidence level (most confident first)")
    ax.set_ylabel("agreement with humans")
    ax.set_title("Judge reliability per confidence level")
    ax.legend(loc="lower left", fontsize="small")
    rows = "".join(
        f"<tr><td>{_esc(lv)}</td><td>{s['votes']}</td><td>{s['agree']}</td><td>{s['agreement']:.3f}</td>"
        f"<td>{s['low']:.3f} - {s['high']:.3f}</td>"
        f"<td>{'n/a' if s['votes_needed'] is None else s['votes_needed']}</td></tr>"
        for lv, s in zip(levels, stats, strict=True)
    )
    return (
        _png(fig, "reliability diagram")
        + "<table><tr><th>level</th><th>votes</th><th>judge agreed</th><th>agreement</th>"
        f"<th>{_esc(calibration['interval'])}</th><th>votes needed for {_fmt(target)}</th></tr>"
        + rows
        + "</table>"
        + f"<p>From {calibration['sample_decided']} decided of {calibration['sample_records']} records in "
        f"the calibration sample: {_esc(calibration['estimate_from'])}.</p>"
    )


def _review(summary: ExportSummary) -> str:
    agreement = summary["agreement"]
    acc = summary["accounting"]["records"]
    excluded = ", ".join(f"{k}: {v}" for k, v in acc["excluded"].items()) or "none"
    parts = [
        f"<p>{summary['pairs']} pairs exported from {acc['total']} records "
        f"({acc['exported_by_humans']} by humans, {acc['exported_by_judge']} by the judge); "
        f"{summary['reviewed_records']} records reviewed; excluded: {_esc(excluded)}.</p>",
        _agreement(agreement),
    ]
    parts += [_confusion(agent, judge) for agent, judge in agreement["judge_vs_human"].items()]
    parts.append(_position_bias(agreement["position_bias"]))
    return "\n".join(parts)


def _esc(value: Any) -> str:
    text = "" if value is None else str(value)
    return html.escape(text if len(text) < 400 else text[:400] + "…")


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else _esc(value)


def _num(value: float | None) -> str:
    """A figure that may be undefined (alpha with fewer than two answers per record)."""
    return "n/a" if value is None else f"{value:.3f}"


def _run_sections(run_dir: Path) -> list[tuple[str, str]]:
    sections = []
    prefs = _load(run_dir / stage_named("preferences").name).get("train")
    if prefs is not None and "ratings" in prefs.column_names:
        sections.append(("Judge ratings", _ratings(prefs)))
    dedup = _load(run_dir / stage_named("dedup").name)
    if "train" in dedup:
        removed = dedup.get("removed", dedup["train"].select([]))
        sections.append(("Dedup clusters", _clusters(dedup["train"], removed)))
    select = stage_named("select")
    scored_stage = STAGES[STAGES.index(select) - 1]  # the rows the selection ranks
    scored = _load(run_dir / scored_stage.name).get("train")
    if scored is not None and any(c in scored.column_names for c in HISTOGRAM_COLUMNS):
        select_dir = run_dir / select.name
        stats_file = select_dir / "stats.json"
        stats = read_json(stats_file, SelectStats) if stats_file.exists() else SelectStats()
        cut = selection_cut(stats, _load(select_dir).get("train"))
        sections.append(("Deita scores", _histograms(scored, cut)))
    return sections


def build_report(run_dir: Path | None = None, export_dir: Path | None = None) -> str:
    """The report's HTML for a run directory and/or an export directory."""
    manifest: RunManifest = load_manifest(run_dir) if run_dir is not None else {"stages": {}}
    summary: ExportSummary | None = None
    if export_dir is not None and (export_dir / SUMMARY).exists():
        summary = read_json(export_dir / SUMMARY, ExportSummary)
    sections: list[tuple[str, str]] = []
    counts = funnel_counts(manifest, summary)
    if counts:
        sections.append(("Funnel", _funnel(counts)))
    if run_dir is not None:
        sections += _run_sections(run_dir)
    if summary is not None:
        sections.append(("Human review", _review(summary)))
    calibration = summary.get("calibration") if summary is not None else None
    if export_dir is not None and (export_dir / CALIBRATION).exists():
        calibration = read_json(export_dir / CALIBRATION, CalibrationReport)
    if calibration is not None and calibration["levels"]:
        sections.append(("Judge calibration", _reliability(calibration)))
    return _page(manifest, sections, run_dir, export_dir)


def _page(
    manifest: RunManifest, sections: list[tuple[str, str]], run_dir: Path | None, export_dir: Path | None
) -> str:
    where = run_dir or export_dir
    title = f"curate report: {manifest.get('run') or (where.name if where else '')}"
    saved = tokens_saved(manifest)
    stage_rows = "".join(
        f"<tr><td>{_esc(stage.name)}</td><td>{_esc(e.get('status'))}</td><td>{_esc(e.get('rows_in'))}</td>"
        f"<td>{_esc(e.get('rows_out'))}</td><td>{_fmt(e.get('seconds'))}</td>"
        f"<td>{_esc(saved.get(stage.name, ''))}</td></tr>"
        for stage in STAGES
        if (e := manifest["stages"].get(stage.name))
    )
    stage_table = (
        "<table><tr><th>stage</th><th>status</th><th>rows in</th><th>rows out</th><th>seconds</th>"
        "<th>generated tokens saved</th></tr>" + stage_rows + "</table>"
        if stage_rows
        else ""
    )
    models = manifest.get("models", {})
    model_text = ", ".join(f"{k}: {_esc(v.get('name'))}" for k, v in models.items())
    body = "\n".join(f"<section><h2>{_esc(name)}</h2>{content}</section>" for name, content in sections)
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }}
h1 {{ font-size: 1.6rem; }} h2 {{ border-bottom: 1px solid #ddd; padding-bottom: .2rem; }}
table {{ border-collapse: collapse; margin: .8rem 0; font-size: .9rem; }}
td, th {{ border: 1px solid #ddd; padding: .3rem .6rem; text-align: left; vertical-align: top; }}
img {{ max-width: 100%; }} .meta {{ color: #666; }}
</style></head><body>
<h1>{_esc(title)}</h1>
<p class="meta">generated {generated}{" · models: " + model_text if model_text else ""}</p>
{stage_table}
{body or "<p>No stage output found yet.</p>"}
</body></html>
"""


def write_report(
    run_dir: Path | None = None, export_dir: Path | None = None, out: Path | None = None
) -> Path:
    """Write report.html (into the run dir, else the export dir) atomically and return its path."""
    target = out or ((run_dir or export_dir) / REPORT_NAME)  # type: ignore[operator]
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(build_report(run_dir, export_dir), encoding="utf-8")
    tmp.replace(target)
    return target
