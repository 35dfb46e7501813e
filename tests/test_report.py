"""The HTML report, built from real outputs: a run directory written by `run_stages` with the real
stages, and the export of PandaLM's real human votes replayed in the embedded Argilla. Every promised
chart is drawn, the page is self-contained, and it renders in headless chromium without errors."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from curate.config import Config
from curate.io import InputError, load_stats, write_json
from curate.report import build_report, funnel_counts, selection_cut, write_report
from curate.run import STAGES, load_manifest, save_manifest, stage_named
from curate.schemas import CalibrationReport, ExportSummary, read_json
from curate.stages.export.export import CALIBRATION
from curate.stages.review import settings as st
from curate.stages.review.calibration import apply_plan, calibration_report
from curate.stages.review.confidence import LEVELS
from curate.stages.review.pairs import judge_label, record_metadata, shown, to_pairs

CHROMIUM = "/usr/bin/chromium"
RUN_CHARTS = ("funnel", "judge ratings", "dedup cluster sizes", "score histograms")
JUDGE = "gpt-3.5-turbo"  # the judge of the PandaLM replay
EXPORT_CHARTS = (
    "funnel",
    "agreement per question",
    f"confusion matrix {JUDGE}",
    "position bias",
    "reliability diagram",
)
CODE = {"1": "1", "2": "2", "0": "0"}


def charts(page: str) -> dict[str, Image.Image]:
    """alt -> decoded image, for every embedded plot of the page."""
    found = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([^"]+)">', page)
    return {alt: Image.open(io.BytesIO(base64.b64decode(data))) for alt, data in found}


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """runs/report/01-instructions .. 05-select and manifest.json, by `run_stages` with the embedded models."""
    from curate.config import load_config
    from curate.run import run_stages

    runs = tmp_path_factory.mktemp("runs")
    cfg = load_config(
        overrides={
            "llm": {"max_new_tokens": 32, "n_ctx": 1024},
            # 8 Magpie turns: at 32 new tokens Magpie's filters can drop every one of 4 (seen on CI)
            "generate": {"instructions": {"num_instructions": 8}, "preferences": {"num_generations": 2}},
            "select": {"budget": 2},
            "run": {"runs_dir": str(runs), "name": "report"},
        },
        environ={},
    )
    run_stages(cfg, runs / "report", until="select")
    return runs / "report"


@pytest.mark.slow
def test_run_report_draws_every_run_chart(real_run: Path) -> None:
    manifest = load_manifest(real_run)
    page = build_report(real_run)
    drawn = charts(page)
    assert set(RUN_CHARTS) <= set(drawn), sorted(drawn)
    assert all(img.width > 300 and img.height > 200 for img in drawn.values())
    for title in ("Funnel", "Judge ratings", "Dedup clusters", "Deita scores"):
        assert f"<h2>{title}</h2>" in page
    assert "http://" not in page and "https://" not in page  # opens offline
    # the funnel is the manifest's rows per stage, in the stage table's order
    ran = [s for s in STAGES if s.name in manifest["stages"]]
    assert [s.name for s in ran] == [s.name for s in STAGES[: len(ran)]] and ran[-1].short == "select"
    counts = funnel_counts(manifest, None)
    assert counts == {s.short: manifest["stages"][s.name]["rows_out"] for s in ran}
    for s in ran:
        entry = manifest["stages"][s.name]
        assert f"<tr><td>{s.name}</td><td>done</td><td>{entry['rows_in'] or ''}</td>" in page
    # the selection cut is the select stage's own figure
    select_dir = real_run / stage_named("select").name
    stats = load_stats(select_dir)
    assert selection_cut(stats, None) == (stats["score_column"], stats["score_min_selected"])


@pytest.mark.server
def test_export_report_draws_agreement_confusion_and_position_bias(pandalm_export, tmp_path: Path) -> None:
    out = pandalm_export.out
    summary = read_json(out / "summary.json", ExportSummary)
    path = write_report(export_dir=out, out=tmp_path / "report.html")
    page = path.read_text()
    drawn = charts(page)
    assert set(EXPORT_CHARTS) <= set(drawn), sorted(drawn)
    assert all(img.width > 300 and img.height > 200 for img in drawn.values())
    assert "<h2>Human review</h2>" in page and "http://" not in page and "https://" not in page
    acc = summary["accounting"]["records"]
    assert funnel_counts({"stages": {}}, summary) == {
        stage_named("push").short: acc["total"],
        "reviewed": summary["reviewed_records"],
        "exported": summary["pairs"],
    }
    judge = summary["agreement"]["judge_vs_human"][JUDGE]
    assert f"agrees with the human decision on {judge['agreement']:.0%} of {judge['records']} records" in page
    preference = summary["agreement"]["krippendorff_alpha"]["preference"]
    assert f"<tr><td>preference</td><td>nominal</td><td>{preference['alpha']:.3f}</td>" in page
    assert f"{summary['pairs']} pairs exported from {acc['total']} records" in page


@pytest.mark.slow
@pytest.mark.server
def test_run_and_export_report_has_every_chart(real_run: Path, pandalm_export) -> None:
    drawn = charts(build_report(real_run, pandalm_export.out))
    assert set(RUN_CHARTS) | set(EXPORT_CHARTS) <= set(drawn), sorted(drawn)


def _pandalm_calibration(shared_data: Path, n: int, size: int) -> CalibrationReport:
    """calibration.json's report by curate's own code (`calibration_report`) from PandaLM's first `n`
    pairs with gpt-3.5 and PandaLM-7B as the two judges, planned as push plans them, every record voted
    on by its three real annotators, as pull returns the records."""
    d = shared_data / "preference" / "pandalm"
    items = json.loads((d / "testset-v1.json").read_text())[:n]
    gpt = {
        r["idx"]: str(r["gpt_result"]) for r in json.loads((d / "gpt-3.5-turbo-testset-v1.json").read_text())
    }
    pl = {
        r["idx"]: str(r["pandalm_result"]) for r in json.loads((d / "pandalm-7b-testset-v1.json").read_text())
    }
    rows = [
        {
            "instruction": it["instruction"],
            "input": it["input"],
            "response_a": it["response1"],
            "response_b": it["response2"],
            "judge_preference": CODE.get(gpt[it["idx"]]),
            "judge_preference_2": CODE.get(pl[it["idx"]]),
        }
        for it in items
    ]
    pairs, _ = to_pairs(rows, seed=0)
    apply_plan(pairs, size, seed=0)
    records = []
    for p in pairs:
        a, _b = shown(p)
        it = items[p["row"] - 1]
        labels = {0: "tie", 1: "A" if a == 0 else "B", 2: "B" if a == 0 else "A"}
        records.append(
            {
                "id": p["id"],
                "messages": p["messages"],
                "metadata": record_metadata(p),
                "suggestions": {st.PREFERENCE: {"value": judge_label(p), "score": None, "agent": "j"}},
                "responses": [
                    {"user": f"u{k}", "status": "submitted", "preference": labels[it[f"annotator{k}"]]}
                    for k in (1, 2, 3)
                ],
            }
        )
    return calibration_report(records, Config().export, "pandalm", 0.75)


def test_reliability_diagram_from_calibration_json(shared_data: Path, tmp_path: Path) -> None:
    write_json(tmp_path / CALIBRATION, _pandalm_calibration(shared_data, n=300, size=120))
    calibration = read_json(tmp_path / CALIBRATION, CalibrationReport)
    levels = calibration["levels"]
    assert len(levels) >= 3 and sum(s["votes"] for s in levels.values()) == calibration["sample_decided"] > 0
    page = build_report(export_dir=tmp_path)  # an export directory with calibration.json (no summary)
    drawn = charts(page)
    assert set(drawn) == {"reliability diagram"}
    assert drawn["reliability diagram"].width > 300 and drawn["reliability diagram"].height > 200
    assert "<h2>Judge calibration</h2>" in page and "votes needed for 0.750" in page
    # one row per level, most confident first, with the file's figures
    table = re.findall(
        r"<tr><td>(\w+)</td><td>(\d+)</td><td>(\d+)</td><td>([\d.]+)</td><td>([\d.]+) - ([\d.]+)</td>", page
    )
    assert [t[0] for t in table] == sorted(levels, key=LEVELS.index)
    for level, votes, agree, agreement, low, high in table:
        s = levels[level]
        assert (int(votes), int(agree)) == (s["votes"], s["agree"])
        assert (float(agreement), float(low), float(high)) == pytest.approx(
            (s["agreement"], s["low"], s["high"]), abs=5e-4
        )
    assert f"From {calibration['sample_decided']} decided of {calibration['sample_records']} records" in page


def test_report_of_an_empty_run_dir_says_so(tmp_path: Path) -> None:
    assert "No stage output found yet" in build_report(tmp_path)


def test_a_summary_of_another_shape_is_an_error_naming_file_and_field(tmp_path: Path) -> None:
    # the shape the report used to read, which no export ever wrote
    (tmp_path / "summary.json").write_text(json.dumps({"reviewed": 8, "exported": 6, "agreement": {}}))
    with pytest.raises(InputError, match=r"summary\.json: field 'dataset'"):
        build_report(export_dir=tmp_path)


def test_a_malformed_manifest_is_an_error_naming_file_and_field(tmp_path: Path) -> None:
    save_manifest(tmp_path, {"stages": {"03-dedup": {"status": "done", "rows_out": "thirty"}}})
    with pytest.raises(InputError, match=r"manifest\.json: field 'stages\.03-dedup\.rows_out'"):
        build_report(tmp_path)


@pytest.mark.slow
@pytest.mark.server
@pytest.mark.browser
@pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="Debian chromium not installed (make system-deps)")
def test_report_renders_in_chromium_without_console_errors(
    real_run: Path, pandalm_export, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    path = write_report(real_run, pandalm_export.out, out=tmp_path / "report.html")
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
        assert images.count() >= len(RUN_CHARTS) + len(EXPORT_CHARTS) - 1  # one funnel for both
        # every embedded plot decoded into a real image
        widths = images.evaluate_all("imgs => imgs.map(i => i.naturalWidth)")
        assert all(w > 100 for w in widths), widths
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert errors == []
    assert (tmp_path / "report.png").stat().st_size > 10_000
