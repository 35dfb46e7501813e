"""The HTML report: built from stage outputs, self-contained, renders in headless chromium without errors."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
from datasets import Dataset

from curate.io import write_dataset
from curate.report import build_report, write_report

CHROMIUM = "/usr/bin/chromium"


def _run_dir(tmp_path: Path) -> Path:
    """A run directory as `curate run` leaves it (stage outputs written with the real writer)."""
    rng = random.Random(0)
    run = tmp_path / "runs" / "demo"
    n = 30
    rows = [
        {
            "id": f"r{i}",
            "instruction": f"Explain topic number {i} in two sentences.",
            "generations": [f"answer {i} a", f"answer {i} b"],
            "ratings": [rng.choice([1, 2, 3, 4, 5, None]), rng.choice([1, 2, 3, 4, 5])],
            "complexity": 1 + 5 * rng.random(),
            "quality": 1 + 5 * rng.random(),
            "dedup_cluster": i,
            "dedup_cluster_size": 2 if i < 4 else 1,
        }
        for i in range(n)
    ]
    for row in rows:
        row["deita_score"] = row["complexity"] * row["quality"]
    removed = [
        {
            **rows[i],
            "id": f"d{i}",
            "instruction": rows[i]["instruction"] + " ",
            "duplicate_of": f"r{i}",
            "dedup_similarity": 0.95,
            "dedup_kind": "semantic",
        }
        for i in range(4)
    ]
    kept = [{**r, "duplicate_of": None, "dedup_similarity": None, "dedup_kind": None} for r in rows]
    write_dataset(run / "02-preferences", Dataset.from_list(rows))
    write_dataset(run / "03-dedup", {"train": Dataset.from_list(kept), "removed": Dataset.from_list(removed)})
    write_dataset(run / "04-score", Dataset.from_list(kept))
    best = sorted(kept, key=lambda r: -r["deita_score"])[:10]
    write_dataset(run / "05-select", Dataset.from_list(best))
    counts = {"01-instructions": 40, "02-preferences": 34, "03-dedup": 30, "04-score": 30, "05-select": 10}
    manifest = {
        "run": "demo",
        "models": {"llm": {"name": "SmolLM2"}},
        "stages": {k: {"status": "done", "rows_out": v, "seconds": 1.5} for k, v in counts.items()},
    }
    (run / "manifest.json").write_text(json.dumps(manifest))
    export = run / "07-export"
    export.mkdir()
    summary = {
        "reviewed": 8,
        "exported": 6,
        "agreement": {
            "per_question": {"preference": {"alpha": 0.41, "percent_agreement": 0.7, "n_items": 8}},
            "judge_vs_human": {
                "SmolLM2": {
                    "agreement": 0.5,
                    "n": 8,
                    "confusion": {"A": {"A": 3, "B": 2}, "B": {"A": 2, "B": 1}},
                }
            },
            "position_bias": {"A": 0.55, "B": 0.4, "tie": 0.05},
        },
    }
    (export / "summary.json").write_text(json.dumps(summary))
    return run


def test_report_has_every_section_and_no_external_resources(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    page = build_report(run, run / "07-export")
    for title in ("Funnel", "Judge ratings", "Dedup clusters", "Deita scores", "Human review"):
        assert f"<h2>{title}</h2>" in page
    assert page.count("data:image/png;base64,") >= 6
    assert "http://" not in page and "https://" not in page  # opens offline
    assert "Explain topic number 0" in page  # an example cluster with its kept row
    assert "0.950" in page  # and its similarity


def test_report_of_an_empty_run_dir_says_so(tmp_path: Path) -> None:
    assert "No stage output found yet" in build_report(tmp_path)


@pytest.mark.browser
@pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="Debian chromium not installed (make system-deps)")
def test_report_renders_in_chromium_without_console_errors(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    run = _run_dir(tmp_path)
    path = write_report(run, run / "07-export")
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
        )
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(path.as_uri())
        images = page.locator("img")
        assert images.count() >= 6
        # every embedded plot decoded into a real image
        widths = images.evaluate_all("imgs => imgs.map(i => i.naturalWidth)")
        assert all(w > 100 for w in widths), widths
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert errors == []
    assert (tmp_path / "report.png").stat().st_size > 10_000
