"""Where the next-token logits of "1".."6" come from: embedded llama.cpp, transformers, or an OpenAI API.

Every backend returns, per prompt, six numbers on a log scale (logits or log-probabilities) in score
order; `expected_score` turns them into Deita's score. One forward pass per item, never a generation.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from curate.config import LLMConfig
from curate.models import ModelNotFoundError, llm_model_path, llm_name
from curate.scoring.prompts import SCORE_DIGITS, ScoreTokens, resolve_score_tokens, truncate

SCORE_VALUES = np.arange(1, 7, dtype=np.float64)


def expected_score(score_logits: np.ndarray) -> np.ndarray:
    """Deita: softmax over the six score logits, expected value with weights 1..6 (rows -> [1, 6])."""
    x = np.atleast_2d(np.asarray(score_logits, dtype=np.float64))
    x = x - x.max(axis=1, keepdims=True)
    p = np.exp(x)
    p /= p.sum(axis=1, keepdims=True)
    return p @ SCORE_VALUES


class LogitBackend(Protocol):
    name: str
    tokens: ScoreTokens | None  # None: the API reports token strings, matched by text (OpenAI)
    prompt_tokens: int  # tokens evaluated so far (for throughput figures)

    def truncate(self, text: str, max_tokens: int) -> tuple[str, bool]: ...
    def score_logits(self, prompt: str) -> np.ndarray | None: ...


class LlamaCppBackend:
    """A GGUF model in-process. Reads the last position's logits straight from the llama.cpp context.

    Why not `Llama(logits_all=True)` and `llm.scores`: that computes and copies the full-vocabulary logits
    of every prompt position (for Gemma-3, 262k floats per token), which costs about as much as the model
    itself; Deita needs only the last row, which llama.cpp computes anyway. The KV cache of the prefix
    shared with the previous prompt (Deita's preamble, or the same question for the next response) is
    reused: causal attention makes those positions independent of what follows, so this is exact.
    """

    def __init__(self, cfg: LLMConfig, n_threads: int | None = None):
        from llama_cpp import Llama

        path = llm_model_path(cfg)
        extra = dict(cfg.extra)
        self.name = llm_name(cfg)
        self.n_ctx = cfg.n_ctx
        self.llm = Llama(
            model_path=str(path),
            n_ctx=cfg.n_ctx,
            n_batch=int(extra.pop("n_batch", min(512, cfg.n_ctx))),
            n_threads=n_threads or extra.pop("n_threads", None),
            n_threads_batch=n_threads or extra.pop("n_threads_batch", None),
            n_gpu_layers=int(extra.pop("n_gpu_layers", 0)),
            logits_all=False,
            verbose=bool(extra.pop("verbose", False)),
        )
        self._vocab = self.llm.n_vocab()
        self.reuse_prefix = True  # benchmarks switch it off to measure the bare per-item overhead
        self.prompt_tokens = 0
        self.tokens = resolve_score_tokens(self.encode, self.name)

    def encode(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)

    def decode(self, ids: Sequence[int]) -> str:
        return self.llm.detokenize(list(ids)).decode("utf-8", errors="ignore")

    def truncate(self, text: str, max_tokens: int) -> tuple[str, bool]:
        return truncate(text, max_tokens, self.encode, self.decode)

    def prompt_ids(self, prompt: str) -> list[int]:
        # add_bos follows the model's own metadata (Gemma: yes, SmolLM2: no), as Hugging Face tokenizers do.
        return self.llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=False)

    def score_logits(self, prompt: str) -> np.ndarray:
        toks = self.prompt_ids(prompt)
        if len(toks) > self.n_ctx:
            raise ValueError(
                f"{self.name}: a scoring prompt of {len(toks)} tokens exceeds n_ctx={self.n_ctx}: raise the "
                "scorer's n_ctx, or lower score.max_instruction_tokens / score.max_response_tokens"
            )
        cached, limit = self.llm.input_ids, min(self.llm.n_tokens, len(toks) - 1) if self.reuse_prefix else 0
        keep = 0
        while keep < limit and cached[keep] == toks[keep]:
            keep += 1
        self.llm.n_tokens = keep  # eval() drops the cache from here on
        self.llm.eval(toks[keep:])
        self.prompt_tokens += len(toks)
        last = np.ctypeslib.as_array(self.llm._ctx.get_logits_ith(-1), shape=(self._vocab,))
        return last[list(self.tokens.ids)].astype(np.float64)


class TransformersBackend:
    """A Hugging Face causal LM (e.g. hkust-nlp/deita-complexity-scorer), loaded offline from a path or
    the local cache. `llm.extra.gguf_file` loads a GGUF through transformers (needs `gguf`, `accelerate`)."""

    def __init__(self, cfg: LLMConfig):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if not cfg.model:
            raise ModelNotFoundError(
                "score llm: provider transformers needs `model` (a local path or cached id)"
            )
        extra = dict(cfg.extra)
        kw: dict[str, Any] = {}
        if extra.get("gguf_file"):
            kw["gguf_file"] = extra.pop("gguf_file")
        self.device = extra.pop("device", "cpu")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(cfg.model, **kw)
            self.model = AutoModelForCausalLM.from_pretrained(cfg.model, **kw).to(self.device).eval()
        except OSError as exc:
            raise ModelNotFoundError(
                f"score llm: could not load transformers model '{cfg.model}' offline ({exc}); give a local "
                "folder or pre-download it where a hub is reachable"
            ) from exc
        self._torch = torch
        self.name = llm_name(cfg) + (f" [{kw['gguf_file']}]" if "gguf_file" in kw else "")
        self.n_ctx = cfg.n_ctx
        self.prompt_tokens = 0
        self.tokens = resolve_score_tokens(self.encode, self.name)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def truncate(self, text: str, max_tokens: int) -> tuple[str, bool]:
        return truncate(text, max_tokens, self.encode, self.decode)

    def score_logits(self, prompt: str) -> np.ndarray:
        # As Deita: tokenizer.encode(prompt) with the tokenizer's own special tokens, first-step logits.
        ids = self.tokenizer(prompt, return_tensors="pt").input_ids.to(self.device)
        with self._torch.inference_mode():
            logits = self.model(input_ids=ids, logits_to_keep=1).logits[0, -1]
        self.prompt_tokens += int(ids.shape[1])
        return logits[list(self.tokens.ids)].float().cpu().numpy().astype(np.float64)


class OpenAIBackend:
    """An OpenAI-compatible server that returns top log-probabilities (vLLM, llama.cpp server, TGI, OpenAI).

    The API gives token strings, not ids: a token counts for score d when its text stripped is exactly d
    (so "4" and " 4" both count, summed). Digits missing from the top-k get probability 0, which is what
    the renormalised softmax over the six logits gives when they are far below the top-k. An answer with
    no digit in its top-k has no logit score (None): counted in the stats, scored 3.0 as Deita does.
    """

    def __init__(self, cfg: LLMConfig, top_logprobs: int = 20):
        from openai import OpenAI

        if not cfg.model:
            raise ModelNotFoundError("score llm: provider openai needs `model`")
        key = os.environ.get(cfg.api_key_env or "OPENAI_API_KEY")
        if key is None and cfg.base_url is None:
            raise ModelNotFoundError(
                f"score llm: provider openai needs ${cfg.api_key_env or 'OPENAI_API_KEY'} or a `base_url`"
            )
        extra = dict(cfg.extra)
        self.endpoint = extra.pop("endpoint", "completions")
        if self.endpoint not in ("completions", "chat"):
            raise ValueError(f"score llm.extra.endpoint: 'completions' or 'chat', got {self.endpoint!r}")
        from openai import DefaultHttpxClient

        from curate.llms import note_request, note_response

        # The openai client's retry (backoff on 408/409/429/5xx, dropped connections, timeouts) with the
        # config's limits; the event hooks count every attempt of the current request.
        self.client = OpenAI(
            api_key=key or "not-needed",
            base_url=cfg.base_url,
            max_retries=cfg.max_retries,
            timeout=cfg.timeout,
            http_client=DefaultHttpxClient(
                event_hooks={"request": [note_request], "response": [note_response]}
            ),
        )
        self.max_retries = cfg.max_retries
        self.requests = 0
        self.retries = 0
        self.model = cfg.model
        self.top = top_logprobs
        self.name = llm_name(cfg)
        self.n_ctx = cfg.n_ctx
        self.prompt_tokens = 0
        self.tokens = None

    def truncate(self, text: str, max_tokens: int) -> tuple[str, bool]:
        # No tokenizer over HTTP: about 4 characters per token.
        return (text, False) if len(text) <= 4 * max_tokens else (text[: 4 * max_tokens], True)

    def top_logprobs(self, prompt: str) -> dict[str, float]:
        """The top log-probabilities of the first answer token; `EndpointError` once retries run out."""
        from curate.llms import EndpointError, RequestLog, failure_status, is_request_error, logging_requests

        log = RequestLog()
        try:
            with logging_requests(log):
                return self._top_logprobs(prompt)
        except Exception as exc:
            if isinstance(exc, EndpointError) or not is_request_error(exc):
                raise
            raise EndpointError(
                log.url or str(self.client.base_url), failure_status(exc), log.retries, self.max_retries
            ) from exc
        finally:
            self.requests += 1
            self.retries += log.retries

    def _top_logprobs(self, prompt: str) -> dict[str, float]:
        if self.endpoint == "completions":
            r = self.client.completions.create(
                model=self.model, prompt=prompt, max_tokens=1, temperature=0.0, logprobs=self.top
            )
            self.prompt_tokens += getattr(r.usage, "prompt_tokens", 0) or 0
            lp = r.choices[0].logprobs
            return dict(lp.top_logprobs[0]) if lp and lp.top_logprobs else {}
        r = self.client.chat.completions.create(
            model=self.model,
            messages=[{"role": "user", "content": prompt}],
            max_tokens=1,
            temperature=0.0,
            logprobs=True,
            top_logprobs=self.top,
        )
        self.prompt_tokens += getattr(r.usage, "prompt_tokens", 0) or 0
        content = r.choices[0].logprobs.content if r.choices[0].logprobs else None
        return {t.token: t.logprob for t in content[0].top_logprobs} if content else {}

    def score_logits(self, prompt: str) -> np.ndarray | None:
        top = self.top_logprobs(prompt)
        out = np.full(6, -np.inf)
        for token, logprob in top.items():
            digit = token.strip()
            if digit in SCORE_DIGITS:
                i = SCORE_DIGITS.index(digit)
                out[i] = np.logaddexp(out[i], logprob)
        return None if np.isneginf(out).all() else out


def request_stats(*backends: Any) -> dict[str, int]:
    """`llm_requests` / `llm_retries` of the HTTP backends among `backends` (each counted once)."""
    hosted = {id(b): b for b in backends if b is not None and hasattr(b, "retries")}.values()
    if not hosted:
        return {}
    return {"llm_requests": sum(b.requests for b in hosted), "llm_retries": sum(b.retries for b in hosted)}


def logits_supported(cfg: LLMConfig) -> bool:
    return cfg.provider in ("llamacpp", "transformers", "openai")


def build_backend(cfg: LLMConfig) -> LlamaCppBackend | TransformersBackend | OpenAIBackend:
    if cfg.provider == "llamacpp":
        return LlamaCppBackend(cfg)
    if cfg.provider == "transformers":
        return TransformersBackend(cfg)
    if cfg.provider == "openai":
        return OpenAIBackend(cfg)
    raise ValueError(
        f"score: provider '{cfg.provider}' exposes no next-token logits here; use score.method: text, or "
        "serve the model behind an OpenAI-compatible endpoint with logprobs (provider: openai, base_url)"
    )
