"""The README's curation script, run as written: real PandaLM pairs, the real models, the embedded Argilla,
real votes in between (cast through the API as the UI casts them)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from review_helpers import annotators, owner, raw_records, submit

from curate.rows import join_input

REPO = Path(__file__).resolve().parents[1]
VOTE_LINE = "# ... reviewers vote"


def readme_script() -> tuple[str, str]:
    """The README's Python API block, split where the people review: (before, after)."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Curation scripts: the Python API", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, re.S)
    assert block, "the README's Python API section has no python block"
    lines = block.group(1).splitlines(keepends=True)
    cut = next(i for i, line in enumerate(lines) if line.startswith(VOTE_LINE))
    return "".join(lines[:cut]), "".join(lines[cut + 1 :])


@pytest.mark.slow
@pytest.mark.server
def test_the_readme_curation_script_runs(
    shared_data: Path, argilla_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = json.loads((shared_data / "preference" / "pandalm" / "testset-v1.json").read_text())
    first: dict[str, dict] = {}
    for r in items:  # PandaLM compares several model pairs per prompt: one pair of each prompt here
        first.setdefault(join_input(r["instruction"], r["input"]), r)
    rows = [
        {"prompt": prompt, "response_a": r["response1"], "response_b": r["response2"]}
        for prompt, r in list(first.items())[:14]
    ]
    rows.append(dict(rows[0]))  # a duplicate the script's dedup must remove
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ARGILLA_API_URL", argilla_server.url)
    monkeypatch.setenv("ARGILLA_API_KEY", argilla_server.api_key)
    monkeypatch.setenv("CURATE_RUN__RUNS_DIR", str(tmp_path / "runs"))

    before, after = readme_script()
    scope: dict = {}
    exec(compile(before, "README.md (before review)", "exec"), scope)
    assert scope["kept"].stats["removed"] == 1
    assert scope["kept"].splits["removed"]["duplicate_of"] == [scope["kept"].rows["id"][0]]
    assert len(scope["picked"].rows) == 8 and scope["pushed"].stats["created"] == 8

    records = raw_records(owner(argilla_server), "my-review", "curate")
    assert len(records) == 8
    ((_, voter, _),) = annotators(argilla_server, "curate", ["reader"]).values()
    for record in records:
        submit(voter, record["id"], preference="A", rating_a=4, rating_b=2)

    exec(compile(after, "README.md (after review)", "exec"), scope)
    summary = scope["summary"]
    assert summary["pairs"] == 8
    assert (tmp_path / "out" / "my-review" / "README.md").is_file()
