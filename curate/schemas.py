"""The JSON files one module writes and another reads, one type each.

Writers annotate the dict they write with the type (`summary: ExportSummary = {...}`); readers take
the type's keys. `read_json(path, Type)` reads such a file and checks it against the type, failing
with the file and the field that is wrong, so a reader never meets a shape it does not know.

- `ExportSummary`: `summary.json` of an export directory (`curate.stages.export`), read by the report,
  the dataset card and the CLI; its `agreement` part (`AgreementSummary`) is also in `curate status`.
- `RunManifest`: `runs/<name>/manifest.json` (`curate.run`), read by the report and the CLI.
- `DedupStats`, `SelectStats`, `PushStats`: the `stats.json` of the stages whose stats other modules
  read (the card's pipeline table, the report's selection cut, the CLI's review URL).
- `Provenance`: what push records in the Argilla dataset's metadata, read by the card.

`TypedDict` comes from `typing_extensions` because pydantic validates only that one on Python < 3.12.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NotRequired, Required, TypeVar

from pydantic import TypeAdapter, ValidationError
from typing_extensions import TypedDict

from curate.io import InputError

T = TypeVar("T")

# --------------------------------------------------------------------------------------------------
# Agreement (export summary, status, card)
# --------------------------------------------------------------------------------------------------


class QuestionAgreement(TypedDict):
    """Agreement on one review question over the submitted answers."""

    alpha: float | None  # Krippendorff's alpha; None when undefined
    level: str  # nominal | ordinal
    annotators: int
    units: int  # records with 2+ answers to this question
    pairwise: float | None  # mean share of agreeing annotator pairs (exact answer) over those records


class PercentAgreement(TypedDict):
    """Pairwise agreement on the preference question."""

    records_with_2plus_votes: int
    pairwise: float | None
    unanimous_share: float | None
    records_with_disagreement: int


class JudgeAgreement(TypedDict):
    """One suggestion agent (the judge) against the human decision."""

    records: int  # records with a judge label and a human decision under the export policy
    agreement: float | None  # share of those where the judge's label is the human decision
    overridden: int
    votes: int
    vote_agreement: float | None  # share of single submitted votes equal to the judge's label
    confusion: dict[str, dict[str, int]]  # judge label -> human decision -> records (A, B, tie each)


class PositionBias(TypedDict):
    """Votes per shown position; the order is random, so an unbiased A share is about 0.5."""

    A: int
    B: int
    tie: int
    a_share: float | None  # A among non-tie votes
    binomial_p: float | None  # two-sided binomial test of a_share against 0.5


class AgreementSummary(TypedDict):
    krippendorff_alpha: dict[str, QuestionAgreement]  # per question: preference, rating_a, rating_b
    percent_agreement: PercentAgreement
    judge_vs_human: dict[str, JudgeAgreement]  # per suggestion agent
    position_bias: PositionBias


# --------------------------------------------------------------------------------------------------
# Judge calibration (calibration.json, written by `curate calibrate` next to the export)
# --------------------------------------------------------------------------------------------------


class LevelCalibration(TypedDict):
    votes: int  # calibration-sample records with a human decision
    agree: int  # of which the judge's decision matched it
    agreement: float
    low: float  # 90% interval: prediction interval for the unreviewed records' agreement
    high: float
    unreviewed: int | None  # the level's unreviewed records the interval is about (None: the rate's)
    votes_needed: int | None  # more votes before the lower bound can reach the target; None: cannot


class CalibrationReport(TypedDict):
    dataset: str
    target: float
    interval: str
    estimate_from: str
    sample_records: int  # records in the calibration sample
    sample_decided: int  # of which have a human decision
    levels: dict[str, LevelCalibration]


# --------------------------------------------------------------------------------------------------
# Export summary.json
# --------------------------------------------------------------------------------------------------


class RecordAccounting(TypedDict):
    total: int
    exported: int
    exported_by_humans: int
    exported_by_judge: int
    excluded: dict[str, int]  # reason -> records


class ResponseAccounting(TypedDict):
    total: int  # submitted responses
    in_export: int
    excluded: dict[str, int]  # reason -> submitted responses


class ExportPolicy(TypedDict):
    policy: str  # majority | unanimous
    min_votes: int
    min_agreement: float
    include_unreviewed: bool
    use_corrections: bool
    discards: str
    ties: str


class Accounting(TypedDict):
    """Every record and every submitted response is exported or excluded with a reason."""

    records: RecordAccounting
    submitted_responses: ResponseAccounting
    discarded_responses: int
    draft_responses: int
    corrections_used: int
    policy: ExportPolicy


class RoundCounts(TypedDict):
    """An export's counts for one review round (records without a round are round 1)."""

    records: int
    reviewed: int  # records with >= 1 submitted response
    pairs: int  # exported preference pairs
    by_humans: int
    by_judge: int


class ExportSummary(TypedDict):
    """`summary.json` (and `stats.json`) of an export directory."""

    dataset: str
    workspace: str
    api_url: str
    output: str
    pairs: int  # rows of the `train` split (preference pairs)
    sft: int  # rows of the `sft` split
    splits: dict[str, int]  # rows per written split, one per export format
    reviewed_records: int  # records with >= 1 submitted response
    accounting: Accounting
    agreement: AgreementSummary
    license: str
    pull_seconds: float
    seconds: NotRequired[float]  # set just before the file is written
    hub_url: NotRequired[str]  # only in the returned summary, after a push to the Hub
    empty_because: NotRequired[str]  # set when no record became a pair: why, and what to change
    calibration: NotRequired[CalibrationReport]  # the judge's agreement per confidence level
    auto_accept: NotRequired[dict[str, Any]]  # with --auto-accept: target, levels needing votes, estimate
    rounds: NotRequired[dict[str, RoundCounts]]  # per review round ("1", "2", ...) of the exported records
    rounds_selected: NotRequired[list[int]]  # with --round: the rounds exported (others left out)


class ReviewStatus(TypedDict):
    """What `curate status` reports (and prints with --json)."""

    dataset: str
    workspace: str
    api_url: str
    min_submitted: int
    records: int
    completed: int
    pending: int
    with_responses: int
    annotators: dict[str, dict[str, int]]  # user -> response status -> count
    records_with_disagreement: int
    disagreement_ids: list[str]
    agreement: AgreementSummary
    calibration: NotRequired[CalibrationReport]  # when the records carry a calibration sample


# --------------------------------------------------------------------------------------------------
# Run manifest.json
# --------------------------------------------------------------------------------------------------


class StageEntry(TypedDict, total=False):
    """One stage's line in the manifest; a running or empty stage has only some of the keys."""

    status: Required[str]  # running | done | empty
    key: str
    started: str
    finished: str
    output: str
    output_id: str
    seconds: float
    rows_in: int | None
    rows_out: int | None
    stats: dict[str, Any]  # the stage's stats.json without rows_in / rows_out


class ModelFile(TypedDict):
    name: str
    path: NotRequired[str]
    sha256: NotRequired[str]


class RunManifest(TypedDict, total=False):
    """`runs/<name>/manifest.json`; `stages` is keyed by stage directory name (`03-dedup`)."""

    stages: Required[dict[str, StageEntry]]
    run: str
    created: str
    finished: str
    config: dict[str, Any]
    versions: dict[str, str]
    models: dict[str, ModelFile]


# --------------------------------------------------------------------------------------------------
# Stage stats.json read by other modules (written in full by their stage; readers use .get)
# --------------------------------------------------------------------------------------------------


class DedupStats(TypedDict, total=False):
    rows: int
    kept: int
    removed: int
    duplicates: int
    exact_duplicates: int
    semantic_duplicates: int
    semantic_below_threshold_to_kept: int
    clusters_with_duplicates: int
    largest_cluster: int
    similar_pairs: int
    conversation_pairs_split: int  # similar conversations whose last user turns differ
    reference_duplicates: int  # rows that duplicate a row of a reference (dedup.against)
    contaminated: int  # rows that contain a benchmark prompt (dedup.decontaminate)
    references: list[
        dict[str, Any]
    ]  # each reference: its label, kind, rows and whether its embeddings were cached
    threshold: float
    compared_text: str
    keep_rule: str
    keep_rule_configured: str
    backend: str
    encoder: str
    embeddings: Any
    dry_run: bool
    seconds: dict[str, float]


class SelectStats(TypedDict, total=False):
    rows: int
    selected: int
    rejected: int
    rejected_similar: int
    rejected_budget: int
    rejected_no_score: int
    budget: int | None
    diversity_threshold: float
    score_column: str
    score_min_selected: float | None  # the selection cut on score_column
    encoder: str
    embeddings: Any
    seconds: float


class PushStats(TypedDict, total=False):
    dataset: str
    workspace: str
    api_url: str
    url: str
    input_rows: int
    pairs: int
    already_present: int
    created: int
    pushed: int
    rejected: int
    rejected_reasons: dict[str, int]
    quarantine: str | None
    markup_rows: int  # pairs whose texts hold HTML markup or entities (shown to reviewers literally)
    markup_examples: list[int]  # the first of their row numbers
    settings_changes: list[str]
    min_submitted: int
    seed: int
    vectors: bool
    round: int  # the round of the records this push created
    seconds: float
    rows_out: int  # in the push stage's stats.json (what `curate run` counts as its rows)


# --------------------------------------------------------------------------------------------------
# Push provenance (Argilla dataset metadata, read by the card)
# --------------------------------------------------------------------------------------------------


class StageProvenance(TypedDict):
    """An earlier stage output the pushed data came from."""

    stage: str  # short name: instructions, preferences, dedup, score, select
    path: str
    rows: dict[str, int]  # rows per split
    stats: dict[str, Any]  # its stats.json (DedupStats, SelectStats, ...)


class PushCounts(TypedDict, total=False):
    input_rows: int
    pairs: int
    already_present: int
    created: int
    rejected: int
    rejected_reasons: dict[str, int]
    min_submitted: int
    seed: int


class VectorProvenance(TypedDict):
    """What made the vectors a push stored: the encoder and text recipe (None: not known, e.g. an
    `embedding` column the configured encoder does not reproduce), so a reference can reuse them."""

    encoder: str | None
    text: str | None  # the text recipe (curate.stages.references.TEXT_RECIPE)
    dimensions: int


class PushProvenance(TypedDict):
    at: str
    source: str | None
    stages: list[StageProvenance]
    models: dict[str, list[str]]  # role (generators, judges, ...) -> model names
    push: PushCounts
    round: NotRequired[int]  # the review round of the records this push created (absent: before rounds)
    input_digest: NotRequired[str]  # hash of the pushed pair ids: the same input again resumes its round
    vectors: NotRequired[VectorProvenance | None]  # None: no vectors stored


class Provenance(TypedDict, total=False):
    pushes: list[PushProvenance]  # the latest pushes, oldest first


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------

_ADAPTERS: dict[Any, TypeAdapter] = {}


def check(data: Any, schema: type[T], path: Path | str) -> T:
    """`data` itself if it has the shape of `schema` (unknown keys are kept), else an InputError naming
    `path` and the first wrong field."""
    adapter = _ADAPTERS.setdefault(schema, TypeAdapter(schema))
    try:
        adapter.validate_python(data, strict=True)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"]) or None
        raise InputError(path, f"{error['msg']} (not a {schema.__name__})", field=field) from None
    return data


def read_json(path: Path | str, schema: type[T]) -> T:
    """Read a JSON file written by curate and check it against `schema` (see `check`)."""
    path = Path(path)
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"not valid JSON: {exc}") from None
    return check(data, schema, path)
