"""UltraFeedback judging with robust parsing.

distilabel's `UltraFeedback.format_output` splits the judge's text on blank lines and assigns the
n-th paragraph to the n-th response: a preamble, a missing blank line or a skipped text shifts every
rating onto the wrong response, and a rating like "4/5" or "**4**" is lost. Here each rating is bound
to the response whose header ("#### Output for Text 2", "Text 2:", "<text 2>") precedes it; a rating
that cannot be bound unambiguously is None, and the raw judge text is always kept in `judge_raw`.

With `reverse` the judge is shown the responses in reverse order (the position swap): its raw text is
about the reversed list ("Text 1" is the last response), and its ratings and rationales are put back in
the responses' order as given, in the `_swapped` columns.
"""

from __future__ import annotations

import re
from typing import Any

from distilabel.steps.tasks import UltraFeedback

# A section header naming the response it is about, at the start of a line.
_HEADER = re.compile(
    r"^[\s#>*_\-]*(?:output\s+for\s+|rating\s+for\s+|evaluation\s+(?:of|for)\s+)?<?\s*"
    r"(?:text|response|answer|output)\s*#?\s*(\d+)\s*>?",
    re.IGNORECASE | re.MULTILINE,
)
# "Rating: 4", "Rating: **4**", "Rating: 4/5", "Rating: Very good 4" (a short label before the number,
# on the same line).
_RATING = re.compile(
    r"rating\s*(?:for\s+text\s*\d+\s*)?[*_]*\s*[:=\-]?[ \t*_\[]*(?:(?!for\s+text)[A-Za-z][A-Za-z ,\-]{0,20}?[ \t:(]+)?"
    r"(\d+(?:\.\d+)?)(\s*/\s*\d+)?",
    re.IGNORECASE,
)
_RATIONALE = re.compile(
    r"rationale\s*[*_]*\s*[:=\-]\s*[*_]*\s*(.*?)(?=\n\s*(?:rating|type)\b|\Z)", re.IGNORECASE | re.DOTALL
)


# The template's placeholders echoed back ("[Rating for text 1]") hold digits that are not ratings.
_PLACEHOLDER = re.compile(r"\[[^\]\n]*[A-Za-z][^\]\n]*\]")


# The overall-rating template names each score ("4. **Very Good**: Near perfect, ..."): small judges
# often answer with the name alone ("Rating: Very Good"), which is the template's own scale.
RATING_LABELS = {"low quality": 1, "moderate quality": 2, "good": 3, "very good": 4, "excellent": 5}
_LABEL = re.compile(
    r"rating\s*[*_]*\s*[:=\-][ \t*_]*(low quality|moderate quality|very good|good|excellent)\b[ \t*_]*(?:\n|$)",
    re.IGNORECASE,
)


def _rating(section: str) -> tuple[int | None, int]:
    """The first rating in a section (1..5, integral, or the template's label for one) and where it
    ends; (None, 0) if none/invalid."""
    section = _PLACEHOLDER.sub(lambda m: " " * len(m.group(0)), section)  # same length: positions hold
    match = _RATING.search(section)
    label = _LABEL.search(section)
    if label and (not match or label.start() < match.start()):
        return RATING_LABELS[label.group(1).lower()], label.end()
    if not match:
        return None, 0
    value, scale = float(match.group(1)), match.group(2)
    if scale and scale.strip().lstrip("/").strip() not in {"5"}:
        return None, match.end()  # "8/10" is not on the 1..5 scale: don't guess a conversion
    if value != int(value) or not 1 <= value <= 5:
        return None, match.end()
    return int(value), match.end()


def _rationale(section: str, after: int) -> str | None:
    match = _RATIONALE.search(section, after) or _RATIONALE.search(section)
    text = match.group(1).strip() if match else ""
    if re.fullmatch(r"\[[^\]]*\]", text) or text.lower() in {"[rationale]", "n/a", "none"}:
        return None  # the template's "[Rationale]" placeholder echoed back
    return text or None


def parse_judgement(raw: str | None, n: int) -> tuple[list[int | None], list[str | None]]:
    """Ratings and rationales for `n` responses from an UltraFeedback judge's raw text."""
    ratings: list[int | None] = [None] * n
    rationales: list[str | None] = [None] * n
    if not raw or not raw.strip():
        return ratings, rationales
    headers = list(_HEADER.finditer(raw))
    if headers:
        seen: dict[int, tuple[int | None, str | None]] = {}
        conflicted: set[int] = set()
        for i, header in enumerate(headers):
            index = int(header.group(1)) - 1
            if not 0 <= index < n:
                continue
            end = headers[i + 1].start() if i + 1 < len(headers) else len(raw)
            section = raw[header.start() : end]  # from the header: "Rating for Text 2: 4" is one line
            rating, pos = _rating(section)
            rationale = _rationale(section, pos)
            if rating is None and rationale is None:
                continue  # a header with nothing under it (e.g. an echoed "<text 2> ..." line)
            if index in seen and seen[index][0] != rating:
                conflicted.add(index)  # two different ratings for one response: trust neither
            seen.setdefault(index, (rating, rationale))
        for index, (rating, rationale) in seen.items():
            if index not in conflicted:
                ratings[index], rationales[index] = rating, rationale
        return ratings, rationales
    # No headers: order is the only binding, which is safe only if there is exactly one rating each.
    starts = sorted(m.start() for pattern in (_RATING, _LABEL) for m in pattern.finditer(raw))
    if len(starts) == n:
        for index, start in enumerate(starts):
            end = starts[index + 1] if index + 1 < n else len(raw)
            section = raw[start:end]
            ratings[index], pos = _rating(section)
            rationales[index] = _rationale(section, pos)
    return ratings, rationales


# Forced start of the judge's answer on llama.cpp: the format's first header and field.
JUDGE_PREFIX = "#### Output for Text 1\nRating:"


SWAPPED_SUFFIX = "_swapped"
JUDGE_COLUMNS = ("ratings", "rationales", "judge_raw")


def parse_swapped_judgement(raw: str | None, n: int) -> tuple[list[int | None], list[str | None]]:
    """Ratings and rationales, in the responses' order as given, from a judge shown them reversed."""
    ratings, rationales = parse_judgement(raw, n)
    return ratings[::-1], rationales[::-1]


class RobustUltraFeedback(UltraFeedback):
    """UltraFeedback with header-bound parsing, `judge_raw`, and responses clipped to fit the context;
    with `reverse`, the position-swapped pass writing `ratings_swapped`, `rationales_swapped`,
    `judge_raw_swapped`."""

    max_chars_per_generation: int | None = None
    reverse: bool = False

    @property
    def outputs(self) -> list[str]:
        suffix = SWAPPED_SUFFIX if self.reverse else ""
        return [c + suffix for c in JUDGE_COLUMNS] + ["model_name"]

    def format_input(self, input: dict[str, Any]) -> Any:
        generations = [g or "" for g in input["generations"]]
        if self.max_chars_per_generation:
            generations = [g[: self.max_chars_per_generation] for g in generations]
        if self.reverse:
            generations = generations[::-1]
        return super().format_input({**input, "generations": generations})

    def format_output(self, output: str | None, input: dict[str, Any] | None = None) -> dict[str, Any]:
        n = len(input["generations"]) if input else 0
        parse = parse_swapped_judgement if self.reverse else parse_judgement
        ratings, rationales = parse(output, n)
        suffix = SWAPPED_SUFFIX if self.reverse else ""
        values = (ratings, rationales, output or "")
        return {c + suffix: v for c, v in zip(JUDGE_COLUMNS, values, strict=True)}
