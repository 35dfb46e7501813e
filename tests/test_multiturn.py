"""Multi-turn conversations (issue 16) on real rows: LIMA's multi-turn examples (LLaMA-Factory's
`history`) and OASST trees' ranked sibling replies, read as TRL's conversational format, deduped on the
whole conversation, pushed to the real embedded Argilla as a chat field, voted on and exported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import Dataset, load_from_disk
from review_helpers import annotators, owner, raw_records, server_config, submit, unique

import curate
from curate.io import InputError, read_records, read_rows
from curate.rows import EARLIER, messages_text, prompt_of, row_id, scored_text
from curate.stages.export import export
from curate.stages.review import pairs as pr
from curate.stages.review.push import push

LIMA = Path("instructions/lima/lima_llamafactory.json")
OASST = Path("preference/oasst/en_100_tree.jsonl")
ROLE = {"prompter": "user", "assistant": "assistant"}


def oasst_pairs(shared_data: Path, n: int, min_turns: int) -> list[dict]:
    """TRL conversational pairs from OASST trees: the conversation up to a user turn, and its best and
    worst ranked sibling replies as chosen / rejected (one assistant message each)."""
    out: list[dict] = []

    def walk(node: dict, history: list[dict]) -> None:
        turns = [*history, {"role": ROLE[node["role"]], "content": node["text"]}]
        ranked = sorted(
            (r for r in node.get("replies", []) if r.get("rank") is not None), key=lambda r: r["rank"]
        )
        if node["role"] == "prompter" and len(turns) >= min_turns and len(ranked) >= 2 and len(out) < n:
            best, worst = ranked[0]["text"], ranked[-1]["text"]
            if best.strip() != worst.strip():
                out.append(
                    {
                        "prompt": turns,
                        "chosen": [{"role": "assistant", "content": best}],
                        "rejected": [{"role": "assistant", "content": worst}],
                    }
                )
        for reply in node.get("replies", []):
            walk(reply, turns)

    for line in (shared_data / OASST).read_text().splitlines():
        walk(json.loads(line)["prompt"], [])
        if len(out) >= n:
            break
    assert len(out) == n, f"only {len(out)} OASST pairs with {min_turns}+ turns"
    return out


def _jsonl(path: Path, rows: list[dict], blank_after: int | None = None) -> Path:
    lines = [json.dumps(r) for r in rows]
    if blank_after is not None:
        lines.insert(blank_after, "")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_lima_history_is_read_as_the_whole_conversation(shared_data: Path):
    raw = json.loads((shared_data / LIMA).read_text())
    ds = read_rows(shared_data / LIMA)
    assert len(ds) == len(raw) and "prompt" in ds.column_names and "instruction" not in ds.column_names
    multi = [(r, row) for r, row in zip(raw, ds) if r["history"]]
    assert len(multi) == 29
    for r, row in multi:
        turns = row["prompt"]
        assert len(turns) == 2 * len(r["history"]) + 1 and turns[-1] == {
            "role": "user",
            "content": r["instruction"],
        }
        assert [m["content"] for m in turns[:2]] == r["history"][0] and row["output"] == r["output"]
    single = next(row for r, row in zip(raw, ds) if not r["history"])
    assert len(single["prompt"]) == 1
    # a one-turn chat keeps the text and the id of the plain instruction
    r0 = next(r for r in raw if not r["history"])
    assert messages_text(single["prompt"]) == r0["instruction"] and row_id(single["prompt"]) == row_id(
        r0["instruction"]
    )
    # the scorers read the turn the response answers first, then the context, newest first
    r, row = multi[0]
    text = scored_text(row)
    assert text.startswith(r["instruction"] + "\n\n" + EARLIER)
    assert text.index(r["history"][-1][1]) < text.index(r["history"][-1][0])


def test_dedup_compares_whole_conversations(shared_data: Path):
    multi = [r for r in read_rows(shared_data / LIMA) if len(r["prompt"]) > 1]
    multi = sorted(multi, key=lambda r: len(messages_text(r["prompt"])))[:4]  # the shortest: a cheap test
    first, other, *rest = multi
    # the last turn of one conversation after the history of another (which is not in the data)
    same_last_other_history = {
        "prompt": [*other["prompt"][:-1], first["prompt"][-1]],
        "output": first["output"],
    }
    multi = [first, *rest]
    rows = [*({"prompt": r["prompt"], "output": r["output"]} for r in multi), same_last_other_history]
    rows.append({"prompt": first["prompt"], "output": first["output"]})  # the same conversation again
    ds = Dataset.from_list(rows)
    ids = [row_id(prompt_of(r), [r["output"]]) for r in rows]
    assert ids[0] == ids[-1] and ids[0] != ids[len(multi)]
    result = curate.dedup(ds, threshold=0.9)
    removed = result.splits["removed"]
    assert len(result.rows) == len(multi) + 1 and len(removed) == 1, removed.to_list()
    assert removed[0]["prompt"] == first["prompt"] and removed[0]["duplicate_of"] == result.rows[0]["id"]
    kept_prompts = [r["prompt"] for r in result.rows]
    assert same_last_other_history["prompt"] in kept_prompts  # same last turn, other history: kept


def oasst_follow_ups(shared_data: Path, groups: int) -> list[dict]:
    """Follow-up questions from OASST trees that share a whole history: the user turns that answer the
    same assistant reply, each after that conversation."""
    out: list[dict] = []

    def walk(node: dict, history: list[dict]) -> None:
        turns = [*history, {"role": ROLE[node["role"]], "content": node["text"]}]
        follow_ups = [r for r in node.get("replies", []) if r["role"] == "prompter"]
        if node["role"] == "assistant" and len(follow_ups) >= 2 and len(out) < groups:
            out.append([{"prompt": [*turns, {"role": "user", "content": r["text"]}]} for r in follow_ups])
        for reply in node.get("replies", []):
            walk(reply, turns)

    for line in (shared_data / OASST).read_text().splitlines():
        walk(json.loads(line)["prompt"], [])
        if len(out) >= groups:
            break
    return [row for group in out for row in group]


def test_follow_ups_that_share_a_history_are_not_duplicates(shared_data: Path):
    """Conversations that differ only in their last user turn embed close together (the shared history
    dominates): dedup removes one only if its last turn is a near-duplicate too."""
    rows = oasst_follow_ups(shared_data, groups=6)
    result = curate.dedup(Dataset.from_list(rows), threshold=0.9)
    stats = result.stats
    assert stats["conversation_pairs_split"] >= 1, stats  # whole conversations alike, questions not
    kept = {r["id"]: r for r in result.rows}
    removed = result.splits["removed"]
    if len(removed):  # any row still removed asks what its kept row asks
        from curate.embeddings import embed

        pairs = [
            (r["prompt"][-1]["content"], kept[r["duplicate_of"]]["prompt"][-1]["content"]) for r in removed
        ]
        left = embed([a for a, _ in pairs], curate.make_config().embeddings, "test")
        right = embed([b for _, b in pairs], curate.make_config().embeddings, "test")
        assert ((left * right).sum(axis=1) >= 0.9).all()
    assert len(result.rows) + len(removed) == len(rows)


BAD = [  # (row, field, message): each written after two good rows and a blank line
    ({"prompt": [{"role": "prompter", "content": "hi"}]}, "prompt[0].role", "unknown role 'prompter'"),
    ({"prompt": [{"content": "hi"}]}, "prompt[0].role", "chat message without a role"),
    ({"prompt": [{"role": "user"}]}, "prompt[0].content", "chat message without text"),
    (
        {"prompt": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
        "prompt[1].role",
        "ends with an assistant turn",
    ),
    (
        {"prompt": [{"role": "user", "content": "hi"}, {"role": "system", "content": "be brief"}]},
        "prompt[1].role",
        "system message is allowed only as the first",
    ),
    (
        {"messages": [{"role": "tool", "content": "42"}, {"role": "user", "content": "and?"}]},
        "messages[0].role",
        "unknown role 'tool'",
    ),
    (
        {"chosen": [{"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}]},
        "chosen",
        "a list of one assistant message",
    ),
    ({"chosen": [{"role": "user", "content": "a"}]}, "chosen[0].role", "not assistant"),
    ({"history": [["only the question"]], "instruction": "and?"}, "history[0]", "[user, assistant] pair"),
]


@pytest.mark.parametrize(("bad", "field", "message"), BAD, ids=[f for _, f, _ in BAD])
def test_malformed_messages_name_file_line_and_field(tmp_path: Path, shared_data: Path, bad, field, message):
    good = oasst_pairs(shared_data, 2, min_turns=3)
    row = {**good[0], **bad}
    if "messages" in bad or "history" in bad:  # the bad prompt in place of the good one
        del row["prompt"]
    path = _jsonl(tmp_path / "conv.jsonl", [*good, row], blank_after=2)
    with pytest.raises(InputError) as exc:
        read_rows(path)
    assert str(exc.value).startswith(f"{path}:4: field '{field}': ") and message in str(exc.value), str(
        exc.value
    )
    # push reads each row on its own: a bad prompt is set aside with its row and field, the others kept
    if "prompt" in bad or "messages" in bad:
        pairs, rejected = pr.to_pairs(read_records(path), seed=0, source=path)
        assert [p["row"] for p in pairs] == [1, 2]
        assert [(r["row"], r["field"]) for r in rejected] == [(3, field)] and message in rejected[0]["reason"]


def test_trl_implicit_prompt_pairs_split_at_the_last_turn(tmp_path: Path, shared_data: Path):
    explicit = oasst_pairs(shared_data, 2, min_turns=3)
    implicit = [
        {"chosen": r["prompt"] + r["chosen"], "rejected": r["prompt"] + r["rejected"]} for r in explicit
    ]
    a = read_rows(_jsonl(tmp_path / "explicit.jsonl", explicit))
    b = read_rows(_jsonl(tmp_path / "implicit.jsonl", implicit))
    assert a.to_list() == b.to_list()
    assert (
        a[0]["prompt"] == explicit[0]["prompt"] and a[0]["response_a"] == explicit[0]["chosen"][0]["content"]
    )
    assert a[0]["response_b"] == explicit[0]["rejected"][0]["content"] and a["judge_preference"] == ["a", "a"]
    assert "chosen" not in a.column_names


@pytest.mark.server
def test_push_vote_export_keeps_every_turn(tmp_path: Path, shared_data: Path, argilla_server):
    convs = oasst_pairs(shared_data, 3, min_turns=3)
    single = oasst_pairs(shared_data, 1, min_turns=1)
    rows = read_rows(_jsonl(tmp_path / "oasst.jsonl", convs + single))
    cfg = server_config(argilla_server, tmp_path, review={"min_submitted": 1, "vectors": False})
    name, ws = unique("multiturn"), unique("ws")
    stats = push(rows, cfg, name, ws, quarantine=tmp_path / "quarantine.jsonl")
    assert stats["created"] == 4, stats
    client = owner(argilla_server)
    fields = {f.name: type(f).__name__ for f in client.datasets(name, workspace=ws).settings.fields}
    assert fields["prompt"] == "ChatField"
    records = raw_records(client, name, ws)
    by_prompt = {json.dumps(r["fields"]["prompt"]): r for r in records}
    (_, voter, _), *_ = annotators(argilla_server, ws, ["voter"]).values()
    for conv in convs + single:
        record = by_prompt[json.dumps(conv["prompt"])]  # every turn, in order, with its role
        chosen = conv["chosen"][0]["content"]
        slot = "A" if record["fields"]["response_a"] == chosen else "B"
        assert record["fields"][f"response_{slot.lower()}"] == chosen
        submit(voter, record["id"], preference=slot)
    out = tmp_path / "export"
    summary = export(cfg, name, ws, out)
    assert summary["pairs"] == 4
    splits = load_from_disk(str(out))
    pairs = {json.dumps(p["prompt_messages"]): p for p in splits["train"]}
    for conv in convs + single:
        p = pairs[json.dumps(conv["prompt"])]
        assert p["chosen"] == conv["chosen"][0]["content"] and p["rejected"] == conv["rejected"][0]["content"]
        assert p["prompt"] == messages_text(conv["prompt"])
        # TRL's implicit-prompt conversational pair: the shared turns are the prompt, each last turn the
        # one assistant message of chosen / rejected (what TRL's extract_prompt does)
        c, r = p["chosen_messages"], p["rejected_messages"]
        n = next(i for i, (x, y) in enumerate(zip(c, r)) if x != y)
        assert c[:n] == conv["prompt"] and c[n:] == conv["chosen"] and r[n:] == conv["rejected"]
    sft = {json.dumps(s["messages"][:-1]): s for s in splits["sft"]}
    kto = [k for k in splits["kto"] if len(k["prompt_messages"]) > 1]
    binarized = [b for b in splits["binarized"] if len(b["chosen"]) > 2]
    for conv in convs:
        assert sft[json.dumps(conv["prompt"])]["messages"][-1] == conv["chosen"][0]
    assert len(kto) == 2 * len(convs) and all(k["completion_messages"][0]["role"] == "assistant" for k in kto)
    assert len(binarized) == len(convs) and all(b["chosen"][-1]["role"] == "assistant" for b in binarized)
