"""LLM helpers for the pipelines: per-task distilabel LLMs, generation kwargs, which providers can run
Magpie, running a pipeline on a hosted endpoint (`run_llm_pipeline`), and Magpie on llama.cpp.

distilabel's `LlamaCppLLM` only supports Magpie with a Hugging Face tokenizer (`tokenizer_id`), which
needs the hub, and it ships pre-query templates for Llama 3 and Qwen 2 only. `GGUFChatLlamaCppLLM`
renders prompts with the chat template stored in the GGUF file itself (llama.cpp's own Jinja2
formatter), so Magpie runs offline on any GGUF; `CHATML_PRE_QUERY_TEMPLATE` is the pre-query template
of ChatML models such as the embedded SmolLM2.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distilabel.models.llms import LlamaCppLLM
from distilabel.models.llms.base import LLM
from distilabel.models.llms.utils import prepare_output
from distilabel.models.mixins.magpie import MAGPIE_PRE_QUERY_TEMPLATES
from distilabel.pipeline import Pipeline
from distilabel.typing import FormattedInput, GenerateOutput
from pydantic import Field, PrivateAttr, model_validator, validate_call

from curate.config import Config, ConfigError, LLMConfig
from curate.models import LLMEndpointError, build_llm, generation_kwargs, llm_model_path
from pipelines.runner import cache_dir, run_pipeline

if TYPE_CHECKING:
    from distilabel.typing import StandardInput

# ChatML (SmolLM2, Qwen, Hermes...): the user turn opens with this header. distilabel has no "chatml".
CHATML_PRE_QUERY_TEMPLATE = "<|im_start|>user\n"
PRE_QUERY_TEMPLATES: dict[str, str] = {**MAGPIE_PRE_QUERY_TEMPLATES, "chatml": CHATML_PRE_QUERY_TEMPLATE}
# A character no chat template produces: where it lands in a rendered conversation is where the
# user's text starts, so everything before it is the model's exact pre-query prefix.
_MARKER = "\ue000"


# Where Magpie can run: it needs a raw completion of the model's own chat template up to the user header.
MAGPIE_PROVIDERS = ("llamacpp", "transformers", "vllm", "inference-endpoints")


def check_magpie_provider(llm_cfg: LLMConfig) -> None:
    """Fail before any request when the provider cannot run Magpie, saying why and what works."""
    if llm_cfg.provider == "openai":
        raise ConfigError(
            "generate.instructions.method magpie: provider openai sends chat messages, but Magpie needs a raw "
            "completion of the model's own pre-query template (its chat template up to the user header), "
            "which a chat API cannot be given. Magpie runs on provider llamacpp (any chat GGUF), transformers, "
            "vllm, or inference-endpoints with llm.extra.tokenizer_id; with an OpenAI-compatible server use "
            "--method prompt, self-instruct or evol-instruct."
        )
    if llm_cfg.provider == "inference-endpoints" and not llm_cfg.extra.get("tokenizer_id"):
        raise ConfigError(
            "generate.instructions.method magpie: provider inference-endpoints needs llm.extra.tokenizer_id "
            "(the model's Hugging Face tokenizer, whose chat template builds the raw pre-query prompt); or use "
            "--method prompt, self-instruct or evol-instruct."
        )


def resolve_pre_query_template(name_or_template: str | None, llm_cfg: LLMConfig) -> str:
    """The Magpie pre-query template: an alias (chatml, llama3, qwen2), a literal one, or the default.

    The default is ChatML for llama.cpp models whose GGUF chat template is ChatML (the embedded
    SmolLM2); other providers must name theirs. A provider that cannot run Magpie fails here.
    """
    check_magpie_provider(llm_cfg)
    if name_or_template:
        return PRE_QUERY_TEMPLATES.get(name_or_template, name_or_template)
    if llm_cfg.provider == "llamacpp":
        return CHATML_PRE_QUERY_TEMPLATE
    raise ConfigError(
        "generate.instructions.magpie_pre_query_template: required for provider "
        f"'{llm_cfg.provider}' (chatml | llama3 | qwen2 | the literal user-turn header of the model)"
    )


class GGUFChatLlamaCppLLM(LlamaCppLLM):
    """`LlamaCppLLM` that formats raw-completion prompts with the GGUF's own chat template.

    Used for Magpie: a turn that the model must write as the *user* is prompted with the rendered
    conversation up to the user header (system prompt included, or the template's default one), and
    completed as raw text. Assistant turns use the same template with the generation prompt.
    """

    assistant_prefix: str | None = Field(
        default=None,
        description="Text the assistant's answer is forced to start with (kept in the output): a small "
        "model follows an output format far better when its first words are given.",
    )
    _formatter_template: str | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def validate_magpie_usage(self) -> GGUFChatLlamaCppLLM:  # replaces the parent's tokenizer_id check
        return self

    def load(self) -> None:
        from llama_cpp import Llama

        self._model = Llama(
            model_path=self.model_path.as_posix(),
            seed=self.seed,
            n_ctx=self.n_ctx,
            n_batch=self.n_batch,
            chat_format=self.chat_format,
            n_gpu_layers=self.n_gpu_layers,
            verbose=self.verbose,
            **self.extra_kwargs,
        )
        self._formatter_template = self._model.metadata.get("tokenizer.chat_template")
        if self._formatter_template is None and (self.use_magpie_template or self.assistant_prefix):
            raise ValueError(
                f"{self.model_path}: the GGUF has no chat template (tokenizer.chat_template), "
                "which Magpie and answer prefixes need to build raw prompts; use a chat (instruct) GGUF"
            )
        LLM.load(self)  # skip LlamaCppLLM.load: it insists on a Hugging Face tokenizer for Magpie

    def _render(self, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        model = self._model
        formatter = Jinja2ChatFormatter(
            template=self._formatter_template or "",
            eos_token=model.detokenize([model.token_eos()]).decode("utf-8", "ignore"),
            bos_token=model.detokenize([model.token_bos()]).decode("utf-8", "ignore"),
            add_generation_prompt=add_generation_prompt,
        )
        return formatter(messages=messages).prompt

    def prepare_input(self, input: StandardInput) -> str:
        """The raw prompt: up to the user header for a Magpie user turn, else up to the assistant's."""
        if self.use_magpie_template and not (input and input[-1]["role"] == "user"):
            rendered = self._render(
                [*input, {"role": "user", "content": _MARKER}], add_generation_prompt=False
            )
            prefix = rendered.split(_MARKER, 1)[0]
            # The template's own user header is authoritative; the configured pre-query template
            # must agree with it, or the model would be prompted with a header it never saw.
            if self.magpie_pre_query_template and not prefix.endswith(self.magpie_pre_query_template):
                raise ValueError(
                    f"magpie pre-query template {self.magpie_pre_query_template!r} does not match the "
                    f"GGUF chat template (which renders the user turn as ...{prefix[-40:]!r})"
                )
            return prefix
        return self._render(list(input), add_generation_prompt=True)

    @validate_call
    def generate(  # type: ignore[override]
        self,
        inputs: list[FormattedInput],
        num_generations: int = 1,
        max_new_tokens: int = 128,
        frequency_penalty: float = 0.0,
        presence_penalty: float = 0.0,
        temperature: float = 1.0,
        top_p: float = 1.0,
        extra_generation_kwargs: dict[str, Any] | None = None,
    ) -> list[GenerateOutput]:
        if not (self.use_magpie_template or self.assistant_prefix):
            return super().generate(
                inputs=inputs,
                num_generations=num_generations,
                max_new_tokens=max_new_tokens,
                frequency_penalty=frequency_penalty,
                presence_penalty=presence_penalty,
                temperature=temperature,
                top_p=top_p,
                extra_generation_kwargs=extra_generation_kwargs,
            )
        batch = []
        for input in inputs:
            prompt = self.prepare_input(input)  # type: ignore[arg-type]
            user_turn = self.use_magpie_template and not (input and input[-1]["role"] == "user")
            prefix = "" if user_turn else (self.assistant_prefix or "")
            texts, out_tokens, in_tokens = [], [], 0
            for _ in range(num_generations):
                completion = self._model.create_completion(
                    prompt=prompt + prefix,
                    max_tokens=max_new_tokens,
                    frequency_penalty=frequency_penalty,
                    presence_penalty=presence_penalty,
                    temperature=temperature,
                    top_p=top_p,
                    # A model that runs past its turn writes the next header as text: stop there.
                    stop=["<|im_start|>", "<|im_end|>", "<|eot_id|>", "<|start_header_id|>"],
                    **(extra_generation_kwargs or {}),
                )
                texts.append((prefix + completion["choices"][0]["text"]).strip())
                out_tokens.append(completion["usage"]["completion_tokens"])
                in_tokens = completion["usage"]["prompt_tokens"]
            batch.append(
                prepare_output(texts, input_tokens=[in_tokens] * num_generations, output_tokens=out_tokens)
            )
        return batch


def task_llm(
    cfg: LLMConfig,
    params: dict[str, Any] | None = None,
    magpie_template: str | None = None,
    assistant_prefix: str | None = None,
) -> LLM:
    """A distilabel LLM for one task, with its sampling settings bound as `generation_kwargs`.

    `params` override the config's sampling settings (e.g. {"temperature": 1.0}); keys the LLM's
    generate (`agenerate` for the async, hosted ones) does not take go to its catch-all when it has one
    (llama.cpp's `extra_generation_kwargs`, an OpenAI-compatible server's `extra_body`, vLLM's
    `extra_sampling_params`), else they are an error naming the key. `assistant_prefix` (llama.cpp only;
    hosted chat APIs ignore it) starts every answer with the given text. llama.cpp with `parallel` > 1
    decodes each generate call's sequences at once (`BatchedGGUFChatLlamaCppLLM`).
    """
    if cfg.provider == "llamacpp" and (magpie_template is not None or assistant_prefix or cfg.parallel > 1):
        gguf: dict[str, Any] = {
            "model_path": str(llm_model_path(cfg)),
            "n_ctx": cfg.n_ctx,
            "n_gpu_layers": cfg.extra.get("n_gpu_layers", 0),
            "verbose": cfg.extra.get("verbose", False),
            "extra_kwargs": {k: v for k, v in cfg.extra.items() if k not in {"n_gpu_layers", "verbose"}},
            "use_magpie_template": magpie_template is not None,
            "magpie_pre_query_template": magpie_template,
            "assistant_prefix": assistant_prefix,
        }
        if cfg.parallel > 1:  # all of a step's batch decoded at once (pipelines/batched_llm.py)
            from pipelines.batched_llm import BatchedGGUFChatLlamaCppLLM

            llm: LLM = BatchedGGUFChatLlamaCppLLM(**gguf, parallel=cfg.parallel)
        else:
            llm = GGUFChatLlamaCppLLM(**gguf)
    elif magpie_template is not None:
        check_magpie_provider(cfg)
        llm = build_llm(cfg, use_magpie_template=True, magpie_pre_query_template=magpie_template)
    else:
        llm = build_llm(cfg)
    llm.generation_kwargs = bind_generation_kwargs(llm, generation_kwargs(cfg, **(params or {})))
    return llm


# Where an LLM's generate takes the parameters it has no argument for, in order of preference.
_CATCH_ALL = ("extra_generation_kwargs", "extra_body", "extra_sampling_params")


def bind_generation_kwargs(llm: LLM, kwargs: dict[str, Any]) -> dict[str, Any]:
    """`kwargs` as the LLM's `generation_kwargs`: the parameters of its generate (distilabel's
    `generate_parameters`: `agenerate`'s for async LLMs), the rest in its catch-all argument."""
    accepted = {p.name for p in llm.generate_parameters} - {"self", "input", "inputs", "num_generations"}
    bound = {k: v for k, v in kwargs.items() if k in accepted}
    extra = {k: v for k, v in kwargs.items() if k not in accepted}
    catch_all = next((name for name in _CATCH_ALL if name in accepted), None)
    if extra and catch_all:
        bound[catch_all] = {**(bound.get(catch_all) or {}), **extra}
    elif extra:
        raise ValueError(
            f"generation parameter(s) {', '.join(sorted(extra))} not supported by {type(llm).__name__} "
            f"(it takes: {', '.join(sorted(accepted))})"
        )
    return bound


HOSTED_PROVIDERS = ("openai", "inference-endpoints")


def run_llm_pipeline(
    build: Callable[[], Pipeline], cfg: Config, progress_totals: dict[str, int], llms: list[LLMConfig]
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """`run_pipeline`, plus the requests the hosted LLMs among `llms` sent (`llm_requests`,
    `llm_retries`; empty without one, and rows served from the cache sent none).

    A hosted endpoint that fails for good ends the run with `LLMEndpointError` naming the endpoint and
    its last status (the step process notes it and its batch in files, then dies; see curate/llms.py),
    after putting that batch back into distilabel's cache, so that a re-run resumes with it. With a hosted
    LLM the pipeline runs in its own process, so that the run ends with that error instead of the step's
    death ending this process."""
    if not any(c.provider in HOSTED_PROVIDERS for c in llms):
        return run_pipeline(build, cfg, progress_totals), {}
    from curate.llms import (
        FAILURE_NOTE_ENV,
        REQUEST_LOG_ENV,
        in_flight_batch_path,
        read_request_log,
        requeue_in_flight_batch,
    )

    with tempfile.TemporaryDirectory(prefix="curate-llm-") as tmp:
        files = {FAILURE_NOTE_ENV: Path(tmp) / "failure.txt", REQUEST_LOG_ENV: Path(tmp) / "requests.jsonl"}
        previous = {name: os.environ.get(name) for name in files}
        os.environ.update({name: str(path) for name, path in files.items()})
        note = files[FAILURE_NOTE_ENV]
        try:
            rows = run_pipeline(build, cfg, progress_totals, isolate=True)
            return rows, read_request_log(files[REQUEST_LOG_ENV])
        except RuntimeError as exc:
            if note.exists() and note.read_text(encoding="utf-8").strip():
                requeue_in_flight_batch(build(), in_flight_batch_path(note))
                first = note.read_text(encoding="utf-8").strip().splitlines()[0].removeprefix("error: ")
                raise LLMEndpointError(
                    f"{first}. The batches finished before it are cached: re-run to resume ({cache_dir(cfg)})"
                ) from exc
            raise
        finally:
            for name, value in previous.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def params_json(params: dict[str, Any]) -> str:
    """Generation parameters as the canonical JSON string stored in `generation_params`."""
    return json.dumps(params, sort_keys=True, ensure_ascii=False, default=str)
