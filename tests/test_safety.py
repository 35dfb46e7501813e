"""Nothing lost, nothing leaked: what push quarantines and counts, the errors review commands give
instead of tracebacks, what reviewers see, and the secrets the embedded server keeps.

Inputs are files written the way users write them (json.dumps per line, csv.writer, pandas parquet),
read with the reader `curate push` uses; the review tests run against the real embedded Argilla.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from review_helpers import annotators, owner, server_config, submit, unique

from curate.io import read_records, read_rows
from curate.stages.review import pairs as pr

REPO = Path(__file__).resolve().parents[1]


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _row(i: int, **over) -> dict:
    row = {
        "prompt": f"Name a colour that starts with letter number {i}.",
        "response_a": f"Red, for letter {i}.",
        "response_b": f"I am not sure about letter {i}.",
        "ratings": [4, 2],
    }
    return {**row, **over}


def _reason(entry: dict) -> str:
    return entry["reason"].split(" (")[0]


# --------------------------------------------------------------------------------------------------
# Values dropped without a count: every bad judge value quarantines its row, named by row and field


BAD_JUDGE_VALUES = [  # (row overrides, field, reason)
    ({"ratings": [7, 3]}, "ratings[0]", "rating outside the 1-5 scale"),
    ({"ratings": [2, -1]}, "ratings[1]", "rating outside the 1-5 scale"),
    ({"ratings": [9, 1]}, "ratings[0]", "rating outside the 1-5 scale"),
    ({"ratings": [0, 5]}, "ratings[0]", "rating outside the 1-5 scale"),
    ({"ratings": [4.5, 2]}, "ratings[0]", "rating not a whole number"),
    ({"ratings": ["good", 3]}, "ratings[0]", "rating not a number"),
    ({"ratings": [True, 3]}, "ratings[0]", "rating not a number"),
    ({"ratings": [5, 1, 3]}, "ratings", "ratings count differs from responses"),
    ({"ratings": 5}, "ratings", "ratings not a list"),
    ({"judge_preference": "left"}, "judge_preference", "unknown judge_preference"),
    ({"judge_preference": "A is better"}, "judge_preference", "unknown judge_preference"),
    ({"judge_preference": 3}, "judge_preference", "unknown judge_preference"),
    ({"judge_preference": True}, "judge_preference", "unknown judge_preference"),
]
GOOD_JUDGE_VALUES = [  # (row overrides, judge preference in response order)
    ({"ratings": ["5", "1"]}, "x"),  # digits as text
    ({"ratings": [None, 3]}, None),  # a missing rating is no rating
    ({"ratings": None, "judge_preference": "B"}, "y"),
    ({"ratings": [3.0, 3.0]}, "tie"),
    ({"ratings": None, "judge_preference": " Tie "}, "tie"),
    ({"ratings": None, "judge_preference": 1}, "x"),
    ({"ratings": None, "judge_preference": ""}, None),
]

BAD_TYPES = [  # what users' files really hold: booleans, numbers, objects where text belongs
    ({"response_a": True}, "response_a", "response not text"),
    ({"response_b": 42}, "response_b", "response not text"),
    ({"response_a": {"text": "hi"}}, "response_a", "response not text"),
    ({"prompt": 5}, "prompt", "prompt not text or chat messages"),
    ({"prompt": [{"role": "user", "content": 7}]}, "prompt[0].content", "chat message without text"),
    ({"prompt": [{"role": "user"}]}, "prompt[0].content", "chat message without text"),
    (
        {"prompt": [{"role": "user", "content": "hi"}, {"role": 3, "content": "x"}]},
        "prompt[1].role",
        "chat message role not text",
    ),
    ({"prompt": ["just a string"]}, "prompt[0]", "chat message not an object"),
    ({"input": 12}, "input", "input not text"),
]


def test_bad_judge_values_are_quarantined_by_row_and_field_and_the_rest_kept(tmp_path: Path):
    cases = [over for over, _, _ in BAD_JUDGE_VALUES] + [over for over, _ in GOOD_JUDGE_VALUES]
    path = _jsonl(tmp_path / "pairs.jsonl", [_row(i, **over) for i, over in enumerate(cases)])
    pairs, rejected = pr.to_pairs(read_records(path), seed=0, source=path)
    got = [(r["row"], r["field"], _reason(r)) for r in rejected]
    assert got == [(i + 1, field, reason) for i, (_, field, reason) in enumerate(BAD_JUDGE_VALUES)]
    assert all(r["data"]["prompt"] == _row(r["row"] - 1)["prompt"] for r in rejected)  # the row itself
    n_bad = len(BAD_JUDGE_VALUES)
    assert [p["row"] for p in pairs] == [n_bad + i + 1 for i in range(len(GOOD_JUDGE_VALUES))]
    assert [p["judge_preference"] for p in pairs] == [pref for _, pref in GOOD_JUDGE_VALUES]


def test_values_of_the_wrong_type_quarantine_their_row_not_the_file(tmp_path: Path):
    rows = [_row(0)] + [_row(i + 1, **over) for i, (over, _, _) in enumerate(BAD_TYPES)] + [_row(99)]
    path = _jsonl(tmp_path / "pairs.jsonl", rows)
    with pytest.raises(Exception, match="inconsistent types"):
        read_rows(path)  # one schema over all rows cannot hold these files ...
    pairs, rejected = pr.to_pairs(read_records(path), seed=0, source=path)  # ... push reads each row
    assert [(r["row"], r["field"], _reason(r)) for r in rejected] == [
        (i + 2, field, reason) for i, (_, field, reason) in enumerate(BAD_TYPES)
    ]
    assert [p["row"] for p in pairs] == [1, len(rows)]


def test_absent_values_in_csv_and_parquet_are_absent_not_bad(tmp_path: Path):
    import pandas as pd

    path = tmp_path / "pairs.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["prompt", "response_a", "response_b", "ratings", "judge_preference"])
        writer.writerow(["Say hi", "hi", "hello there", "[5, 2]", ""])
        writer.writerow(["Say bye", "bye", "goodbye", "", "b"])
        writer.writerow(["Say yes", "yes", "no", "[5, 8]", ""])
    pairs, rejected = pr.to_pairs(read_records(path), seed=0, source=path)
    assert [(p["row"], p["ratings"], p["judge_preference"]) for p in pairs] == [
        (1, [5, 2], "x"),
        (2, [None, None], "y"),
    ]
    assert [(r["row"], r["field"]) for r in rejected] == [(3, "ratings[1]")]

    # pandas stores a code column with a gap as floats and NaN
    frame = pd.DataFrame(
        {
            "prompt": ["One?", "Two?", "Three?"],
            "response_a": ["1", "2", "3"],
            "response_b": ["uno", "dos", "tres"],
            "judge_preference": [1, None, 2],
        }
    )
    frame.to_parquet(tmp_path / "pairs.parquet")
    pairs, rejected = pr.to_pairs(read_records(tmp_path / "pairs.parquet"), seed=0)
    assert not rejected and [p["judge_preference"] for p in pairs] == ["x", None, "y"]


# --------------------------------------------------------------------------------------------------
# Secrets in configs: masked by key name wherever a config is written


def test_config_show_masks_secrets_by_key_name(tmp_path: Path):
    from typer.testing import CliRunner

    from curate.cli import app
    from curate.config import dump_config, load_config

    secrets = ["sk-extra-123", "hf_judge_456", "Bearer tok-789", "hunter2", "argilla-key-0"]
    config = tmp_path / "curate.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "llm": {
                    "provider": "openai",
                    "model": "gpt-4o-mini",
                    "base_url": "https://bob:hunter2@llm.example.com/v1",
                    "api_key_env": "OPENAI_API_KEY",
                    "extra": {"api_key": secrets[0], "default_headers": {"Authorization": secrets[2]}},
                },
                "generate": {
                    "preferences": {
                        "judge": {"provider": "inference-endpoints", "extra": {"token": secrets[1]}}
                    }
                },
                "argilla": {"api_key": secrets[4]},
            }
        )
    )
    result = CliRunner(mix_stderr=False).invoke(app, ["config", "show", "-c", str(config)])
    assert result.exit_code == 0, result.stderr
    for secret in secrets:
        assert secret not in result.stdout
    assert "OPENAI_API_KEY" in result.stdout  # the name of a variable is not a secret
    assert "llm.example.com" in result.stdout and "max_new_tokens: 256" in result.stdout
    # the run manifest holds dump_config(cfg); the unmasked dump still round-trips the values
    cfg = load_config(config, environ={})
    assert not any(s in json.dumps(dump_config(cfg)) for s in secrets)
    assert dump_config(cfg, mask_secrets=False)["llm"]["extra"]["api_key"] == secrets[0]


# --------------------------------------------------------------------------------------------------
# Errors, not tracebacks (CLI in a subprocess, as users run it)


def _curate(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("ARGILLA_", "CURATE_"))}
    environ |= {"CURATE_RUN__RUNS_DIR": str(tmp_path / "runs"), "COLUMNS": "400", **env}
    return subprocess.run(
        [sys.executable, "-m", "curate", *args],
        env=environ,
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )


def _one_error(done: subprocess.CompletedProcess) -> str:
    """The error line of a failed command (asserting it failed cleanly), whitespace collapsed."""
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    text = " ".join(done.stderr.split())
    assert text.startswith("error:") and text.count("error:") == 1, done.stderr[-3000:]
    return text


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_server_is_one_error_before_any_embedding(tmp_path: Path):
    """The rows have no embedding and the embedding model does not exist: had the push embedded first,
    the error would name the model."""
    data = _jsonl(tmp_path / "pairs.jsonl", [_row(i) for i in range(3)])
    url = f"http://127.0.0.1:{_closed_port()}"
    env = {"ARGILLA_API_URL": url, "ARGILLA_API_KEY": "k", "CURATE_EMBEDDINGS__MODEL": str(tmp_path / "none")}
    error = _one_error(_curate(tmp_path, "push", "-i", str(data), "-d", "d1", **env))
    assert f"cannot reach Argilla at {url}" in error and "ARGILLA_API_URL" in error
    for command in (["status", "-d", "d1"], ["export", "-d", "d1", "-o", str(tmp_path / "out")]):
        error = _one_error(_curate(tmp_path, *command, **env))
        assert f"cannot reach Argilla at {url}" in error
    # export checks its output first: a plain file there is refused before any server is asked
    (tmp_path / "taken").write_text("mine")
    error = _one_error(_curate(tmp_path, "export", "-d", "d1", "-o", str(tmp_path / "taken"), **env))
    assert "taken" in error and "not a directory" in error
    assert (tmp_path / "taken").read_text() == "mine"


@pytest.mark.server
def test_wrong_key_and_annotator_key_are_one_error_each(argilla_server, tmp_path: Path):
    data = _jsonl(tmp_path / "pairs.jsonl", [_row(i) for i in range(3)])
    url = argilla_server.url
    env = {"ARGILLA_API_URL": url, "ARGILLA_API_KEY": "not-a-key", "CURATE_EMBEDDINGS__MODEL": "/none"}
    for command in (
        ["push", "-i", str(data), "-d", "wrongkey"],
        ["status", "-d", "wrongkey"],
        ["export", "-d", "wrongkey", "-o", str(tmp_path / "out")],
    ):
        error = _one_error(_curate(tmp_path, *command, **env))
        assert f"Argilla at {url} refused the API key (HTTP 401)" in error and "ARGILLA_API_KEY" in error
    assert not (tmp_path / "out").exists()
    ws = unique("ws")
    ((name, _, user),) = annotators(argilla_server, ws, ["ann"]).values()
    env["ARGILLA_API_KEY"] = user.api_key
    error = _one_error(_curate(tmp_path, "push", "-i", str(data), "-d", "d", "-w", ws, **env))
    assert f"belongs to '{name}', whose role is annotator" in error


@pytest.mark.server
def test_one_bad_row_does_not_reject_the_push(argilla_server, tmp_path: Path):
    """A file whose rows disagree on types (a boolean response, a number, an out-of-scale rating, an
    unknown verdict) goes through `curate push`: the bad rows are quarantined with line and field, the
    others land, and the counts say so."""
    bad = [over for over, _, _ in BAD_JUDGE_VALUES[:3] + BAD_JUDGE_VALUES[9:10] + BAD_TYPES[:2]]
    rows = [_row(i) for i in range(4)] + [_row(10 + i, **over) for i, over in enumerate(bad)]
    data = _jsonl(tmp_path / "pairs.jsonl", rows)
    name, ws = unique("badrows"), unique("ws")
    qfile = tmp_path / "q.jsonl"
    env = {"ARGILLA_API_URL": argilla_server.url, "ARGILLA_API_KEY": argilla_server.api_key}
    done = _curate(
        tmp_path,
        "push",
        "-i",
        str(data),
        "-d",
        name,
        "-w",
        ws,
        "--no-vectors",
        "--quarantine",
        str(qfile),
        **env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    stats = json.loads(re.search(r"^\{.*?^\}", done.stderr, re.S | re.M).group(0))
    assert (stats["created"], stats["rejected"], stats["input_rows"]) == (4, 6, 10)
    assert stats["rejected_reasons"] == {
        "rating outside the 1-5 scale": 3,
        "unknown judge_preference": 1,
        "response not text": 2,
    }
    quarantined = [json.loads(line) for line in qfile.read_text().splitlines()]
    assert [(q["row"], q["field"]) for q in quarantined] == [
        (5, "ratings[0]"),
        (6, "ratings[1]"),
        (7, "ratings[0]"),
        (8, "judge_preference"),
        (9, "response_a"),
        (10, "response_b"),
    ]
    assert quarantined[4]["data"]["response_a"] is True  # the row as the file had it
    from curate.stages.review.client import require_dataset

    client = owner(argilla_server)
    assert len(list(require_dataset(client, name, ws).records)) == 4


@pytest.mark.server
def test_a_push_where_no_row_lands_fails_and_leaves_no_dataset(argilla_server, tmp_path: Path):
    from curate.stages.review.client import ReviewError, get_dataset
    from curate.stages.review.push import push

    cfg = server_config(argilla_server, tmp_path, review={"vectors": False})
    client = owner(argilla_server)
    ws = unique("ws")
    # every row fails validation: the dataset is never created
    name, qfile = unique("allbad"), tmp_path / "q1.jsonl"
    data = _jsonl(tmp_path / "bad.jsonl", [_row(i, ratings=[6, 6]) for i in range(3)])
    done = _curate(
        tmp_path,
        "push",
        *("-i", str(data), "-d", name, "-w", ws, "--quarantine", str(qfile)),
        ARGILLA_API_URL=argilla_server.url,
        ARGILLA_API_KEY=argilla_server.api_key,
    )
    error = _one_error(done)
    assert "none of the 3 input rows can be reviewed" in error and str(qfile) in error
    assert len(qfile.read_text().splitlines()) == 3 and get_dataset(client, name, ws) is None

    # every row is refused by the server (a chat message over its 20,000-character limit, 2 MB here):
    # the dataset this push created is deleted again, and the reasons are not megabytes long
    name, qfile = unique("allrefused"), tmp_path / "q2.jsonl"
    log = argilla_server.data_dir / "logs" / "server.log"
    log_before = log.stat().st_size
    rows = [_row(i, prompt=f"Summarise this text number {i}: " + "lorem ipsum " * 180_000) for i in range(2)]
    with pytest.raises(ReviewError, match="none of the 2 input rows can be reviewed"):
        push(read_records(_jsonl(tmp_path / "big.jsonl", rows)), cfg, name, ws, quarantine=qfile)
    assert get_dataset(client, name, ws) is None
    quarantined = [json.loads(line) for line in qfile.read_text().splitlines()]
    assert [q["row"] for q in quarantined] == [1, 2]
    assert all(q["reason"].startswith("server rejected") and len(q["reason"]) <= 500 for q in quarantined)
    assert all(q["field"] == "fields.prompt" for q in quarantined)
    # the server logged the refusals with their payload cut
    with log.open("rb") as fh:
        fh.seek(log_before)
        logged = fh.read().decode("utf-8", errors="replace")
    assert "characters cut" in logged and max(len(line) for line in logged.splitlines()) < 1100
    assert len(logged) < 200_000


@pytest.mark.server
def test_three_pushes_leave_three_provenance_entries(argilla_server, tmp_path: Path):
    """argilla-server merges a PATCHed metadata dict in place, so only the first push used to be kept."""
    from curate.stages.export import export
    from curate.stages.review.client import dataset_metadata, require_dataset
    from curate.stages.review.push import PROVENANCE_KEY, push

    cfg = server_config(argilla_server, tmp_path, review={"vectors": False})
    name, ws = unique("prov"), unique("ws")
    sizes = [3, 2, 4]
    start = 0
    for n in sizes:
        data = _jsonl(tmp_path / f"push-{start}.jsonl", [_row(start + i) for i in range(n)])
        push(read_records(data), cfg, name, ws, source=data)
        start += n
    client = owner(argilla_server)
    meta = dataset_metadata(client, require_dataset(client, name, ws))
    pushes = meta[PROVENANCE_KEY]["pushes"]
    assert [p["push"]["created"] for p in pushes] == sizes
    assert [Path(p["source"]).name for p in pushes] == ["push-0.jsonl", "push-3.jsonl", "push-5.jsonl"]
    export(cfg, name, ws, tmp_path / "out")
    assert "pushes: 3" in (tmp_path / "out" / "README.md").read_text()


# --------------------------------------------------------------------------------------------------
# What reviewers see is what gets exported

MARKUP = [
    ("Make the word bold in HTML.", "<b>x</b>", "Use **x** in markdown instead."),
    ("Show an image tag.", '<img src=x onerror="alert(1)">', "An image tag has a src attribute."),
    ("Write a script tag.", "<script>alert('hi')</script>", "I would rather not."),
    ("Compare two numbers.", "3 < 5 && 5 > 3, so 3 &lt; 5 in HTML.", "3 is smaller than 5."),
]


@pytest.mark.server
def test_reviewers_see_the_text_that_is_exported(argilla_server, tmp_path: Path):
    from curate.stages.export import export
    from curate.stages.review import settings as st
    from curate.stages.review.client import ReviewError, iter_raw_records, require_dataset
    from curate.stages.review.push import push

    cfg = server_config(argilla_server, tmp_path, review={"vectors": False})
    name, ws = unique("markup"), unique("ws")
    rows = [
        {"prompt": p, "response_a": a, "response_b": b, "judge_preference": "a"} for p, a, b in MARKUP
    ] + [{"prompt": "Plain text.", "response_a": "Yes.", "response_b": "No."}]
    data = _jsonl(tmp_path / "markup.jsonl", rows)
    stats = push(read_records(data), cfg, name, ws)
    assert (stats["created"], stats["markup_rows"], stats["markup_examples"]) == (5, 4, [1, 2, 3, 4])
    client = owner(argilla_server)
    dataset = require_dataset(client, name, ws)
    s = dataset.settings
    assert [s.fields[f].use_markdown for f in ("prompt", "response_a", "response_b")] == [False] * 3
    assert not s.questions["corrected"].use_markdown and not s.questions["comment"].use_markdown
    raws = list(iter_raw_records(client, dataset, include=()))
    by_prompt = {r["fields"]["prompt"][0]["content"]: r for r in raws}
    img = by_prompt["Show an image tag."]
    shown = {img["fields"]["response_a"], img["fields"]["response_b"]}
    # stored escaped: the UI (innerHTML when use_markdown is off) shows the literal tag, runs nothing
    assert '&lt;img src=x onerror="alert(1)"&gt;' in shown and all("<img" not in t for t in shown)
    assert all(r["metadata"]["text_format"] == st.TEXT_FORMAT for r in raws)

    ((_, ann, _),) = annotators(argilla_server, ws, ["ann"]).values()
    for raw in raws:
        submit(ann, raw["id"], preference="A")
    out = tmp_path / "out"
    export(cfg, name, ws, out)
    from datasets import load_from_disk

    exported = {r["prompt"]: {r["chosen"], r["rejected"]} for r in load_from_disk(str(out))["train"]}
    for prompt, a, b in MARKUP:
        assert exported[prompt] == {a, b}  # the very texts pushed, markup and entities untouched

    # a dataset pushed before (markdown rendering, unescaped texts) is not mixed with escaped records
    old, spec = unique("oldstyle"), st.build_spec(pr.metadata_names([]), None)
    settings = st.to_rg_settings(spec, client)
    for field in settings.fields:
        field.use_markdown = True
    import argilla as rg

    from curate.stages.review.client import get_workspace

    rg.Dataset(name=old, workspace=get_workspace(client, ws), settings=settings, client=client).create()
    with pytest.raises(ReviewError, match=r"use_markdown is True on the server(.|\n)*new --dataset name"):
        push(read_records(data), cfg, old, ws)


# --------------------------------------------------------------------------------------------------
# The embedded server keeps its secrets, and restarts after a crash


@pytest.mark.server
def test_review_instructions_point_to_the_credentials_file(
    argilla_server, tmp_path: Path, capsys, monkeypatch
):
    """What `curate run` prints at its end: the password was shown once, at the server's first start."""
    from curate import cli
    from curate.config import load_config

    monkeypatch.setenv("COLUMNS", "400")
    cfg = load_config(
        overrides={"server": {"data_dir": str(argilla_server.data_dir)}, "run": {"runs_dir": str(tmp_path)}},
        environ={},
    )
    (tmp_path / "r").mkdir()
    cli._print_review_instructions(cfg, tmp_path / "r")
    printed = capsys.readouterr().out
    assert argilla_server.password not in printed
    assert str(argilla_server.data_dir / "credentials.json") in printed


def _kill(entry: dict) -> None:
    """SIGKILL a piece's process group, as a crash would, and wait (bounded) until it is gone."""
    from curate.server import launcher

    os.killpg(entry["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 60
    tasks = Path(f"/proc/{entry['pid']}/task")  # a zombie's other threads still exit (and hold sockets)
    while (launcher.is_ours(entry) or (tasks.exists() and len(list(tasks.iterdir())) > 1)) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.1)
    assert not launcher.is_ours(entry), f"pid {entry['pid']} still runs 60 s after SIGKILL"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.server
def test_embedded_server_is_private_and_restarts_after_a_crash(tmp_path: Path):
    import psutil
    import redis
    from typer.testing import CliRunner

    from curate.cli import app
    from curate.server import launcher

    data_dir = tmp_path / "argilla"
    data_dir.mkdir(mode=0o755)
    os.chmod(data_dir, 0o755)  # a data dir that already exists, readable by everyone
    port = _closed_port()
    info = launcher.start(data_dir, port=port)
    try:
        # private: the dir, the database holding every API key, the index, logs, credentials
        assert _mode(data_dir) == 0o700
        files = [p for p in data_dir.rglob("*") if p.is_file() and "tmp" not in p.relative_to(data_dir).parts]
        assert {"argilla.db", "credentials.json", "server.json", "redis.conf", "server.log"} <= {
            p.name for p in files
        }
        assert {p.name: _mode(p) for p in files} == {p.name: 0o600 for p in files}
        # Redis wants the password from the credentials file, and it is on no command line
        state = json.loads((data_dir / "server.json").read_text())
        creds = json.loads((data_dir / "credentials.json").read_text())
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=state["redis_port"], socket_timeout=5).ping()
        assert redis.Redis(port=state["redis_port"], password=creds["redis_password"]).ping()
        for name in ("redis", "server", "worker"):
            cmdline = " ".join(psutil.Process(state["pids"][name]["pid"]).cmdline())
            assert creds["redis_password"] not in cmdline

        # a crash of the server, with a client connected: its port is left in TIME-WAIT
        kept = {name: state["pids"][name]["pid"] for name in ("redis", "worker")}
        with httpx.Client(base_url=info.url, headers={"X-Argilla-Api-Key": info.api_key}) as api:
            assert api.get("/api/v1/me").status_code == 200
            _kill(state["pids"]["server"])
        with socket.socket() as plain, pytest.raises(OSError):
            plain.bind(("127.0.0.1", port))  # a bind without SO_REUSEADDR sees the TIME-WAIT socket
        down = CliRunner(mix_stderr=False).invoke(app, ["server", "status", "-d", str(data_dir)])
        assert down.exit_code == 1 and "DOWN" in down.stdout
        assert max(len(line) for line in down.stdout.splitlines()) < 400

        again = launcher.start(data_dir, port=port)
        assert again.started and again.url == info.url and again.recovered == ["server"]
        state = json.loads((data_dir / "server.json").read_text())
        assert {name: state["pids"][name]["pid"] for name in kept} == kept  # Redis and worker untouched

        # the port taken by another program: the start fails before stopping what is healthy
        _kill(state["pids"]["server"])
        with socket.socket() as other:
            other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            other.bind(("127.0.0.1", port))
            other.listen()
            with pytest.raises(launcher.ServerError, match=f"port {port} on 127.0.0.1 is in use"):
                launcher.start(data_dir, port=port)
            assert all(psutil.pid_exists(pid) for pid in kept.values())
            pids = json.loads((data_dir / "server.json").read_text())["pids"]
            assert {name: pids[name]["pid"] for name in kept} == kept
        third = launcher.start(data_dir, port=port)
        assert third.url == info.url and third.recovered == ["server"]
        assert launcher.status(data_dir).running
    finally:
        launcher.stop(data_dir)


def test_curate_run_checks_a_remote_argilla_before_generating(tmp_path: Path) -> None:
    """An unreachable ARGILLA_API_URL fails `curate run` in seconds, before the first stage runs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARGILLA_", "CURATE_"))}
    env |= {
        "ARGILLA_API_URL": "http://127.0.0.1:9",
        "ARGILLA_API_KEY": "x",
        "CURATE_RUN__RUNS_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "curate", "run", "--no-report"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 1 and "error:" in done.stderr and "127.0.0.1:9" in done.stderr
    manifest = tmp_path / "default" / "manifest.json"
    assert not manifest.exists() or json.loads(manifest.read_text())["stages"] == {}  # no stage started
