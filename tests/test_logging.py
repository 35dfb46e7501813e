"""Libraries' log lines and warnings go to the log file, not the console: `log_to_file` on its own, then
real tiny generations (the embedded SmolLM2) through `curate run`, a stage command and an in-process
pipeline, whose captured stdout and stderr hold no distilabel log line while the log file does."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml

import curate.console
from curate.console import LOG_FILE, log_file, log_path_for, log_to_file

REPO = Path(__file__).resolve().parents[1]
# What distilabel logs while it runs a pipeline (its console handler prints "['distilabel.pipeline'] ...").
DISTILABEL_LINES = (
    "['distilabel",
    "distilabel.pipeline",
    "distilabel.step",
    "Pipeline data will be written",
    "_BatchManager",
    "sending batch",
)


def _distilabel_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if any(m in line for m in DISTILABEL_LINES)]


def test_log_to_file_routes_records_and_warnings_and_restores(tmp_path: Path, capsys) -> None:
    path = tmp_path / "logs" / "x.log"
    root = logging.getLogger()
    before = list(root.handlers), root.level, warnings.showwarning
    own = str(Path(curate.console.__file__))
    # pytest.warns stands for the console: log_to_file hands curate's own warnings on to the handler
    # that was in place (Python's prints them on stderr), and keeps the others from it.
    with pytest.warns(UserWarning) as shown:
        with log_to_file(path) as opened:
            assert opened == path and log_file() == path
            logging.getLogger("somelib").info("an info line")
            logging.getLogger("somelib").error("an error line")
            warnings.warn_explicit("a library's warning", UserWarning, "/elsewhere/lib/mod.py", 7)
            warnings.warn_explicit("curate's own warning", UserWarning, own, 1)
        assert log_file() is None
        assert (list(root.handlers), root.level) == before[:2]
    assert [str(w.message) for w in shown] == ["curate's own warning"]
    assert (list(root.handlers), root.level, warnings.showwarning) == before
    err = capsys.readouterr().err
    assert "an error line" in err and "an info line" not in err
    text = path.read_text()
    assert "somelib: an info line" in text and "somelib: an error line" in text
    assert "py.warnings: /elsewhere/lib/mod.py:7: UserWarning: a library's warning" in text
    assert "curate's own warning" not in text


def test_log_to_file_appends_records_an_error_and_is_made_only_when_used(tmp_path: Path, capsys) -> None:
    path = tmp_path / "logs" / "x.log"
    with pytest.raises(ValueError, match="bad row"), log_to_file(path):
        logging.getLogger("somelib").info("first run")
        raise ValueError("bad row")
    with log_to_file(path):
        logging.getLogger("somelib").info("second run")
    text = path.read_text()
    assert "curate: stopped by ValueError('bad row')" in text and "Traceback" in text
    assert text.index("bad row") < text.index("second run")  # appended, not replaced
    assert text.count("--- curate ") == 2  # each run's part starts with the command
    assert "bad row" not in capsys.readouterr().err  # the console shows an error its own way

    # A command refused before anything was logged (a bad output path) leaves no log and no folder.
    with pytest.raises(ValueError), log_to_file(tmp_path / "new" / "y.log"):
        raise ValueError("refused")
    assert not (tmp_path / "new").exists()

    blocked = tmp_path / "a-file"
    blocked.write_text("")
    with log_to_file(blocked / "x.log"):  # its folder would be a file: said once, records dropped
        logging.getLogger("somelib").info("one")
        logging.getLogger("somelib").info("two")
    assert capsys.readouterr().err.count("no log file") == 1


def test_a_stage_commands_log_is_beside_its_output() -> None:
    assert log_path_for(Path("out/instr")) == Path("out/instr.log")
    assert log_path_for("out/instr/") == Path("out/instr.log")


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run with stdout and stderr captured apart: what a person sees on the console."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARGILLA_", "CURATE_"))}
    env |= {"PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(args, check=False, capture_output=True, text=True, env=env, cwd=cwd)


@pytest.mark.slow
def test_curate_run_logs_distilabel_to_the_run_directory(tmp_path: Path) -> None:
    """`curate run` generates in a spawned process (llama.cpp is loaded here first): its log lines and
    those of distilabel's step processes reach runs/<name>/curate.log and not the console, and its
    progress bar still advances (distilabel's listener runs in the spawned process too)."""
    cfg = tmp_path / "curate.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "llm": {"max_new_tokens": 32, "n_ctx": 1024},
                "generate": {"instructions": {"num_instructions": 2}},
                "run": {"runs_dir": str(tmp_path / "runs"), "name": "tiny"},
            }
        )
    )
    args = [sys.executable, "-m", "curate", "run", "-c", str(cfg), "--until", "instructions", "--no-report"]
    done = _run(args, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    console = done.stdout + done.stderr
    assert not _distilabel_lines(console), _distilabel_lines(console)
    assert "1/1 batches" in done.stderr  # the magpie bar advanced: its records came through
    log = (tmp_path / "runs" / "tiny" / LOG_FILE).read_text()
    assert f"log:{tmp_path / 'runs' / 'tiny' / LOG_FILE}" in "".join(done.stderr.split())  # rich wraps it
    assert "distilabel.pipeline: " in log
    step_lines = [line for line in log.splitlines() if "sending batch" in line]
    assert step_lines and all("Worker" in line for line in step_lines), step_lines  # from a step process


_IN_PROCESS = """
import sys
from functools import partial
from pathlib import Path

from curate.config import load_config
from curate.console import log_to_file
from pipelines.instructions import prompt_inputs, prompt_pipeline
from pipelines.runner import run_pipeline

cfg = load_config(
    overrides={
        "llm": {"max_new_tokens": 16, "n_ctx": 512},
        "generate": {"instructions": {"num_instructions": 1}},
        "run": {"runs_dir": sys.argv[1]},
    },
    environ={},
)
with log_to_file(Path(sys.argv[1]) / "gen.log"):
    rows = run_pipeline(partial(prompt_pipeline, cfg, prompt_inputs(cfg)), cfg, {"prompt": 1}, isolate=False)
print(f"rows: {len(rows)}")
"""


@pytest.mark.slow
def test_an_in_process_pipeline_logs_to_the_file(tmp_path: Path) -> None:
    """The pipeline runs in this process (nothing loaded llama.cpp yet) and its steps fork from it."""
    script = tmp_path / "gen.py"
    script.write_text(_IN_PROCESS)
    done = _run([sys.executable, str(script), str(tmp_path)], REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "rows: 1" in done.stdout
    console = done.stdout + done.stderr
    assert not _distilabel_lines(console), _distilabel_lines(console)
    assert "1/1 batches" in done.stderr
    log = (tmp_path / "gen.log").read_text()
    assert "distilabel.pipeline: " in log and "distilabel.step.prompt: " in log


@pytest.mark.slow
def test_a_stage_command_logs_beside_its_output(tmp_path: Path) -> None:
    """`curate dedup` loads the real encoder: sentence-transformers' log line goes to <output>.log."""
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"instruction": "Name a fruit."}\n{"instruction": "How do I boil an egg?"}\n')
    out = tmp_path / "dedup"
    done = _run([sys.executable, "-m", "curate", "dedup", "-i", str(rows), "-o", str(out)], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "kept 2, removed 0" in done.stderr
    assert "sentence_transformers" not in done.stdout + done.stderr
    assert "Loading weights" not in done.stderr  # transformers' own bar is off too
    assert "sentence_transformers" in (tmp_path / "dedup.log").read_text()
