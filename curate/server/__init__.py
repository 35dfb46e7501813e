"""The embedded Argilla: the real argilla-server on SQLite + Redis + our search-engine plugin.

`ensure_server(cfg)` is what the other commands call: the remote Argilla when `ARGILLA_API_URL` (or
`argilla.api_url`) is set, else the embedded one, started on demand.
"""

from __future__ import annotations

from rich.console import Console

from curate.config import Config, ConfigError
from curate.server.launcher import ServerError, ServerInfo

__all__ = ["ServerError", "ServerInfo", "ensure_server", "print_credentials"]


def print_credentials(info: ServerInfo, console: Console | None = None) -> None:
    """Show the owner's credentials (only after the first start; they are also in credentials.json)."""
    console = console or Console(stderr=True)
    console.print(
        f"[bold]owner account created[/] "
        f"(shown once; also in {info.data_dir / 'credentials.json'}, mode 0600)\n"
        f"  username: [bold]{info.username}[/]\n  password: [bold]{info.password}[/]\n"
        f"  API key:  [bold]{info.api_key}[/]",
        highlight=False,
        soft_wrap=True,
    )


def ensure_server(cfg: Config) -> tuple[str, str]:
    """(api_url, api_key) of the Argilla to use: the configured remote one, else the embedded one."""
    if cfg.argilla.api_url:
        if cfg.argilla.api_key is None or not cfg.argilla.api_key.get_secret_value():
            raise ConfigError(
                f"argilla.api_url is set ({cfg.argilla.api_url}) but no API key: set ARGILLA_API_KEY "
                "(or argilla.api_key) to a key of that server, "
                "or unset ARGILLA_API_URL to use the embedded one"
            )
        return cfg.argilla.api_url.rstrip("/"), cfg.argilla.api_key.get_secret_value()

    from curate.server import launcher

    try:
        info = launcher.start(cfg.server.data_dir, cfg.server.host, cfg.server.port)
    except ServerError as exc:
        raise ConfigError(f"could not start the embedded Argilla: {exc}") from exc
    if info.started:
        console = Console(stderr=True)
        console.print(
            f"started the embedded Argilla at [bold]{info.url}[/] (data: {info.data_dir})", highlight=False
        )
        if info.first_start:
            print_credentials(info, console)
    return info.url, info.api_key
