"""The `curate` command line: one command per stage, composed by `curate run`.

generate -> dedup -> score -> select -> push -> (humans review in Argilla) -> export
"""

from __future__ import annotations

import contextlib
import json
import sys
import warnings
from pathlib import Path
from typing import Optional

import datasets
import huggingface_hub.utils
import typer
import yaml
from rich.console import Console
from rich.syntax import Syntax

from curate.config import Config, ConfigError, config_template, dump_config, load_config
from curate.console import LOG_FILE, log_path_for, log_to_file
from curate.io import InputError
from curate.server.cli import app as server_app
from curate.stages import StageFn, StageResult

console = Console(stderr=True)
# distilabel's pydantic models trip pydantic's "model_" namespace warning on import: noise for users.
warnings.filterwarnings("ignore", category=UserWarning, module=r"pydantic\..*")
# datasets prints a bar for every tiny save/load; our stages show their own progress instead.
datasets.disable_progress_bars()
# Nor the Hub's and transformers' bars (transformers draws one for every model it loads: the encoder);
# transformers reads this when it is imported, later.
huggingface_hub.utils.disable_progress_bars()
app = typer.Typer(
    name="curate",
    help="Human-in-the-loop curation of synthetic LLM training data (distilabel -> dedup -> Deita -> Argilla).",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)
generate_app = typer.Typer(help="Generate synthetic data with distilabel pipelines.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(generate_app, name="generate")
app.add_typer(server_app, name="server")

ConfigOpt = typer.Option(None, "--config", "-c", help="YAML config file (see `curate init`).", exists=False)


def _load(config: Optional[Path], overrides: dict | None = None) -> Config:
    try:
        return load_config(config, overrides=overrides)
    except ConfigError as exc:
        _fail(str(exc))
        raise  # unreachable


def _fail(message: str, code: int = 1) -> None:
    console.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    raise typer.Exit(code)


def _overrides(**sections: dict) -> dict:
    """Drop unset CLI options so that they don't override the config file."""
    return {name: {k: v for k, v in values.items() if v is not None} for name, values in sections.items()}


def _stage_command(
    fn: StageFn, cfg: Config, input: Path | None, output: Path | None, headline: str, required: bool = True
) -> StageResult | None:
    """A stage's CLI command: read `input`, run the stage function `curate run` runs, write `output`.

    `headline` may name {n} (rows kept), {output} and any split ({removed}, {rejected}) as a count."""
    from curate.io import check_output, read_rows, write_stage

    if (
        output is not None
    ):  # before the work (and before its log file): never minutes of embedding, then a refusal
        _run_stage(lambda: check_output(output))

    def go() -> StageResult:
        ds = read_rows(input) if input is not None or required else None
        result = fn(cfg, ds, source=input)
        if output is not None:
            write_stage(output, result)
        counts = {name: len(split) for name, split in result.splits.items()}
        _print_stats(headline.format(n=result.rows_out, output=output, **counts), result.stats)
        return result

    return _run_stage(go, log=None if output is None else log_path_for(output))


def _run_stage(fn, log: Path | None = None):
    """Run a stage, turning expected errors (bad input, missing model, bad config) into clean exits;
    with `log`, libraries' log lines and warnings go to that file instead of the console."""
    from curate.models import LLMEndpointError, ModelNotFoundError

    try:
        with log_to_file(log) if log is not None else contextlib.nullcontext():
            return fn()
    except (InputError, ConfigError, ModelNotFoundError, LLMEndpointError) as exc:
        _fail(str(exc))
    except RuntimeError as exc:  # a review step's ReviewError (`curate run` ends with the push)
        from curate.stages.review.client import ReviewError

        if not isinstance(exc, ReviewError):
            raise
        _fail(str(exc))


@config_app.command("show")
def config_show(config: Optional[Path] = ConfigOpt) -> None:
    """Print the effective configuration (defaults < YAML < environment), secrets masked."""
    cfg = _load(config)
    text = yaml.safe_dump(dump_config(cfg), sort_keys=False)
    Console().print(Syntax(text, "yaml", theme="ansi_dark", background_color="default"))


@app.command("init")
def init(
    path: Path = typer.Argument(Path("curate.yaml"), help="Where to write the config."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Write a commented curate.yaml with every option and its default."""
    if path.exists() and not force:
        _fail(f"{path} exists; use --force to overwrite it")
    path.write_text(config_template(), encoding="utf-8")
    console.print(f"wrote [bold]{path}[/]")


@generate_app.command("instructions")
def generate_instructions(
    output: Path = typer.Option(..., "--output", "-o", help="Output directory (a datasets DatasetDict)."),
    method: Optional[str] = typer.Option(
        None, "--method", "-m", help="prompt | self-instruct | magpie | evol-instruct"
    ),
    num: Optional[int] = typer.Option(None, "--num", "-n", help="Target number of instructions."),
    seeds: Optional[Path] = typer.Option(None, "--seeds", help="Seed tasks (jsonl with `instruction`)."),
    input: Optional[Path] = typer.Option(
        None, "--input", "-i", help="Instructions to evolve (evol-instruct)."
    ),
    resume: Optional[bool] = typer.Option(
        None, "--resume/--no-resume", help="Resume from distilabel's cache."
    ),
    ray: Optional[bool] = typer.Option(None, "--ray/--no-ray", help="Run on a Ray cluster (RAY_ADDRESS)."),
    config: Optional[Path] = ConfigOpt,
) -> None:
    """Generate instructions: prompt, Self-Instruct, Magpie or EvolInstruct."""
    instr = {
        k: v for k, v in {"method": method, "num_instructions": num, "seeds": seeds}.items() if v is not None
    }
    gen = {k: v for k, v in {"resume": resume, "ray": ray}.items() if v is not None}
    cfg = _load(config, {"generate": gen | {"instructions": instr}})

    from curate.stages import generate

    _stage_command(generate.instructions, cfg, input, output, "{n} instructions -> {output}", required=False)


@generate_app.command("preferences")
def generate_preferences(
    input: Path = typer.Option(
        ..., "--input", "-i", help="Instructions (a curate output, jsonl, parquet, csv)."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Output directory."),
    num_generations: Optional[int] = typer.Option(
        None, "--num-generations", "-g", help="Responses per prompt."
    ),
    evol_quality: Optional[bool] = typer.Option(None, "--evol-quality/--no-evol-quality"),
    resume: Optional[bool] = typer.Option(None, "--resume/--no-resume"),
    ray: Optional[bool] = typer.Option(None, "--ray/--no-ray"),
    config: Optional[Path] = ConfigOpt,
) -> None:
    """Generate N responses per instruction, optionally EvolQuality, and judge them with UltraFeedback."""
    prefs = {
        k: v
        for k, v in {"num_generations": num_generations, "evol_quality": evol_quality}.items()
        if v is not None
    }
    gen = {k: v for k, v in {"resume": resume, "ray": ray}.items() if v is not None}
    cfg = _load(config, {"generate": gen | {"preferences": prefs}})

    from curate.stages import generate

    _stage_command(generate.preferences, cfg, input, output, "{n} preference rows -> {output}")


@app.command("dedup")
def dedup(
    input: Path = typer.Option(..., "--input", "-i"),
    output: Path = typer.Option(..., "--output", "-o"),
    threshold: Optional[float] = typer.Option(None, "--threshold", "-t", help="Cosine similarity threshold."),
    column: Optional[str] = typer.Option(
        None, "--column", help="Text column compared (default: the row's prompt)."
    ),
    include_response: Optional[bool] = typer.Option(None, "--include-response/--instruction-only"),
    keep: Optional[str] = typer.Option(None, "--keep", help="auto | deita | rating | first"),
    backend: Optional[str] = typer.Option(None, "--backend", help="auto | exact | faiss"),
    dry_run: Optional[bool] = typer.Option(None, "--dry-run/--apply", help="Only annotate decisions."),
    against: list[str] = typer.Option(
        [],
        "--against",
        help="A reference the rows must not duplicate (run/stage dir, export, file, argilla:NAME).",
    ),
    decontaminate: list[Path] = typer.Option(
        [], "--decontaminate", help="A benchmark prompt file: rows containing one of its prompts are removed."
    ),
    ngram: Optional[int] = typer.Option(
        None, "--ngram", help="Word n-gram of the decontamination rule (13)."
    ),
    config: Optional[Path] = ConfigOpt,
) -> None:
    """Remove exact and semantic near-duplicates (each cluster keeps its best row), duplicates of references
    and benchmark contamination, explaining every removal."""
    opts = {
        "threshold": threshold,
        "column": column,
        "include_response": include_response,
        "keep": keep,
        "backend": backend,
        "dry_run": dry_run,
        "against": against or None,
        "decontaminate": decontaminate or None,
        "ngram": ngram,
    }
    cfg = _load(config, _overrides(dedup=opts))
    from curate.stages import dedup as stage

    _stage_command(stage.run, cfg, input, output, "kept {n}, removed {removed} -> {output}")


@app.command("score")
def score(
    input: Path = typer.Option(..., "--input", "-i"),
    output: Path = typer.Option(..., "--output", "-o"),
    method: Optional[str] = typer.Option(None, "--method", help="auto | logits | text"),
    ray: Optional[bool] = typer.Option(
        None, "--ray/--no-ray", help="Score on a Ray cluster (RAY_ADDRESS), one scorer per node."
    ),
    config: Optional[Path] = ConfigOpt,
) -> None:
    """Deita complexity and quality scores (expected value over '1'..'6' from the model's logits)."""
    cfg = _load(config, _overrides(score={"method": method}, generate={"ray": ray}))

    from curate.stages import score as stage

    _stage_command(stage.run, cfg, input, output, "scored {n} rows -> {output}")


@app.command("select")
def select(
    input: Path = typer.Option(..., "--input", "-i"),
    output: Path = typer.Option(..., "--output", "-o"),
    budget: Optional[int] = typer.Option(None, "--budget", "-n", help="How many rows to keep."),
    diversity_threshold: Optional[float] = typer.Option(
        None, "--diversity-threshold", help="Max cosine similarity to an already selected row."
    ),
    config: Optional[Path] = ConfigOpt,
) -> None:
    """Deita's diversity-aware selection: best score first, skip rows too similar to those kept."""
    cfg = _load(config, _overrides(select={"budget": budget, "diversity_threshold": diversity_threshold}))

    from curate.stages import select as stage

    _stage_command(stage.run, cfg, input, output, "selected {n}, rejected {rejected} -> {output}")


DatasetOpt = typer.Option(None, "--dataset", "-d", help="Argilla dataset name (default: argilla.dataset).")
WorkspaceOpt = typer.Option(None, "--workspace", "-w", help="Argilla workspace (default: argilla.workspace).")


def _review_stage(fn, log: Path | None = None):
    """Like _run_stage, plus review errors (server refusal, settings clash) as clean exits."""
    from curate.stages.review.client import ReviewError

    def go():
        try:
            return fn()
        except ReviewError as exc:
            _fail(str(exc))

    return _run_stage(go, log)


@app.command("push")
def push(
    input: Path = typer.Option(
        ..., "--input", "-i", help="Preference rows: a curate output, jsonl, parquet, csv."
    ),
    dataset: Optional[str] = DatasetOpt,
    workspace: Optional[str] = WorkspaceOpt,
    min_submitted: Optional[int] = typer.Option(None, "--min-submitted", help="Annotators per record."),
    update_settings: Optional[bool] = typer.Option(
        None,
        "--update-settings/--keep-settings",
        help="Apply metadata/vector/guidelines changes to an existing dataset.",
    ),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the recorded A/B order."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Records per upsert (max 500)."),
    vectors: Optional[bool] = typer.Option(None, "--vectors/--no-vectors", help="Add the prompt embedding."),
    quarantine: Optional[Path] = typer.Option(None, "--quarantine", help="Where rejected rows go (jsonl)."),
    round: Optional[int] = typer.Option(
        None, "--round", help="Review round of the new records (default: the next after the dataset's)."
    ),
    config: Optional[Path] = ConfigOpt,
) -> None:
    """Push pairs to Argilla for human review (idempotent: re-runs skip records already there)."""
    cfg = _load(
        config,
        _overrides(
            argilla={"dataset": dataset, "workspace": workspace},
            review={
                "min_submitted": min_submitted,
                "update_settings": update_settings,
                "seed": seed,
                "batch_size": batch_size,
                "vectors": vectors,
                "quarantine": quarantine,
                "round": round,
            },
        ),
    )

    from curate.stages.review import push as stage

    def go() -> None:
        from curate.io import read_records

        # each row as its file has it: a row of the wrong types is quarantined, not the whole file refused
        result = stage.run(cfg, read_records(input), source=input)
        st = result.stats
        _print_stats(f"{result.rows_out} records pushed", st)
        console.print(
            f"{st['created']} new"
            + (f" (round {st['round']})" if st["created"] else "")
            + f", {st['already_present']} already there, {st['rejected']} quarantined -> "
            f"{cfg.argilla.workspace}/{cfg.argilla.dataset} at {st['api_url']}"
            + (f" (quarantine: {st['quarantine']})" if st.get("quarantine") else ""),
            highlight=False,
            markup=False,
        )

    _review_stage(go)


@app.command("status")
def status(
    dataset: Optional[str] = DatasetOpt,
    workspace: Optional[str] = WorkspaceOpt,
    as_json: bool = typer.Option(False, "--json", help="Print the full status as JSON."),
    config: Optional[Path] = ConfigOpt,
) -> None:
    """Review progress: pending/completed records, responses per annotator, disagreements, agreement."""
    cfg = _load(config, _overrides(argilla={"dataset": dataset, "workspace": workspace}))

    def go():
        from rich.table import Table

        from curate.stages.review.status import review_status

        st = review_status(cfg, cfg.argilla.dataset, cfg.argilla.workspace)
        if as_json:
            print(json.dumps(st, indent=2, default=str))
            return
        out = Console()
        out.print(
            f"[bold]{st['workspace']}/{st['dataset']}[/] at {st['api_url']} "
            f"(min_submitted={st['min_submitted']})"
        )
        out.print(
            f"records: {st['records']}  completed: [green]{st['completed']}[/]  pending: {st['pending']}  "
            f"with disagreement: [yellow]{st['records_with_disagreement']}[/]"
        )
        table = Table(title="responses per annotator")
        for col in ("annotator", "submitted", "discarded", "draft"):
            table.add_column(col)
        for user, counts in st["annotators"].items():
            table.add_row(user, *(str(counts.get(k, 0)) for k in ("submitted", "discarded", "draft")))
        out.print(table)
        agr = st["agreement"]
        alphas = ", ".join(
            f"{q}={a['alpha'] if a['alpha'] is not None else 'n/a'}"
            for q, a in agr["krippendorff_alpha"].items()
        )
        out.print(f"Krippendorff alpha: {alphas}")
        out.print(
            f"percent agreement: {agr['percent_agreement']['pairwise']}  "
            f"A chosen share: {agr['position_bias']['a_share']}"
        )
        for agent, j in agr["judge_vs_human"].items():
            out.print(f"judge {agent} vs humans: {j['agreement']} over {j['records']} records")
        for level, c in (st.get("calibration") or {}).get("levels", {}).items():
            out.print(
                f"calibration {level}: {c['agree']}/{c['votes']} = {c['agreement']} "
                f"[{c['low']}, {c['high']}] (90%, for its {c['unreviewed']} unreviewed)",
                markup=False,
                highlight=False,
            )

    _review_stage(go)


@app.command("export")
def export(
    output: Path = typer.Option(
        ..., "--output", "-o", help="Output directory (DatasetDict + README.md card)."
    ),
    dataset: Optional[str] = DatasetOpt,
    workspace: Optional[str] = WorkspaceOpt,
    to_hub: Optional[str] = typer.Option(
        None, "--to-hub", help="Also push to this Hub dataset repo (HF_TOKEN)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing Hub repo's data."),
    policy: Optional[str] = typer.Option(None, "--policy", help="majority | unanimous"),
    min_votes: Optional[int] = typer.Option(None, "--min-votes", help="Submitted votes a record needs."),
    min_agreement: Optional[float] = typer.Option(None, "--min-agreement", help="Winning vote share needed."),
    include_unreviewed: Optional[bool] = typer.Option(
        None,
        "--include-unreviewed/--reviewed-only",
        help="Use the judge for records nobody reviewed (marked).",
    ),
    use_corrections: Optional[bool] = typer.Option(
        None, "--use-corrections/--ignore-corrections", help="A reviewer's correction replaces `chosen`."
    ),
    auto_accept: Optional[bool] = typer.Option(
        None,
        "--auto-accept/--no-auto-accept",
        help="Export unreviewed pairs with the judge's decision where the calibration sample shows the "
        "judge's confidence level reaches --auto-accept-min-agreement (lower bound of the 90% interval).",
    ),
    auto_accept_min_agreement: Optional[float] = typer.Option(
        None,
        "--auto-accept-min-agreement",
        help="Agreement with reviewers a judge confidence level needs for --auto-accept (0-1).",
    ),
    license: Optional[str] = typer.Option(None, "--license", help="Licence in the dataset card."),
    rounds: Optional[list[int]] = typer.Option(
        None, "--round", help="Export only this review round (repeatable; default: every round)."
    ),
    config: Optional[Path] = ConfigOpt,
) -> None:
    """Export human-reviewed preference pairs (TRL format, SFT, all responses) with a dataset card."""
    cfg = _load(
        config,
        _overrides(
            argilla={"dataset": dataset, "workspace": workspace},
            export={
                "policy": policy,
                "min_votes": min_votes,
                "min_agreement": min_agreement,
                "include_unreviewed": include_unreviewed,
                "use_corrections": use_corrections,
                "auto_accept": auto_accept,
                "auto_accept_min_agreement": auto_accept_min_agreement,
                "license": license,
                "rounds": list(rounds) if rounds else None,
            },
        ),
    )

    def go():
        from curate.stages.export import export as run

        summary = run(
            cfg, cfg.argilla.dataset, cfg.argilla.workspace, output, to_hub=to_hub, overwrite=overwrite
        )
        acc = summary["accounting"]
        if summary.get("empty_because"):
            console.print(f"[yellow]warning:[/] {summary['empty_because']}")
        _print_stats(
            f"{summary['pairs']} pairs from {acc['records']['total']} records -> {output}"
            + (f" and {summary['hub_url']}" if summary.get("hub_url") else ""),
            {"accounting": acc, "agreement": summary["agreement"]},
        )
        per_round = summary.get("rounds") or {}
        if len(per_round) > 1 or summary.get("rounds_selected"):
            console.print(
                "per round: "
                + "; ".join(
                    f"{k}: {c['pairs']} pairs of {c['records']} records" for k, c in per_round.items()
                ),
                highlight=False,
            )
        auto = summary.get("auto_accept")
        if auto is not None:
            est = auto["export"]
            console.print(
                f"decided by humans: {acc['records']['exported_by_humans']}, by the judge: "
                f"{acc['records']['exported_by_judge']}; estimated agreement of the export "
                f"{est['agreement']} ({est['low']} - {est['high']})",
                highlight=False,
            )
            for level, more in auto["needed"].items():
                console.print(
                    f"[yellow]not auto-accepted:[/] level {level}: "
                    + (
                        f"{more} more calibration votes needed for {auto['target']}"
                        if more is not None
                        else f"its agreement is not above {auto['target']}"
                    ),
                    highlight=False,
                )

    _review_stage(go, log=log_path_for(output))


@app.command("plan")
def plan_cmd(
    dataset: Optional[str] = DatasetOpt,
    workspace: Optional[str] = WorkspaceOpt,
    config: Optional[Path] = ConfigOpt,
) -> None:
    """Re-plan review_priority from the calibration so far (the calibration sample keeps its place)."""
    cfg = _load(config, _overrides(argilla={"dataset": dataset, "workspace": workspace}))

    def go():
        from curate.stages.review.replan import replan

        out = replan(cfg, cfg.argilla.dataset, cfg.argilla.workspace)
        console.print(
            f"{out['changed']} of {out['records']} records re-prioritised; level estimates {out['estimates']}",
            highlight=False,
            markup=False,
        )

    _review_stage(go)


@app.command("calibrate")
def calibrate(
    dataset: Optional[str] = DatasetOpt,
    workspace: Optional[str] = WorkspaceOpt,
    target: Optional[float] = typer.Option(
        None, "--target", help="Agreement a level should reach (default export.auto_accept_min_agreement)."
    ),
    output: Path = typer.Option(
        Path("calibration.json"), "--output", "-o", help="Where the report is written (JSON)."
    ),
    config: Optional[Path] = ConfigOpt,
) -> None:
    """The judge's agreement with reviewers per confidence level, from the calibration sample's votes."""
    cfg = _load(
        config,
        _overrides(
            argilla={"dataset": dataset, "workspace": workspace},
            export={"auto_accept_min_agreement": target},
        ),
    )

    def go():
        from curate.io import write_json
        from curate.stages.review import client as rc
        from curate.stages.review.calibration import calibration_report
        from curate.stages.review.pull import pull

        client = rc.connect(cfg)
        records = pull(client, rc.require_dataset(client, cfg.argilla.dataset, cfg.argilla.workspace))
        ex = cfg.export
        report = calibration_report(records, ex, cfg.argilla.dataset, ex.auto_accept_min_agreement)
        write_json(output, report)
        console.print(
            f"calibration sample: {report['sample_records']} records, {report['sample_decided']} with a "
            f"human decision; {report['interval']}; target {report['target']}",
            highlight=False,
        )
        for level, s in report["levels"].items():
            more = s["votes_needed"]
            console.print(
                f"  {level:<8} {s['agree']}/{s['votes']} = {s['agreement']:.3f} "
                f"[{s['low']:.3f}, {s['high']:.3f}]  "
                + (
                    "reaches the target" if more == 0 else f"{more} more votes" if more else "cannot reach it"
                ),
                highlight=False,
                markup=False,
            )
        console.print(f"-> {output}", highlight=False)

    _review_stage(go)


@app.command("run")
def run(
    config: Optional[Path] = ConfigOpt,
    name: Optional[str] = typer.Option(None, "--name", help="Run name: runs/<name>/ (default from config)."),
    force: list[str] = typer.Option([], "--force", help="Redo this stage (and so everything after it)."),
    until: Optional[str] = typer.Option(None, "--until", help="Stop after this stage."),
    report: bool = typer.Option(True, "--report/--no-report", help="Write report.html at the end."),
    input: Optional[Path] = typer.Option(
        None,
        "--input",
        "-i",
        help="Start from your own rows (instructions, or pairs: generation is skipped).",
    ),
) -> None:
    """The whole loop in one run directory, in the order that saves work: instructions, dedup, complexity,
    the instruction budget, responses + judge, quality, the review budget, push; then review in Argilla."""
    from rich.table import Table

    from curate.run import STAGES, run_stages, stage_named

    cfg = _load(config, _overrides(run={"name": name, "input": input}))
    run_dir = cfg.run.runs_dir / cfg.run.name
    try:
        for f in [*force, *([until] if until else [])]:
            stage_named(f)
    except ValueError as exc:
        _fail(str(exc))
    console.rule(f"[bold]curate run[/] {run_dir}")

    def event(kind: str, stage, entry: dict) -> None:
        if kind == "skip":
            console.print(f"[dim]skip[/]  {stage.name}: unchanged since {entry.get('finished')}")
        elif kind == "start":
            console.print(f"[bold cyan]run[/]   {stage.name} ...")
        else:
            console.print(f"[green]done[/]  {stage.name}: {entry['rows_out']} rows in {entry['seconds']}s")

    log = run_dir / LOG_FILE
    manifest = _run_stage(
        lambda: run_stages(cfg, run_dir, force=set(force), until=until, on_event=event), log=log
    )
    table = Table(title=f"run {cfg.run.name}")
    for col in ("stage", "rows in", "rows out", "seconds", "output"):
        table.add_column(col)
    for stage in STAGES:
        e = manifest["stages"].get(stage.name)
        if e:
            table.add_row(
                stage.name,
                str(e.get("rows_in") or ""),
                str(e.get("rows_out")),
                str(e.get("seconds")),
                e.get("output", ""),
            )
    Console().print(table)
    if report:
        from curate.report import write_report

        console.print(f"report: [bold]{write_report(run_dir)}[/]")
    console.print(f"log: {log} (every library's log lines and warnings)")
    if stage_named("push").name in manifest["stages"]:
        _print_review_instructions(cfg, run_dir)


def _print_review_instructions(cfg: Config, run_dir: Path) -> None:
    """Where to review, how to log in, and what to run next."""
    from curate.io import load_stats
    from curate.run import EXPORT_DIR, stage_named

    push = load_stats(run_dir / stage_named("push").name)
    url = push.get("url") or cfg.argilla.api_url
    lines = [
        f"Review the records in Argilla: [bold]{url or '(see `curate server status`)'}[/]",
        f"dataset [bold]{cfg.argilla.dataset}[/] in workspace [bold]{cfg.argilla.workspace}[/]",
    ]
    if cfg.argilla.api_url is None:
        from curate.server.launcher import start

        info = start(data_dir=cfg.server.data_dir, host=cfg.server.host, port=cfg.server.port)
        # the password was shown once, when the server first started; after that it lives in the file
        lines.append(
            f"log in as [bold]{info.username}[/]: password and API key in "
            f"{info.data_dir / 'credentials.json'}"
        )
        lines.append(
            "add annotators: curate server users add NAME --role annotator "
            f"--workspace {cfg.argilla.workspace}"
        )
    lines.append(
        f"then export: curate export --dataset {cfg.argilla.dataset} --output {run_dir / EXPORT_DIR}"
    )
    from rich.panel import Panel

    Console().print(Panel("\n".join(lines), title="next: human review", expand=False))


@app.command("report")
def report(
    run_dir: Optional[Path] = typer.Argument(None, help="A run directory (runs/<name>)."),
    export_dir: Optional[Path] = typer.Option(None, "--export", help="An export directory (after review)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Where to write the HTML."),
) -> None:
    """Write a self-contained HTML report (funnel, scores, clusters, ratings, agreement)."""
    from curate.report import write_report

    if run_dir is None and export_dir is None:
        _fail("give a run directory and/or --export DIR")
    for path in (run_dir, export_dir):
        if path is not None and not path.is_dir():
            _fail(f"{path}: no such directory")
    from curate.run import EXPORT_DIR

    if export_dir is None and run_dir is not None and (run_dir / EXPORT_DIR).is_dir():
        export_dir = run_dir / EXPORT_DIR
    written = _run_stage(lambda: write_report(run_dir, export_dir, output))  # a malformed input fails clean
    console.print(f"report: [bold]{written}[/]")


def _print_stats(headline: str, stats: dict) -> None:
    console.print(f"[bold green]done:[/] {headline}")
    if stats:
        console.print_json(json.dumps(stats, default=str))


def main() -> None:  # pragma: no cover - console script entry
    try:
        app()
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        sys.exit(130)
