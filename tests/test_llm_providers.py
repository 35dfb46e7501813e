"""The provider matrix: every stage that uses an LLM on each provider that can run here, on 127.0.0.1.

- `openai`: llama-cpp-python's OpenAI-compatible server serving the embedded SmolLM2 GGUF (with an API
  key, read from an environment variable), directly or behind `FaultProxy`, a small HTTP proxy that
  answers a planned share of requests with 429 / 503, drops or delays them, and records how many are in
  flight at once.
- `inference-endpoints`: the same server through its TGI-style Messages API (`/v1/chat/completions`).
- `transformers`: the embedded GGUF loaded (dequantised) by transformers.
- The embedded llama.cpp model has its own tests (test_generate.py, test_score.py, test_run.py).
- vLLM (GPU), OpenAI itself and hosted Inference Endpoints (network): everything up to the request.

Generations are tiny (a few rows, 16-32 new tokens); one server serves the whole module.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from datasets import Dataset

from curate.config import ConfigError, LLMConfig, load_config
from curate.io import load_stats, read_rows

SECRET = "sk-curate-test-6f1d2b"  # the server's key: must never be written anywhere
KEY_ENV = "CURATE_TEST_OAI_KEY"
ISSUE_PARAMS = {"max_new_tokens": 24, "temperature": 0.7, "top_p": 0.95}
INSTRUCTIONS = [
    "What can I use instead of eggs when baking muffins?",
    "Give three tips for saving money on groceries.",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _embedded_gguf() -> Path:
    from curate.models import embedded_gguf_path

    return embedded_gguf_path()


# --- the local OpenAI-compatible server and the fault-injecting proxy --------------------------------


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory):
    """llama-cpp-python's OpenAI-compatible server on 127.0.0.1 serving the embedded GGUF, with a key."""
    pytest.importorskip("sse_starlette")
    pytest.importorskip("starlette_context")
    port = _free_port()
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    log = log_path.open("w")
    args = ["--model", str(_embedded_gguf()), "--host", "127.0.0.1", "--port", str(port)]
    args += ["--n_ctx", "2048", "--n_threads", "2", "--model_alias", "smollm2", "--api_key", SECRET]
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", *args], stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):  # up to ~5 minutes on a busy machine
            assert proc.poll() is None, log_path.read_text()[-2000:]
            try:
                request = urllib.request.Request(
                    f"{url}/v1/models", headers={"Authorization": f"Bearer {SECRET}"}
                )
                urllib.request.urlopen(request, timeout=5)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail(f"the llama.cpp server did not answer on {url}: {log_path.read_text()[-2000:]}")
        yield url
    finally:
        proc.terminate()
        proc.wait()
        log.close()


class FaultProxy:
    """An HTTP proxy in front of the real server. `plan` maps the n-th request (1-based, in arrival
    order) to a fault: "429", "503", "drop" (close without answering) or "delay" (hold it `delay` seconds,
    then close). `fail_after`: every request after that many is answered 503. It records the requests,
    the faults injected, the requests answered by the server, and the most in flight at once."""

    def __init__(self, upstream: str, plan: dict[int, str] | None = None, delay: float = 0.0):
        self.upstream = upstream.removeprefix("http://")
        self.plan = dict(plan or {})
        self.delay = delay
        self.fail_after: int | None = None
        self.lock = threading.Lock()
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.faults: Counter[str] = Counter()
        self.answered = 0
        self.paths: Counter[str] = Counter()
        self.auth: set[str] = set()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                self._handle()

            def do_POST(self):
                self._handle()

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with proxy.lock:
                    proxy.requests += 1
                    n = proxy.requests
                    proxy.in_flight += 1
                    proxy.max_in_flight = max(proxy.max_in_flight, proxy.in_flight)
                    proxy.paths[self.path] += 1
                    proxy.auth.add(self.headers.get("Authorization", ""))
                    fault = proxy.plan.get(n)
                    if proxy.fail_after is not None and n > proxy.fail_after:
                        fault = "503"
                    if fault:
                        proxy.faults[fault] += 1
                try:
                    if fault in ("429", "503"):
                        data = json.dumps({"error": {"message": f"injected {fault}"}}).encode()
                        self.send_response(int(fault))
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Content-Length", str(len(data)))
                        self.end_headers()
                        self.wfile.write(data)
                        return
                    if fault in ("drop", "delay"):
                        if fault == "delay":
                            time.sleep(proxy.delay)
                        self.close_connection = True
                        with contextlib.suppress(OSError):  # the client may have given up already
                            self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    conn = http.client.HTTPConnection(proxy.upstream, timeout=600)
                    headers = {
                        k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")
                    }
                    conn.request(self.command, self.path, body=body, headers=headers)
                    response = conn.getresponse()
                    data = response.read()
                    conn.close()
                    with proxy.lock:
                        proxy.answered += 1
                    self.send_response(response.status)
                    self.send_header("Content-Type", response.getheader("Content-Type") or "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                finally:
                    with proxy.lock:
                        proxy.in_flight -= 1

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def _openai_llm(base_url: str, **settings) -> dict:
    return {
        "provider": "openai",
        "model": "smollm2",
        "base_url": f"{base_url}/v1",
        "api_key_env": KEY_ENV,
        "max_new_tokens": 24,
        **settings,
    }


def _transformers_llm(**settings) -> dict:
    gguf = _embedded_gguf()
    return {
        "provider": "transformers",
        "model": str(gguf.parent),
        "extra": {"gguf_file": gguf.name},
        "max_new_tokens": 24,
        **settings,
    }


def _config(tmp_path: Path, llm: dict, **sections):
    data = {"llm": llm, "run": {"runs_dir": str(tmp_path / "runs")}}
    for name, values in sections.items():
        data[name] = values
    return load_config(overrides=data, environ={})


@pytest.fixture
def key_env(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(KEY_ENV, SECRET)


def _instructions() -> Dataset:
    return Dataset.from_list(
        [
            {"id": f"i{i}", "instruction": text, "method": "prompt", "generator_model": "m"}
            | {"parent_id": None, "seed_id": None, "generation_params": "{}"}
            for i, text in enumerate(INSTRUCTIONS)
        ]
    )


def _check_instructions(ds: Dataset, stats: dict, method: str, model: str) -> None:
    dropped = sum(v for k, v in stats.items() if k.startswith(("dropped_", "eliminated_")))
    assert stats["generated"] >= 1 and stats["kept"] + dropped == stats["generated"], stats
    for row in ds:
        assert row["method"] == method and row["generator_model"] == model
        assert json.loads(row["generation_params"])["max_new_tokens"] == 24


def _secret_in(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]


# --- everything up to the request (no server) ---------------------------------------------------------


def test_generation_parameters_bind_on_every_provider_without_a_request(monkeypatch):
    """The issue's traceback: distilabel's async LLMs take the sampling settings on `agenerate`
    (their `generate` has only **kwargs); each provider gets them bound, and the request settings."""
    from curate.llms import ChatTransformersLLM, HostedInferenceEndpointsLLM, HostedOpenAILLM
    from curate.models import ModelNotFoundError
    from pipelines.llm import task_llm

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("OAI_KEY", SECRET)
    monkeypatch.setenv("HF_TOKEN", "hf-test-token")
    issue = LLMConfig(
        provider="openai",
        model="smollm2",
        base_url="http://127.0.0.1:8765/v1",
        api_key_env="OAI_KEY",
        max_new_tokens=24,
    )
    llm = task_llm(issue)  # failed with "not supported by OpenAILLM (it takes: kwargs)"
    assert isinstance(llm, HostedOpenAILLM) and llm.generation_kwargs == ISSUE_PARAMS
    assert (llm.base_url, llm.api_key.get_secret_value(), llm.max_retries, llm.timeout, llm.concurrency) == (
        "http://127.0.0.1:8765/v1",
        SECRET,
        6,
        120,
        8,
    )
    # a setting the API has no argument for goes in the request body (vLLM and llama.cpp servers read it)
    assert task_llm(issue, {"top_k": 40}).generation_kwargs["extra_body"] == {"top_k": 40}
    # OpenAI itself: the key from its variable, the default URL
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-test")
    openai = task_llm(
        LLMConfig(provider="openai", model="gpt-4o-mini", max_retries=3, timeout=30, concurrency=16)
    )
    assert (
        openai.base_url == "https://api.openai.com/v1"
        and openai.api_key.get_secret_value() == "sk-openai-test"
    )
    assert (openai.max_retries, openai.timeout, openai.concurrency) == (3, 30, 16)
    # Inference Endpoints: by model id (the Hub's serverless API) or by an endpoint's URL; huggingface_hub
    # refuses every request in offline mode (curate's default), so that fails first, saying so
    with pytest.raises(ModelNotFoundError, match="HF_HUB_OFFLINE=0"):
        task_llm(LLMConfig(provider="inference-endpoints", model="meta-llama/Llama-3.1-8B-Instruct"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    hub = task_llm(LLMConfig(provider="inference-endpoints", model="meta-llama/Llama-3.1-8B-Instruct"))
    assert isinstance(hub, HostedInferenceEndpointsLLM) and hub.model_id == "meta-llama/Llama-3.1-8B-Instruct"
    assert hub.generation_kwargs == ISSUE_PARAMS | {"max_new_tokens": 256}
    assert hub.api_key.get_secret_value() == "hf-test-token"
    endpoint = task_llm(
        LLMConfig(provider="inference-endpoints", base_url="https://xyz.endpoints.huggingface.cloud")
    )
    assert endpoint.base_url == "https://xyz.endpoints.huggingface.cloud" and endpoint.model_id is None
    # vLLM (in-process, GPU): built, not loaded; sampling settings on its generate
    vllm = task_llm(LLMConfig(provider="vllm", model="Qwen/Qwen2.5-7B-Instruct"), {"top_k": 20, "min_p": 0.1})
    assert type(vllm).__name__ == "vLLM" and vllm.model == "Qwen/Qwen2.5-7B-Instruct"
    assert vllm.generation_kwargs == ISSUE_PARAMS | {"max_new_tokens": 256, "top_k": 20, "min_p": 0.1}
    # transformers on a GGUF file
    gguf = task_llm(LLMConfig(**_transformers_llm()))
    assert isinstance(gguf, ChatTransformersLLM) and gguf.gguf_file.endswith(".gguf")
    assert gguf.generation_kwargs == ISSUE_PARAMS | {"do_sample": True}
    # no key in what distilabel writes to its cache (pipeline.yaml, signatures); request settings neither
    for built in (llm, openai, hub):
        dumped = json.dumps(built.dump(), default=str)
        assert SECRET not in dumped and "sk-openai-test" not in dumped and "hf-test-token" not in dumped
        assert "max_retries" not in dumped and "concurrency" not in dumped


def test_request_settings_have_ranges():
    with pytest.raises(ConfigError, match=r"llm\.max_retries"):
        load_config(overrides={"llm": {"max_retries": -1}}, environ={})
    with pytest.raises(ConfigError, match=r"llm\.concurrency"):
        load_config(overrides={"llm": {"concurrency": 0}}, environ={})
    assert load_config(environ={"CURATE_LLM__TIMEOUT": "30"}).llm.timeout == 30


def test_magpie_fails_at_config_time_where_it_cannot_run(tmp_path: Path):
    from typer.testing import CliRunner

    from curate.cli import app
    from pipelines.instructions import generate_instructions

    cfg = _config(
        tmp_path, _openai_llm("http://127.0.0.1:9"), generate={"instructions": {"method": "magpie"}}
    )
    with pytest.raises(ConfigError, match=r"Magpie runs on provider llamacpp .* transformers, vllm"):
        generate_instructions(cfg)  # before any request (nothing listens on port 9)
    endpoint = _config(tmp_path, {"provider": "inference-endpoints", "base_url": "http://127.0.0.1:9"})
    endpoint.generate.instructions.method = "magpie"
    with pytest.raises(ConfigError, match="tokenizer_id"):
        generate_instructions(endpoint)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"llm": _openai_llm("http://127.0.0.1:9")}))
    result = CliRunner().invoke(
        app, ["generate", "instructions", "-c", str(config), "-m", "magpie", "-o", str(tmp_path / "o")]
    )
    assert result.exit_code == 1 and "provider openai sends chat messages" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)  # a message, no traceback


# --- provider openai: llama-cpp-python's OpenAI-compatible server -------------------------------------


@pytest.mark.slow
def test_openai_prompt_method_through_the_cli_as_the_issue_ran_it(llama_server, tmp_path: Path):
    from typer.testing import CliRunner

    from curate.cli import app

    config = tmp_path / "cfg.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "llm": {"provider": "openai", "model": "smollm2", "base_url": f"{llama_server}/v1"}
                | {"api_key_env": "OAI_KEY", "max_new_tokens": 24},
                "run": {"runs_dir": str(tmp_path / "runs")},
            }
        )
    )
    args = [
        "generate",
        "instructions",
        "-c",
        str(config),
        "--method",
        "prompt",
        "--num",
        "4",
        "-o",
        str(tmp_path / "inst"),
    ]
    result = CliRunner().invoke(app, args, env={"OAI_KEY": SECRET})
    assert result.exit_code == 0, result.output
    ds, stats = read_rows(tmp_path / "inst"), load_stats(tmp_path / "inst")
    _check_instructions(ds, stats, "prompt", "smollm2 (openai)")
    assert stats["generated"] == 4 and stats["llm_requests"] == 4 and stats["llm_retries"] == 0, stats
    assert len(ds) >= 1, stats
    assert not _secret_in(tmp_path), "the API key was written to disk"


@pytest.mark.slow
@pytest.mark.parametrize("method", ["self-instruct", "evol-instruct"])
def test_openai_other_instruction_methods(llama_server, tmp_path: Path, key_env, method: str):
    from pipelines.instructions import generate_instructions

    cfg = _config(
        tmp_path,
        _openai_llm(llama_server),
        generate={"instructions": {"method": method, "num_instructions": 2}},
    )
    parents = _instructions() if method == "evol-instruct" else None
    ds, stats = generate_instructions(cfg, parents, source="instructions")
    _check_instructions(ds, stats, method, "smollm2 (openai)")
    # self-instruct: one call (3 queries per call); evol-instruct: an evolution and its answer per parent
    assert stats["llm_requests"] == (1 if method == "self-instruct" else 4), stats


@pytest.mark.slow
def test_openai_preferences_with_the_judge(llama_server, tmp_path: Path, key_env):
    from pipelines.preferences import generate_preferences

    cfg = _config(tmp_path, _openai_llm(llama_server, max_new_tokens=32))
    ds, stats = generate_preferences(cfg, _instructions())
    assert stats["kept"] == len(ds) >= 1, stats
    # two responses and one judgement per instruction, each one request
    assert stats["llm_requests"] == 3 * len(INSTRUCTIONS) and stats["llm_retries"] == 0, stats
    for row in ds:
        assert (
            row["generation_models"] == ["smollm2 (openai)"] * 2 and row["judge_model"] == "smollm2 (openai)"
        )
        assert len(row["ratings"]) == 2 and row["judge_raw"]  # the judge answered (parsed or not)
        assert [json.loads(p)["temperature"] for p in row["generation_params"]] == [0.3, 1.0]


@pytest.mark.slow
def test_openai_scoring_counts_its_requests(llama_server, tmp_path: Path, key_env):
    from curate.stages.score import score

    rows = [{"instruction": INSTRUCTIONS[0], "generations": ["Applesauce or a mashed banana.", "Eggs."]}]
    cfg = _config(tmp_path, {"n_ctx": 1024}, score={"llm": _openai_llm(llama_server)})
    out, stats = score(Dataset.from_list(rows), cfg)
    assert 1 <= out[0]["complexity"] <= 6 and all(1 <= q <= 6 for q in out[0]["quality_scores"])
    assert stats["llm_requests"] == 3 and stats["llm_retries"] == 0, stats  # complexity + 2 qualities


# --- hosted endpoints fail transiently ------------------------------------------------------------------


@pytest.mark.slow
def test_faults_are_retried_no_row_is_lost_or_duplicated_and_requests_overlap(
    llama_server, tmp_path: Path, key_env
):
    """429, 503, a dropped connection and a request held past the timeout, on 6 requests sent 3 at a time:
    the run completes with every row exactly once, the stage counts the 4 retries, and the proxy saw 3
    requests in flight at once."""
    from pipelines.instructions import generate_instructions, prompt_inputs, prompt_pipeline
    from pipelines.llm import run_llm_pipeline

    plan = {1: "429", 3: "503", 4: "drop", 6: "delay"}
    with FaultProxy(llama_server, plan, delay=31) as proxy:
        llm = _openai_llm(proxy.url, max_retries=3, timeout=30, concurrency=3, max_new_tokens=16)
        cfg = _config(
            tmp_path,
            llm,
            generate={"instructions": {"method": "prompt", "num_instructions": 6, "batch_size": 6}},
        )
        _, stats = generate_instructions(cfg)
        assert proxy.faults == Counter({"429": 1, "503": 1, "drop": 1, "delay": 1})
        assert proxy.answered == 6 and proxy.requests == 10  # each row answered once; 4 retries
        assert stats["generated"] == 6 and stats["llm_requests"] == 6 and stats["llm_retries"] == 4, stats
        assert proxy.max_in_flight == 3  # llm.concurrency: the server alone handles one at a time
        # every row exactly once, each with its answer (distilabel's rows, now from its cache: no request)
        rows, requests = run_llm_pipeline(
            partial(prompt_pipeline, cfg, prompt_inputs(cfg)), cfg, {}, [cfg.llm]
        )
        assert sorted(r["n"] for r in rows) == list(range(6))
        assert all(isinstance(r["generation"], str) and r["generation"].strip() for r in rows)
        assert sum(r["distilabel_metadata"]["statistics_prompt"]["retries"] for r in rows) == 4
        assert requests == {} and proxy.requests == 10


@pytest.mark.slow
def test_an_endpoint_that_keeps_failing_ends_the_run_naming_it_and_the_run_resumes(
    llama_server, tmp_path: Path, key_env
):
    from curate.models import LLMEndpointError
    from pipelines.instructions import generate_instructions

    sections = {"generate": {"instructions": {"method": "prompt", "num_instructions": 4, "batch_size": 2}}}
    with FaultProxy(llama_server) as proxy:
        proxy.fail_after = 2  # the first batch (2 rows) goes through, then every request gets 503
        cfg = _config(tmp_path, _openai_llm(proxy.url, max_retries=1, concurrency=1), **sections)
        with pytest.raises(LLMEndpointError) as err:
            generate_instructions(cfg)
        message = str(err.value)
        assert f"{proxy.url}/v1/chat/completions" in message and "last status: HTTP 503" in message
        assert "after 1 retry" in message and "re-run to resume" in message
        assert proxy.answered == 2 and proxy.requests == 4  # the third row's request and its one retry
        assert proxy.max_in_flight == 1  # concurrency 1: one at a time

        proxy.fail_after = None  # the endpoint recovers; the user also allows more retries
        cfg = _config(tmp_path, _openai_llm(proxy.url, max_retries=5, concurrency=1), **sections)
        _, stats = generate_instructions(cfg)
        assert stats["generated"] == 4, stats  # every row: the two from the cache, and the two resumed
        assert (
            stats["llm_requests"] == 2 and proxy.answered == 4
        )  # only the two unfinished ones were requested


# --- provider inference-endpoints against the same server (its Messages API) --------------------------


@pytest.mark.slow
def test_inference_endpoints_provider_retries_and_generates(llama_server, tmp_path: Path, monkeypatch):
    from pipelines.instructions import generate_instructions

    monkeypatch.setenv("HF_TOKEN", SECRET)  # TGI-style servers take the token as a bearer key
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # else huggingface_hub refuses the request (see build_llm)
    with FaultProxy(llama_server, {1: "503", 2: "429"}) as proxy:
        llm = {
            "provider": "inference-endpoints",
            "base_url": proxy.url,
            "max_new_tokens": 24,
            "max_retries": 3,
        }
        cfg = _config(tmp_path, llm, generate={"instructions": {"method": "prompt", "num_instructions": 2}})
        ds, stats = generate_instructions(cfg)
        assert proxy.paths["/v1/chat/completions"] == 4 and proxy.answered == 2
        assert proxy.auth == {f"Bearer {SECRET}"}
    _check_instructions(ds, stats, "prompt", f"{proxy.url} (inference-endpoints)")
    assert stats["generated"] == 2 and stats["llm_requests"] == 2 and stats["llm_retries"] == 2, stats


# --- a mixed configuration: generate with the embedded model, judge with the server --------------------


@pytest.mark.slow
def test_embedded_generators_with_an_openai_compatible_judge(llama_server, tmp_path: Path, key_env):
    from pipelines.preferences import generate_preferences

    cfg = _config(
        tmp_path,
        {"max_new_tokens": 32, "n_ctx": 1024},
        generate={"preferences": {"judge": _openai_llm(llama_server, max_new_tokens=48)}},
    )
    ds, stats = generate_preferences(cfg, _instructions().select([0]))
    assert stats["kept"] == len(ds) == 1, stats
    (row,) = ds
    assert row["generation_models"] == ["SmolLM2-135M-Instruct (GGUF, embedded)"] * 2
    assert row["judge_model"] == "smollm2 (openai)" and row["judge_raw"]
    assert stats["llm_requests"] == 1  # only the judge went over HTTP


# --- provider transformers: the embedded GGUF through transformers ------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("method", ["prompt", "magpie", "self-instruct", "evol-instruct"])
def test_transformers_instruction_methods(tmp_path: Path, method: str):
    pytest.importorskip("gguf")
    from pipelines.instructions import generate_instructions

    instructions = {"method": method, "num_instructions": 2, "magpie_pre_query_template": "chatml"}
    cfg = _config(tmp_path, _transformers_llm(), generate={"instructions": instructions})
    ds, stats = generate_instructions(
        cfg, _instructions().select([0]) if method == "evol-instruct" else None, source="x"
    )
    _check_instructions(ds, stats, method, f"{_embedded_gguf().name} (transformers)")
    assert "llm_requests" not in stats  # nothing over HTTP
    if method == "magpie":
        assert all("<|im_start|>" not in r["instruction"] for r in ds)


@pytest.mark.slow
def test_transformers_preferences_with_the_judge_and_scoring(tmp_path: Path):
    pytest.importorskip("gguf")
    from curate.stages.score import score
    from pipelines.preferences import generate_preferences

    cfg = _config(tmp_path, _transformers_llm(max_new_tokens=32), score={"llm": _transformers_llm()})
    ds, stats = generate_preferences(cfg, _instructions().select([0]))
    assert stats["kept"] == len(ds) == 1, stats
    (row,) = ds
    assert row["judge_model"] == f"{_embedded_gguf().name} (transformers)" and row["judge_raw"]
    scored, score_stats = score(ds, cfg)
    assert 1 <= scored[0]["complexity"] <= 6 and len(scored[0]["quality_scores"]) == 2
    assert "transformers" in score_stats["complexity_model"]


# --- `curate run` end to end on each provider ------------------------------------------------------------


def _curate(*args: str, env: dict) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("ARGILLA_", "CURATE_"))}
    return subprocess.run(
        [sys.executable, "-m", "curate", *args],
        check=False,
        capture_output=True,
        text=True,
        env=environ | env,
    )


@pytest.mark.slow
@pytest.mark.server
@pytest.mark.parametrize("provider", ["openai", "transformers"])
def test_curate_run_end_to_end(provider: str, llama_server, argilla_server, tmp_path: Path):
    from curate.run import stage_named

    if provider == "transformers":
        pytest.importorskip("gguf")
    llm = (
        _openai_llm(llama_server, max_new_tokens=32)
        if provider == "openai"
        else _transformers_llm(max_new_tokens=32)
    )
    config = tmp_path / "curate.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "llm": llm,
                "generate": {"instructions": {"method": "prompt", "num_instructions": 3}},
                "score": {"llm": llm},
                "select": {"instruction_budget": 2, "budget": 2},
                "server": {"data_dir": str(argilla_server.data_dir)},
                "argilla": {"dataset": f"run-{provider}", "workspace": "curate"},
                "run": {"runs_dir": str(tmp_path / "runs"), "name": provider},
            }
        )
    )
    result = _curate("run", "--config", str(config), env={KEY_ENV: SECRET})
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((tmp_path / "runs" / provider / "manifest.json").read_text())
    assert all(entry["status"] == "done" for entry in manifest["stages"].values()), manifest["stages"]
    assert stage_named("push").name in manifest["stages"]
    selected = read_rows(tmp_path / "runs" / provider / stage_named("select").name)
    assert 0 < len(selected) <= 2 and "deita_score" in selected.column_names
    if provider == "openai":
        stats = {name: e["stats"] for name, e in manifest["stages"].items()}
        assert stats[stage_named("instructions").name]["llm_requests"] == 3
        assert stats[stage_named("preferences").name]["llm_requests"] >= 3  # 2 responses + the judge
        assert stats[stage_named("complexity").name]["llm_requests"] >= 1
        assert manifest["config"]["llm"]["api_key_env"] == KEY_ENV
    assert not _secret_in(tmp_path), "the API key was written to disk"
    assert SECRET not in result.stdout + result.stderr, "the API key was printed"
