"""The Argilla dataset settings for pairwise review, built from the data, and how to compare them.

The settings are first a plain `spec` dict (pure, comparable, testable without a server), then turned
into `rg.Settings`. `diff_specs` explains how an existing dataset differs from what a push needs.
"""

from __future__ import annotations

import html
from typing import Any

import argilla as rg

# Names are a contract between push, pull/export, status and the tests.
PROMPT, RESPONSE_A, RESPONSE_B = "prompt", "response_a", "response_b"
PREFERENCE, RATING_A, RATING_B, CORRECTED, COMMENT = (
    "preference",
    "rating_a",
    "rating_b",
    "corrected",
    "comment",
)
VECTOR = "prompt_embedding"
LABELS = {"A": "Response A is better", "B": "Response B is better", "tie": "Tie: equally good or equally bad"}
RATING_VALUES = [1, 2, 3, 4, 5]

# Metadata shown as filters in the UI: (type, title, visible to annotators). Only those the data has
# values for are created; `a_index`/`b_index` record the shown order so exports map A/B back.
METADATA: dict[str, tuple[str, str, bool]] = {
    "complexity": ("float", "Deita complexity (1-6)", True),
    "quality": ("float", "Deita quality, best response (1-6)", True),
    "quality_a": ("float", "Deita quality of A", True),
    "quality_b": ("float", "Deita quality of B", True),
    "deita_score": ("float", "Deita score (complexity x quality)", True),
    "judge_rating_a": ("integer", "Judge rating of A (1-5)", True),
    "judge_rating_b": ("integer", "Judge rating of B (1-5)", True),
    "dedup_cluster": ("integer", "Dedup cluster id", True),
    "dedup_cluster_size": ("integer", "Dedup cluster size", True),
    "generator_model_a": ("terms", "Model that wrote A", True),
    "generator_model_b": ("terms", "Model that wrote B", True),
    "method": ("terms", "Instruction generation method", True),
    "judge_model": ("terms", "Judge model", True),
    "a_index": ("integer", "Generation index shown as A", False),
    "b_index": ("integer", "Generation index shown as B", False),
    "source_id": ("terms", "Row id in the pushed data", False),
    "text_format": ("terms", "How the field texts are stored (html-escaped: & < > as entities)", False),
    "review_priority": ("integer", "Review priority (1 = review first)", True),
    "judge_confidence": ("terms", "Judge confidence level", True),
    "calibration_sample": ("terms", "In the calibration sample (yes/no)", False),
    "round": ("integer", "Review round the record was pushed in (1 = first)", True),
}
ROUND = "round"  # records pushed before rounds were recorded have none: they count as round 1
# review_priority, judge_confidence and calibration_sample: every push plans every record (calibration.py)
ALWAYS_METADATA = (
    "a_index",
    "b_index",
    "source_id",
    "text_format",
    "review_priority",
    "judge_confidence",
    "calibration_sample",
    "round",
)

# Argilla 2.8's UI puts a field's text into the page as HTML (innerHTML, or a sandboxed frame when it
# looks like HTML) when `use_markdown` is off, and through a sanitising markdown renderer when it is
# on: either way a `<script>` or `<b>` in a response is not what the reviewer sees. So the fields are
# stored HTML-escaped and shown without markdown: the page shows the literal text, tags and markdown
# syntax included, exactly as it is exported. Records say so in their `text_format` metadata, and
# `stored_text` turns them back.
TEXT_FORMAT = "html-escaped"


def shown_text(text: str) -> str:
    """The field value that the Argilla UI displays as exactly `text`."""
    return html.escape(text, quote=False)


def stored_text(value: Any, text_format: Any) -> Any:
    """The original text of a field value written by `shown_text` (others are returned unchanged)."""
    return html.unescape(value) if text_format == TEXT_FORMAT and isinstance(value, str) else value


GUIDELINES = """\
## Which response is better?

Each record shows a **prompt** and two responses, **A** and **B**. Their order is random, so
neither position means anything: judge the content only.

1. **Preference** (required): pick the response that answers the prompt better: more correct,
   more helpful, better following the instructions, safer. Pick **Tie** only when they are truly
   equally good or equally bad.
2. **Ratings** (optional): rate each response from 1 (useless or harmful) to 5 (excellent).
3. **Corrected response** (optional): if the better response has a fixable flaw, paste it here
   corrected. It replaces the chosen response in the final dataset.
4. **Comment** (optional): anything a curator should know.

Pre-filled answers come from an AI judge: confirm them or change them, never accept them blindly.
**Review in planned order**: sort the records by the `review_priority` metadata, ascending (1 first).
The first records are a random calibration sample that measures how far the judge can be trusted.
Use **Discard** for records that should not be in the dataset at all (broken prompt, both responses
unusable, private data). Use **Find similar** on the prompt to compare with near-duplicates.
"""


def build_spec(
    metadata_names: set[str] | list[str],
    vector_dim: int | None,
    min_submitted: int = 1,
    guidelines: str = GUIDELINES,
) -> dict[str, Any]:
    """The settings a push needs: fixed fields and questions, metadata for the columns the data has."""
    names = set(metadata_names) | set(ALWAYS_METADATA)
    return {
        "fields": {
            PROMPT: {"type": "chat", "required": True, "title": "Prompt", "use_markdown": False},
            RESPONSE_A: {"type": "text", "required": True, "title": "Response A", "use_markdown": False},
            RESPONSE_B: {"type": "text", "required": True, "title": "Response B", "use_markdown": False},
        },
        "questions": {
            PREFERENCE: {
                "type": "label_selection",
                "labels": list(LABELS),
                "required": True,
                "title": "Which response is better?",
            },
            RATING_A: {
                "type": "rating",
                "values": RATING_VALUES,
                "required": False,
                "title": "Quality of response A (1-5)",
            },
            RATING_B: {
                "type": "rating",
                "values": RATING_VALUES,
                "required": False,
                "title": "Quality of response B (1-5)",
            },
            CORRECTED: {
                "type": "text",
                "required": False,
                "title": "Corrected version of the better response (optional)",
            },
            COMMENT: {"type": "text", "required": False, "title": "Comment (optional)"},
        },
        "metadata": {
            name: {"type": kind, "visible": visible, "title": title}
            for name, (kind, title, visible) in METADATA.items()
            if name in names
        },
        "vectors": {VECTOR: {"dimensions": int(vector_dim), "title": "Prompt embedding"}}
        if vector_dim
        else {},
        "distribution": {"min_submitted": int(min_submitted)},
        "guidelines": guidelines,
    }


def to_rg_settings(spec: dict[str, Any], client: rg.Argilla) -> rg.Settings:
    """The `rg.Settings` for a spec (bound to `client`, not the SDK's global default)."""
    fields: list[Any] = []
    for name, f in spec["fields"].items():
        markdown = f.get("use_markdown", False)
        if f["type"] == "chat":
            fields.append(
                rg.ChatField(
                    name, title=f["title"], required=f["required"], use_markdown=markdown, _client=client
                )
            )
        else:
            fields.append(
                rg.TextField(
                    name, title=f["title"], required=f["required"], use_markdown=markdown, client=client
                )
            )
    questions: list[Any] = []
    for name, q in spec["questions"].items():
        if q["type"] == "label_selection":
            labels = {k: LABELS.get(k, k) for k in q["labels"]}
            questions.append(
                rg.LabelQuestion(name, labels=labels, title=q["title"], required=q["required"], client=client)
            )
        elif q["type"] == "rating":
            questions.append(
                rg.RatingQuestion(
                    name, values=q["values"], title=q["title"], required=q["required"], client=client
                )
            )
        else:
            # the reviewer's own text (a correction becomes training data) is shown as typed, too
            questions.append(
                rg.TextQuestion(
                    name, title=q["title"], required=q["required"], use_markdown=False, client=client
                )
            )
    kinds = {
        "float": rg.FloatMetadataProperty,
        "integer": rg.IntegerMetadataProperty,
        "terms": rg.TermsMetadataProperty,
    }
    metadata = [
        kinds[m["type"]](name, title=m["title"], visible_for_annotators=m["visible"], client=client)
        for name, m in spec["metadata"].items()
    ]
    vectors = [
        rg.VectorField(name, dimensions=v["dimensions"], title=v["title"], _client=client)
        for name, v in spec["vectors"].items()
    ]
    return rg.Settings(
        fields=fields,
        questions=questions,
        metadata=metadata,
        vectors=vectors,
        guidelines=spec["guidelines"],
        distribution=rg.TaskDistribution(min_submitted=spec["distribution"]["min_submitted"]),
    )


def spec_of(settings: rg.Settings) -> dict[str, Any]:
    """The spec of an existing dataset's settings (same shape as `build_spec`)."""
    questions: dict[str, Any] = {}
    for q in settings.questions:
        entry: dict[str, Any] = {"type": q.type, "required": q.required, "title": q.title}
        if q.type in ("label_selection", "multi_label_selection"):
            entry["labels"] = list(q.labels)
        elif q.type in ("rating", "ranking"):
            entry["values"] = list(q.values)
        questions[q.name] = entry
    return {
        "fields": {
            f.name: {
                "type": f.type,
                "required": f.required,
                "title": f.title,
                "use_markdown": bool(getattr(f, "use_markdown", False)),
            }
            for f in settings.fields
        },
        "questions": questions,
        "metadata": {
            m.name: {"type": m._model.type, "visible": bool(m.visible_for_annotators), "title": m.title}
            for m in settings.metadata
        },
        "vectors": {v.name: {"dimensions": v.dimensions, "title": v.title} for v in settings.vectors},
        "distribution": {"min_submitted": settings.distribution.min_submitted},
        "guidelines": settings.guidelines or "",
    }


def diff_specs(current: dict[str, Any], wanted: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(differences, fixable): every way `current` fails `wanted`, and which of them `--update-settings`
    can apply to a dataset that already has records (metadata, vectors, guidelines, distribution).

    Extra metadata or vectors on the server are compatible (records simply leave them empty).
    """
    diffs: list[str] = []
    fixable: list[str] = []
    for kind in ("fields", "questions"):
        cur, want = current[kind], wanted[kind]
        for name, w in want.items():
            c = cur.get(name)
            if c is None:
                diffs.append(f"{kind[:-1]} '{name}' is missing on the server")
                continue
            for key in ("type", "required", "labels", "values", "use_markdown"):
                if key in w and c.get(key) != w[key]:
                    diffs.append(
                        f"{kind[:-1]} '{name}': {key} is {c.get(key)!r} on the server, {w[key]!r} wanted"
                        + (
                            " (a dataset pushed by an older curate, whose UI renders markup instead of "
                            "showing it)"
                            if key == "use_markdown"
                            else ""
                        )
                    )
        for name in cur.keys() - want.keys():
            if cur[name].get("required"):
                diffs.append(
                    f"{kind[:-1]} '{name}' exists on the server (required) but is not part of this push"
                )
    for name, w in wanted["metadata"].items():
        c = current["metadata"].get(name)
        if c is None:
            msg = f"metadata property '{name}' is missing on the server"
            diffs.append(msg)
            fixable.append(msg)
        elif c["type"] != w["type"]:
            diffs.append(
                f"metadata property '{name}': type is {c['type']!r} on the server, {w['type']!r} wanted"
            )
    for name, w in wanted["vectors"].items():
        c = current["vectors"].get(name)
        if c is None:
            msg = f"vector field '{name}' is missing on the server"
            diffs.append(msg)
            fixable.append(msg)
        elif c["dimensions"] != w["dimensions"]:
            diffs.append(
                f"vector field '{name}': {c['dimensions']} dimensions on the server, {w['dimensions']} wanted "
                "(a different embedding model?)"
            )
    if current["distribution"] != wanted["distribution"]:
        msg = (
            f"task distribution: min_submitted is {current['distribution']['min_submitted']} on the server, "
            f"{wanted['distribution']['min_submitted']} wanted"
        )
        diffs.append(msg)
        fixable.append(msg)
    if (current["guidelines"] or "").strip() != (wanted["guidelines"] or "").strip():
        msg = "guidelines text differs"
        diffs.append(msg)
        fixable.append(msg)
    return diffs, fixable
