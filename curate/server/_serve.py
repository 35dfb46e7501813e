"""Entry point of the embedded server process (started by `launcher.start`, never by hand).

Order matters: our search-engine plugin registers itself before the app exists, the SQLite schema is
migrated, the owner from the credentials file is created if missing, then uvicorn serves the real
argilla-server app (API + bundled web UI). The environment (ARGILLA_*) comes from the launcher.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

LOG_LINE_MAX = 1000  # a rejected request is logged with its input: a 2 MB text would go in whole


def cut_lines(text: str, limit: int = LOG_LINE_MAX) -> str:
    """`text` with every line longer than `limit` cut, saying how much was left out."""
    return "\n".join(
        line if len(line) <= limit else f"{line[:limit]} ... [{len(line) - limit} characters cut]"
        for line in text.split("\n")
    )


def cut_formatter(inner: str = "logging.Formatter", **kwargs: Any) -> logging.Formatter:
    """A formatter of class `inner` (a dotted name) whose records have their long lines cut."""
    module, _, name = inner.rpartition(".")
    base = getattr(__import__(module, fromlist=[name]), name)

    class Cut(base):
        def format(self, record: logging.LogRecord) -> str:
            return cut_lines(super().format(record))

    return Cut(**kwargs)


def install_logging() -> dict[str, Any]:
    """Root handler (argilla-server's loggers propagate to it) and uvicorn's log config, both cutting
    long lines; call after the migrations (alembic's env.py replaces the root handlers with its own)."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(cut_formatter(fmt="%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(handlers=[handler], level=logging.WARNING, force=True)
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    for formatter in config["formatters"].values():
        formatter["inner"] = formatter.pop("()", "logging.Formatter")
        formatter["()"] = cut_formatter
    return config


def migrate() -> None:
    """Bring argilla.db to the installed argilla-server's schema (first start and after upgrades).

    argilla-server's own `database migrate` command is a typer 0.9 CLI that breaks with click >= 8.2, so we
    call alembic's Python API with the server's alembic.ini: the same migrations, no CLI involved.
    """
    from alembic import command
    from alembic.config import Config
    from argilla_server.database import ALEMBIC_CONFIG_FILE

    command.upgrade(Config(ALEMBIC_CONFIG_FILE), "head")


async def ensure_owner(credentials: Path) -> None:
    """Create the owner recorded in the credentials file, once (its password and API key are random)."""
    from argilla_server.contexts import accounts
    from argilla_server.database import AsyncSessionLocal, async_engine
    from argilla_server.models import User, UserRole

    creds = json.loads(credentials.read_text(encoding="utf-8"))
    try:
        async with AsyncSessionLocal() as db:
            if await accounts.get_user_by_username(db, creds["username"]) is None:
                await User.create(
                    db,
                    first_name=creds["username"],
                    username=creds["username"],
                    role=UserRole.owner,
                    password_hash=accounts.hash_password(creds["password"]),
                    api_key=creds["api_key"],
                )
    finally:
        # The pool belongs to this event loop; uvicorn runs its own.
        await async_engine.dispose()


async def reindex_if_needed() -> list[str]:
    """Rebuild the search index of published datasets it doesn't hold completely (search.sqlite3 deleted,
    an argilla.db from elsewhere, a crash between a database commit and the index write)."""
    from argilla_server.cli.search_engine.reindex import Reindexer
    from argilla_server.database import AsyncSessionLocal, async_engine
    from argilla_server.enums import DatasetStatus
    from argilla_server.models import Dataset, Record
    from sqlalchemy import func, select

    from curate.server.search.engine import SQLiteSearchEngine
    from curate.server.search.schema import connect

    conn = connect()
    indexed = dict(
        conn.execute(
            "SELECT d.id, (SELECT COUNT(*) FROM records r WHERE r.ds = d.ds) FROM datasets d"
        ).fetchall()
    )
    engine, rebuilt = SQLiteSearchEngine(), []
    try:
        async with AsyncSessionLocal() as db:
            counts = (
                await db.execute(
                    select(Dataset.id, Dataset.name, func.count(Record.id))
                    .outerjoin(Record, Record.dataset_id == Dataset.id)
                    .where(Dataset.status == DatasetStatus.ready)
                    .group_by(Dataset.id)
                )
            ).all()
            for dataset_id, name, n in counts:
                if indexed.get(str(dataset_id)) == n:
                    continue
                dataset = await Reindexer.reindex_dataset(db, engine, dataset_id)
                async for _ in Reindexer.reindex_dataset_records(db, engine, dataset):
                    pass
                rebuilt.append(f"{name} ({n} records)")
    finally:
        await async_engine.dispose()
    return rebuilt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--credentials", type=Path, required=True)
    args = parser.parse_args()

    # The server copies its static UI into a fresh temp dir at each start: keep those under the data dir.
    tmp = os.environ.get("TMPDIR")
    if tmp and Path(tmp).name == "tmp":
        shutil.rmtree(tmp, ignore_errors=True)
        Path(tmp).mkdir(parents=True, exist_ok=True)

    from curate.server import _sqlite

    _sqlite.install()
    import curate.server.search.engine  # noqa: F401  (registers the engine named in ARGILLA_SEARCH_ENGINE)

    migrate()
    asyncio.run(ensure_owner(args.credentials))
    rebuilt = asyncio.run(reindex_if_needed())
    if rebuilt:
        print(f"search index rebuilt for: {', '.join(rebuilt)}", flush=True)

    log_config = install_logging()
    import uvicorn
    from argilla_server import app

    uvicorn.run(
        app, host=args.host, port=args.port, access_log=False, log_level="info", log_config=log_config
    )


if __name__ == "__main__":
    main()
