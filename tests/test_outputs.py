"""What curate writes and reads: every stage directory opens with plain `datasets`, outputs never replace
what curate did not write, and files are read as users write them (all keys, raw CSV, strict JSON)."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest
from datasets import Dataset
from typer.testing import CliRunner

import curate
from curate.cli import app
from curate.io import OUTPUT_MARKER, InputError, read_rows, write_dataset, write_json

runner = CliRunner()


def _strict_json(path: Path) -> dict:
    """Parse as strict JSON: NaN / Infinity are not JSON and fail here."""

    def refuse(constant: str) -> None:
        raise ValueError(f"{path}: non-JSON constant {constant}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_an_empty_split_is_written_so_that_plain_load_from_disk_opens_it(tmp_path: Path) -> None:
    kept = Dataset.from_dict({"instruction": ["a", "b"], "n": [1, 2]})
    out = write_dataset(tmp_path / "out", {"train": kept, "removed": kept.select([])}, {"rows": 2})
    opened = datasets.load_from_disk(str(out))
    assert len(opened["train"]) == 2 and len(opened["removed"]) == 0
    assert opened["removed"].features == kept.features  # the empty split keeps its schema
    assert (out / OUTPUT_MARKER).is_file()


@pytest.mark.slow
def test_every_stage_directory_of_real_stages_opens_with_plain_load_from_disk(tmp_path: Path) -> None:
    """Real dedup and select on rows where nothing is removed or rejected, and a dry run: every split,
    empty ones included, opens with `datasets.load_from_disk` itself."""
    rows = [
        {"instruction": "Name three primary colours.", "deita_score": 3.0},
        {"instruction": "Explain how a bicycle gear works.", "deita_score": 9.0},
        {"instruction": "Write a haiku about autumn rain.", "deita_score": 6.0},
    ]
    deduped = curate.dedup(rows)
    selected = curate.select(deduped.rows, budget=10)
    dry = curate.dedup(rows, dry_run=True)
    for name, result in {"dedup": deduped, "select": selected, "dry": dry}.items():
        out = write_dataset(tmp_path / name, result.splits, result.stats)
        opened = datasets.load_from_disk(str(out))
        assert {k: len(v) for k, v in opened.items()} == {k: len(v) for k, v in result.splits.items()}
        assert min(len(v) for v in opened.values()) == 0, f"{name}: the case of an empty split"
        _strict_json(out / "stats.json")


def test_a_user_directory_is_never_replaced_by_an_output(tmp_path: Path) -> None:
    """`curate dedup -o DIR` where DIR holds the user's own files: refused before any work, files intact."""
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"instruction": "Why is the sky blue?"}) + "\n")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    result = runner.invoke(app, ["dedup", "-i", str(rows), "-o", str(mine)])
    assert result.exit_code == 1
    assert "holdsfilescuratedidnotwrite" in "".join(result.output.split())
    assert (mine / "notes.txt").read_text() == "my notes" and sorted(p.name for p in mine.iterdir()) == [
        "notes.txt"
    ]

    plain = tmp_path / "plain.txt"
    plain.write_text("keep me")
    result = runner.invoke(app, ["dedup", "-i", str(rows), "-o", str(plain)])
    assert result.exit_code == 1 and "isnotadirectory" in "".join(result.output.split())
    assert plain.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "plain.txt", "rows.jsonl"]  # no .old-PID


def test_curate_replaces_its_own_output(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_dataset(out, Dataset.from_dict({"x": [1]}))
    write_dataset(out, Dataset.from_dict({"x": [1, 2]}))
    assert len(read_rows(out)) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_jsonl_rows_keep_keys_that_the_first_row_lacks(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    lines = [
        {"prompt": "Say hi.", "response_a": "Hi!", "response_b": "Hello."},
        {
            "prompt": "Say bye.",
            "response_a": "Bye!",
            "response_b": "Goodbye.",
            "response": "x",
            "judge_preference": "a",
            "judge_model": "gpt-4",
        },
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    ds = read_rows(path)
    assert ds[1]["judge_preference"] == "a" and ds[1]["judge_model"] == "gpt-4" and ds[1]["response"] == "x"
    assert ds[0]["judge_preference"] is None


def test_csv_fields_are_read_from_the_raw_stream(tmp_path: Path) -> None:
    """Quoted newlines stay in the field, U+2028 does not split a row, errors cite the file's own line."""
    path = tmp_path / "rows.csv"
    path.write_text(
        'instruction,response\n"Write a poem\nin two lines.","Roses\nare red."\n"A\u2028B",ok\n',
        encoding="utf-8",
    )
    ds = read_rows(path)
    assert ds["instruction"] == ["Write a poem\nin two lines.", "A\u2028B"]
    assert ds["response"] == ["Roses\nare red.", "ok"]

    bad = tmp_path / "bad.csv"
    bad.write_text('instruction,response\n"one\ntwo",ok\nthree,four,five\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"bad\.csv:4: more values than header columns"):
        read_rows(bad)


def test_a_text_of_only_invisible_characters_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(
        json.dumps({"instruction": "Real task."})
        + "\n"
        + json.dumps({"instruction": "\u200b\u200d \ufeff"})
        + "\n"
    )
    result = runner.invoke(app, ["dedup", "-i", str(path), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    text = "".join(result.output.split())
    assert "field'instruction'" in text and "firstatrow2" in text
    assert not (tmp_path / "out").exists()


def test_stats_are_strict_json(tmp_path: Path) -> None:
    out = write_json(
        tmp_path / "stats.json", {"best": float("inf"), "mean": float("nan"), "n": [1.5, float("-inf")]}
    )
    assert _strict_json(out) == {"best": None, "mean": None, "n": [1.5, None]}


@pytest.mark.slow
def test_an_infinite_score_is_no_score(tmp_path: Path) -> None:
    """A row scored inf is not ranked first: it is rejected as unscored, and stats.json stays strict JSON."""
    rows = [
        {"instruction": "Explain photosynthesis simply.", "deita_score": float("inf")},
        {"instruction": "List three uses of copper.", "deita_score": 4.0},
    ]
    result = curate.select(rows, budget=1)
    assert result.rows["instruction"] == ["List three uses of copper."]
    assert result.splits["rejected"]["selection_reason"] == ["no deita_score"]
    _strict_json(write_dataset(tmp_path / "sel", result.splits, result.stats) / "stats.json")


@pytest.mark.slow
@pytest.mark.server
def test_an_export_with_no_pair_is_a_valid_empty_export_that_says_why(
    argilla_server, tmp_path: Path, shared_data: Path
) -> None:
    """Nobody reviewed yet: the export is written, every split opens with plain load_from_disk, the
    accounting adds up and the summary (and the command) says why there is no pair."""
    from review_helpers import server_config

    items = json.loads((shared_data / "preference" / "pandalm" / "testset-v1.json").read_text())[:3]
    rows = [
        {
            "instruction": r["instruction"],
            "input": r["input"],
            "response_a": r["response1"],
            "response_b": r["response2"],
        }
        for r in items
    ]
    cfg = server_config(argilla_server, tmp_path, argilla={"dataset": "nobody-reviewed"})
    pushed = curate.push(rows, config=cfg)
    created = pushed.stats["created"]
    assert created >= 2
    summary = curate.export(tmp_path / "export", config=cfg)
    assert summary["pairs"] == 0 and summary["accounting"]["records"]["total"] == created
    assert (
        "no record qualified" in summary["empty_because"]
        and "--include-unreviewed" in summary["empty_because"]
    )
    opened = datasets.load_from_disk(str(tmp_path / "export"))
    assert {name: len(split) for name, split in opened.items()} == summary["splits"]
    assert all(len(split) == 0 for split in opened.values())
    assert _strict_json(tmp_path / "export" / "summary.json")["empty_because"] == summary["empty_because"]
    assert (tmp_path / "export" / "README.md").is_file()
