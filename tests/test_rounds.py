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


# --------------------------------------------------------------------------------------------------
# Review rounds on the embedded Argilla: PandaLM's real pairs (one item per distinct prompt), with
# gpt-3.5's verdicts as the judge suggestions.
# --------------------------------------------------------------------------------------------------


def _pandalm_pairs(shared_data: Path, n: int) -> list[dict]:
    from review_helpers import pandalm_pair, pandalm_verdicts

    pandalm = shared_data / "preference" / "pandalm"
    gpt = pandalm_verdicts(pandalm)
    seen: set[tuple[str, str]] = set()
    rows = []
    for it in json.loads((pandalm / "testset-v1.json").read_text()):
        if (it["instruction"], it["input"]) in seen:
            continue
        seen.add((it["instruction"], it["input"]))
        rows.append(pandalm_pair(it, gpt, f"pandalm-{it['idx']}"))
        if len(rows) == n:
            break
    return rows


def _snapshot(client, name: str, workspace: str) -> dict[str, str]:
    """external id -> the record's responses and suggestions, as the server returns them (JSON text)."""
    from curate.stages.review.client import iter_raw_records, require_dataset

    dataset = require_dataset(client, name, workspace)
    return {
        r["external_id"]: json.dumps(
            {"responses": r.get("responses"), "suggestions": r.get("suggestions")}, sort_keys=True
        )
        for r in iter_raw_records(client, dataset)
    }


def _legacy_push(client, rows: list[dict], name: str, workspace: str, cfg) -> None:
    """Round 1 as curate pushed it before rounds existed: the settings without the `round` property, the
    records without it, and no vectors provenance (what this version's push writes, minus those)."""
    import argilla as rg

    from curate.embeddings import embed
    from curate.rows import messages_text
    from curate.stages.review import client as rc
    from curate.stages.review import pairs as pr
    from curate.stages.review import settings as st
    from curate.stages.review.calibration import apply_plan
    from curate.stages.review.push import to_record

    pairs, rejected = pr.to_pairs(rows, cfg.review.seed, None)
    assert not rejected
    apply_plan(pairs, cfg.review.calibration_size, cfg.review.seed)
    vectors = embed([messages_text(p["messages"]) for p in pairs], cfg.embeddings, "legacy")
    for p, v in zip(pairs, vectors):
        p["embedding"] = [float(x) for x in v]
    spec = st.build_spec(pr.metadata_names(pairs), vectors.shape[1])
    del spec["metadata"][st.ROUND]
    ws = rc.get_workspace(client, workspace, create=True)
    dataset = rg.Dataset(name=name, workspace=ws, settings=st.to_rg_settings(spec, client), client=client)
    dataset.create()
    names = set(spec["metadata"])
    records = [to_record(p, dataset, names, True).api_model() for p in pairs]
    client.api.records.bulk_upsert(dataset_id=dataset.id, records=records)


@pytest.mark.server
@pytest.mark.slow
def test_later_rounds_append_and_export_per_round(shared_data: Path, argilla_server, tmp_path: Path) -> None:
    """A dataset pushed before rounds (round 1, with votes) takes round 2 and round 3 through `curate
    push`: only new records are added, every existing record's responses and suggestions stay byte for
    byte, the round is recorded on records and in the provenance, the export counts each round and selects
    rounds, and `--against argilla:` reuses the stored vectors of the rounds whose encoder is recorded."""
    from review_helpers import annotators, owner, server_config, submit, unique

    from curate.stages.export import export
    from curate.stages.review import client as rc
    from curate.stages.review.push import PROVENANCE_KEY, push

    cfg = server_config(argilla_server, tmp_path)
    name, ws = unique("rounds"), unique("ws")
    client = owner(argilla_server)
    rows = _pandalm_pairs(shared_data, 16)
    _legacy_push(client, rows[:6], name, ws, cfg)
    voter = annotators(argilla_server, ws, ["voter"])["voter"][1]
    legacy = {r["external_id"]: r for r in rc.iter_raw_records(client, rc.require_dataset(client, name, ws))}
    assert len(legacy) == 6
    for raw in list(legacy.values())[:4]:
        submit(voter, raw["id"], preference="A", rating_a=4)
    before = _snapshot(client, name, ws)

    second = push(rows[:12], cfg, name, ws)  # 6 already there, 6 new
    assert (second["created"], second["already_present"], second["round"]) == (6, 6, 2)
    after = _snapshot(client, name, ws)
    assert {k: after[k] for k in before} == before  # byte for byte
    again = push(rows[:12], cfg, name, ws)  # the same input again: nothing new, still round 2
    assert (again["created"], again["round"]) == (0, 2)
    third = push(rows[6:16], cfg, name, ws, source=tmp_path / "round3")  # 4 new
    assert (third["created"], third["round"]) == (4, 3)
    after3 = _snapshot(client, name, ws)
    assert {k: after3[k] for k in after} == after

    dataset = rc.require_dataset(client, name, ws)
    raws = list(rc.iter_raw_records(client, dataset))
    by_id = {r["external_id"]: r for r in raws}
    assert all("round" not in by_id[k]["metadata"] for k in legacy)  # untouched, so round 1 by default
    source = {r["metadata"]["source_id"]: r["external_id"] for r in raws}  # row id -> record id
    expected = (
        {r["id"]: 1 for r in rows[:6]} | {r["id"]: 2 for r in rows[6:12]} | {r["id"]: 3 for r in rows[12:]}
    )
    assert {r["metadata"]["source_id"]: r["metadata"].get("round", 1) for r in raws} == expected
    pushes = rc.dataset_metadata(client, dataset)[PROVENANCE_KEY]["pushes"]
    assert [(p["round"], p["push"]["created"]) for p in pushes] == [(2, 6), (3, 4)]
    assert pushes[1]["source"] == str((tmp_path / "round3").resolve())
    assert pushes[1]["vectors"] == {
        "encoder": second_encoder(cfg),
        "text": "prompt_text@1",
        "dimensions": 384,
    }

    round2 = [by_id[source[r["id"]]] for r in rows[6:9]]
    for raw in round2:
        submit(voter, raw["id"], preference="B")
    summary = export(cfg, name, ws, tmp_path / "export", client=client)
    rounds = summary["rounds"]
    assert {k: (c["records"], c["reviewed"], c["pairs"]) for k, c in rounds.items()} == {
        "1": (6, 4, 4),
        "2": (6, 3, 3),
        "3": (4, 0, 0),
    }
    assert sum(c["pairs"] for c in rounds.values()) == summary["pairs"] == 7
    card = (tmp_path / "export" / "README.md").read_text()
    assert "## Review rounds" in card
    assert "| 1 | n/a | n/a | 6 | 4 | 4 (4 / 0) |" in card
    assert (
        "| 6 | 3 | 3 (3 / 0) |" in card and "| `tmp" not in card and "/round3` | 4 | 0 | 0 (0 / 0) |" in card
    )

    out = tmp_path / "export-2-3"
    result = CliRunner().invoke(
        app,
        ["export", "-o", str(out), "--dataset", name, "--workspace", ws, "--round", "2", "--round", "3"],
        env={"ARGILLA_API_URL": argilla_server.url, "ARGILLA_API_KEY": argilla_server.api_key},
    )
    assert result.exit_code == 0, result.output
    selected = json.loads((out / "summary.json").read_text())
    assert selected["rounds_selected"] == [2, 3] and set(selected["rounds"]) == {"2", "3"}
    assert selected["pairs"] == 3 and selected["accounting"]["records"]["total"] == 10
    assert "round(s) 2, 3 only" in (out / "README.md").read_text()
    assert set(read_rows(out)["id"]) == {source[r["id"]] for r in rows[6:9]}

    # a later batch deduped against the review dataset: rounds 2 and 3 recorded their encoder, so their
    # stored vectors are used as they are; round 1 (pushed before that was recorded) is embedded
    near = {"instruction": rows[10]["instruction"].replace(".", ", please.", 1), "input": rows[10]["input"]}
    new = [{"instruction": rows[2]["instruction"], "input": rows[2]["input"]}, near]
    new += [
        {"instruction": r["instruction"], "input": r["input"]} for r in _pandalm_pairs(shared_data, 20)[16:]
    ]
    kept = curate.dedup(new, against=[f"argilla:{ws}/{name}"], config=cfg)
    ref = kept.stats["references"][0]
    assert (ref["rows"], ref["stored_vectors"], ref["embedded"] + ref["cached"]) == (16, 10, 6)
    assert "recorded no encoder" in ref["note"] and ref["removed"] == 2
    removed = kept.splits["removed"]
    assert removed["duplicate_of"] == [source[rows[2]["id"]], source[rows[10]["id"]]]
    assert removed["dedup_match"] == ["exact", "semantic"]
    assert len(kept.rows) == 4


def second_encoder(cfg) -> str:
    from curate.models import encoder_name

    return encoder_name(cfg.embeddings)


@pytest.mark.server
@pytest.mark.slow
def test_a_run_dedups_against_the_review_dataset_it_pushes_to(
    shared_data: Path, argilla_server, tmp_path: Path, tiny_config
) -> None:
    """`curate run` (to its dedup stage, from the user's instructions): the review dataset, once it has
    records, is a reference (a near-duplicate of a pair already pushed is removed, through its stored
    vector); a re-run skips the dedup while only this run's own rounds are there, and redoes it once
    someone else pushed a round."""
    from review_helpers import server_config, unique

    from curate.run import dedup_config, review_reference, run_stages, stage_named
    from curate.stages.review.push import push

    # the embedded server is not started for it when its data dir holds no database yet
    assert review_reference(tiny_config) is None
    assert not (tmp_path / "argilla").exists()

    rows = _pandalm_pairs(shared_data, 12)
    near = {"instruction": rows[4]["instruction"].replace(".", ", please.", 1), "input": rows[4]["input"]}
    new = [near, *({"instruction": r["instruction"], "input": r["input"]} for r in rows[6:10])]
    name, ws = unique("run-ref"), unique("ws")
    cfg = server_config(
        argilla_server,
        tmp_path,
        argilla={"dataset": name, "workspace": ws},
        run={"name": "round2", "input": str(_jsonl(tmp_path, new))},
    )
    run_dir = tmp_path / "runs" / "round2"
    plain, state = dedup_config(cfg, run_dir)
    assert plain.dedup.against == [] and state == {}  # nothing pushed yet: no reference

    push(rows[:6], cfg, name, ws, source=run_dir / "07-select")  # as this run's push stage would
    dedup = stage_named("dedup").name
    first = run_stages(cfg, run_dir, until="dedup")["stages"][dedup]
    label = f"argilla:{ws}/{name}"
    ref = first["stats"]["references"][0]
    assert (ref["reference"], ref["removed"], ref["embeddings"], ref["stored_vectors"]) == (
        label,
        1,
        "stored",
        6,
    )
    removed = read_rows(run_dir / dedup, split="removed")
    assert removed["duplicate_source"] == [label] and removed["dedup_match"] == ["semantic"]
    assert removed["instruction"] == [near["instruction"]] and first["rows_out"] == 4

    again = run_stages(cfg, run_dir, until="dedup")["stages"][dedup]  # only its own round there: skipped
    assert again["output_id"] == first["output_id"]
    push(rows[10:12], cfg, name, ws, source=tmp_path / "elsewhere")  # a round pushed by someone else
    redone = run_stages(cfg, run_dir, until="dedup")["stages"][dedup]
    assert redone["output_id"] != first["output_id"]
    assert redone["stats"]["references"][0]["rows"] == 8
