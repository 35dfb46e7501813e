"""Tokens/s of the embedded SmolLM2: in-process llama.cpp against llama-cpp-python's OpenAI-compatible
server on 127.0.0.1, reached through curate's hosted provider (HostedOpenAILLM) at concurrency 1 and 4,
with its request accounting (requests, retries). Run: .venv/bin/python benchmarks/hosted_llm.py
"""

import socket
import subprocess
import sys
import time
import urllib.request

from llama_cpp import Llama

from curate.config import LLMConfig
from curate.models import embedded_gguf_path
from pipelines.llm import task_llm

PROMPTS = [
    [{"role": "user", "content": f"Write two sentences about {t}."}]
    for t in ["rivers", "bread", "chess", "rain", "trains", "honey", "maps", "clocks"]
]
N = 64
llm = Llama(model_path=str(embedded_gguf_path()), n_ctx=1024, n_threads=2, verbose=False)
t = time.perf_counter()
toks = 0
for p in PROMPTS:
    r = llm.create_chat_completion(messages=p, max_tokens=N, temperature=0.7, top_p=0.95)
    toks += r["usage"]["completion_tokens"]
dt = time.perf_counter() - t
print(f"embedded in-process: {toks} tokens in {dt:.1f}s = {toks / dt:.1f} tok/s")
del llm
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
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
        "1024",
        "--n_threads",
        "2",
        "--model_alias",
        "smollm2",
    ],
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
)
try:
    for _ in range(600):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models")
            break
        except OSError:
            time.sleep(0.5)
    for conc in (1, 4):
        h = task_llm(
            LLMConfig(
                provider="openai",
                model="smollm2",
                base_url=f"http://127.0.0.1:{port}/v1",
                max_new_tokens=N,
                concurrency=conc,
            )
        )
        h.load()
        t = time.perf_counter()
        out = h.generate(inputs=PROMPTS, **h.generation_kwargs)
        dt = time.perf_counter() - t
        toks = sum(o["statistics"]["output_tokens"][0] for o in out)
        reqs = sum(o["statistics"]["requests"][0] for o in out)
        rets = sum(o["statistics"]["retries"][0] for o in out)
        print(
            f"server, concurrency {conc}: {reqs} requests, {rets} retries, {toks} tokens in {dt:.1f}s = {toks / dt:.1f} tok/s"
        )
finally:
    proc.terminate()
    proc.wait()
