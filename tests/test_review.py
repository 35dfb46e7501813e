"""Review push/pull: pure input handling first, then against the embedded Argilla (marked `server`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from datasets import Dataset
from review_helpers import annotators, owner, raw_records, scored_rows, server_config, submit, unique

from curate.io import InputError
from curate.rows import messages_text, stable_id
from curate.stages.review import pairs as pr
from curate.stages.review import settings as st
from curate.stages.review.client import ReviewError, require_dataset
from curate.stages.review.push import push


def pref_row(i: int, **over) -> dict:
    """A row as curate's preference/dedup/score stages write it."""
    row = {
        "id": f"row{i}",
        "instruction": f"Explain topic number {i} briefly.",
        "method": "self-instruct",
        "generations": [f"Short answer {i}.", f"A longer, more careful answer about topic {i}."],
        "generation_models": ["gen-small", "gen-large"],
        "ratings": [2, 4],
        "judge_model": "judge-x",
        "complexity": 2.5,
        "quality": 4.0,
        "quality_scores": [3.0, 4.0],
        "deita_score": 10.0,
        "dedup_cluster": i,
        "dedup_cluster_size": 1,
        "embedding": [1.0, 0.0, 0.0],
    }
    row.update(over)
    return row


def test_pairs_from_preference_rows():
    ds = Dataset.from_list([pref_row(0), pref_row(1, ratings=[5, 1]), pref_row(2, ratings=[3, 3])])
    pairs, rejected = pr.to_pairs(ds, seed=0)
    assert rejected == []
    p = pairs[0]
    assert p["id"] == stable_id(
        "Explain topic number 0 briefly.", "Short answer 0.", "A longer, more careful answer about topic 0."
    )
    assert (
        p["judge_preference"] == "y"
        and pairs[1]["judge_preference"] == "x"
        and pairs[2]["judge_preference"] == "tie"
    )
    assert pr.judge_score(p) == 0.5
    assert p["messages"] == [{"role": "user", "content": "Explain topic number 0 briefly."}]
    for pair in pairs:
        a, b = pr.shown(pair)
        meta = pr.record_metadata(pair)
        assert (meta["a_index"], meta["b_index"]) == (pair["indices"][a], pair["indices"][b])
        assert meta["generator_model_a"] == pair["generator_models"][a]
        assert meta["judge_rating_a"] == pair["ratings"][a]
        # the judge's label follows the response wherever it is shown
        if pair["judge_preference"] in ("x", "y"):
            better = 0 if pair["judge_preference"] == "x" else 1
            assert pr.judge_label(pair) == ("A" if a == better else "B")
    assert pr.metadata_names(pairs) >= {
        "complexity",
        "deita_score",
        "dedup_cluster",
        "judge_rating_a",
        "method",
    }


def test_ab_order_is_random_but_recorded():
    ids = [stable_id(i) for i in range(400)]
    flips = [pr.ab_swapped(i, 0) for i in ids]
    assert flips == [pr.ab_swapped(i, 0) for i in ids]  # deterministic
    assert 150 < sum(flips) < 250  # and balanced
    assert flips != [pr.ab_swapped(i, 1) for i in ids]  # the seed changes it


def test_plain_jsonl_and_chat_prompts(tmp_path: Path):
    from curate.io import read_rows

    path = tmp_path / "pairs.jsonl"
    rows = [
        {"prompt": "What is 2+2?", "response_a": "4", "response_b": "5", "judge_preference": "a"},
        {"prompt": "Translate 'cat'", "response_a": "chat", "response_b": "gato", "judge_preference": "2"},
        {"prompt": "Say hi", "response_a": "hi", "response_b": "hello", "judge_preference": "0"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    pairs, rejected = pr.to_pairs(read_rows(path), seed=0, source=path)
    assert not rejected and [p["judge_preference"] for p in pairs] == ["x", "y", "tie"]
    chat = Dataset.from_list(
        [
            {
                "prompt": [
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": "yo"},
                    {"role": "user", "content": "and now?"},
                ],
                "generations": ["now this", "now that"],
            }
        ]
    )
    pairs, _ = pr.to_pairs(chat, seed=0)
    assert len(pairs[0]["messages"]) == 3 and messages_text(pairs[0]["messages"]).startswith("user: hi")


def test_more_than_two_generations_reviews_best_vs_worst():
    ds = Dataset.from_list(
        [
            pref_row(
                0,
                generations=["g0", "g1", "g2", "g3"],
                ratings=[3, 5, 1, 4],
                generation_models=["m0", "m1", "m2", "m3"],
                quality_scores=[1.0, 2.0, 3.0, 4.0],
            )
        ]
    )
    (p,), _ = pr.to_pairs(ds, seed=0)
    assert p["indices"] == [1, 2] and p["responses"] == ["g1", "g2"] and p["ratings"] == [5, 1]
    assert p["generator_models"] == ["m1", "m2"] and p["judge_preference"] == "x"


def test_bad_rows_are_rejected_with_reasons_and_bad_inputs_fail():
    ds = Dataset.from_list(
        [
            pref_row(0),
            pref_row(1, instruction="   "),
            pref_row(2, generations=["only one", ""]),
            pref_row(3, generations=["same", "same "]),
            pref_row(
                4,
                id="dup-of-0",
                instruction="Explain topic number 0 briefly.",
                generations=["Short answer 0.", "A longer, more careful answer about topic 0."],
            ),
        ]
    )
    pairs, rejected = pr.to_pairs(ds, seed=0)
    assert [p["row"] for p in pairs] == [1]
    assert [(r["row"], r["reason"].split(" (")[0]) for r in rejected] == [
        (2, "empty or missing prompt"),
        (3, "fewer than 2 non-empty responses"),
        (4, "the two responses are identical"),
        (5, "duplicate of row 1"),
    ]
    with pytest.raises(InputError, match="no prompt column"):
        pr.to_pairs(Dataset.from_list([{"text": "x", "generations": ["a", "b"]}]), seed=0, source="in.jsonl")
    with pytest.raises(InputError, match="no responses"):
        pr.to_pairs(Dataset.from_list([{"prompt": "x", "response_a": "a"}]), seed=0, source="in.jsonl")


def test_settings_diff_explains_and_knows_what_is_fixable():
    want = st.build_spec({"complexity", "dedup_cluster"}, 384, min_submitted=2)
    assert set(want["metadata"]) == {"complexity", "dedup_cluster", *st.ALWAYS_METADATA}
    assert st.diff_specs(want, want) == ([], [])
    current = json.loads(json.dumps(want))
    current["questions"]["preference"]["labels"] = ["A", "B"]
    current["vectors"]["prompt_embedding"]["dimensions"] = 768
    del current["metadata"]["complexity"]
    current["distribution"]["min_submitted"] = 1
    current["metadata"]["extra_on_server"] = {"type": "float", "visible": True, "title": "x"}
    diffs, fixable = st.diff_specs(current, want)
    assert "question 'preference': labels is ['A', 'B'] on the server, ['A', 'B', 'tie'] wanted" in diffs
    assert any("768 dimensions on the server, 384 wanted" in d for d in diffs)
    assert set(fixable) == {
        "metadata property 'complexity' is missing on the server",
        "task distribution: min_submitted is 1 on the server, 2 wanted",
    }
    assert not any("extra_on_server" in d for d in diffs)


# --------------------------------------------------------------------------------------------------
# Against the embedded Argilla
# --------------------------------------------------------------------------------------------------


@pytest.mark.server
def test_push_builds_settings_suggestions_and_recorded_order(argilla_server, tmp_path: Path):
    cfg = server_config(argilla_server, tmp_path, review={"min_submitted": 2})
    name, ws = unique("push"), unique("ws")
    rows = scored_rows(12)
    stats = push(Dataset.from_list(rows), cfg, name, ws)
    assert (stats["created"], stats["already_present"], stats["rejected"], stats["vectors"]) == (
        12,
        0,
        0,
        True,
    )
    client = owner(argilla_server)
    dataset = require_dataset(client, name, ws)
    s = dataset.settings
    assert s.fields["prompt"].type == "chat" and s.fields["response_a"].type == "text"
    assert s.questions["preference"].labels == ["A", "B", "tie"] and s.questions["preference"].required
    assert s.questions["rating_a"].values == [1, 2, 3, 4, 5] and not s.questions["corrected"].required
    assert s.vectors["prompt_embedding"].dimensions == 8
    assert s.distribution.min_submitted == 2 and "Which response is better" in s.guidelines
    assert {m.name for m in s.metadata} >= {
        "complexity",
        "quality",
        "deita_score",
        "judge_rating_a",
        "dedup_cluster",
        "dedup_cluster_size",
        "generator_model_a",
        "method",
    }
    by_source = {r["id"]: r for r in rows}
    questions = {str(q.id): q.name for q in s.questions}
    raws = raw_records(client, name, ws)
    assert len(raws) == 12
    swaps = 0
    for raw in raws:
        meta = raw["metadata"]
        row = by_source[meta["source_id"]]
        a, b = meta["a_index"], meta["b_index"]
        swaps += a == 1
        assert raw["fields"]["response_a"] == row["generations"][a]
        assert raw["fields"]["response_b"] == row["generations"][b]
        assert raw["fields"]["prompt"] == [{"role": "user", "content": row["instruction"]}]
        assert (
            meta["judge_rating_a"] == row["ratings"][a]
            and meta["generator_model_b"] == row["generation_models"][b]
        )
        sugg = {questions[x["question_id"]]: x for x in raw["suggestions"]}
        ra, rb = row["ratings"][a], row["ratings"][b]
        assert sugg["preference"]["value"] == ("A" if ra > rb else "B" if rb > ra else "tie")
        # the embedded judge's name has characters Argilla refuses in an agent: cleaned, not refused
        assert (
            sugg["preference"]["agent"] == "SmolLM2-135M-Instruct GGUF embedded"
            and sugg["rating_b"]["value"] == rb
        )
        assert raw["external_id"] == stable_id(row["instruction"], *row["generations"])
    assert 0 < swaps < 12  # both orders occur


@pytest.mark.server
def test_repush_after_annotation_no_duplicates_responses_intact(argilla_server, tmp_path: Path):
    cfg = server_config(argilla_server, tmp_path)
    name, ws = unique("repush"), unique("ws")
    push(Dataset.from_list(scored_rows(6)), cfg, name, ws)
    client = owner(argilla_server)
    ((_user, ann, _),) = annotators(argilla_server, ws, ["ann"]).values()
    before = raw_records(client, name, ws)
    for raw, pref in zip(before[:3], ["A", "B", "tie"]):
        submit(ann, raw["id"], preference=pref, rating_a=3, comment=f"said {pref}")
    answered = {r["id"]: r for r in raw_records(client, name, ws) if r["responses"]}
    # the same rows again plus 4 new ones, with different judge ratings: existing records stay untouched
    rows = scored_rows(6) + scored_rows(4, start=100)
    for r in rows:
        r["ratings"] = [5, 5]
    stats = push(Dataset.from_list(rows), cfg, name, ws)
    assert (stats["already_present"], stats["created"]) == (6, 4)
    after = raw_records(client, name, ws)
    assert len(after) == 10 and len({r["external_id"] for r in after}) == 10
    for raw in after:
        if raw["id"] in answered:
            old = answered[raw["id"]]
            assert [(x["values"], x["status"], x["user_id"]) for x in raw["responses"]] == [
                (x["values"], x["status"], x["user_id"]) for x in old["responses"]
            ]
            assert [x["value"] for x in raw["suggestions"]] == [x["value"] for x in old["suggestions"]]
    assert len(answered) == 3


@pytest.mark.server
def test_settings_clash_is_explained_and_update_settings_applies_what_it_can(argilla_server, tmp_path: Path):
    name, ws = unique("clash"), unique("ws")
    push(Dataset.from_list(scored_rows(3)), server_config(argilla_server, tmp_path), name, ws)
    cfg2 = server_config(argilla_server, tmp_path, review={"min_submitted": 3})
    with pytest.raises(
        ReviewError, match=r"min_submitted is 1 on the server, 3 wanted(.|\n)*--update-settings"
    ):
        push(Dataset.from_list(scored_rows(3)), cfg2, name, ws)
    cfg3 = server_config(argilla_server, tmp_path, review={"min_submitted": 3, "update_settings": True})
    stats = push(Dataset.from_list(scored_rows(4)), cfg3, name, ws)
    assert stats["created"] == 1 and any("min_submitted" in c for c in stats["settings_changes"])
    assert require_dataset(owner(argilla_server), name, ws).settings.distribution.min_submitted == 3
    wider = scored_rows(2, start=50)
    for r in wider:
        r["embedding"] = r["embedding"] * 2  # 16 dimensions: another embedding model
    with pytest.raises(ReviewError, match="8 dimensions on the server, 16 wanted"):
        push(Dataset.from_list(wider), cfg3, name, ws)


@pytest.mark.server
def test_server_rejected_rows_are_quarantined_and_the_rest_land(argilla_server, tmp_path: Path):
    import argilla as rg

    from curate.stages.review import pairs as prs
    from curate.stages.review import settings as sts

    name, ws = unique("quarantine"), unique("ws")
    client = owner(argilla_server)
    rows = scored_rows(7)
    rows[2]["method"] = "magpie"
    rows[5]["method"] = "evol-instruct"
    # Someone restricted `method` to one value in Argilla: same types, so the push proceeds, and the
    # server refuses exactly the rows with other values.
    pairs, _ = prs.to_pairs(Dataset.from_list(rows), seed=0)
    spec = sts.build_spec(prs.metadata_names(pairs), 8)
    settings = sts.to_rg_settings(spec, client)
    settings.metadata.remove("method")
    settings.metadata.add(rg.TermsMetadataProperty("method", options=["self-instruct"], client=client))
    from curate.stages.review.client import get_workspace

    rg.Dataset(
        name=name, workspace=get_workspace(client, ws, create=True), settings=settings, client=client
    ).create()
    qfile = tmp_path / "q.jsonl"
    stats = push(Dataset.from_list(rows), server_config(argilla_server, tmp_path), name, ws, quarantine=qfile)
    assert stats["created"] == 5 and stats["rejected"] == 2
    quarantined = [json.loads(line) for line in qfile.read_text().splitlines()]
    assert [q["row"] for q in quarantined] == [3, 6]
    assert all("server rejected" in q["reason"] and "method" in q["reason"] for q in quarantined)
    assert quarantined[0]["data"]["id"] == "row2"
    assert len(raw_records(client, name, ws)) == 5


@pytest.mark.server
def test_killed_push_resumes_and_each_record_lands_once(argilla_server, tmp_path: Path):
    name, ws = unique("kill"), unique("ws")
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in scored_rows(600)))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARGILLA_", "CURATE_"))}
    env |= {
        "ARGILLA_API_URL": argilla_server.url,
        "ARGILLA_API_KEY": argilla_server.api_key,
        "CURATE_RUN__RUNS_DIR": str(tmp_path / "runs"),
    }
    cmd = [
        sys.executable,
        "-m",
        "curate",
        "push",
        "-i",
        str(data),
        "-d",
        name,
        "-w",
        ws,
        "--batch-size",
        "20",
    ]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    client = owner(argilla_server)
    seen = 0
    deadline = time.monotonic() + 600  # a bound on the wait, so a stuck push fails instead of hanging
    while proc.poll() is None:
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"the push created only {seen} of 600 records within 600 s")
        try:
            seen = len(raw_records(client, name, ws))
        except ReviewError:
            seen = 0
        if seen >= 60:
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.2)
    proc.wait()
    assert proc.returncode != 0, "the push finished before it could be killed: make the input larger"
    partial = len(raw_records(client, name, ws))
    assert 0 < partial < 600
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    raws = raw_records(client, name, ws)
    ids = [r["external_id"] for r in raws]
    assert len(ids) == 600 and len(set(ids)) == 600
    import re

    resumed = re.search(r'"already_present":\s*(\d+)', done.stderr)
    created = re.search(r'"created":\s*(\d+)', done.stderr)
    assert resumed and created, done.stderr[-2000:]
    assert (int(resumed.group(1)), int(created.group(1))) == (partial, 600 - partial)  # resumed, not redone


@pytest.mark.slow
@pytest.mark.server
def test_push_encodes_prompts_only_when_the_data_has_no_embedding(argilla_server, tmp_path: Path):
    import numpy as np

    from curate.models import encode

    cfg = server_config(argilla_server, tmp_path)
    rows = [{k: v for k, v in r.items() if k != "embedding"} for r in scored_rows(3)]
    name, ws = unique("encode"), unique("ws")
    stats = push(Dataset.from_list(rows), cfg, name, ws)
    assert stats["vectors"] and stats["created"] == 3
    client = owner(argilla_server)
    from curate.stages.review.client import iter_raw_records

    raws = list(iter_raw_records(client, require_dataset(client, name, ws), include=("vectors",)))
    expected = encode([r["instruction"] for r in rows], cfg.embeddings)
    by_text = {r["instruction"]: v for r, v in zip(rows, expected)}
    for raw in raws:
        got = np.array(raw["vectors"]["prompt_embedding"])
        assert got.shape == (384,) and np.allclose(
            got, by_text[raw["fields"]["prompt"][0]["content"]], atol=1e-5
        )
