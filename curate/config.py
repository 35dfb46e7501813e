"""One configuration for every stage: a pydantic model loaded from YAML and the environment.

Precedence (highest first): explicit overrides, environment (`CURATE_<SECTION>__<KEY>`, plus the
standard `ARGILLA_API_URL` / `ARGILLA_API_KEY`), the YAML file, the embedded defaults.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

Provider = Literal["llamacpp", "openai", "inference-endpoints", "vllm", "transformers"]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LLMConfig(Section):
    """Which distilabel LLM to run. The default is the embedded SmolLM2-135M-Instruct GGUF on llama.cpp."""

    provider: Provider = "llamacpp"
    model: str | None = Field(
        None,
        description="Model id for hosted providers; for llamacpp a GGUF path "
        "(default: the embedded SmolLM2).",
    )
    base_url: str | None = Field(None, description="OpenAI-compatible or Inference Endpoint URL.")
    api_key_env: str | None = Field(
        None, description="Name of the environment variable holding the API key (never the key itself)."
    )
    n_ctx: int = Field(2048, ge=16, description="Context window for llama.cpp.")
    temperature: float = Field(0.7, ge=0.0, le=5.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_new_tokens: int = Field(256, ge=1)
    max_retries: int = Field(
        6,
        ge=0,
        le=100,
        description="Hosted providers: retries of a request that got 408/409/429/5xx, a dropped connection "
        "or a timeout, with exponential backoff (0.5 s doubling to 8 s, or the server's Retry-After).",
    )
    timeout: int = Field(120, ge=1, le=3600, description="Hosted providers: seconds one attempt may take.")
    concurrency: int = Field(
        8,
        ge=1,
        le=1024,
        description="Hosted providers: requests in flight at once per generation step (also bounded by "
        "the stage's batch_size).",
    )
    parallel: int = Field(
        8,
        ge=1,
        le=64,
        description="llamacpp: sequences decoded at once in one llama.cpp context (a generation step's "
        "batch, inputs x generations, in parallel; each sequence gets n_ctx tokens of KV cache); 1 decodes "
        "one at a time. See the README's figures.",
    )
    extra: dict[str, Any] = Field(default_factory=dict, description="Extra kwargs for the distilabel LLM.")


class EmbeddingConfig(Section):
    model: str | None = Field(
        None, description="sentence-transformers model name or path (default: the embedded all-MiniLM-L6-v2)."
    )
    batch_size: int = Field(64, ge=1)
    device: str = "cpu"


class InstructionsConfig(Section):
    method: Literal["prompt", "self-instruct", "magpie", "evol-instruct"] = Field(
        "magpie",
        description="magpie needs no seeds and suits small instruct models such as the embedded SmolLM2 "
        "(see the README for how often each method's output passes the filters); self-instruct for a "
        "capable `llm`.",
    )
    num_instructions: int = Field(
        60,
        ge=1,
        description="Target number of instructions (before filters); responses go to a budget of them.",
    )
    seeds: Path | None = Field(None, description="Seed tasks jsonl (default: curate's built-in seeds).")
    topics: list[str] = Field(
        default_factory=lambda: ["science", "cooking", "programming", "history", "travel", "personal finance"]
    )
    system_prompt: str = (
        "You are a helpful assistant that writes clear, self-contained tasks for an AI assistant."
    )
    rouge_threshold: float = Field(
        0.7, ge=0.0, le=1.0, description="Self-Instruct novelty filter: max ROUGE-L vs the pool."
    )
    min_words: int = Field(3, ge=0, description="Drop instructions shorter than this many words.")
    evol_steps: int = Field(1, ge=1, description="EvolInstruct generations per seed.")
    magpie_pre_query_template: str | None = Field(
        None,
        description="Magpie user-turn header: chatml | llama3 | qwen2 | a literal one "
        "(default: chatml for llama.cpp models, e.g. the embedded SmolLM2).",
    )
    batch_size: int = Field(8, ge=1)


class PreferencesConfig(Section):
    num_generations: int = Field(2, ge=2, description="Responses per instruction (>= 2).")
    generation_params: list[dict[str, Any]] = Field(
        default_factory=lambda: [{"temperature": 0.3}, {"temperature": 1.0}],
        description="Sampling settings, one per response (cycled if shorter than num_generations).",
    )
    generators: list[LLMConfig] = Field(
        default_factory=list, description="Different models per response (empty: the main `llm`)."
    )
    evol_quality: bool = Field(False, description="Also rewrite each response with EvolQuality.")
    judge: LLMConfig | None = Field(None, description="UltraFeedback judge (default: the main `llm`).")
    judge_both_orders: bool = Field(
        False,
        description="Judge each row a second time with its responses in reverse order "
        "(`ratings_swapped`, hence `judge_preference_swapped`: a verdict that flips with the order is "
        "low-confidence). Doubles the judge's calls.",
    )
    aspect: Literal["overall-rating", "helpfulness", "honesty", "instruction-following", "truthfulness"] = (
        "overall-rating"
    )
    batch_size: int = Field(8, ge=1)


class GenerateConfig(Section):
    instructions: InstructionsConfig = Field(default_factory=InstructionsConfig)
    preferences: PreferencesConfig = Field(default_factory=PreferencesConfig)
    resume: bool = Field(True, description="Resume an interrupted run from distilabel's cache.")
    ray: bool = Field(
        False, description="Run with distilabel's RayPipeline (RAY_ADDRESS selects the cluster)."
    )


class DedupConfig(Section):
    threshold: float = Field(
        0.9, gt=-1.0, le=1.0, description="Cosine similarity at or above which two rows are duplicates."
    )
    column: str | None = Field(
        None,
        description="Text column compared (default: the row's prompt: instruction + input, prompt or chat).",
    )
    include_response: bool = Field(False, description="Compare instruction + response instead.")
    keep: Literal["auto", "deita", "rating", "first"] = Field(
        "auto", description="Which member of a cluster survives: auto = deita, else rating, else first."
    )
    backend: Literal["auto", "exact", "faiss"] = "auto"
    ann_min_rows: int = Field(50_000, ge=1, description="auto uses the ANN index from this many rows.")
    against: list[str] = Field(
        default_factory=list,
        description="References whose rows new rows must not duplicate: run or stage directories, exports, "
        "files, saved datasets, argilla:NAME. They are never changed.",
    )
    decontaminate: list[Path] = Field(
        default_factory=list,
        description="Benchmark prompt files (jsonl / json / parquet / csv with a prompt column): a row that "
        "contains one is removed as contamination.",
    )
    ngram: int = Field(13, ge=3, le=64, description="Word n-gram length of the decontamination overlap rule.")
    dry_run: bool = False


class ScoreConfig(Section):
    method: Literal["auto", "logits", "text"] = Field(
        "auto", description="logits = Deita's expected value over '1'..'6'; text = parse a generated score."
    )
    llm: LLMConfig | None = Field(None, description="Scorer LLM (default: the main `llm`).")
    complexity_llm: LLMConfig | None = None
    quality_llm: LLMConfig | None = None
    batch_size: int = Field(8, ge=1, description="Rows per batch of the scoring step on Ray (generate.ray).")
    replicas: int | None = Field(
        None,
        ge=1,
        description="Scorer replicas with generate.ray / --ray (each loads the scorer once); unset: one per "
        "node of the Ray cluster.",
    )
    prompt: Literal["auto", "deita", "deita-anchored"] = Field(
        "auto",
        description="deita = Deita's zero-shot prompt (for the hkust-nlp scorers); deita-anchored = "
        "the same template after hand-written anchor examples (for small general models); auto = the "
        "embedded scorer's validated setting when no scorer LLM is configured, else deita.",
    )
    length_prior: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Weight of the text-length prior mixed with the Deita value "
        "(0 = pure Deita; unset = the validated default for the embedded scorer, else 0); needs reference "
        "statistics for the model (see curate/scoring/prior.py).",
    )
    quality_scorer: Literal["auto", "llm", "head"] = Field(
        "auto",
        description="llm = Deita's quality prompt on the scorer LLM; head = the embedded quality head "
        "(embedding + text features, curate/scoring/head.py); auto = head for the embedded default scorer, "
        "llm when a scorer LLM is configured.",
    )
    max_instruction_tokens: int = Field(
        512, ge=1, description="Longer instructions are cut (head kept) before scoring."
    )
    max_response_tokens: int = Field(
        1024, ge=1, description="Longer responses are cut (head kept) before scoring."
    )


class SelectConfig(Section):
    instruction_budget: int | None = Field(
        12,
        ge=1,
        description="Instructions kept for response generation (`curate run`), by complexity and diversity; "
        "unset: all. The default sizes the demo run: set it for a real job.",
    )
    budget: int = Field(
        8,
        ge=1,
        description="Pairs selected for review. The default sizes the demo run: set it for a real job.",
    )
    diversity_threshold: float = Field(
        0.9, gt=-1.0, le=1.0, description="Deita repr filter: max cosine similarity to kept rows."
    )


class ArgillaConfig(Section):
    api_url: str | None = Field(None, description="Remote Argilla URL (unset: the embedded server).")
    api_key: SecretStr | None = None
    workspace: str = "curate"
    dataset: str = "curate-review"


class ReviewConfig(Section):
    min_submitted: int = Field(
        1, ge=1, description="Annotators who must submit per record (task distribution)."
    )
    batch_size: int = Field(
        250, ge=1, le=500, description="Records per bulk upsert (argilla-server allows at most 500)."
    )
    seed: int = Field(0, description="Seed for the recorded A/B order of responses.")
    update_settings: bool = Field(
        False, description="Apply metadata/vector/guidelines/distribution changes to an existing dataset."
    )
    vectors: bool = Field(True, description="Add the prompt embedding as a vector field ('find similar').")
    concurrency: int = Field(2, ge=1, le=32, description="Upsert batches in flight at once during a push.")
    calibration_size: int = Field(
        200,
        ge=0,
        description="Records in the calibration sample reviewed first (random, stratified over judge "
        "confidence levels); calibrate and auto-accept estimate only from it.",
    )
    quarantine: Path | None = Field(
        None, description="Where rows the push rejects go, as jsonl (default: in the run directory)."
    )
    round: int | None = Field(
        None,
        ge=1,
        description="Review round recorded on the records a push creates (default: one more than the "
        "highest on the dataset; records already there keep theirs).",
    )


class ExportConfig(Section):
    policy: Literal["majority", "unanimous"] = "majority"
    min_votes: int = Field(1, ge=1, description="Submitted votes a record needs to be decided by people.")
    min_agreement: float = Field(
        0.5, ge=0.0, le=1.0, description="Minimum share of votes for the winning response (> ties)."
    )
    include_unreviewed: bool = Field(False, description="Fall back to the judge for unreviewed records.")
    use_corrections: bool = Field(True, description="A reviewer's corrected response replaces `chosen`.")
    auto_accept: bool = Field(
        False,
        description="Export unreviewed pairs with the judge's decision where the calibration shows the "
        "judge reaches `auto_accept_min_agreement` (the lower bound of the 90% interval of its level).",
    )
    auto_accept_min_agreement: float = Field(
        0.9, ge=0.0, le=1.0, description="Agreement with reviewers a confidence level needs (--auto-accept)."
    )
    license: str = "apache-2.0"
    rounds: list[int] = Field(
        default_factory=list, description="Export only these review rounds (default: every round)."
    )
    private: bool = Field(True, description="Create the Hub repo as private (--to-hub).")


class ServerConfig(Section):
    data_dir: Path | None = Field(None, description="Embedded Argilla data dir (default: user data dir).")
    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535, description="0 = first free port from 6900.")


class RunConfig(Section):
    name: str = "default"
    runs_dir: Path = Path("runs")
    input: Path | None = Field(
        None,
        description="Start from your own rows (jsonl, json, parquet, csv, a dataset or stage directory) instead "
        "of generated instructions: instructions only (responses are generated) or rows with responses "
        "(generation is skipped).",
    )


class Config(Section):
    llm: LLMConfig = Field(default_factory=LLMConfig)
    embeddings: EmbeddingConfig = Field(default_factory=EmbeddingConfig)
    generate: GenerateConfig = Field(default_factory=GenerateConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    score: ScoreConfig = Field(default_factory=ScoreConfig)
    select: SelectConfig = Field(default_factory=SelectConfig)
    argilla: ArgillaConfig = Field(default_factory=ArgillaConfig)
    review: ReviewConfig = Field(default_factory=ReviewConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    run: RunConfig = Field(default_factory=RunConfig)


class ConfigError(ValueError):
    """A configuration file or variable is invalid; the message names where."""


ENV_PREFIX = "CURATE_"
# Standard variables of the Argilla SDK, honoured so that the same CLI works against any Argilla.
ENV_ALIASES = {"ARGILLA_API_URL": ("argilla", "api_url"), "ARGILLA_API_KEY": ("argilla", "api_key")}


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    """`CURATE_DEDUP__THRESHOLD=0.8` -> {"dedup": {"threshold": "0.8"}}; values are YAML-parsed.

    Every setting is in a section, so a CURATE_ variable without the double underscore is not one: the
    project's own (CURATE_SHARED_DATA, CURATE_SEARCH_DB, ...) are left alone, but one that starts with a
    section's name (CURATE_DEDUP_THRESHOLD) is a typo of a setting and fails, naming the variable."""
    out: dict[str, Any] = {}
    items = []
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        path = name[len(ENV_PREFIX) :].lower().split("__")
        if len(path) == 1:
            if any(path[0] == s or path[0].startswith(s + "_") for s in Config.model_fields):
                raise ConfigError(
                    f"{name}: not a setting: settings are {ENV_PREFIX}<SECTION>__<KEY>, with two underscores "
                    f"(e.g. {ENV_PREFIX}DEDUP__THRESHOLD)"
                )
            continue
        items.append((path, value))
    items += [(list(path), environ[k]) for k, path in ENV_ALIASES.items() if environ.get(k)]
    for path, raw in items:
        if not path or not all(path):
            continue
        node = out
        for key in path[:-1]:
            node = node.setdefault(key, {})
        # Secrets and URLs stay strings; everything else is parsed as YAML so numbers and lists work.
        if path[-1] in {"api_key", "api_url", "base_url"}:
            node[path[-1]] = raw
            continue
        try:
            node[path[-1]] = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            node[path[-1]] = raw
    return out


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`base` with `over`'s values on top, section by section; an empty section in `over` sets nothing
    (so a malformed section in `base`, e.g. a list, still fails validation instead of becoming defaults)."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and not value and key in merged:
            continue
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(
    path: Path | str | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> Config:
    """Load the effective configuration: defaults < YAML file < environment < overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"{path}: config file not found (create one with `curate init`)")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: top level must be a mapping of sections, got {type(loaded).__name__}")
        data = loaded or {}
    from_env = _env_overrides(dict(os.environ if environ is None else environ))
    data = deep_merge(deep_merge(data, from_env), overrides or {})
    try:
        return Config.model_validate(data)
    except ValidationError as exc:

        def where(loc: tuple[Any, ...]) -> str:
            if _has_path(overrides or {}, loc):
                return "option"
            if _has_path(from_env, loc):
                return f"environment (CURATE_{'__'.join(str(p).upper() for p in loc)})"
            return str(path) if path else "defaults"

        lines = [
            f"{where(err['loc'])}: {'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
            for err in exc.errors()
        ]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from exc


def _has_path(data: Any, loc: tuple[Any, ...]) -> bool:
    """Whether the nested mapping `data` sets the value at `loc` (or a parent of it)."""
    for i, key in enumerate(loc):
        if not isinstance(data, dict) or key not in data:
            return False
        data = data[key]
        if not isinstance(data, dict) and i < len(loc) - 1:
            return True
    return True


MASK = "********"
# A key is a secret when one of its words is one of these (api_key, hf_token, X-Api-Key, Authorization),
# unless it only names where the secret is (api_key_env, token_file).
_SECRET_WORDS = {"key", "apikey", "token", "secret", "password", "passwd", "pwd", "auth", "authorization"}
_SECRET_WORDS |= {"credential", "credentials", "cookie", "bearer"}
_NOT_SECRET_LAST = {"env", "file", "path", "var"}
_URL_PASSWORD = re.compile(r"(?<=://)([^/@:\s]*):([^/@\s]+)@")


def _is_secret_key(name: str) -> bool:
    words = [w for w in re.split(r"[^a-z0-9]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()) if w]
    return bool(words) and words[-1] not in _NOT_SECRET_LAST and any(w in _SECRET_WORDS for w in words)


def _masked(value: Any) -> Any:
    """`value` with every value under a secret-looking key, and every password in a URL, masked."""
    if isinstance(value, dict):
        return {
            k: MASK if _is_secret_key(str(k)) and v not in (None, "") else _masked(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_masked(v) for v in value]
    if isinstance(value, str):
        return _URL_PASSWORD.sub(rf"\1:{MASK}@", value)
    return value


def dump_config(cfg: Config, mask_secrets: bool = True) -> dict[str, Any]:
    """The effective config as plain data; secrets are masked unless asked otherwise: by key name
    anywhere (an `api_key` in `llm.extra` too) and passwords in URLs."""
    data = cfg.model_dump(mode="json")
    if not mask_secrets:
        if cfg.argilla.api_key is not None:
            data["argilla"]["api_key"] = cfg.argilla.api_key.get_secret_value()
        return data
    return _masked(data)


def config_template() -> str:
    """A commented YAML with every option and its default (for `curate init`)."""
    lines = [
        "# curate configuration: every option with its default. Delete what you don't change.",
        "# Environment overrides: CURATE_<SECTION>__<KEY>=value, ARGILLA_API_URL, ARGILLA_API_KEY.",
        "",
    ]

    def walk(model: type[BaseModel], instance: BaseModel, indent: int) -> None:
        pad = "  " * indent
        for name, field in model.model_fields.items():
            value = getattr(instance, name)
            if field.description:
                lines.append(f"{pad}# {field.description}")
            if isinstance(value, BaseModel):
                lines.append(f"{pad}{name}:")
                walk(type(value), value, indent + 1)
                if indent == 0:
                    lines.append("")
                continue
            if isinstance(value, SecretStr):
                value = None
            dumped = yaml.safe_dump({name: _plain(value)}, default_flow_style=True, width=1000).strip()
            lines.append(f"{pad}{dumped[1:-1] if dumped.startswith('{') else dumped}")

    walk(Config, Config(), 0)
    return "\n".join(lines) + "\n"


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
