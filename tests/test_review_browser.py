"""A reviewer answers in the real Argilla UI, and the next `curate export` contains that answer.

`curate push` builds the dataset; an annotator logs in with Debian's chromium (Playwright, no browser
download, every non-local request blocked), sees markup in a response as literal text (nothing runs),
overrides the judge's pre-filled choice and submits.
Set CURATE_UPDATE_DOCS=1 to refresh docs/review-pairs-ui.png from this run.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from datasets import Dataset, load_from_disk
from review_helpers import owner, raw_records, server_config, unique

from curate.stages.export.export import export
from curate.stages.review.push import push

pytestmark = [pytest.mark.server, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[1]
ROWS = [
    {
        "instruction": "Explain why the sky is blue to a ten-year-old.",
        "generations": [
            "Sunlight bounces off the air, and blue light bounces around the most, so the whole sky "
            "looks blue.",
            'Because the ocean reflects onto the <b>sky</b>. <img src=x onerror="window.__pwned = 1">',
        ],
        "ratings": [5, 2],
    },
    {
        "instruction": "Give three tips for keeping basil alive indoors.",
        "generations": [
            "Water it every day <b>no matter what</b>.",
            "Give it a sunny window, water when the top soil is dry, and pinch off the flowers.",
        ],
        "ratings": [2, 4],
    },
]


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-extensions",
                "--no-first-run",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


def test_ui_answer_lands_in_the_next_export(argilla_server, browser, tmp_path: Path):
    from curate.server.users import add_user

    info = argilla_server
    name, ws = unique("ui-pairs"), unique("ws")
    rows = [
        {
            **r,
            "id": f"ui{i}",
            "method": "self-instruct",
            "generation_models": ["small", "large"],
            "judge_model": "judge-model",
            "complexity": 2.0 + i,
            "quality": 4.0,
            "deita_score": 8.0 + i,
        }
        for i, r in enumerate(ROWS)
    ]
    cfg = server_config(info, tmp_path, review={"vectors": False})
    push(Dataset.from_list(rows), cfg, name, ws)
    annotator = add_user(info.url, info.api_key, unique("reviewer"), "annotator", [ws])

    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    blocked: list[str] = []

    def local_only(route):
        if route.request.url.startswith(info.url):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    page.route("**/*", local_only)
    page.goto(f"{info.url}/sign-in")
    page.get_by_label("Username").fill(annotator.username)
    page.get_by_label("Password").fill(annotator.password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text(name).first.click()
    page.locator("#preference_tie").wait_for(state="attached")

    # Which record is on screen, and what did the judge suggest for it?
    records = {r["fields"]["prompt"][0]["content"]: r for r in raw_records(owner(info), name, ws)}
    prompt = next(p for p in records if page.get_by_text(p).count())
    shown = records[prompt]  # its fields are the texts as pushed (raw_records reads them back)

    # the response with markup shows its tags as text, exactly as it is exported; its HTML never runs
    literal = "<b>sky</b>" if prompt == ROWS[0]["instruction"] else "<b>no matter what</b>"
    page.get_by_text(literal).first.wait_for()
    assert page.locator(".content-area").count() >= 2  # the two responses' text areas
    assert page.locator(".content-area b, .content-area img, iframe").count() == 0
    assert page.evaluate("window.__pwned") is None
    judged = (
        "A"
        if shown["fields"]["response_a"] in (ROWS[0]["generations"][0], ROWS[1]["generations"][1])
        else "B"
    )
    choice = "B" if judged == "A" else "A"  # override the judge
    page.screenshot(path=str(tmp_path / "review-pairs-ui.png"))
    if os.environ.get("CURATE_UPDATE_DOCS") == "1":
        (REPO / "docs").mkdir(exist_ok=True)
        shutil.copy(tmp_path / "review-pairs-ui.png", REPO / "docs" / "review-pairs-ui.png")
    page.locator(f"label[for='preference_{choice}']").click()
    page.locator("button.button--submit").click()
    page.get_by_text("Submitted").first.wait_for()
    page.close()

    out = tmp_path / "export"
    deadline = time.monotonic() + 60  # the UI posts asynchronously after the click
    while True:
        summary = export(cfg, name, ws, out)
        if summary["pairs"] or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    pairs = load_from_disk(str(out))["train"]
    assert len(pairs) == 1
    p = pairs[0]
    assert p["id"] == shown["external_id"] and p["prompt"] == prompt
    assert p["chosen"] == shown["fields"][f"response_{choice.lower()}"]
    assert p["rejected"] == shown["fields"][f"response_{judged.lower()}"]
    assert p["annotators"] == [annotator.username] and p["num_annotators"] == 1
    assert p["judge_suggestion"] == "rejected" and p["human_overrode_judge"] is True
    assert summary["accounting"]["records"]["excluded"] == {"unreviewed": 1}
    assert all(not u.startswith(info.url) for u in blocked)
