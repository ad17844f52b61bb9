"""The report commands: `flask --app wsgi reports worker`."""

from __future__ import annotations

import logging

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from billing_app.reports import worker
from billing_app.reports.queue import add_tasks, jobs

reports_cli = AppGroup("reports", help="Usage reports.")


@reports_cli.command("worker")
@click.option("--workers", default=1, show_default=True, help="Builds run side by side.")
def worker_command(workers: int) -> None:
    """Run the worker that builds usage reports, and the scheduled builds of closed months
    (first removing the temporary files of builds whose worker died), until interrupted
    (Ctrl-C lets running builds finish; SIGTERM stops at once)."""
    huey_log = logging.getLogger("huey")
    if not huey_log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        huey_log.addHandler(handler)
        huey_log.setLevel(logging.INFO)
    queue = jobs().queue
    worker.sweep_scratch()  # what the builds of a worker that died left
    click.echo(f"report worker: queue {queue.name!r} on {_where(current_app.config['QUEUE_URL'])}")
    queue.create_consumer(workers=workers, worker_type="thread", periodic=True).run()


def _where(url: str) -> str:
    """The queue's address without a password."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"


def init_app(app: Flask) -> None:
    """Register the reports' tasks with the job queue, and the `reports` commands."""
    add_tasks(app, worker.register)
    app.cli.add_command(reports_cli)
