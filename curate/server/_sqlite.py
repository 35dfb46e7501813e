"""SQLite settings for argilla-server's own database, applied in the server and worker processes.

argilla-server opens argilla.db with SQLite's defaults (rollback journal, synchronous=FULL): every commit
fsyncs and a writer blocks the UI's readers. WAL lets the web UI read while records are being logged, and
synchronous=NORMAL is the durability level SQLite recommends with WAL (a power cut may lose the last
commits, never corrupt the file).
"""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.engine import Engine


def _pragmas(dbapi_connection, connection_record):
    if (
        "sqlite" not in type(dbapi_connection).__module__.lower()
        and "sqlite" not in type(dbapi_connection).__name__.lower()
    ):
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def install() -> None:
    """Register the PRAGMAs for every new SQLite connection (call before argilla_server.database)."""
    if not event.contains(Engine, "connect", _pragmas):
        event.listen(Engine, "connect", _pragmas)
