"""`flask --app wsgi worker`: a shorter name for `flask --app wsgi reports worker`, the one
worker process that runs every background job (reports, mail, alerts)."""

from __future__ import annotations

import click
from flask import Flask


def init_app(app: Flask) -> None:
    from billing_app.reports.commands import worker_command

    @app.cli.command("worker")
    @click.option("--workers", default=1, show_default=True, help="Jobs run side by side.")
    @click.pass_context
    def worker(context: click.Context, workers: int) -> None:
        """Run the worker: reports, mail, alerts (the same as `reports worker`)."""
        context.invoke(worker_command, workers=workers)
