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

STAGES = ["01-instructions", "02-preferences", "03-dedup", "04-score", "05-select", "06-push"]


def _config(tmp_path: Path, argilla_data_dir: Path, **extra) -> Path:
    cfg = {
        "llm": {"max_new_tokens": 32, "n_ctx": 1024},
        "generate": {"instructions": {"num_instructions": 4}, "preferences": {"num_generations": 2}},
        "select": {"budget": 3},
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
    selected = read_rows(run_dir / "05-select")
    assert 0 < len(selected) <= 3
    assert {"deita_score", "dedup_cluster", "embedding", "generations"} <= set(selected.column_names)
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

    # a changed select budget redoes select and push only
    cfg = _config(tmp_path, argilla_server.data_dir, select={"budget": 2})
    third = _curate("run", "--config", str(cfg))
    assert third.returncode == 0, third.stderr[-3000:]
    redone = _manifest(tmp_path)
    for name in STAGES[:4]:
        assert redone["stages"][name]["output_id"] == manifest["stages"][name]["output_id"]
    for name in STAGES[4:]:
        assert redone["stages"][name]["output_id"] != manifest["stages"][name]["output_id"]
    assert len(read_rows(run_dir / "05-select")) <= 2


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
    # kill the run while the second stage is running (the first one has finished)
    while proc.poll() is None:
        if manifest_path.exists():
            stages = json.loads(manifest_path.read_text())["stages"]
            if stages.get("02-preferences", {}).get("status") == "running":
                os.killpg(proc.pid, signal.SIGKILL)
                break
        time.sleep(0.2)
    proc.wait()
    killed = json.loads(manifest_path.read_text())["stages"]
    assert killed["01-instructions"]["status"] == "done"
    assert killed["02-preferences"]["status"] == "running"
    assert not (tmp_path / "runs" / "tiny" / "02-preferences").exists()  # nothing half-written

    resumed = _curate("run", "--config", str(cfg), "--until", "preferences")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    stages = _manifest(tmp_path)["stages"]
    assert stages["01-instructions"]["output_id"] == killed["01-instructions"]["output_id"]
    assert stages["02-preferences"]["status"] == "done"
    assert "03-dedup" not in stages
    assert (
        len(read_rows(tmp_path / "runs" / "tiny" / "02-preferences")) == stages["02-preferences"]["rows_out"]
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
        run.Stage("02-preferences", ("llm",), must_not_run),
    )
    monkeypatch.setattr(run, "STAGES", stages)
    cfg = load_config(overrides={"run": {"runs_dir": str(tmp_path / "runs"), "name": "empty"}}, environ={})
    why = r"kept no rows \(dropped not an instruction: 26, too short: 5\).*magpie"
    with pytest.raises(run.EmptyStageError, match=why):
        run.run_stages(cfg, tmp_path / "runs" / "empty")
    recorded = json.loads((tmp_path / "runs" / "empty" / "manifest.json").read_text())["stages"]
    assert recorded["01-instructions"]["status"] == "empty" and "02-preferences" not in recorded
