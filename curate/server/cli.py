"""`curate server ...` (placeholder until the embedded server lands)."""

import typer

app = typer.Typer(help="Run the embedded Argilla server (argilla-server + Redis + worker).", no_args_is_help=True)
