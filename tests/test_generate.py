"""Generation pipelines: the filters and the judge parser on fixed text, then every method and the
preference pipeline on the real embedded SmolLM2 (tiny inputs, 48 new tokens)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from datasets import Dataset
from distilabel.steps import StepInput, step

from curate.console import log_path_for
from curate.io import load_stats, read_rows
from curate.rows import row_id, stable_id
from pipelines.filters import (
    RougeNovelty,
    clean_instruction,
    elimination_reason,
    first_instruction,
    quality_reason,
    rouge_l,
    split_candidates,
)
from pipelines.ultrafeedback import parse_judgement, parse_swapped_judgement

INSTRUCTION_COLUMNS = [
    "id",
    "instruction",
    "method",
    "generator_model",
    "parent_id",
    "seed_id",
    "generation_params",
]


# --- filters (no model) -----------------------------------------------------------------------------


def test_clean_and_split_model_text():
    raw = 'Here are 3 queries:\n1. Query: "What is the boiling point of water?"\n\n- **Describe** a sunset.\nOutput:'
    # "Output:" is a bare label: nothing is left of it
    assert split_candidates(raw) == [
        "Here are 3 queries:",
        "What is the boiling point of water?",
        "Describe a sunset.",
    ]
    assert clean_instruction("User: Can you help me plan a trip?") == "Can you help me plan a trip?"
    assert first_instruction('Sure, here is one:\nOne user could ask: "How do I bake bread?" And then') == (
        "How do I bake bread?"
    )
    assert (
        first_instruction('Explain the term "compound interest" simply.')
        == 'Explain the term "compound interest" simply.'
    )


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "empty"),
        ("Why?", "too_short"),
        ("the cat the cat the cat the cat the cat the cat", "repetitive"),
        ("The sky is blue and the grass is green today.", "not_an_instruction"),
        ("Here are three queries:", "not_an_instruction"),
        ("Draw a picture of a cat sitting on a wall.", "non_text_task"),
        ("What is the capital of Peru?", None),
        ("Summarize the plot of Hamlet in two sentences.", None),
        ("I need a vegetarian recipe for a dinner party.", None),
    ],
)
def test_quality_reasons(text, reason):
    assert quality_reason(text, min_words=3) == reason


def test_rouge_l_matches_rouge_score():
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"])
    pairs = [
        ("What is the capital of France?", "Capital of France: what is it?"),
        ("Write a poem about the sea.", "Write a short poem about the sea at night."),
        ("Explain photosynthesis.", "List three uses of copper."),
    ]
    for a, b in pairs:
        expected = scorer.score(a, b)["rougeL"].fmeasure
        assert rouge_l(RougeNovelty.tokenize(a), RougeNovelty.tokenize(b)) == pytest.approx(expected)


def test_rouge_novelty_filter_grows_the_pool():
    novelty = RougeNovelty(["Write a poem about the sea."], threshold=0.7)
    assert novelty.accept("Write a poem about the sea!")[0] is False  # ROUGE-L 1.0
    assert novelty.accept("List three uses of copper in electronics.")[0] is True
    assert novelty.accept("List three uses of copper in electronics please.")[0] is False  # vs the new member
    assert len(novelty) == 2


@pytest.mark.parametrize(
    "parent, evolved, answer, reason",
    [
        ("What is AI?", "", "x", "empty"),
        ("What is AI?", "#Rewritten Prompt#: What is AI in medicine?", "ok", "copied_prompt_words"),
        ("What is AI in medicine today?", "What is AI in medicine?", "ok", "no_information_gain"),
        (
            "What is AI?",
            "What is AI and how do hospitals use it for triage?",
            "I'm sorry, I cannot help.",
            "apology",
        ),
        (
            "What is AI?",
            "What is AI and how do hospitals use it for triage?",
            "It is, of the, and.",
            "answer_only_stopwords",
        ),
        (
            "What is AI?",
            "What is AI and how do hospitals use it for triage?",
            "Hospitals use AI to rank patients.",
            None,
        ),
    ],
)
def test_wizardlm_elimination(parent, evolved, answer, reason):
    assert elimination_reason(parent, evolved, answer) == reason


# --- judge parsing (no model) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, ratings",
    [
        (
            "#### Output for Text 1\nRating: 4\nRationale: Good.\n\n#### Output for Text 2\nRating: 2\nRationale: Bad.",
            [4, 2],
        ),
        # a preamble paragraph: distilabel's blank-line split would shift every rating by one
        (
            (
                "Here is my evaluation.\n\n#### Output for Text 1\nRating: 4\nRationale: Good.\n\n"
                "#### Output for Text 2\nRating: 2\nRationale: Bad."
            ),
            [4, 2],
        ),
        # texts judged out of order: each rating follows its header, not its position
        (
            "#### Output for Text 2\nRating: 2\nRationale: Bad.\n\n#### Output for Text 1\nRating: **5**\nRationale: Great.",
            [5, 2],
        ),
        ("#### Output for Text 1\nRating: 3\nRationale: ok", [3, None]),  # truncated judge
        (
            "#### Output for Text 1\nRating: [Rating for text 1]\nRationale: [Rationale]",
            [None, None],
        ),  # placeholders
        ("Text 1\nRating: 8/10\nText 2\nRating: 4/5", [None, 4]),  # not on the 1..5 scale
        ("Text 1: Rating: 4\nText 1: Rating: 2\nText 2: Rating: 5", [None, 5]),  # conflicting ratings
        ("Rating: 4\nRationale: a\nRating: 1\nRationale: b", [4, 1]),  # no headers, exactly one each
        ("Rating: 4\nRating: 1\nRating: 3", [None, None]),  # no headers, ambiguous
        # the template's own names for the scores, alone on the line (SmolLM2 answers like this)
        (
            "#### Output for Text 1\nRating: Very Good\nRationale: x\n\n#### Output for Text 2\nRating: **Good**",
            [4, 3],
        ),
        ("Text 1\nRating: Excellent\nText 2\nRating: Low Quality", [5, 1]),
        ("Rating: Very Good\nRationale: a\nRating: 2\nRationale: b", [4, 2]),  # no headers: labels count too
        (
            "Text 1\nRating: Very good, 3\nText 2\nRating: Good enough to pass",
            [3, None],
        ),  # number wins; prose is no label
        ("the the the the", [None, None]),
        ("", [None, None]),
    ],
)
def test_parse_judgement_binds_ratings_to_responses(raw, ratings):
    parsed, rationales = parse_judgement(raw, 2)
    assert parsed == ratings
    assert len(rationales) == 2


# --- seeds ------------------------------------------------------------------------------------------


def test_builtin_and_shared_seed_formats(shared_data: Path, tmp_path: Path):
    from pipelines.instructions import builtin_seeds_path, load_seeds

    builtin = load_seeds(None)
    assert len(builtin) >= 30 and len({s["id"] for s in builtin}) == len(builtin)
    assert builtin_seeds_path().is_file()
    shared = load_seeds(shared_data / "instructions" / "self_instruct_seed_tasks.jsonl")
    assert len(shared) == 175 and shared[0]["id"] == "seed_task_0"
    assert shared[1]["input"] == "Night : Day :: Right : Left"  # first instance's input is the context
    plain = tmp_path / "plain.jsonl"
    plain.write_text(json.dumps({"instruction": "Name three rivers in Africa."}) + "\n")
    (seed,) = load_seeds(plain)
    assert seed["id"] == stable_id("Name three rivers in Africa.")


def test_magpie_batch_size_always_ends_the_generator():
    from pipelines.instructions import _magpie_batch_size

    for n in range(1, 40):
        bs = _magpie_batch_size(n, 8)
        assert 1 <= bs <= 8 and n % bs == 0


# --- the real model -----------------------------------------------------------------------------------


def _cfg(tiny_config, **instructions):
    cfg = tiny_config.model_copy(deep=True)
    for key, value in instructions.items():
        setattr(cfg.generate.instructions, key, value)
    return cfg


def _check_instruction_rows(ds: Dataset, stats: dict, method: str) -> None:
    assert ds.column_names == INSTRUCTION_COLUMNS
    dropped = sum(v for k, v in stats.items() if k.startswith(("dropped_", "eliminated_")))
    assert stats["generated"] >= 1, stats
    assert stats["kept"] == len(ds) and stats["kept"] + dropped == stats["generated"], stats
    for row in ds:
        assert row["id"] == stable_id(row["instruction"])
        assert quality_reason(row["instruction"]) is None
        assert row["method"] == method
        assert row["generator_model"].startswith("SmolLM2-135M")
        params = json.loads(row["generation_params"])
        assert params["max_new_tokens"] == 48 and "temperature" in params
    assert len(set(ds["id"])) == len(ds)


@pytest.mark.slow
def test_magpie_prompt_is_the_chatml_pre_query_of_the_gguf(tiny_config):
    from pipelines.llm import CHATML_PRE_QUERY_TEMPLATE, task_llm

    llm = task_llm(tiny_config.llm, magpie_template=CHATML_PRE_QUERY_TEMPLATE)
    llm.load()
    try:
        assert llm.prepare_input([]) == (
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            "<|im_start|>user\n"
        )
        assert llm.prepare_input([{"role": "system", "content": "You cook."}]) == (
            "<|im_start|>system\nYou cook.<|im_end|>\n<|im_start|>user\n"
        )
        (out,) = llm.generate(inputs=[[]], **llm.generation_kwargs)
        assert "<|im_start|>" not in out["generations"][0]
    finally:
        llm.unload()


@pytest.mark.slow
def test_prompt_method_through_the_cli_and_resume(tiny_config, tmp_path: Path):
    from typer.testing import CliRunner

    from curate.cli import app

    config = tmp_path / "curate.yaml"
    config.write_text(
        f"llm: {{max_new_tokens: 48, n_ctx: 1024}}\nrun: {{runs_dir: {tmp_path / 'runs'}}}\n"
        "generate: {instructions: {topics: [cooking, travel], system_prompt: 'You write questions.'}}\n"
    )
    out = tmp_path / "prompt"
    args = ["generate", "instructions", "--method", "prompt", "-n", "8", "-o", str(out), "-c", str(config)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    ds, stats = read_rows(out), load_stats(out)
    _check_instruction_rows(ds, stats, "prompt")
    assert len(ds) >= 1, stats  # SmolLM2 writes a usable question for most prompts
    topics = {json.loads(p)["topic"] for p in ds["generation_params"]}
    assert topics <= {"cooking", "travel"}

    # --resume (default): the finished run is served from distilabel's cache, identical, no LLM call.
    again = tmp_path / "again"
    result = CliRunner().invoke(app, [*args[:-4], "-o", str(again), "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert read_rows(again).to_list() == ds.to_list()
    log = log_path_for(again).read_text()
    assert "Returning `Distiset` from cache data" in log, log[-2000:]


@pytest.mark.slow
def test_magpie(tiny_config):
    import logging
    from logging.handlers import QueueHandler

    from pipelines.instructions import generate_instructions

    root = logging.getLogger()
    before = list(root.handlers)
    cfg = _cfg(tiny_config, method="magpie", num_instructions=6, topics=["cooking"])  # one parallel batch
    ds, stats = generate_instructions(cfg)
    _check_instruction_rows(ds, stats, "magpie")
    # distilabel's queue handler (its queue closed after the run) must not stay on the root logger:
    # every later log record would print "--- Logging error ---"
    assert root.handlers == before and not any(isinstance(h, QueueHandler) for h in root.handlers)
    assert len(ds) >= 1, stats  # Magpie is the method SmolLM2 is best at
    for row in ds:
        params = json.loads(row["generation_params"])
        assert params["pre_query_template"] == "<|im_start|>user\n" and params["topic"] == "cooking"
        assert "<|im_start|>" not in row["instruction"] and "<|im_end|>" not in row["instruction"]


@pytest.mark.slow
def test_self_instruct(tiny_config, tmp_path: Path):
    from pipelines.instructions import generate_instructions

    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(
        "\n".join(
            json.dumps({"id": f"s{i}", "instruction": t})
            for i, t in enumerate(
                ["What can I cook with rice, eggs and spinach?", "Explain how a bicycle gear works."]
            )
        )
        + "\n"
    )
    cfg = _cfg(tiny_config, method="self-instruct", num_instructions=4, seeds=seeds)
    ds, stats = generate_instructions(cfg)
    # SmolLM2-135M mostly echoes the Self-Instruct prompt or writes statements: the filters drop
    # those, so rows are not guaranteed; the accounting and every kept row's provenance are.
    _check_instruction_rows(ds, stats, "self-instruct")
    assert stats["calls"] == 2 and stats["seeds"] == 2
    for row in ds:
        assert row["seed_id"] in {"s0", "s1"} and row["parent_id"] is None
        assert json.loads(row["generation_params"])["rouge_threshold"] == 0.7


@pytest.mark.slow
def test_evol_instruct_from_input(tiny_config, tmp_path: Path):
    from pipelines.instructions import generate_instructions

    parents = tmp_path / "parents.jsonl"
    parents.write_text(
        json.dumps({"id": "p0", "instruction": "Give three tips for sleeping better.", "seed_id": "root"})
        + "\n"
        + json.dumps({"id": "p1", "instruction": "What is a prime number?"})
        + "\n"
    )
    cfg = _cfg(tiny_config, method="evol-instruct", num_instructions=2)
    ds, stats = generate_instructions(cfg, read_rows(parents), source=parents)
    _check_instruction_rows(ds, stats, "evol-instruct")
    assert stats["parents"] == 2
    for row in ds:  # each evolution keeps its parent and seed
        assert (row["parent_id"], row["seed_id"]) in {("p0", "root"), ("p1", "p1")}
        params = json.loads(row["generation_params"])
        assert params["evolution"] in {"in-depth", "in-breadth"} and params["depth"] == 1


@pytest.mark.slow
@pytest.mark.parametrize("evol_quality", [False, True])
def test_preferences(tiny_config, evol_quality: bool):
    from pipelines.preferences import generate_preferences

    cfg = tiny_config.model_copy(deep=True)
    cfg.generate.preferences.evol_quality = evol_quality
    cfg.generate.preferences.judge_both_orders = not evol_quality  # the position swap, on one of the two
    instructions = Dataset.from_list(
        [
            {
                "id": "i1",
                "instruction": "What can I use instead of eggs when baking muffins?",
                "method": "prompt",
                "generator_model": "m",
                "parent_id": None,
                "seed_id": None,
                "generation_params": "{}",
            },
            {
                "id": "i2",
                "instruction": "Give three tips for saving money on groceries.",
                "method": "prompt",
                "generator_model": "m",
                "parent_id": None,
                "seed_id": None,
                "generation_params": "{}",
            },
        ][: 1 if evol_quality else 2]
    )
    ds, stats = generate_preferences(cfg, instructions)
    assert stats["kept"] == len(ds) >= 1, stats
    assert stats["ratings_parsed"] + stats["ratings_missing"] == 2 * len(ds)
    temperatures = [0.3, 1.0]
    for row in ds:
        assert row["instruction_id"] in {"i1", "i2"} and row["method"] == "prompt"
        assert row["id"] == row_id(row["instruction"], row["generations"])  # the one recipe (curate.rows)
        assert len(row["generations"]) == 2 and len(set(row["generations"])) == 2
        assert all(g.strip() for g in row["generations"])
        assert row["generation_models"] == ["SmolLM2-135M-Instruct (GGUF, embedded)"] * 2
        params = [json.loads(p) for p in row["generation_params"]]
        assert [p["temperature"] for p in params] == temperatures
        if evol_quality:
            assert all("evol_quality" in p for p in params)
        assert len(row["ratings"]) == 2 and len(row["rationales"]) == 2
        assert all(r is None or 1 <= r <= 5 for r in row["ratings"])
        assert row["judge_raw"].startswith("#### Output for Text 1")  # kept verbatim, parsed or not
        assert parse_judgement(row["judge_raw"], 2)[0] == row["ratings"]
        assert row["judge_model"].startswith("SmolLM2-135M")
        if evol_quality:
            assert row["ratings_swapped"] is None and row["judge_raw_swapped"] is None
        else:  # the swapped pass: its "Text 1" is the second response, its ratings put back in order
            assert row["judge_raw_swapped"].startswith("#### Output for Text 1")
            assert parse_swapped_judgement(row["judge_raw_swapped"], 2)[0] == row["ratings_swapped"]
            assert len(row["rationales_swapped"]) == 2
    if not evol_quality:
        assert stats["ratings_swapped_parsed"] + stats["ratings_swapped_missing"] == 2 * len(ds)


@pytest.mark.slow
def test_ray_pipeline_on_a_local_head(tiny_config, local_ray):
    """`--ray`: the same pipeline through distilabel's RayPipeline, on a one-node Ray head on this
    machine that the `local_ray` fixture starts and stops."""
    from pipelines.instructions import generate_instructions

    cfg = _cfg(tiny_config, method="prompt", num_instructions=2)
    cfg.generate.ray = True
    ds, stats = generate_instructions(cfg)
    _check_instruction_rows(ds, stats, "prompt")
    assert stats["generated"] == 2


# --- a step process that dies ---------------------------------------------------------------------


def CrashingStep(inputs: StepInput):  # becomes a class, which distilabel pickles by this name
    import signal

    os.kill(os.getpid(), signal.SIGKILL)  # what a segfault in llama.cpp or the OOM killer does to a step
    yield inputs


CrashingStep.__annotations__["inputs"] = (
    StepInput  # distilabel reads the real type (annotations are deferred)
)
CrashingStep = step(inputs=["instruction"], outputs=["instruction"])(CrashingStep)


def _crashing_pipeline(cfg):
    from distilabel.steps import LoadDataFromDicts

    from pipelines.runner import make_pipeline

    pipeline = make_pipeline(cfg, "crash-test", [])
    with pipeline:
        LoadDataFromDicts(data=[{"instruction": "Say hi."}]) >> CrashingStep(name="crash")
    return pipeline


def test_a_step_process_that_dies_stops_the_run_with_an_error_not_a_hang(
    tiny_config, tmp_path: Path, monkeypatch
):
    """distilabel alone waits forever for a dead step (its pool replaces the worker, the batch never
    returns); the runner's watch ends the pipeline process, and the caller gets a clear error."""
    import uuid
    from functools import partial

    import psutil

    from curate.config import load_config
    from pipelines.runner import run_pipeline

    # Every process this run starts inherits the mark, and no other process has it: after the crash,
    # any process left with it is an orphan of this run (the pipeline process itself is gone).
    mark = f"crash-test-{uuid.uuid4().hex}"
    monkeypatch.setenv("CURATE_TEST_RUN", mark)
    cfg = load_config(overrides={"run": {"runs_dir": str(tmp_path / "runs")}}, environ={})
    with pytest.raises(RuntimeError, match="step's process died"):
        run_pipeline(partial(_crashing_pipeline, cfg), cfg, {}, isolate=True)

    ours = {os.getpid()} | {
        p.pid for p in psutil.Process().children(recursive=True)
    }  # e.g. its resource tracker

    def marked(p: psutil.Process) -> bool:
        try:
            return p.pid not in ours and p.environ().get("CURATE_TEST_RUN") == mark
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            return False

    strays = [p for p in psutil.process_iter() if marked(p)]
    _, alive = psutil.wait_procs(strays, timeout=30)
    for p in alive:
        p.kill()
    assert not alive, f"processes of the crashed run outlived it: {[p.pid for p in alive]}"


# --- curate killed while a spawned pipeline runs ----------------------------------------------------

_ORPHAN_SCRIPT = """
import os, sys, time
from functools import partial
from distilabel.steps import LoadDataFromDicts, StepInput, step

from curate.config import load_config
from pipelines.runner import make_pipeline, run_pipeline

MARK = sys.argv[1]


def Sleeping(inputs: StepInput):
    open(MARK, "w").write(str(os.getpid()))  # the step is running: the test may now kill this script
    time.sleep(600)
    yield inputs


Sleeping.__annotations__["inputs"] = StepInput
Sleeping = step(inputs=["instruction"], outputs=["instruction"])(Sleeping)


def build(cfg):
    pipeline = make_pipeline(cfg, "orphan-test", [])
    with pipeline:
        LoadDataFromDicts(data=[{"instruction": "Say hi."}]) >> Sleeping(name="sleep")
    return pipeline


if __name__ == "__main__":
    cfg = load_config(overrides={"run": {"runs_dir": sys.argv[2]}}, environ={})
    run_pipeline(partial(build, cfg), cfg, {}, isolate=sys.argv[3] == "isolated")
"""


@pytest.mark.parametrize("mode", ["isolated", "in-process"])
def test_killing_curate_ends_its_pipeline_and_step_processes(tmp_path: Path, mode: str):
    """`curate` killed with SIGKILL cannot stop what it started: the spawned pipeline process (isolated),
    distilabel's step processes and its queue manager. Without the runner's parent watches they run
    on (seen: a crashed run's processes stayed until killed by hand)."""
    import signal
    import subprocess
    import sys

    import psutil

    script, mark = tmp_path / "run_sleeping.py", tmp_path / "step-started"
    script.write_text(_ORPHAN_SCRIPT)
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(mark), str(tmp_path / "runs"), mode], env=env, cwd=repo
    )
    descendants: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 600  # a bound on the wait, so a stuck script fails instead of hanging
        while not mark.exists():  # a script that fails exits, and the assert below reports it
            assert proc.poll() is None, (
                f"the pipeline script exited with {proc.returncode} before its step ran"
            )
            assert time.monotonic() < deadline, "the pipeline's step did not start within 600 s"
            time.sleep(0.2)
        descendants = psutil.Process(proc.pid).children(recursive=True)
        step_pid = int(mark.read_text())
        assert step_pid in {p.pid for p in descendants}
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        _, alive = psutil.wait_procs(descendants, timeout=60)
        assert not alive, f"processes outlived the killed parent: {[(p.pid, p.name()) for p in alive]}"
    finally:
        if proc.poll() is None:
            proc.kill()
        for p in descendants:  # orphans of a failed run: not left behind
            if p.is_running():
                p.kill()
