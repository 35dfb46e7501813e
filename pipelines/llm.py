"""LLM helpers for the pipelines: per-task distilabel LLMs, generation kwargs, and Magpie on llama.cpp.

distilabel's `LlamaCppLLM` only supports Magpie with a Hugging Face tokenizer (`tokenizer_id`), which
needs the hub, and it ships pre-query templates for Llama 3 and Qwen 2 only. `GGUFChatLlamaCppLLM`
renders prompts with the chat template stored in the GGUF file itself (llama.cpp's own Jinja2
formatter), so Magpie runs offline on any GGUF; `CHATML_PRE_QUERY_TEMPLATE` is the pre-query template
of ChatML models such as the embedded SmolLM2.
"""

from __future__ import annotations

import inspect
import json
from typing import TYPE_CHECKING, Any

from distilabel.models.llms import LlamaCppLLM
from distilabel.models.llms.base import LLM
from distilabel.models.llms.utils import prepare_output
from distilabel.models.mixins.magpie import MAGPIE_PRE_QUERY_TEMPLATES
from distilabel.typing import FormattedInput, GenerateOutput
from pydantic import Field, PrivateAttr, model_validator, validate_call

from curate.config import LLMConfig
from curate.models import build_llm, generation_kwargs, llm_model_path

if TYPE_CHECKING:
    from distilabel.typing import StandardInput

# ChatML (SmolLM2, Qwen, Hermes...): the user turn opens with this header. distilabel has no "chatml".
CHATML_PRE_QUERY_TEMPLATE = "<|im_start|>user\n"
PRE_QUERY_TEMPLATES: dict[str, str] = {**MAGPIE_PRE_QUERY_TEMPLATES, "chatml": CHATML_PRE_QUERY_TEMPLATE}
# A character no chat template produces: where it lands in a rendered conversation is where the
# user's text starts, so everything before it is the model's exact pre-query prefix.
_MARKER = "\ue000"


def resolve_pre_query_template(name_or_template: str | None, llm_cfg: LLMConfig) -> str:
    """The Magpie pre-query template: an alias (chatml, llama3, qwen2), a literal one, or the default.

    The default is ChatML for llama.cpp models whose GGUF chat template is ChatML (the embedded
    SmolLM2); other providers must name theirs.
    """
    if name_or_template:
        return PRE_QUERY_TEMPLATES.get(name_or_template, name_or_template)
    if llm_cfg.provider == "llamacpp":
        return CHATML_PRE_QUERY_TEMPLATE
    raise ValueError(
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
    `generate` does not take go to `extra_generation_kwargs` when it has one (llama.cpp: top_k,
    repeat_penalty...), else they are an error naming the key. `assistant_prefix` (llama.cpp only;
    hosted chat APIs ignore it) starts every answer with the given text.
    """
    if cfg.provider == "llamacpp" and (magpie_template is not None or assistant_prefix):
        llm: LLM = GGUFChatLlamaCppLLM(
            model_path=str(llm_model_path(cfg)),
            n_ctx=cfg.n_ctx,
            n_gpu_layers=cfg.extra.get("n_gpu_layers", 0),
            verbose=cfg.extra.get("verbose", False),
            extra_kwargs={k: v for k, v in cfg.extra.items() if k not in {"n_gpu_layers", "verbose"}},
            use_magpie_template=magpie_template is not None,
            magpie_pre_query_template=magpie_template,
            assistant_prefix=assistant_prefix,
        )
    else:
        llm = build_llm(cfg)
        if magpie_template is not None:
            llm.use_magpie_template = True  # type: ignore[attr-defined]
            llm.magpie_pre_query_template = magpie_template  # type: ignore[attr-defined]
    llm.generation_kwargs = bind_generation_kwargs(llm, generation_kwargs(cfg, **(params or {})))
    return llm


def bind_generation_kwargs(llm: LLM, kwargs: dict[str, Any]) -> dict[str, Any]:
    accepted = set(inspect.signature(llm.generate).parameters) - {"self", "inputs", "num_generations"}
    bound = {k: v for k, v in kwargs.items() if k in accepted}
    extra = {k: v for k, v in kwargs.items() if k not in accepted}
    if extra and "extra_generation_kwargs" in accepted:
        bound["extra_generation_kwargs"] = {**bound.get("extra_generation_kwargs", {}), **extra}
    elif extra:
        raise ValueError(
            f"generation parameter(s) {', '.join(sorted(extra))} not supported by {type(llm).__name__} "
            f"(it takes: {', '.join(sorted(accepted))})"
        )
    return bound


def params_json(params: dict[str, Any]) -> str:
    """Generation parameters as the canonical JSON string stored in `generation_params`."""
    return json.dumps(params, sort_keys=True, ensure_ascii=False, default=str)
