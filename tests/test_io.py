"""Bad input files through the CLI: a clear error naming the file, line and field, exit code 1, and
no output directory (not even a half-written one). Errors are raised before any model loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from curate.cli import app


def _squash(text: str) -> str:
    """The CLI's rich console wraps long paths: compare without whitespace."""
    return "".join(text.split())


def _bad_files(tmp: Path) -> dict[str, tuple[Path, list[str]]]:
    """name -> (file, fragments the error must contain)."""
    files: dict[str, tuple[Path, list[str]]] = {}

    p = tmp / "missing_column.jsonl"
    p.write_text(json.dumps({"prompt": "What is rain?"}) + "\n" + json.dumps({"prompt": "Why?"}) + "\n")
    files["missing column"] = (p, ["field 'instruction'", "missing column"])

    p = tmp / "empty.jsonl"
    p.write_text("")
    files["empty file"] = (p, ["no rows"])

    p = tmp / "malformed.jsonl"
    p.write_text(json.dumps({"instruction": "What is rain?"}) + "\n" + '{"instruction": "Why is the sky\n')
    files["malformed line"] = (p, [f"{p.name}:2:", "malformed JSON"])

    p = tmp / "latin1.jsonl"
    p.write_bytes(
        (json.dumps({"instruction": "ok"}) + "\n" + json.dumps({"instruction": "also ok"}) + "\n").encode()
        + '{"instruction": "café"}\n'.encode("latin-1")
    )
    files["non-UTF-8"] = (p, [f"{p.name}:3:", "UTF-8"])

    p = tmp / "blank_instruction.jsonl"
    p.write_text(
        json.dumps({"instruction": "What is rain?"}) + "\n" + json.dumps({"instruction": "  "}) + "\n"
    )
    files["empty instruction"] = (p, [f"{p.name}:2:", "field 'instruction'", "empty"])

    p = tmp / "missing_column.csv"
    p.write_text("prompt,answer\nWhat is rain?,Water\n")
    files["csv missing column"] = (p, ["field 'instruction'"])
    return files


def _commands(bad: Path, out: Path) -> dict[str, list[str]]:
    return {
        "preferences --input": ["generate", "preferences", "--input", str(bad), "--output", str(out)],
        "evol-instruct --input": [
            "generate",
            "instructions",
            "--method",
            "evol-instruct",
            "--input",
            str(bad),
            "--output",
            str(out),
        ],
        "self-instruct --seeds": [
            "generate",
            "instructions",
            "--method",
            "self-instruct",
            "--seeds",
            str(bad),
            "--output",
            str(out),
        ],
    }


@pytest.mark.parametrize("command", ["preferences --input", "evol-instruct --input", "self-instruct --seeds"])
def test_bad_inputs_fail_cleanly(tmp_path: Path, command: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CURATE_RUN__RUNS_DIR", str(tmp_path / "runs"))
    for name, (bad, fragments) in _bad_files(tmp_path).items():
        out = tmp_path / "out" / name.replace(" ", "_")
        result = CliRunner().invoke(app, _commands(bad, out)[command])
        message = _squash(result.output)
        assert result.exit_code == 1, (name, result.output, result.exception)
        assert "error:" in message, (name, result.output)
        assert _squash(str(bad)) in message, (name, result.output)
        for fragment in fragments:
            assert _squash(fragment) in message, (name, fragment, result.output)
        assert not out.exists(), name
        leftovers = list(out.parent.glob(f".{out.name}*")) if out.parent.exists() else []
        assert leftovers == [], (name, leftovers)
    assert not (tmp_path / "runs").exists()  # nothing started: the error came before any pipeline


def test_input_only_with_evol_instruct(tmp_path: Path):
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"instruction": "What is rain?"}) + "\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["generate", "instructions", "--method", "magpie", "--input", str(good), "--output", str(out)]
    )
    assert result.exit_code == 1 and "evol-instruct" in result.output
    assert not out.exists()
