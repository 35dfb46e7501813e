"""The embedded Argilla: the real argilla-server on SQLite + Redis + our search-engine plugin."""
