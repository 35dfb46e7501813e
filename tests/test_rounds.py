"""Curation in rounds: a new batch is deduped against what earlier rounds kept and decontaminated against
benchmark prompts, on real rows (LIMA instructions, WizardLM test prompts); references are never changed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import curate
from curate.cli import app
from curate.io import read_rows, write_dataset


def _lima(shared_data: Path) -> list[dict]:
    rows = json.loads((shared_data / "instructions" / "lima" / "lima_llamafactory.json").read_text())
    return [{"instruction": r["instruction"]} for r in rows if not r.get("history")]


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


@pytest.mark.slow
def test_a_second_round_removes_what_the_first_already_had(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CURATE_CACHE_DIR", str(tmp_path / "cache"))
    lima = _lima(shared_data)
    first = curate.dedup(lima[:30])
    round1 = write_dataset(tmp_path / "round1", first.splits, first.stats)
    before = _digest(round1)

    again = [dict(r) for r in lima[20:40]]  # 10 rows the first round has, 10 new ones
    again[0]["instruction"] = again[0]["instruction"].upper()  # the same task, shouted: an exact duplicate
    second = curate.dedup(again, against=[str(round1)])
    removed = second.splits["removed"]
    assert len(removed) == 10 and set(removed["dedup_kind"]) == {"reference"}
    assert set(removed["duplicate_source"]) == {"round1"}
    assert set(removed["duplicate_of"]) <= set(read_rows(round1)["id"])
    assert removed["dedup_match"][0] == "exact"
    assert len(second.rows) == 10 and second.stats["reference_duplicates"] == 10
    assert second.stats["references"][0]["embeddings"] == "computed"
    assert _digest(round1) == before  # the reference is never rewritten

    third = curate.dedup(again, against=[str(round1)])  # the reference's embeddings come from the cache
    assert third.stats["references"][0]["embeddings"] == "cached"
    assert third.splits["removed"]["id"] == removed["id"]


@pytest.mark.slow
def test_rows_that_contain_a_benchmark_prompt_are_contamination(shared_data: Path, tmp_path: Path) -> None:
    """The benchmark file as published (WizardLM's own `Instruction` column): a row that quotes a long
    benchmark prompt inside its own words shares a 13-gram with it; one that is a short prompt verbatim
    matches exactly; real unrelated instructions stay."""
    bench = shared_data / "instructions" / "wizardlm" / "WizardLM_testset_odd.jsonl"
    prompts = [json.loads(line)["Instruction"] for line in bench.read_text().splitlines()]
    long = next(p for p in prompts if len(p.split()) >= 30)
    short = next(p for p in prompts if len(p.split()) < 13)
    lima = _lima(shared_data)[:8]
    rows = [
        *lima,
        {
            "instruction": f"My teacher gave us this for homework and I am stuck. {long} Please explain it step by step."
        },
        {"instruction": short},
    ]
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["dedup", "-i", str(_jsonl(tmp_path, rows)), "-o", str(out), "--decontaminate", str(bench)]
    )
    assert result.exit_code == 0, result.output
    removed = read_rows(out, split="removed")
    assert sorted(removed["dedup_match"]) == ["13-gram", "exact"]
    assert set(removed["dedup_kind"]) == {"contamination"} and set(removed["duplicate_source"]) == {
        bench.name
    }
    assert len(read_rows(out)) == len(lima)


def _jsonl(tmp_path: Path, rows: list[dict]) -> Path:
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
