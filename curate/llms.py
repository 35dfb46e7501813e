"""distilabel LLMs that curate builds beyond distilabel's own: hosted endpoints with request accounting,
bounded concurrency and a clear failure, and transformers on a GGUF file (with a Magpie prompt that works).

Hosted endpoints (`HostedOpenAILLM` for OpenAI-compatible servers, `HostedInferenceEndpointsLLM`):
- Retries: the openai client's own (distilabel's `max_retries` and `timeout`): exponential backoff with
  jitter, or the server's Retry-After, on 408 / 409 / 429 / 5xx, dropped connections and timeouts. The
  Inference Endpoints client has none, so the same policy is applied around it here.
- Accounting: every HTTP attempt of a request is counted (each request runs in its own asyncio task,
  which carries its own `RequestLog`); each output's distilabel statistics get `requests` and
  `retries`, and each batch's totals go to the pipeline's request log (`REQUEST_LOG_ENV`), which the
  stage reads into its stats (rows served from distilabel's cache sent no request).
- Concurrency: at most `concurrency` requests of a batch in flight at once.
- A request that fails for good raises `EndpointError` (endpoint, last status, retries). Inside a
  distilabel step process it ends that process instead, after printing the error: distilabel would
  fill the batch with None and cache it, losing its rows for good, whereas a dead step ends the run and
  the batches done so far are resumed from the cache.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distilabel.constants import PIPELINE_CACHE_ID_ENV_NAME
from distilabel.mixins.runtime_parameters import RuntimeParameter
from distilabel.models.llms import InferenceEndpointsLLM, OpenAILLM, TransformersLLM
from distilabel.models.llms.base import LLM, merge_responses
from pydantic import Field

from curate.models import LLMEndpointError

# Exit code of a step process whose endpoint failed for good (EX_TEMPFAIL: try again later).
EXIT_ENDPOINT_FAILED = 75
# Files the step processes append to, for the process that runs the pipeline: the error of a request
# that failed for good, and one JSON line of request counts per batch.
FAILURE_NOTE_ENV = "CURATE_LLM_FAILURE_NOTE"
REQUEST_LOG_ENV = "CURATE_LLM_REQUEST_LOG"
RETRY_STATUSES = frozenset({408, 409, 429})
INITIAL_RETRY_DELAY, MAX_RETRY_DELAY = 0.5, 8.0  # the openai client's backoff, reused for the HF client


@dataclass
class RequestLog:
    """The HTTP attempts of one logical request."""

    attempts: int = 0
    url: str | None = None
    last_status: str | None = None
    failure: str | None = None  # set when a retry loop of ours gave up (the HF client swallows errors)

    @property
    def retries(self) -> int:
        return max(0, self.attempts - 1)


_LOG: ContextVar[RequestLog | None] = ContextVar("curate_request_log", default=None)


@contextmanager
def logging_requests(log: RequestLog) -> Iterator[RequestLog]:
    """Count the HTTP attempts made in this block (same thread or task) into `log`."""
    token = _LOG.set(log)
    try:
        yield log
    finally:
        _LOG.reset(token)


def note_request(request: Any) -> None:
    """httpx event hook: one more attempt of the current request."""
    log = _LOG.get()
    if log is not None:
        log.attempts += 1
        log.url = str(request.url)


def note_response(response: Any) -> None:
    """httpx event hook: the status the current request's last attempt got."""
    log = _LOG.get()
    if log is not None:
        log.last_status = f"HTTP {response.status_code}"


async def _anote_request(request: Any) -> None:
    note_request(request)


async def _anote_response(response: Any) -> None:
    note_response(response)


class EndpointError(LLMEndpointError):
    """A request to a hosted LLM failed for good (after its retries); the message names the endpoint."""

    def __init__(self, url: str | None, last_status: str | None, retries: int, max_retries: int):
        self.url, self.last_status, self.retries = url, last_status, retries
        super().__init__(
            f"LLM endpoint {url or '?'}: a request failed for good after {retries} "
            f"retr{'y' if retries == 1 else 'ies'} (llm.max_retries: {max_retries}); "
            f"last status: {last_status or 'unknown'}"
        )


def failure_status(exc: BaseException) -> str:
    """What an attempt ended with, in words: 'HTTP 503', 'timed out', 'connection failed (...)'."""
    import httpx
    import openai

    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code}"
    if isinstance(exc, openai.APITimeoutError | httpx.TimeoutException | asyncio.TimeoutError):
        return "timed out"
    if isinstance(exc, openai.APIConnectionError | httpx.TransportError):
        cause = exc.__cause__ or exc
        return f"connection failed ({type(cause).__name__})"
    response = getattr(exc, "response", None)
    if getattr(response, "status_code", None) is not None:
        return f"HTTP {response.status_code}"
    return f"{type(exc).__name__}: {exc}"


def _retryable(exc: BaseException) -> bool:
    import httpx

    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status is not None:
        return status in RETRY_STATUSES or status >= 500
    return isinstance(exc, httpx.TransportError | asyncio.TimeoutError | TimeoutError)


def is_request_error(exc: BaseException) -> bool:
    import httpx
    import openai

    return isinstance(exc, openai.APIError | httpx.HTTPError)


def _with_accounting(output: dict[str, Any], log: RequestLog) -> dict[str, Any]:
    """Add `requests` / `retries` to an output's statistics (on its first generation only, so that a
    request that returned several generations is counted once)."""
    n = max(1, len(output.get("generations") or []))
    stats = output.setdefault("statistics", {})
    stats["requests"] = [1] + [0] * (n - 1)
    stats["retries"] = [log.retries] + [0] * (n - 1)
    return output


async def _accounted(
    llm: Any, inputs: list[Any], num_generations: int, call: Callable[[Any], Awaitable[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """Run `call(input)` for every input (per generation when the API takes no `n`), at most
    `llm.concurrency` at once, each with its own RequestLog."""
    semaphore = asyncio.Semaphore(llm.concurrency)

    async def one(input: Any) -> dict[str, Any]:
        async with semaphore:
            log = RequestLog()
            _LOG.set(log)  # this coroutine runs as its own task: the log is this request's only
            try:
                output = await call(input)
            except Exception as exc:
                if is_request_error(exc):
                    url = log.url or llm.base_url
                    raise EndpointError(url, failure_status(exc), log.retries, llm.max_retries) from exc
                raise
            if log.failure is not None:
                raise EndpointError(log.url or llm.base_url, log.failure, log.retries, llm.max_retries)
            return _with_accounting(output, log)

    if llm._num_generations_param_supported:
        return list(await asyncio.gather(*(one(i) for i in inputs)))
    outputs = await asyncio.gather(*(one(i) for i in inputs for _ in range(num_generations)))
    return merge_responses(list(outputs), n=num_generations)


def record_requests(outputs: list[dict[str, Any]]) -> None:
    """Append a batch's request counts to the pipeline's request log (when one is set)."""
    path = os.environ.get(REQUEST_LOG_ENV)
    if not path:
        return
    counts = {"requests": 0, "retries": 0}
    for output in outputs:
        for key in counts:
            counts[key] += _total((output.get("statistics") or {}).get(key))
    with Path(path).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(counts) + "\n")


def read_request_log(path: Path) -> dict[str, int]:
    """`llm_requests` / `llm_retries` summed over a request log (empty if no request was sent)."""
    requests = retries = 0
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            counts = json.loads(line)
            requests += counts["requests"]
            retries += counts["retries"]
    return {"llm_requests": requests, "llm_retries": retries} if requests else {}


def in_flight_batch_path(note: Path) -> Path:
    """Where a failing step process saves the batch it was processing (beside the failure note)."""
    return note.with_name("in_flight_batch.json")


def _batch_in_flight() -> Any:
    """The distilabel batch that this step process is processing (from its step wrapper's frame)."""
    from distilabel.pipeline.step_wrapper import _StepWrapper

    frame = sys._getframe()
    while frame is not None:
        if isinstance(frame.f_locals.get("self"), _StepWrapper) and "batch" in frame.f_locals:
            return frame.f_locals["batch"]
        frame = frame.f_back
    return None


def end_step_on_failure(exc: EndpointError) -> None:
    """In a distilabel step process: print the error, note it and the batch being processed for the
    pipeline's runner (which puts the batch back into distilabel's cache, as distilabel's own graceful
    stop does), and end the process. Elsewhere: return."""
    if not os.environ.get(PIPELINE_CACHE_ID_ENV_NAME):
        return
    message = f"error: {exc}"
    print(message, file=sys.stderr, flush=True)
    note = os.environ.get(FAILURE_NOTE_ENV)
    if note:
        batch = _batch_in_flight()
        if batch is not None and not in_flight_batch_path(Path(note)).exists():
            batch.save(in_flight_batch_path(Path(note)), format="json")
        with Path(note).open("a", encoding="utf-8") as fh:
            fh.write(message + "\n")
    os._exit(EXIT_ENDPOINT_FAILED)


def requeue_in_flight_batch(pipeline: Any, batch_file: Path) -> bool:
    """Put the batch a failed step was processing back into the pipeline's cached batch manager, so that
    resuming sends it again: distilabel resumes the batches a graceful stop put back, but not one that
    was in flight in a step process that died. False if there is nothing to put back."""
    from distilabel.pipeline.batch import _Batch
    from distilabel.pipeline.batch_manager import _BatchManager

    location = pipeline._cache_location
    if not batch_file.exists() or not location["batch_manager"].exists():
        return False
    manager = _BatchManager.load_from_cache(
        dag=pipeline.dag, batch_manager_path=location["batch_manager"], steps_data_path=location["steps_data"]
    )
    batch = _Batch.from_file(batch_file)
    manager.add_batch(to_step=batch.step_name, batch=batch, prepend=True)
    manager.cache(path=location["batch_manager"], steps_data_path=location["steps_data"])
    _rewrite_leaf_outputs(pipeline, manager)
    return True


def _rewrite_leaf_outputs(pipeline: Any, manager: Any) -> None:
    """Write the leaf steps' outputs again from the batches the batch manager received (distilabel
    keeps each in its steps data): its write buffer holds up to 50 rows in memory, which a pipeline
    process that ends abruptly never writes, yet the cache counts their batches as done."""
    import shutil

    from distilabel import constants
    from distilabel.pipeline.batch import _Batch
    from distilabel.pipeline.write_buffer import _WriteBuffer

    location = pipeline._cache_location
    outputs = location["data"] / constants.STEPS_OUTPUTS_PATH
    for leaf in pipeline.dag.leaf_steps:
        step = pipeline.dag.get_step(leaf)[constants.STEP_ATTR_NAME]
        folder = location["steps_data"] / f"{leaf}_{step.signature}"
        files = [folder / f"batch_{n}.json" for n in sorted(manager._received_batch_seq_nos.get(leaf, []))]
        if not files or not all(f.exists() for f in files):
            continue  # nothing received, or not recoverable: leave distilabel's files as they are
        shutil.rmtree(outputs / leaf, ignore_errors=True)
        buffer = _WriteBuffer(outputs, {leaf}, steps_cached={leaf: True})
        for f in files:
            buffer.add_batch(_Batch.from_file(f))
        buffer.close()


# Settings that change how requests are sent, never what they return: left out of distilabel's dump, so
# that they are not in its cache signature (a run that failed resumes after raising `max_retries`).
def _concurrency() -> Any:
    return Field(default=8, ge=1, exclude=True, description="Requests of a batch in flight at once.")


def _max_retries() -> Any:
    return Field(default=6, ge=0, exclude=True, description="Retries of a failed request.")


def _timeout() -> Any:
    return Field(default=120, ge=1, exclude=True, description="Seconds one attempt may take.")


class HostedOpenAILLM(OpenAILLM):
    """distilabel's OpenAILLM with request accounting, bounded concurrency and a clear failure."""

    concurrency: int = _concurrency()
    max_retries: RuntimeParameter[int] = _max_retries()
    timeout: RuntimeParameter[int] = _timeout()

    def load(self) -> None:
        super().load()
        from openai import AsyncOpenAI, DefaultAsyncHttpxClient

        self._aclient = AsyncOpenAI(
            base_url=self.base_url,
            api_key=self.api_key.get_secret_value(),  # type: ignore[union-attr]
            max_retries=self.max_retries,  # type: ignore[arg-type]
            timeout=self.timeout,
            default_headers=self.default_headers,
            http_client=DefaultAsyncHttpxClient(
                event_hooks={"request": [_anote_request], "response": [_anote_response]}
            ),
        )

    async def _agenerate(  # type: ignore[override]
        self, inputs: list[Any], num_generations: int = 1, **kwargs: Any
    ) -> list[dict[str, Any]]:
        return await _accounted(
            self,
            inputs,
            num_generations,
            lambda i: self.agenerate(input=i, num_generations=num_generations, **kwargs),
        )

    def generate(self, inputs: list[Any], num_generations: int = 1, **kwargs: Any) -> list[dict[str, Any]]:  # type: ignore[override]
        try:
            outputs = super().generate(inputs=inputs, num_generations=num_generations, **kwargs)
        except EndpointError as exc:
            end_step_on_failure(exc)
            raise
        record_requests(outputs)
        return outputs


class _RetryingInferenceClient:
    """The HF AsyncInferenceClient with the openai client's retry policy and per-attempt accounting."""

    def __init__(self, client: Any, url: str, max_retries: int):
        self._client, self._url, self._max_retries = client, url, max_retries

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    async def chat_completion(self, *args: Any, **kwargs: Any) -> Any:
        return await self._retry(self._client.chat_completion, args, kwargs)

    async def text_generation(self, *args: Any, **kwargs: Any) -> Any:
        return await self._retry(self._client.text_generation, args, kwargs)

    async def _retry(self, fn: Callable[..., Awaitable[Any]], args: tuple, kwargs: dict[str, Any]) -> Any:
        log = _LOG.get() or RequestLog()
        for attempt in range(self._max_retries + 1):
            log.attempts += 1
            log.url = self._url
            try:
                result = await fn(*args, **kwargs)
                log.last_status = "HTTP 200"
                return result
            except Exception as exc:
                log.last_status = failure_status(exc)
                if attempt == self._max_retries or not _retryable(exc):
                    log.failure = log.last_status  # distilabel's caller swallows the error: keep it here
                    raise
                delay = min(INITIAL_RETRY_DELAY * 2.0**attempt, MAX_RETRY_DELAY) * (
                    1 - 0.25 * random.random()
                )
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")


class HostedInferenceEndpointsLLM(InferenceEndpointsLLM):
    """distilabel's InferenceEndpointsLLM with retries, a per-attempt timeout, request accounting,
    bounded concurrency and a clear failure (distilabel's returns an empty generation on any error)."""

    concurrency: int = _concurrency()
    max_retries: int = _max_retries()
    timeout: int = _timeout()

    def load(self) -> None:
        super().load()
        from huggingface_hub import AsyncInferenceClient

        client = AsyncInferenceClient(
            base_url=self.base_url,
            token=self.api_key.get_secret_value() if self.api_key else None,
            timeout=self.timeout,
        )
        self._aclient = _RetryingInferenceClient(client, str(self.base_url), self.max_retries)  # type: ignore[assignment]

    async def _agenerate(  # type: ignore[override]
        self, inputs: list[Any], num_generations: int = 1, **kwargs: Any
    ) -> list[dict[str, Any]]:
        return await _accounted(self, inputs, num_generations, lambda i: self.agenerate(input=i, **kwargs))

    def generate(self, inputs: list[Any], num_generations: int = 1, **kwargs: Any) -> list[dict[str, Any]]:  # type: ignore[override]
        try:
            outputs = super().generate(inputs=inputs, num_generations=num_generations, **kwargs)
        except EndpointError as exc:
            end_step_on_failure(exc)
            raise
        record_requests(outputs)
        return outputs


class ChatTransformersLLM(TransformersLLM):
    """TransformersLLM that can load a GGUF file (`gguf_file` in the `model` folder; transformers
    dequantises it, needs `gguf`), which distilabel's cannot (it loads the tokenizer without the file),
    and whose Magpie prompt is the chat template up to the user header: distilabel's adds the
    assistant's generation prompt before the pre-query template, so the model is asked to answer a
    user turn it has not seen."""

    gguf_file: str | None = None

    def load(self) -> None:
        if self.gguf_file is None:
            super().load()
            return
        from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

        tokenizer = AutoTokenizer.from_pretrained(self.model, gguf_file=self.gguf_file)
        model = AutoModelForCausalLM.from_pretrained(self.model, gguf_file=self.gguf_file)
        self._pipeline = pipeline(
            "text-generation", model=model, tokenizer=tokenizer, device=self.device, return_full_text=False
        )
        if self.chat_template is not None:
            tokenizer.chat_template = self.chat_template
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        LLM.load(self)  # skip TransformersLLM.load, which builds its own pipeline by name

    def prepare_input(self, input: Any) -> str:
        if self.use_magpie_template and not (input and input[-1]["role"] == "user"):
            tokenizer = self._pipeline.tokenizer  # type: ignore[union-attr]
            rendered = (
                tokenizer.apply_chat_template(input, tokenize=False, add_generation_prompt=False)
                if input
                else ""
            )
            return rendered + (self.magpie_pre_query_template or "")
        return super().prepare_input(input)

    @property
    def model_name(self) -> str:
        return f"{Path(self.model).name}/{self.gguf_file}" if self.gguf_file else self.model


def _total(value: Any) -> int:
    if isinstance(value, list):
        return int(sum(v or 0 for v in value))
    return int(value or 0)
