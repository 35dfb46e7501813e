"""Text queries: Elasticsearch's simple_query_string (default operator AND) translated to FTS5.

Supported: words, "phrases", prefix*, -negation, +, | (or) and parentheses; ~N fuzziness is ignored.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r'\s*(?:(")((?:[^"]|"")*)"(?:~\d+)?|([()|+\-])|([^\s()|"]+))')


def _fts_phrase(text: str, prefix: bool = False) -> str | None:
    if not re.search(r"\w", text):
        return None
    quoted = '"' + text.replace('"', '""') + '"'
    return quoted + " *" if prefix else quoted


def parse_text_query(q: str) -> tuple[str | None, str | None]:
    """-> (positive FTS5 expression or None, negative-only FTS5 expression or None)."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(q):
        m = _TOKEN.match(q, pos)
        if not m or m.end() == pos:
            break
        pos = m.end()
        if m.group(1):
            tokens.append(("phrase", m.group(2).replace('""', '"')))
        elif m.group(3):
            tokens.append(("op", m.group(3)))
        elif m.group(4):
            tokens.append(("word", m.group(4)))
    tokens_iter = iter([*tokens, ("end", "")])
    current = [next(tokens_iter)]

    def peek():
        return current[0]

    def advance():
        current[0] = next(tokens_iter)

    def parse_or():
        alts = [parse_and()]
        while peek() == ("op", "|"):
            advance()
            alts.append(parse_and())
        pos_alts = [p for p, _ in alts if p]
        if len(alts) == 1:
            return alts[0]
        # Alternatives that only exclude terms can't be expressed in FTS5; they are dropped.
        return ("(" + ") OR (".join(pos_alts) + ")" if pos_alts else None), None

    def parse_and():
        positives, negatives = [], []
        while peek()[0] != "end" and peek() not in (("op", "|"), ("op", ")")):
            negate = False
            while peek()[0] == "op" and peek()[1] in "+-":
                negate = negate or peek()[1] == "-"
                advance()
            kind, text = peek()
            if kind == "op" and text == "(":
                advance()
                expr = parse_or()
                if peek() == ("op", ")"):
                    advance()
            elif kind in ("word", "phrase"):
                advance()
                if kind == "word":
                    word = re.sub(r"~\d*$", "", text)
                    expr = (_fts_phrase(word.rstrip("*"), prefix=word.endswith("*")), None)
                else:
                    expr = (_fts_phrase(text), None)
            else:
                if kind == "op":
                    advance()
                continue
            p, n = expr
            if negate:
                if p:
                    negatives.append(p)
            else:
                if p:
                    positives.append(p)
                if n:
                    negatives.append(n)
        if positives:
            out = "(" + " AND ".join(positives) + ")"
            for n in negatives:
                out += f" NOT ({n})"
            return out, None
        return None, (" OR ".join(f"({n})" for n in negatives) if negatives else None)

    return parse_or()
