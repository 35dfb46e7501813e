"""The real Argilla web UI, served by the embedded server, driven in Debian's chromium by Playwright.

An annotator logs in, opens a review dataset, changes the judge's suggested choice, writes a correction
and submits; the SDK then sees exactly that response. No browser is downloaded: Playwright drives
/usr/bin/chromium, and every non-local request (the UI asks for Google Fonts) is blocked.
Set CURATE_UPDATE_DOCS=1 to refresh docs/review-ui.png from this run.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.server, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[1]
PROMPTS = [
    "Explain why the sky is blue to a ten-year-old.",
    "Write a haiku about compiling code late at night.",
    "Give three tips for keeping basil alive indoors.",
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


@pytest.fixture(scope="module")
def review(argilla_server):
    """A dataset shaped like `curate push` output, and an annotator who can review it."""
    import argilla as rg

    from curate.server.users import add_user

    info = argilla_server
    workspace = "curate"  # curate's default workspace (argilla.workspace)
    annotator = add_user(info.url, info.api_key, f"reviewer-{int(time.time())}", "annotator", [workspace])
    client = rg.Argilla(api_url=info.url, api_key=info.api_key)
    settings = rg.Settings(
        guidelines="Read the prompt and both responses. Choose the better response, rate each one, and "
        "correct the chosen response if it has mistakes.",
        fields=[
            rg.ChatField(name="prompt", title="Prompt"),
            rg.TextField(name="response_a", title="Response A"),
            rg.TextField(name="response_b", title="Response B"),
        ],
        questions=[
            rg.LabelQuestion(
                name="preferred", title="Which response is better?", labels={"A": "A", "B": "B", "tie": "Tie"}
            ),
            rg.RatingQuestion(name="quality_a", title="Quality of response A", values=[1, 2, 3, 4, 5]),
            rg.RatingQuestion(name="quality_b", title="Quality of response B", values=[1, 2, 3, 4, 5]),
            rg.TextQuestion(name="correction", title="Corrected response (optional)", required=False),
        ],
        metadata=[
            rg.FloatMetadataProperty(name="deita_score", title="Deita score"),
            rg.TermsMetadataProperty(name="method", title="Generation method"),
        ],
        vectors=[rg.VectorField(name="prompt_embedding", dimensions=3)],
    )
    ds = rg.Dataset(name="ui-review", workspace=workspace, settings=settings, client=client).create()
    answers = [
        (
            "Sunlight scatters off air molecules, and blue light scatters the most, "
            "so we see blue everywhere.",
            "Because the ocean reflects onto the sky.",
        ),
        (
            "Fans hum in the dark / the build log scrolls like rain / one green check at dawn",
            "Code compiles at night. It is late. I am tired of it.",
        ),
        (
            "Give it a sunny window, water when the top soil is dry, and pinch off flowers.",
            "Basil needs light, water and pruning; keep it warm and away from drafts.",
        ),
    ]
    ds.records.log(
        [
            rg.Record(
                id=f"pair-{i}",
                fields={"prompt": [{"role": "user", "content": p}], "response_a": a, "response_b": b},
                metadata={"deita_score": 4.0 + i, "method": "self-instruct"},
                vectors={"prompt_embedding": [1.0, float(i), 0.5]},
                suggestions=[
                    rg.Suggestion("preferred", "A", score=0.8, agent="judge-model"),
                    rg.Suggestion("quality_a", 4, agent="judge-model"),
                    rg.Suggestion("quality_b", 2, agent="judge-model"),
                ],
            )
            for i, (p, (a, b)) in enumerate(zip(PROMPTS, answers))
        ]
    )
    return info, annotator, ds


def test_annotator_submits_in_the_real_ui(argilla_server, browser, review, tmp_path):
    info, annotator, ds = review
    page = browser.new_page(viewport={"width": 1440, "height": 900})
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
    page.get_by_text("ui-review").first.click()  # the home page lists the annotator's datasets

    # The annotation page shows one pending record, with the judge's suggestions pre-filled.
    page.locator("#preferred_tie").wait_for(state="attached")
    prompt = next(p for p in PROMPTS if page.get_by_text(p).count())
    page.screenshot(path=str(tmp_path / "review-ui.png"))
    if os.environ.get("CURATE_UPDATE_DOCS") == "1":
        shutil.copy(tmp_path / "review-ui.png", REPO / "docs" / "review-ui.png")

    page.locator("label[for='preferred_tie']").click()
    page.locator("p[contenteditable='true']").click()
    page.keyboard.type("Both are fine; this is the corrected answer.")
    page.locator("button.button--submit").click()
    page.get_by_text("Submitted").first.wait_for()

    # The SDK sees the response, on the record that was on screen, with the values clicked.
    import argilla as rg

    client = rg.Argilla(api_url=info.url, api_key=info.api_key)
    me = client.users(annotator.username)
    dataset = client.datasets("ui-review", workspace=ds.workspace.name)
    deadline = time.monotonic() + 60  # the UI posts asynchronously after the click
    mine = []
    while not mine and time.monotonic() < deadline:
        mine = [(rec, r) for rec in dataset.records for r in rec.responses if r.user_id == me.id]
        time.sleep(0.5)
    by_question = {r.question_name: r for _, r in mine}
    records = {rec.id for rec, _ in mine}
    assert len(records) == 1
    record = next(rec for rec, _ in mine)
    assert record.fields["prompt"][0].content == prompt
    assert by_question["preferred"].value == "tie" and by_question["preferred"].status == "submitted"
    assert by_question["correction"].value == "Both are fine; this is the corrected answer."
    assert by_question["quality_a"].value == 4 and by_question["quality_b"].value == 2  # kept suggestions
    assert record.status == "completed"
    assert all(not u.startswith(info.url) for u in blocked)
    page.close()
