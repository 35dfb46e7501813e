"""Deita's scorer prompts, the check that "1".."6" are single next tokens, and field truncation.

The two templates are Deita's own (hkust-nlp/deita, src/deita/selection/scorer/llama_scorer.py), kept
byte for byte, trailing spaces included: the released deita-complexity-scorer and deita-quality-scorer
were fine-tuned on exactly these strings, so any change would make them score out of distribution.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

COMPLEXITY_TEMPLATE = (
    "You are a helpful assistant. Please identify the complexity score of the following user query. \n"
    "##Query: {instruction}  \n##Complexity: "
)
QUALITY_TEMPLATE = (
    "You are a helpful assistant. Please identify the quality score of the Response corresponding to the "
    "Question. \n #Question#:\n{instruction}\n#Response#:\n{output} \n##Quality: "
)
SCORE_DIGITS = ("1", "2", "3", "4", "5", "6")

Encode = Callable[[str], Sequence[int]]
Decode = Callable[[Sequence[int]], str]


class ScoreTokenError(ValueError):
    """The model's tokenizer cannot express the scores "1".."6" as single next tokens."""


@dataclass(frozen=True)
class ScoreTokens:
    """Token ids whose logits are read, in score order 1..6.

    `leading_space` False: the prompt keeps Deita's trailing space and the bare digits follow it (Llama,
    SmolLM2, Gemma, Qwen...). True: tokenizers that glue the space to the digit (GPT-2 style " 1") would
    never emit a bare digit after a space, so the trailing space is dropped and " 1".." 6" are read.
    """

    ids: tuple[int, ...]
    leading_space: bool

    def prompt(self, text: str) -> str:
        return text.rstrip(" ") if self.leading_space else text


def _continues(encode: Encode, prompt: str, piece: str) -> int | None:
    """The single token id that `piece` adds after `prompt`, or None if it is not exactly one token."""
    alone = list(encode(piece))
    if len(alone) != 1:
        return None
    before, after = list(encode(prompt)), list(encode(prompt + piece))
    return alone[0] if after == before + alone else None


def resolve_score_tokens(encode: Encode, model: str) -> ScoreTokens:
    """Check "1".."6" against a tokenizer (with and without a leading space); fail clearly if neither works.

    `encode` must tokenize without special tokens. Both Deita prompt endings are checked.
    """
    probes = [
        COMPLEXITY_TEMPLATE.format(instruction="x"),
        QUALITY_TEMPLATE.format(instruction="x", output="y"),
    ]
    for leading_space in (False, True):
        ids: list[int] = []
        for digit in SCORE_DIGITS:
            found = {
                _continues(
                    encode, p.rstrip(" ") if leading_space else p, (" " if leading_space else "") + digit
                )
                for p in probes
            }
            if len(found) != 1 or None in found:
                break
            ids.append(found.pop())
        if len(ids) == 6 and len(set(ids)) == 6:
            return ScoreTokens(tuple(ids), leading_space)
    shown = ", ".join(
        f"{d!r} -> {list(encode(d))}, {' ' + d!r} -> {list(encode(' ' + d))}" for d in SCORE_DIGITS
    )
    raise ScoreTokenError(
        f"{model}: the Deita score tokens '1'..'6' are not single next tokens after the prompt, with or "
        f"without a leading space ({shown}); this model cannot be scored from logits: use score.method: text"
    )


def truncate(text: str, max_tokens: int, encode: Encode, decode: Decode) -> tuple[str, bool]:
    """Cut a field to `max_tokens` tokens (the head is kept: Deita's scorers read left to right)."""
    ids = list(encode(text))
    if len(ids) <= max_tokens:
        return text, False
    return decode(ids[:max_tokens]), True
