"""`curate run` end to end on tiny sizes: every stage, the manifest, skipping, resume after a kill."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from curate.io import read_rows
from curate.run import STAGES as TABLE
from curate.run import stage_named

STAGES = [s.name for s in TABLE]
FLOW = [
    "instructions",
    "dedup",
    "complexity",
    "select-instructions",
    "preferences",
    "quality",
    "select",
    "push",
]


def _dir(name: str) -> str:
    return stage_named(name).name


def _config(tmp_path: Path, argilla_data_dir: Path, **extra) -> Path:
    cfg = {
        "llm": {"max_new_tokens": 32, "n_ctx": 1024},
        "generate": {"instructions": {"num_instructions": 10}, "preferences": {"num_generations": 2}},
        "select": {"instruction_budget": 3, "budget": 2},
        "server": {"data_dir": str(argilla_data_dir)},
        "argilla": {"dataset": "run-test", "workspace": "curate"},
        "run": {"runs_dir": str(tmp_path / "runs"), "name": "tiny"},
    }
    for section, values in extra.items():
        cfg.setdefault(section, {}).update(values)
    path = tmp_path / "curate.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _curate(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("ARGILLA_", "CURATE_"))}
    return subprocess.run(
        [sys.executable, "-m", "curate", *args],
        capture_output=True,
        text=True,
        env=environ | (env or {}),
        check=False,
    )


def _manifest(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "runs" / "tiny" / "manifest.json").read_text())


@pytest.mark.slow
@pytest.mark.server
def test_run_end_to_end_then_skip_then_partial_redo(tmp_path: Path, argilla_server) -> None:
    cfg = _config(tmp_path, argilla_server.data_dir)
    first = _curate("run", "--config", str(cfg))
    assert first.returncode == 0, first.stderr[-3000:]
    run_dir = tmp_path / "runs" / "tiny"
    manifest = _manifest(tmp_path)
    assert [s.short for s in TABLE] == FLOW  # everything that drops instructions runs before generation
    assert list(manifest["stages"]) == STAGES
    for name in STAGES:
        entry = manifest["stages"][name]
        assert entry["status"] == "done" and entry["seconds"] >= 0 and entry["output_id"]
    # rows flow: each stage's rows_in is the previous stage's rows_out
    for before, after in itertools.pairwise(STAGES):
        assert manifest["stages"][after]["rows_in"] == manifest["stages"][before]["rows_out"]
    assert manifest["models"]["llm"]["sha256"] and manifest["versions"]["distilabel"]
    # the scorer's model files too (the embedded default: Gemma for complexity, the quality head)
    assert manifest["models"]["scorer"]["name"] and manifest["models"]["quality_head"]["sha256"]
    # responses were generated only for the instruction budget
    stages = manifest["stages"]
    scored = stages[_dir("complexity")]["rows_out"]  # Magpie's filters keep most of the 10, not all
    assert stages[_dir("preferences")]["rows_in"] == min(3, scored) > 0
    assert len(read_rows(run_dir / _dir("select-instructions"), split="rejected")) == scored - min(3, scored)
    # what generation cost per row, and what the stages before it saved by dropping rows
    from curate.report import tokens_saved

    assert stages[_dir("preferences")]["stats"]["generated_tokens"] > 0
    assert (tokens_saved(manifest)[_dir("select-instructions")] > 0) == (scored > 3)
    assert "generated tokens saved" in (run_dir / "report.html").read_text()
    selected = read_rows(run_dir / _dir("select"))
    assert 0 < len(selected) <= 2
    assert {"deita_score", "complexity", "dedup_cluster", "embedding", "generations"} <= set(
        selected.column_names
    )
    assert (run_dir / "report.html").read_text().count("data:image/png;base64") >= 2
    assert "log in as" in first.stdout + first.stderr

    # the records are really in Argilla
    import argilla as rg

    client = rg.Argilla(api_url=argilla_server.url, api_key=argilla_server.api_key)
    dataset = client.datasets("run-test", workspace="curate")
    assert len(list(dataset.records)) == len(selected)

    # unchanged config: everything is skipped
    second = _curate("run", "--config", str(cfg))
    assert second.returncode == 0, second.stderr[-3000:]
    again = _manifest(tmp_path)
    for name in STAGES:
        assert again["stages"][name]["output_id"] == manifest["stages"][name]["output_id"]

    # a changed review budget redoes the review selection and push only, never generation
    cfg = _config(tmp_path, argilla_server.data_dir, select={"instruction_budget": 3, "budget": 1})
    third = _curate("run", "--config", str(cfg))
    assert third.returncode == 0, third.stderr[-3000:]
    redone = _manifest(tmp_path)
    cut = STAGES.index(_dir("select"))
    for name in STAGES[:cut]:
        assert redone["stages"][name]["output_id"] == manifest["stages"][name]["output_id"]
    for name in STAGES[cut:]:
        assert redone["stages"][name]["output_id"] != manifest["stages"][name]["output_id"]
    assert len(read_rows(run_dir / _dir("select"))) == 1


@pytest.mark.slow
@pytest.mark.server
def test_run_resumes_after_a_kill(tmp_path: Path, argilla_server) -> None:
    cfg = _config(tmp_path, argilla_server.data_dir, argilla={"dataset": "run-resume"})
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("ARGILLA_", "CURATE_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "curate", "run", "--config", str(cfg), "--until", "preferences"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=environ,
        start_new_session=True,
    )
    manifest_path = tmp_path / "runs" / "tiny" / "manifest.json"
    # kill the run while response generation is running (the stages before it have finished)
    deadline = time.monotonic() + 1800  # a bound on waiting for that moment, not on the work
    reached = False
    while not reached and proc.poll() is None and time.monotonic() < deadline:
        if manifest_path.exists():
            stages = json.loads(manifest_path.read_text())["stages"]
            reached = stages.get(_dir("preferences"), {}).get("status") == "running"
        time.sleep(0.2)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert reached, "the run never reached response generation (it ended, or the wait bound passed)"
    killed = json.loads(manifest_path.read_text())["stages"]
    before = STAGES[: STAGES.index(_dir("preferences"))]
    assert all(killed[name]["status"] == "done" for name in before)
    assert killed[_dir("preferences")]["status"] == "running"
    assert not (tmp_path / "runs" / "tiny" / _dir("preferences")).exists()  # nothing half-written

    resumed = _curate("run", "--config", str(cfg), "--until", "preferences")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    stages = _manifest(tmp_path)["stages"]
    assert all(stages[name]["output_id"] == killed[name]["output_id"] for name in before)
    assert stages[_dir("preferences")]["status"] == "done"
    assert _dir("quality") not in stages
    assert (
        len(read_rows(tmp_path / "runs" / "tiny" / _dir("preferences")))
        == stages[_dir("preferences")]["rows_out"]
    )


def test_unknown_force_stage_is_a_clear_error(tmp_path: Path) -> None:
    cfg = _config(tmp_path, tmp_path / "argilla")
    result = _curate("run", "--config", str(cfg), "--force", "nonsense")
    assert result.returncode != 0
    assert "unknown stage 'nonsense'" in result.stderr


def test_a_stage_that_keeps_no_rows_stops_the_run_and_is_never_done(tmp_path: Path, monkeypatch) -> None:
    """Every generated row filtered out: the run stops naming the filters, the next stage never starts,
    and the stage is not recorded as done (so the next run redoes it)."""
    from datasets import Dataset

    from curate import run
    from curate.config import load_config
    from curate.stages import StageResult

    def all_filtered(cfg, ds, *, source=None):
        empty = Dataset.from_dict({"instruction": []})
        return StageResult({"train": empty}, {"dropped_not_an_instruction": 26, "dropped_too_short": 5})

    def must_not_run(cfg, ds, *, source=None):
        raise AssertionError("a stage ran on an empty input")

    stages = (
        run.Stage("01-instructions", ("llm",), all_filtered),
        run.Stage("02-dedup", ("llm",), must_not_run),
    )
    monkeypatch.setattr(run, "STAGES", stages)
    cfg = load_config(overrides={"run": {"runs_dir": str(tmp_path / "runs"), "name": "empty"}}, environ={})
    why = r"kept no rows \(dropped not an instruction: 26, too short: 5\).*magpie"
    with pytest.raises(run.EmptyStageError, match=why):
        run.run_stages(cfg, tmp_path / "runs" / "empty")
    recorded = json.loads((tmp_path / "runs" / "empty" / "manifest.json").read_text())["stages"]
    assert recorded["01-instructions"]["status"] == "empty" and "02-dedup" not in recorded


@pytest.mark.slow
@pytest.mark.server
def test_run_from_the_users_judged_pairs(tmp_path: Path, argilla_server, shared_data: Path) -> None:
    """`curate run --input` with real judged pairs (PandaLM responses, gpt-3.5's verdicts): generation is
    skipped, the pairs are deduped, scored, selected and pushed."""
    items = json.loads((shared_data / "preference" / "pandalm" / "testset-v1.json").read_text())
    verdicts = {
        r["idx"]: r
        for r in json.loads(
            (shared_data / "preference" / "pandalm" / "gpt-3.5-turbo-testset-v1.json").read_text()
        )
    }
    rows, seen = [], set()
    for r in items:
        if r["instruction"] in seen or r["idx"] not in verdicts:
            continue
        seen.add(r["instruction"])
        verdict = {"1": "a", "2": "b", "0": "tie"}.get(str(verdicts[r["idx"]]["gpt_result"]).strip())
        rows.append(
            {
                "instruction": r["instruction"],
                "input": r["input"],
                "response_a": r["response1"],
                "response_b": r["response2"],
                "judge_preference": verdict,
                "judge_model": "gpt-3.5-turbo",
            }
        )
        if len(rows) == 6:
            break
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = _config(tmp_path, argilla_server.data_dir, argilla={"dataset": "run-input-pairs"})
    done = _curate("run", "--config", str(cfg), "--input", str(data), "--no-report")
    assert done.returncode == 0, done.stderr[-3000:]
    stages = _manifest(tmp_path)["stages"]
    assert stages[_dir("instructions")]["rows_out"] == 6
    assert stages[_dir("preferences")]["stats"]["skipped"] == "the rows already have responses"
    assert stages[_dir("preferences")]["rows_in"] == 3  # the instruction budget
    assert stages[_dir("push")]["rows_out"] == 2  # the review budget
    pushed = read_rows(tmp_path / "runs" / "tiny" / _dir("select"))
    assert set(pushed["judge_model"]) == {"gpt-3.5-turbo"} and all(q is not None for q in pushed["quality"])


@pytest.mark.slow
def test_run_from_the_users_instructions(tmp_path: Path, shared_data: Path) -> None:
    """`run.input` with real human prompts (OASST, one JSON string a line): responses are generated for
    the instruction budget only."""
    prompts = (shared_data / "instructions" / "oasst" / "en_100_text.jsonl").read_text().splitlines()[:5]
    data = tmp_path / "prompts.jsonl"
    data.write_text("\n".join(prompts) + "\n")
    cfg = _config(tmp_path, tmp_path / "argilla", run={"input": str(data)}, select={"instruction_budget": 2})
    done = _curate("run", "--config", str(cfg), "--until", "preferences", "--no-report")
    assert done.returncode == 0, done.stderr[-3000:]
    stages = _manifest(tmp_path)["stages"]
    assert stages[_dir("instructions")]["rows_out"] == 5
    assert stages[_dir("preferences")]["rows_in"] == 2
    generated = read_rows(tmp_path / "runs" / "tiny" / _dir("preferences"))
    assert 0 < len(generated) <= 2 and all(len(g) == 2 for g in generated["generations"])
