"""`curate server start | stop | status | users add`: the embedded Argilla from the command line."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional  # typer 0.9 (pinned by argilla-server) needs these forms

import typer
from rich.console import Console

from curate.server.launcher import ServerError

console = Console(stderr=True)
out = Console()
app = typer.Typer(
    help="Run the embedded Argilla server (argilla-server + Redis + worker).", no_args_is_help=True
)
users_app = typer.Typer(help="Manage the embedded server's users.", no_args_is_help=True)
app.add_typer(users_app, name="users")

DataDirOpt = typer.Option(
    None, "--data-dir", "-d", help="Data directory (default: server.data_dir or the user data dir)."
)
ConfigOpt = typer.Option(None, "--config", "-c", help="YAML config file (see `curate init`).")


def _cfg(config: Optional[Path]):
    from curate.config import ConfigError, load_config

    try:
        return load_config(config)
    except ConfigError as exc:
        _fail(str(exc))


def _fail(message: str, code: int = 1) -> None:
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


@app.command("start")
def start(
    data_dir: Optional[Path] = DataDirOpt,
    host: Optional[str] = typer.Option(
        None, "--host", help="Interface to bind (default 127.0.0.1: this machine only)."
    ),
    port: Optional[int] = typer.Option(None, "--port", "-p", help="Port (default: first free from 6900)."),
    foreground: bool = typer.Option(False, "--foreground", help="Stay attached; Ctrl-C stops everything."),
    config: Optional[Path] = ConfigOpt,
) -> None:
    """Start Redis, argilla-server (API + web UI) and its worker; print the URL (and credentials once)."""
    from curate.server import launcher, print_credentials

    cfg = _cfg(config)
    data_dir = data_dir or cfg.server.data_dir
    host = host or cfg.server.host
    port = cfg.server.port if port is None else port
    if host not in launcher.LOCAL_HOSTS:
        console.print(
            f"[bold yellow]warning:[/] binding {host}: anyone who can reach this machine can reach the "
            "server (log-ins are still required). Use 127.0.0.1 to keep it local.",
            highlight=False,
        )
    try:
        with console.status("starting the embedded Argilla (Redis, argilla-server, worker)..."):
            info = launcher.start(data_dir, host, port)
    except ServerError as exc:
        _fail(str(exc))
    if not info.started:
        console.print(f"already running at [bold]{info.url}[/] (data: {info.data_dir})", highlight=False)
    else:
        if info.recovered:
            console.print(f"[yellow]restarted after a crash of: {', '.join(info.recovered)}[/]")
        console.print(
            f"[bold green]Argilla is running at[/] [bold]{info.url}[/]  (data: {info.data_dir})",
            highlight=False,
        )
    if info.first_start:
        print_credentials(info, console)
    else:
        console.print(
            f"log in as [bold]{info.username}[/]; password and API key in "
            f"{info.data_dir / 'credentials.json'}",
            highlight=False,
        )
    if foreground:
        _foreground(info.data_dir)


def _foreground(data_dir: Path) -> None:
    from curate.server import launcher

    console.print("running in the foreground: Ctrl-C stops it")
    code = 0
    try:
        while True:
            time.sleep(2)
            current = launcher.status(data_dir)
            if current.crashed:
                for piece in current.crashed:
                    console.print(f"[bold red]{piece.name} died:[/] {piece.detail}", highlight=False)
                code = 1
                break
    except KeyboardInterrupt:
        pass
    finally:
        launcher.stop(data_dir)
        console.print("stopped")
    raise typer.Exit(code)


@app.command("stop")
def stop(data_dir: Optional[Path] = DataDirOpt, config: Optional[Path] = ConfigOpt) -> None:
    """Stop exactly the processes `start` recorded for this data dir."""
    from curate.server import launcher

    data_dir = data_dir or _cfg(config).server.data_dir
    try:
        result = launcher.stop(data_dir)
    except ServerError as exc:
        _fail(str(exc))
    if not result:
        console.print(f"not running (data: {launcher.resolve_data_dir(data_dir)})", highlight=False)
        return
    for name, what in result.items():
        style = "green" if what == "stopped" else "yellow"
        console.print(f"{name}: [{style}]{what}[/]")


@app.command("status")
def status(data_dir: Optional[Path] = DataDirOpt, config: Optional[Path] = ConfigOpt) -> None:
    """URL, health of the server / worker / Redis, and the data dir. Exit code 1 if anything is down."""
    from curate.server import launcher

    data_dir = data_dir or _cfg(config).server.data_dir
    current = launcher.status(data_dir)
    out.print(f"data dir:    {current.data_dir}", highlight=False)
    out.print(f"credentials: {current.credentials_file}", highlight=False)
    if not current.pieces:
        out.print("state:       [yellow]not running[/] (start it with `curate server start`)")
        raise typer.Exit(3)
    out.print(f"url:         {current.url}", highlight=False)
    for piece in current.pieces:
        mark = (
            "[green]ok[/]" if piece.healthy else ("[yellow]unhealthy[/]" if piece.alive else "[red]DOWN[/]")
        )
        out.print(f"{piece.name:<12} {mark}  pid {piece.pid}  {piece.detail}", highlight=False)
    if not current.running:
        out.print(
            "[red]some pieces are down[/]: `curate server start` restarts them; logs in "
            f"{current.data_dir / 'logs'}",
            highlight=False,
        )
        raise typer.Exit(1)


@users_app.command("add")
def users_add(
    username: str = typer.Argument(..., help="Username (letters, digits, - and _)."),
    role: str = typer.Option("annotator", "--role", "-r", help="annotator | admin | owner"),
    workspace: list[str] = typer.Option(
        [], "--workspace", "-w", help="Workspace to join (repeatable; created if missing)."
    ),
    password: Optional[str] = typer.Option(
        None, "--password", help="Password (default: a random one, printed)."
    ),
    data_dir: Optional[Path] = DataDirOpt,
    config: Optional[Path] = ConfigOpt,
) -> None:
    """Create a user on the embedded server and print its password and API key."""
    from curate.server import launcher
    from curate.server.users import add_user

    data_dir = data_dir or _cfg(config).server.data_dir
    info = launcher.running_info(data_dir)
    if info is None:
        _fail(
            f"the embedded server is not running (data: {launcher.resolve_data_dir(data_dir)}); "
            "start it with `curate server start`"
        )
    try:
        user = add_user(info.url, info.api_key, username, role, workspace, password)
    except ServerError as exc:
        _fail(str(exc))
    out.print(
        f"created {user.role} [bold]{user.username}[/]"
        + (f" in {', '.join(user.workspaces)}" if user.workspaces else ""),
        highlight=False,
    )
    # plain echo: rich would wrap the long API key
    typer.echo(f"  password: {user.password}\n  API key:  {user.api_key}\n  log in at {info.url}")
