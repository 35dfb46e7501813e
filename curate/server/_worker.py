"""Entry point of the embedded server's rq worker (started by `launcher.start`).

argilla-server queues jobs in Redis (record status recomputation after a dataset's distribution changes,
webhooks, Hub imports); without a worker, progress goes stale. The jobs call the search engine, so our
plugin is imported first; rq forks a work horse per job, which inherits the registration.
"""

from __future__ import annotations


def main() -> None:
    from curate.server import _sqlite

    _sqlite.install()
    from argilla_server.jobs.queues import DEFAULT_QUEUE, HIGH_QUEUE, REDIS_CONNECTION
    from rq import Worker

    import curate.server.search.engine  # noqa: F401  (registers the engine named in ARGILLA_SEARCH_ENGINE)

    worker = Worker([HIGH_QUEUE, DEFAULT_QUEUE], connection=REDIS_CONNECTION)
    worker.work(with_scheduler=False)


if __name__ == "__main__":
    main()
