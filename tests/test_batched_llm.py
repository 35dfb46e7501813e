"""Parallel decoding (pipelines/batched_llm.py) on the real embedded SmolLM2: the same texts and token
counts as the single stream at temperature 0, stop strings, Magpie prompts, the config knob."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from curate.config import LLMConfig
from curate.models import embedded_gguf_path

pytestmark = pytest.mark.slow

QUESTIONS = [
    "What is the capital of France?",
    "Write a haiku about rain.",
    "Explain photosynthesis briefly.",
    "List three prime numbers.",
]
GREEDY = {"max_new_tokens": 12, "temperature": 0.0, "top_p": 0.95}


@pytest.fixture(scope="module")
def llms():
    """(single stream, 4 parallel sequences) for plain chat, an answer prefix, and Magpie."""
    from pipelines.batched_llm import BatchedGGUFChatLlamaCppLLM
    from pipelines.llm import CHATML_PRE_QUERY_TEMPLATE

    path = str(embedded_gguf_path())
    kinds = {
        "plain": {},
        "prefix": {"assistant_prefix": "Answer:"},
        "magpie": {"use_magpie_template": True, "magpie_pre_query_template": CHATML_PRE_QUERY_TEMPLATE},
    }
    built = {}
    for kind, fields in kinds.items():
        pair = []
        for parallel in (1, 4):
            llm = BatchedGGUFChatLlamaCppLLM(model_path=path, n_ctx=512, parallel=parallel, **fields)
            llm.load()
            pair.append(llm)
        built[kind] = tuple(pair)
    return built


def _chat(questions: list[str]) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": q}] for q in questions]


@pytest.mark.parametrize("kind", ["plain", "prefix"])
def test_parallel_greedy_equals_single_stream(llms, kind):
    single, parallel = llms[kind]
    assert parallel._decoder is not None and single._decoder is None  # really two code paths
    inputs = _chat(QUESTIONS)
    a = single.generate(inputs, **GREEDY)
    b = parallel.generate(inputs, **GREEDY)
    assert [o["generations"] for o in b] == [o["generations"] for o in a]
    assert [o["statistics"] for o in b] == [o["statistics"] for o in a]
    for out in b:
        assert out["generations"][0]
        assert 1 <= out["statistics"]["output_tokens"][0] <= GREEDY["max_new_tokens"]
    if kind == "prefix":
        assert all(o["generations"][0].startswith("Answer:") for o in b)
    # input tokens: the rendered chat template, as the single stream counts them
    rendered = parallel._chat_template_prompt(inputs[0]) if kind == "plain" else None
    if rendered is not None:
        expected = len(parallel._model.tokenize(rendered.encode(), add_bos=False, special=True))
        assert b[0]["statistics"]["input_tokens"] == [expected]


def test_stop_strings_cut_like_the_single_stream(llms):
    single, parallel = llms["plain"]
    inputs = _chat(QUESTIONS[:2])
    free = single.generate(inputs, **GREEDY)
    words = free[0]["generations"][0].split()
    assert len(words) >= 3, free
    stop = " " + words[2]
    a = single.generate(inputs, **GREEDY, extra_generation_kwargs={"stop": [stop]})
    b = parallel.generate(inputs, **GREEDY, extra_generation_kwargs={"stop": [stop]})
    assert b[0]["generations"][0] == free[0]["generations"][0].split(stop)[0]
    assert [o["generations"] for o in b] == [o["generations"] for o in a]
    assert [o["statistics"] for o in b] == [o["statistics"] for o in a]


def test_magpie_prompts_in_parallel(llms):
    single, parallel = llms["magpie"]
    topics = ["cooking", "history", "travel"]
    inputs = [[{"role": "system", "content": f"You write questions about {t}."}] for t in topics]
    a = single.generate(inputs, **GREEDY)
    b = parallel.generate(inputs, **GREEDY)
    assert [o["generations"] for o in b] == [o["generations"] for o in a]
    assert all(o["generations"][0] and "<|im_start|>" not in o["generations"][0] for o in b)


def test_sampling_several_generations_per_input(llms):
    _, parallel = llms["plain"]
    out = parallel.generate(
        _chat(QUESTIONS[:2]),
        num_generations=3,
        max_new_tokens=8,
        temperature=1.0,
        top_p=0.9,
        frequency_penalty=0.5,
        presence_penalty=0.5,
    )
    assert len(out) == 2
    for o in out:
        assert len(o["generations"]) == 3
        assert len(o["statistics"]["output_tokens"]) == 3
        assert all(1 <= n <= 8 for n in o["statistics"]["output_tokens"])
        assert len(set(o["statistics"]["input_tokens"])) == 1


def test_the_parallel_knob():
    from pipelines.batched_llm import BatchedGGUFChatLlamaCppLLM
    from pipelines.llm import task_llm

    for bad in (0, 65):
        with pytest.raises(ValidationError, match="parallel"):
            LLMConfig(parallel=bad)
    llm = task_llm(LLMConfig(parallel=4))
    assert isinstance(llm, BatchedGGUFChatLlamaCppLLM) and llm.parallel == 4
    assert isinstance(task_llm(LLMConfig()), BatchedGGUFChatLlamaCppLLM)  # the embedded default
    assert not isinstance(task_llm(LLMConfig(parallel=1)), BatchedGGUFChatLlamaCppLLM)
    llm.load()
    try:  # a sampling setting the parallel sampler does not have is refused, not ignored
        with pytest.raises(ValueError, match="top_a"):
            llm.generate(_chat(QUESTIONS[:1]), max_new_tokens=2, extra_generation_kwargs={"top_a": 1})
    finally:
        llm.unload()
