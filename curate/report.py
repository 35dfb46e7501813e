"""`curate report`: one self-contained HTML page about a run, to look at rather than read logs.

Plots are drawn with matplotlib and embedded as base64 PNG, so the file opens offline and can be
mailed around. Sections appear as their data exists: funnel, score histograms with the selection
cut, dedup clusters, judge ratings, and after review agreement, judge-vs-human and position bias.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt
from datasets import Dataset

from curate.io import read_splits

REPORT_NAME = "report.html"
FUNNEL_ORDER = ("generated", "preferences", "deduped", "scored", "selected", "pushed", "reviewed", "exported")
STAGE_LABELS = {
    "01-instructions": "generated",
    "02-preferences": "preferences",
    "03-dedup": "deduped",
    "04-score": "scored",
    "05-select": "selected",
    "06-push": "pushed",
}


def _png(fig: plt.Figure) -> str:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _load(stage_dir: Path) -> dict[str, Dataset]:
    try:
        return dict(read_splits(stage_dir)) if stage_dir.exists() else {}
    except (FileNotFoundError, ValueError):
        return {}


def _funnel(counts: dict[str, int]) -> str:
    labels = [k for k in FUNNEL_ORDER if k in counts]
    values = [counts[k] for k in labels]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(labels) + 1))
    bars = ax.barh(labels[::-1], values[::-1], color="#4c72b0")
    ax.bar_label(bars, padding=3)
    ax.set_xlabel("rows")
    ax.set_title("Rows at each stage")
    return _png(fig)


def _histograms(scored: Dataset, cut: float | None) -> str:
    cols = [c for c in ("complexity", "quality", "deita_score") if c in scored.column_names]
    fig, axes = plt.subplots(1, len(cols), figsize=(4 * len(cols), 3))
    axes = [axes] if len(cols) == 1 else list(axes)
    for ax, col in zip(axes, cols):
        values = [v for v in scored[col] if v is not None]
        ax.hist(values, bins=20, color="#55a868")
        ax.set_title(col)
        if col == "deita_score" and cut is not None:
            ax.axvline(cut, color="#c44e52", linestyle="--", label=f"selection cut {cut:.2f}")
            ax.legend(fontsize=8)
    return _png(fig)


def _ratings(prefs: Dataset) -> str:
    counts = Counter(
        "unparsed" if r is None else str(r) for ratings in prefs["ratings"] for r in (ratings or [])
    )
    labels = [k for k in ("1", "2", "3", "4", "5", "unparsed") if k in counts]
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(labels, [counts[k] for k in labels], color="#8172b2")
    ax.set_title("Judge ratings (UltraFeedback)")
    ax.set_xlabel("rating")
    return _png(fig)


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
        parts.append(_png(fig))
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


def _confusion(matrix: dict[str, dict[str, int]], title: str) -> str:
    labels = sorted({*matrix, *(k for row in matrix.values() for k in row)})
    grid = [[matrix.get(r, {}).get(c, 0) for c in labels] for r in labels]
    fig, ax = plt.subplots(figsize=(1.2 * len(labels) + 2, 1.2 * len(labels) + 1))
    ax.imshow(grid, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("human majority")
    ax.set_ylabel("judge suggestion")
    top = max((v for row in grid for v in row), default=0)
    for i, row in enumerate(grid):
        for j, value in enumerate(row):
            ax.text(j, i, str(value), ha="center", va="center", color="white" if value > top / 2 else "black")
    ax.set_title(title)
    return _png(fig)


def _review(summary: dict[str, Any]) -> str:
    parts = []
    agreement = summary.get("agreement") or {}
    per_question = agreement.get("per_question") or agreement.get("questions") or {}
    if per_question:
        names = list(per_question)
        alphas = [per_question[n].get("alpha") for n in names]
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.bar(names, [a if a is not None else 0 for a in alphas], color="#64b5cd")
        ax.set_ylim(min(0, *[a or 0 for a in alphas]), 1)
        ax.set_title("Krippendorff's alpha per question")
        parts.append(_png(fig))
        rows = "".join(
            f"<tr><td>{_esc(n)}</td><td>{_fmt(v.get('alpha'))}</td><td>{_fmt(v.get('percent_agreement'))}</td>"
            f"<td>{v.get('n_items', '')}</td></tr>"
            for n, v in per_question.items()
        )
        parts.append(
            "<table><tr><th>question</th><th>alpha</th><th>% agreement</th><th>items</th></tr>"
            + rows
            + "</table>"
        )
    for agent, stats in (agreement.get("judge_vs_human") or summary.get("judge_vs_human") or {}).items():
        if isinstance(stats, dict) and isinstance(stats.get("confusion"), dict):
            parts.append(_confusion(stats["confusion"], f"Judge {agent} vs humans"))
        if isinstance(stats, dict) and stats.get("agreement") is not None:
            parts.append(
                f"<p>Judge <b>{_esc(agent)}</b> agrees with the human majority on "
                f"{stats['agreement']:.0%} of {stats.get('n', '?')} records.</p>"
            )
    bias = agreement.get("position_bias") or summary.get("position_bias")
    if isinstance(bias, dict) and bias:
        shown = {k: v for k, v in bias.items() if isinstance(v, (int, float))}
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.bar(list(shown), list(shown.values()), color="#937860")
        ax.set_title("Position bias (share of choices)")
        parts.append(_png(fig))
    return "\n".join(parts)


def _esc(value: Any) -> str:
    text = "" if value is None else str(value)
    return html.escape(text if len(text) < 400 else text[:400] + "…")


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else _esc(value)


def build_report(run_dir: Path | None = None, export_dir: Path | None = None) -> str:
    """The report's HTML for a run directory and/or an export directory."""
    sections: list[tuple[str, str]] = []
    counts: dict[str, int] = {}
    manifest: dict[str, Any] = {}
    if run_dir is not None and (run_dir / "manifest.json").exists():
        manifest = json.loads((run_dir / "manifest.json").read_text())
        for name, entry in manifest.get("stages", {}).items():
            if entry.get("rows_out") is not None and name in STAGE_LABELS:
                counts[STAGE_LABELS[name]] = entry["rows_out"]
    summary: dict[str, Any] = {}
    if export_dir is not None and (export_dir / "summary.json").exists():
        summary = json.loads((export_dir / "summary.json").read_text())
        for key, value in (summary.get("stage_counts") or {}).items():
            counts.setdefault(key, value)
        for key in ("reviewed", "exported"):
            if isinstance(summary.get(key), int):
                counts[key] = summary[key]
    if counts:
        sections.append(("Funnel", _funnel(counts)))
    if run_dir is not None:
        prefs = _load(run_dir / "02-preferences").get("train")
        if prefs is not None and "ratings" in prefs.column_names:
            sections.append(("Judge ratings", _ratings(prefs)))
        dedup = _load(run_dir / "03-dedup")
        if "train" in dedup:
            sections.append(
                ("Dedup clusters", _clusters(dedup["train"], dedup.get("removed", dedup["train"].select([]))))
            )
        scored = _load(run_dir / "04-score").get("train")
        selected = _load(run_dir / "05-select").get("train")
        if scored is not None:
            cut = None
            if selected is not None and "deita_score" in selected.column_names and len(selected):
                cut = min(v for v in selected["deita_score"] if v is not None)
            sections.append(("Deita scores", _histograms(scored, cut)))
    if summary:
        review = _review(summary)
        if review:
            sections.append(("Human review", review))
    return _page(manifest, sections, run_dir, export_dir)


def _page(
    manifest: dict[str, Any], sections: list[tuple[str, str]], run_dir: Path | None, export_dir: Path | None
) -> str:
    title = f"curate report: {manifest.get('run') or (run_dir.name if run_dir else export_dir.name if export_dir else '')}"
    stage_rows = "".join(
        f"<tr><td>{_esc(name)}</td><td>{_esc(e.get('status'))}</td><td>{_esc(e.get('rows_in'))}</td>"
        f"<td>{_esc(e.get('rows_out'))}</td><td>{_fmt(e.get('seconds'))}</td></tr>"
        for name, e in manifest.get("stages", {}).items()
    )
    stage_table = (
        "<table><tr><th>stage</th><th>status</th><th>rows in</th><th>rows out</th><th>seconds</th></tr>"
        + stage_rows
        + "</table>"
        if stage_rows
        else ""
    )
    models = manifest.get("models", {})
    model_text = ", ".join(f"{k}: {_esc(v.get('name'))}" for k, v in models.items() if isinstance(v, dict))
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
