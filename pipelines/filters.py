"""Filters distilabel lacks: cleaning raw LLM text into instructions, quality checks, the Self-Instruct
ROUGE-L novelty filter and the WizardLM elimination step. Pure functions over strings, so each
rule is testable without a model and every drop has a named reason that the stats count.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from rouge_score.tokenizers import DefaultTokenizer

_TOKENIZER = DefaultTokenizer(use_stemmer=False)

# Leading list markers and role labels a small model puts before a task: "1.", "-", "Query 2:", "User:".
_PREFIX = re.compile(
    r"^\s*(?:[-*•>#]+\s*|\(?\d{1,3}[.)]\s+|\(?\d{1,3}[.)]$|"
    r"(?:query|question|task|instruction|prompt|user|request|q|example|sentence|chat|input|output)\s*\d*\s*:\s*|"
    r"(?:a\s+)?user\s+(?:might|may|could|would)\s+ask\s*:?\s*)+",
    re.IGNORECASE,
)


def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


_QUOTES = "\"'“”‘’`"
_WORD = re.compile(r"\w+", re.UNICODE)

QUESTION_WORDS = _word_set(
    """
    what which who whom whose when where why how is are was were do does did can could would will
    should shall may might must has have had am isn't aren't don't doesn't can't won't
    """
)
# Imperative verbs that open a task ("Write...", "Explain..."): a task need not end with "?".
IMPERATIVE_VERBS = _word_set(
    """
    act add adapt analyze analyse answer arrange assess brainstorm build calculate categorize change
    check choose classify come combine compare compile complete compose compute condense construct
    convert correct count create critique debug decide define derive describe design detect
    determine develop devise diagnose discuss draft edit elaborate estimate evaluate explain express
    extract fill find fix format formulate generate give guess help identify illustrate imagine
    implement improve infer interpret introduce label list make match name offer optimize order
    organize outline paraphrase persuade pick plan predict prepare present prioritize propose prove
    provide rank rate read recommend refactor refer reflect reformulate remove rephrase replace
    research respond restate review revise rewrite schedule select share show simplify sketch solve
    sort specify state suggest summarize summarise support teach tell test think transform translate
    try turn use verify walk weigh write argue brainstorm classify consider critique demonstrate
    detail discuss distinguish draft justify locate memorize name narrate note observe pretend
    practice propose recall recite relate reply report retell role-play roleplay say search spell
    calculate contrast cite draw paint
    """
)
# First-person requests that are tasks without a question mark ("I need a recipe for ...").
_REQUEST = re.compile(
    r"^(?:please\b|i\s+(?:need|want|would like|'d like|am looking|'m looking|am trying|'m trying|wonder)|"
    r"i'd like|help me|let's|let us|can you|could you|would you)",
    re.IGNORECASE,
)
# Self-Instruct drops tasks a text-only model cannot do (the paper's keyword filter, trimmed of words
# like "file" that also name ordinary text tasks).
_NON_TEXT = re.compile(
    r"\b(?:images?|pictures?|photos?|photographs?|draw|drawing|graphs?|diagrams?|flowcharts?|videos?|audio|"
    r"go to)\b",
    re.IGNORECASE,
)
# Self-Instruct: a small model often copies its own prompt back ("Develop 3 user queries that...").
_SELF_INSTRUCT_ECHO = re.compile(
    r"user quer(?:y|ies)|ai application|criteria for queries|task description|linguistic structures|"
    r"diverse range of verbs|self-contained and standalone|text generation functions",
    re.IGNORECASE,
)


def echoes_self_instruct_prompt(text: str) -> bool:
    return bool(_SELF_INSTRUCT_ECHO.search(text))


# WizardLM elimination: an evolved prompt that copies words of the evolving prompt.
_COPIED_PROMPT_WORDS = re.compile(
    r"#?\s*(?:the\s+)?given prompt\s*#?|#?\s*rewritten prompt\s*#?|#?\s*created prompt\s*#?|"
    r"prompt (?:rewriter|creator)",
    re.IGNORECASE,
)
_APOLOGY = re.compile(
    r"\b(?:sorry|apologi[sz]e|as an ai\b|as a language model|i (?:cannot|can't|am unable|'m unable))",
    re.IGNORECASE,
)
STOP_WORDS = _word_set(
    """
    a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has
    have having he her here hers herself him himself his how i if in into is it its itself just me
    more most my myself no nor not now of off on once only or other our ours ourselves out over own
    same she should so some such than that the their theirs them themselves then there these they
    this those through to too under until up very was we were what when where which while who whom
    why will with would you your yours yourself yourselves ok okay yes
    """
)


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def clean_instruction(text: str | None) -> str:
    """One instruction from raw model text: no list markers, role labels, quotes or markdown."""
    if not text:
        return ""
    text = text.replace("**", "").replace("__", "").strip()
    previous = None
    while previous != text:  # labels can stack: '1. Query: "..."'
        previous = text
        text = _PREFIX.sub("", text).strip().strip(_QUOTES).strip()
    return re.sub(r"\s+", " ", text)


def split_candidates(text: str | None) -> list[str]:
    """Self-Instruct answers with one query a line: the cleaned, non-empty lines."""
    if not text:
        return []
    return [c for c in (clean_instruction(line) for line in text.splitlines()) if c]


_QUOTED = re.compile(r"[\"“]([^\"“”]{8,})(?:[\"”]|$)")


def first_instruction(text: str | None) -> str:
    """The instruction in a single-instruction answer. Preamble lines ending in ':' are skipped, and
    a line that is not itself a task but quotes one ('A user could ask: "What is...?"') gives the quote."""
    lines = split_candidates(text)
    for line in lines:
        if line.endswith(":"):
            continue
        match = _QUOTED.search(line)
        if match and not looks_like_instruction(line[: match.start()] or "-"):
            quoted = clean_instruction(match.group(1))
            if looks_like_instruction(quoted):
                return quoted
        return line
    return lines[0] if lines else ""


def looks_like_instruction(text: str) -> bool:
    """A question, or a request/task (imperative verb or first-person request); not a statement."""
    stripped = text.strip()
    if not stripped or stripped.endswith(":"):
        return False
    if "?" in stripped:
        return True
    tokens = words(stripped)
    if not tokens:
        return False
    return tokens[0] in QUESTION_WORDS or tokens[0] in IMPERATIVE_VERBS or bool(_REQUEST.match(stripped))


def is_repetitive(text: str) -> bool:
    """Degenerate loops of small models: a trigram repeated 3+ times, or few distinct words."""
    tokens = words(text)
    if len(tokens) < 8:
        return False
    trigrams = Counter(zip(tokens, tokens[1:], tokens[2:]))
    if trigrams and trigrams.most_common(1)[0][1] >= 3:
        return True
    return len(set(tokens)) / len(tokens) < 0.4


def quality_reason(text: str, min_words: int = 3, max_words: int = 150) -> str | None:
    """Why an instruction is unusable (a stats key), or None if it passes."""
    if not text or not text.strip():
        return "empty"
    n = len(words(text))
    if n < min_words:
        return "too_short"
    if n > max_words:
        return "too_long"
    if is_repetitive(text):
        return "repetitive"
    if not looks_like_instruction(text):
        return "not_an_instruction"
    if _NON_TEXT.search(text):
        return "non_text_task"
    return None


def normalize(text: str) -> str:
    return " ".join(words(text))


# --- ROUGE-L (Self-Instruct novelty) -------------------------------------------------------------


def _lcs(a: list[str], b: list[str]) -> int:
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, 1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def rouge_l(a: list[str], b: list[str]) -> float:
    """ROUGE-L F-measure of two token lists (same definition and tokenizer as rouge-score)."""
    if not a or not b:
        return 0.0
    lcs = _lcs(a, b)
    if lcs == 0:
        return 0.0
    p, r = lcs / len(b), lcs / len(a)
    return 2 * p * r / (p + r)


class RougeNovelty:
    """Self-Instruct's novelty filter: a candidate joins the pool only if its ROUGE-L against every
    instruction already there is at most `threshold` (the paper's code drops scores > 0.7).

    rouge-score scores one pair at a time and re-tokenizes both sides; here the pool is tokenized
    once and pairs that cannot reach the threshold (by length or shared words) are skipped.
    """

    def __init__(self, pool: Iterable[str] = (), threshold: float = 0.7):
        self.threshold = threshold
        self._pool: list[tuple[list[str], Counter[str]]] = []
        for text in pool:
            self.add(text)

    @staticmethod
    def tokenize(text: str) -> list[str]:
        return _TOKENIZER.tokenize(text)

    def add(self, text: str) -> None:
        tokens = self.tokenize(text)
        self._pool.append((tokens, Counter(tokens)))

    def max_score(self, text: str) -> float:
        tokens = self.tokenize(text)
        counts = Counter(tokens)
        best = 0.0
        for other, other_counts in self._pool:
            if not tokens or not other:
                continue
            # LCS <= shared tokens (with multiplicity), so F <= 2*shared/(m+n): skip hopeless pairs.
            shared = sum((counts & other_counts).values())
            if 2 * shared / (len(tokens) + len(other)) <= max(best, self.threshold):
                continue
            best = max(best, rouge_l(tokens, other))
        return best

    def accept(self, text: str) -> tuple[bool, float]:
        """Whether `text` is novel; if so it joins the pool."""
        score = self.max_score(text)
        if score > self.threshold:
            return False, score
        self.add(text)
        return True, score

    def __len__(self) -> int:
        return len(self._pool)


# --- WizardLM elimination ------------------------------------------------------------------------


def elimination_reason(parent: str, evolved: str, answer: str | None) -> str | None:
    """WizardLM's elimination step for a failed evolution (a stats key), or None if it survives.

    The paper's four cases; the first one used ChatGPT as judge, here it is a lexical test that needs
    no second model (an evolution must add words, not reword or trim the parent):
    1. no information gain: same text, only the parent's words, or ROUGE-L >= 0.9 with the parent;
    2. the model apologises / refuses (in the evolved prompt, or a short answer saying "sorry");
    3. the answer to the evolved prompt is only punctuation and stop words;
    4. the evolved prompt copies words of the evolving prompt ("#Rewritten Prompt#", "given prompt").
    """
    if not evolved or not evolved.strip():
        return "empty"
    if _COPIED_PROMPT_WORDS.search(evolved):
        return "copied_prompt_words"
    parent_words, evolved_words = words(parent), words(evolved)
    if normalize(parent) == normalize(evolved) or set(evolved_words) <= set(parent_words):
        return "no_information_gain"
    if rouge_l(RougeNovelty.tokenize(parent), RougeNovelty.tokenize(evolved)) >= 0.9:
        return "no_information_gain"
    if _APOLOGY.search(evolved):
        return "apology"
    if answer is not None:
        answer_words = words(answer)
        if _APOLOGY.search(answer) and len(answer_words) < 80:
            return "apology"
        if all(w in STOP_WORDS for w in answer_words):
            return "answer_only_stopwords"
    return None
