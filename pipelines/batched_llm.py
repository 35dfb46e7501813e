"""Parallel decoding on llama.cpp: one `generate` call decodes all its inputs x num_generations as
parallel sequences of one llama.cpp context (several sequence ids per `llama_decode`).

`BatchedGGUFChatLlamaCppLLM` keeps every behaviour of `GGUFChatLlamaCppLLM` (the GGUF chat
template, Magpie pre-query prompts, `assistant_prefix`, the stop strings, the token counts) and of
distilabel's plain `LlamaCppLLM` chat path (the GGUF template with the generation prompt, stopping at
the end-of-turn token). Each sequence has its own sampler chain (llama-cpp-python's: penalties, then
greedy at temperature 0, else top-k, typical, top-p, min-p, temperature, a seeded draw) and its own
region of the KV cache (`n_ctx` tokens each). `parallel: 1` is the single stream of the parent.
"""

from __future__ import annotations

import contextlib
import random
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from distilabel.models.llms.utils import prepare_output
from distilabel.typing import FormattedInput, GenerateOutput
from pydantic import Field, PrivateAttr, validate_call

from pipelines.llm import GGUFChatLlamaCppLLM

if TYPE_CHECKING:
    from llama_cpp import Llama

# What a model that runs past its turn writes next (the same list as GGUFChatLlamaCppLLM's).
TURN_STOPS = ["<|im_start|>", "<|im_end|>", "<|eot_id|>", "<|start_header_id|>"]
# Sampling settings create_completion takes beyond distilabel's named ones, with its defaults.
SAMPLING_DEFAULTS: dict[str, Any] = {"top_k": 40, "min_p": 0.05, "typical_p": 1.0, "repeat_penalty": 1.0}
PENALTY_LAST_N = 64  # llama-cpp-python's last_n_tokens_size default


@dataclass
class Sampling:
    """One sequence's sampling settings (create_completion's names and defaults)."""

    temperature: float = 1.0
    top_p: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    top_k: int = 40
    min_p: float = 0.05
    typical_p: float = 1.0
    repeat_penalty: float = 1.0
    seed: int | None = None


@dataclass
class Request:
    """One sequence to decode: prompt tokens, a budget of new tokens, stop strings."""

    tokens: list[int]
    max_tokens: int
    stops: list[str]
    sampling: Sampling


@dataclass
class Completion:
    """What create_completion reports: the text up to the first stop, and the tokens it generated
    (the end-of-generation token not counted, the tokens of a stop string counted)."""

    text: str
    completion_tokens: int
    prompt_tokens: int


@dataclass
class _Slot:
    index: int
    request: Request
    sampler: Any
    fed: int = 0  # prompt tokens already in the batch
    generated: list[int] = field(default_factory=list)
    multibyte_fix: int = 0
    done: Completion | None = None


def _new_sampler(n_vocab: int, s: Sampling, seed: int) -> Any:
    """llama-cpp-python's sampler chain (`Llama._init_sampler`) for one sequence."""
    import llama_cpp

    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())

    def add(sampler: Any) -> None:
        llama_cpp.llama_sampler_chain_add(chain, sampler)

    add(
        llama_cpp.llama_sampler_init_penalties(
            n_vocab, PENALTY_LAST_N, s.repeat_penalty, s.frequency_penalty, s.presence_penalty
        )
    )
    if s.temperature < 0.0:
        add(llama_cpp.llama_sampler_init_dist(seed))
    elif s.temperature == 0.0:
        add(llama_cpp.llama_sampler_init_greedy())
    else:
        add(llama_cpp.llama_sampler_init_top_k(s.top_k))
        add(llama_cpp.llama_sampler_init_typical(s.typical_p, 1))
        add(llama_cpp.llama_sampler_init_top_p(s.top_p, 1))
        add(llama_cpp.llama_sampler_init_min_p(s.min_p, 1))
        add(llama_cpp.llama_sampler_init_temp(s.temperature))
        add(llama_cpp.llama_sampler_init_dist(seed))
    return chain


class ParallelDecoder:
    """A llama.cpp context of `parallel` sequences of `n_ctx` tokens each, over a loaded `Llama`'s model
    (its settings copied), and a scheduler that keeps every sequence slot busy."""

    def __init__(self, llama: Llama, n_ctx: int, parallel: int, n_batch: int = 512, seed: int | None = None):
        import llama_cpp

        if not 1 <= parallel <= llama_cpp.llama_max_parallel_sequences():
            raise ValueError(
                f"llm.parallel: {parallel} sequences; llama.cpp decodes 1 to "
                f"{llama_cpp.llama_max_parallel_sequences()} in one context"
            )
        self.llama = llama
        self.parallel = parallel
        self.n_ctx = n_ctx
        self.n_batch = max(n_batch, parallel)
        params = llama_cpp.llama_context_params.from_buffer_copy(llama.context_params)
        params.n_ctx = n_ctx * parallel
        params.n_seq_max = parallel
        params.n_batch = self.n_batch
        params.n_ubatch = min(params.n_ubatch or self.n_batch, self.n_batch)
        params.kv_unified = False  # one KV stream per sequence: attention never looks at the others
        # A batch of one token per sequence runs on the single stream's generation threads: with
        # n_threads_batch (all cores) every small decode pays thread barriers, which on a shared machine
        # cost more than the batching saves.
        params.n_threads_batch = params.n_threads
        params.embeddings = False
        self._ctx = llama_cpp.llama_init_from_model(llama._model.model, params)
        if not self._ctx:
            raise RuntimeError(f"llama.cpp could not create a context of {parallel} x {n_ctx} tokens")
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        self._vocab = llama_cpp.llama_model_get_vocab(llama._model.model)
        self._n_vocab = llama_cpp.llama_vocab_n_tokens(self._vocab)
        self._rng = random.Random(seed)

    def close(self) -> None:
        import llama_cpp

        if self._ctx:
            llama_cpp.llama_batch_free(self._batch)
            llama_cpp.llama_free(self._ctx)
            self._ctx = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown: the library may be gone already
            self.close()

    def check(self, request: Request) -> Request:
        """create_completion's limits: the prompt must fit the window; the budget is cut to what is left."""
        if len(request.tokens) >= self.n_ctx:
            raise ValueError(
                f"Requested tokens ({len(request.tokens)}) exceed context window of {self.n_ctx}"
            )
        room = self.n_ctx - len(request.tokens)
        request.max_tokens = request.max_tokens if 0 < request.max_tokens < room else room
        return request

    def run(self, requests: list[Request]) -> list[Completion]:
        """Decode every request, `parallel` at a time; the completions in the order of the requests."""
        import llama_cpp

        requests = [self.check(r) for r in requests]
        mem = llama_cpp.llama_get_memory(self._ctx)
        pending = deque(enumerate(requests))
        slots: list[_Slot | None] = [None] * self.parallel
        out: list[Completion | None] = [None] * len(requests)
        batch = self._batch
        try:
            while pending or any(slots):
                for s in range(self.parallel):
                    if slots[s] is None and pending:
                        i, req = pending.popleft()
                        llama_cpp.llama_memory_seq_rm(mem, s, -1, -1)
                        seed = (
                            req.sampling.seed
                            if req.sampling.seed is not None
                            else self._rng.randint(0, 2**32 - 1)
                        )
                        slots[s] = _Slot(i, req, _new_sampler(self._n_vocab, req.sampling, seed))
                entries: list[tuple[int, int, int, bool]] = []  # (token, position, sequence, logits)
                for s, slot in enumerate(slots):  # sequences past their prompt: one token each
                    if slot is not None and slot.fed == len(slot.request.tokens):
                        pos = len(slot.request.tokens) + len(slot.generated) - 1
                        entries.append((slot.generated[-1], pos, s, True))
                for s, slot in enumerate(slots):  # prompts, as far as the batch has room
                    if slot is None or slot.fed == len(slot.request.tokens):
                        continue
                    tokens = slot.request.tokens
                    end = min(len(tokens), slot.fed + self.n_batch - len(entries))
                    entries.extend((tokens[p], p, s, p == len(tokens) - 1) for p in range(slot.fed, end))
                    slot.fed = end
                    if len(entries) == self.n_batch:
                        break
                sample_at = []  # (sequence, batch index) whose logits are read
                for n, (token, pos, seq, logits) in enumerate(entries):
                    batch.token[n] = token
                    batch.pos[n] = pos
                    batch.n_seq_id[n] = 1
                    batch.seq_id[n][0] = seq
                    batch.logits[n] = logits
                    if logits:
                        sample_at.append((seq, n))
                batch.n_tokens = len(entries)
                rc = llama_cpp.llama_decode(self._ctx, batch)
                if rc != 0:
                    raise RuntimeError(f"llama_decode failed with code {rc} ({self.parallel} sequences)")
                for s, idx in sample_at:
                    slot = slots[s]
                    assert slot is not None
                    token = llama_cpp.llama_sampler_sample(slot.sampler, self._ctx, idx)
                    self._step(slot, token)
                    if slot.done is not None:
                        out[slot.index] = slot.done
                        llama_cpp.llama_sampler_free(slot.sampler)
                        slots[s] = None
        finally:
            for slot in slots:
                if slot is not None:
                    llama_cpp.llama_sampler_free(slot.sampler)
            llama_cpp.llama_memory_clear(mem, True)
        return [c for c in out if c is not None]

    def _step(self, slot: _Slot, token: int) -> None:
        """create_completion's rules for one new token: end of generation, stop strings (not checked
        inside an unfinished UTF-8 character), the token budget."""
        import llama_cpp

        req = slot.request
        prompt = req.tokens
        if llama_cpp.llama_vocab_is_eog(self._vocab, token):
            slot.done = self._completion(slot, self.llama.detokenize(slot.generated, prev_tokens=prompt))
            return
        slot.generated.append(token)
        all_text = self.llama.detokenize(slot.generated, prev_tokens=prompt)
        for j, char in enumerate(all_text[-3:]):
            k = 3 - j
            for num, pattern in [(2, 192), (3, 224), (4, 240)]:
                if num > k and pattern & char == pattern:
                    slot.multibyte_fix = num - k
        if slot.multibyte_fix > 0:
            slot.multibyte_fix -= 1
        else:
            stops = [s.encode("utf-8") for s in req.stops if s and s.encode("utf-8") in all_text]
            if stops:
                slot.done = self._completion(slot, all_text[: all_text.index(stops[0])])
                return
        if len(slot.generated) >= req.max_tokens:
            slot.done = self._completion(slot, all_text)

    @staticmethod
    def _completion(slot: _Slot, text: bytes) -> Completion:
        return Completion(
            text.decode("utf-8", errors="ignore"), len(slot.generated), len(slot.request.tokens)
        )


class BatchedGGUFChatLlamaCppLLM(GGUFChatLlamaCppLLM):
    """`GGUFChatLlamaCppLLM` whose `generate` decodes all inputs x num_generations as `parallel`
    sequences at once; without Magpie or an answer prefix it is distilabel's `LlamaCppLLM` chat path."""

    parallel: int = Field(default=4, ge=1, le=64, description="Sequences decoded at once (1: one at a time).")
    _decoder: ParallelDecoder | None = PrivateAttr(default=None)

    def load(self) -> None:
        super().load()
        if self.parallel > 1:
            seed = None if self.seed in (None, 0xFFFFFFFF) else self.seed
            self._decoder = ParallelDecoder(self._model, self.n_ctx, self.parallel, self.n_batch, seed)

    def unload(self) -> None:
        if self._decoder is not None:
            self._decoder.close()
            self._decoder = None
        super().unload()

    def _chat_template_prompt(self, input: FormattedInput) -> str | None:
        """The prompt llama-cpp-python's chat handler builds from the GGUF's template (None when the
        `Llama` uses another chat format: then the single stream runs)."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        model = self._model
        if self._formatter_template is None or model.chat_format != "chat_template.default":
            return None
        eos, bos = model.token_eos(), model.token_bos()
        formatter = Jinja2ChatFormatter(
            template=self._formatter_template,
            eos_token=model._model.token_get_text(eos) if eos != -1 else "",
            bos_token=model._model.token_get_text(bos) if bos != -1 else "",
            add_generation_prompt=True,
        )
        return formatter(messages=list(input)).prompt  # type: ignore[arg-type]

    def _request(
        self, input: FormattedInput, max_new_tokens: int, sampling: Sampling, stop: list[str]
    ) -> tuple:
        """(request, text prefix kept in the output, strip) for one input, as the single stream builds it."""
        model = self._model
        if self.use_magpie_template or self.assistant_prefix:
            user_turn = self.use_magpie_template and not (input and input[-1]["role"] == "user")  # type: ignore[index]
            prefix = "" if user_turn else (self.assistant_prefix or "")
            prompt = self.prepare_input(input) + prefix  # type: ignore[arg-type]
            bos = [model.token_bos()] if model._model.add_bos_token() and model.token_bos() != -1 else []
            tokens = bos + model.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
            return Request(tokens, max_new_tokens, TURN_STOPS + stop, sampling), prefix, True
        prompt = self._chat_template_prompt(input)
        assert prompt is not None
        eos = model._model.token_get_text(model.token_eos())  # the chat handler's stop string
        tokens = model.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        return Request(tokens, max_new_tokens, [*stop, eos], sampling), "", False

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
        single = {
            "num_generations": num_generations,
            "max_new_tokens": max_new_tokens,
            "frequency_penalty": frequency_penalty,
            "presence_penalty": presence_penalty,
            "temperature": temperature,
            "top_p": top_p,
            "extra_generation_kwargs": extra_generation_kwargs,
        }
        plain = not (self.use_magpie_template or self.assistant_prefix)
        structured = self.structured_output or any(isinstance(i, tuple) for i in inputs)
        if self._decoder is None or structured or (plain and self._chat_template_prompt([]) is None):
            return super().generate(inputs=inputs, **single)  # type: ignore[arg-type]
        extra = dict(extra_generation_kwargs or {})
        stop = extra.pop("stop", None) or []
        stop = [stop] if isinstance(stop, str) else list(stop)
        unknown = set(extra) - set(SAMPLING_DEFAULTS) - {"seed"}
        if unknown:
            raise ValueError(
                f"generation parameter(s) {', '.join(sorted(unknown))} not supported by parallel decoding "
                f"(it takes: {', '.join(sorted([*SAMPLING_DEFAULTS, 'seed', 'stop']))}); set llm.parallel: 1"
            )
        sampling = Sampling(temperature, top_p, frequency_penalty, presence_penalty, **extra)
        built = [self._request(i, max_new_tokens, sampling, stop) for i in inputs]
        requests = [
            Request(list(req.tokens), req.max_tokens, req.stops, req.sampling)
            for req, _, _ in built
            for _ in range(num_generations)
        ]
        completions = self._decoder.run(requests)
        outputs = []
        for k, (req, prefix, strip) in enumerate(built):
            mine = completions[k * num_generations : (k + 1) * num_generations]
            texts = [(prefix + c.text).strip() if strip else c.text for c in mine]
            outputs.append(
                prepare_output(
                    texts,  # type: ignore[arg-type]
                    input_tokens=[len(req.tokens)] * num_generations,
                    output_tokens=[c.completion_tokens for c in mine],
                )
            )
        return outputs
