"""The notifications' jobs on the worker (the one worker process runs every background job):
draining the outbox, building statements, and checking alerts after each import (the sweep
takes the checks imports asked for), after the settings are saved, and daily.

The drain runs when something is queued (the web side enqueues it after its commit), again
when a retry or a lapsed claim falls due (scheduled at that moment, so retries begin within
seconds), every minute as a sweep, and when a worker starts."""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass

from flask import Flask, current_app
from huey import crontab
from huey.api import Huey, TaskWrapper

from billing_app.extensions import db
from billing_app.notifications import adapters, alerts, outbox, statements

log = logging.getLogger("billing_app.notifications")

DAILY_ALERTS = crontab(minute="0", hour="6")
SWEEP = crontab(minute="*")
WAKE_KEY = "notifications-drain-wake"


@dataclass(frozen=True, slots=True)
class Tasks:
    drain: TaskWrapper
    build_statement: TaskWrapper
    check_alerts: TaskWrapper
    sweep: TaskWrapper


def register(queue: Huey, app: Flask) -> dict[str, TaskWrapper]:
    """Add the notifications' tasks and schedule to the worker's queue."""

    @queue.task(name="notifications_drain")
    def drain():
        """Send the outbox's due messages (on the worker)."""
        with app.app_context():
            try:
                drain_now(app)
            finally:
                db.session.remove()

    @queue.task(name="notifications_statement", retries=20, retry_delay=15)
    def build_statement(invoice_id: str):
        """Fetch a finalized invoice from Stripe and queue its statement."""
        with app.app_context():
            try:
                if statements.build(invoice_id, adapters.today_utc()):
                    drain()
            finally:
                db.session.remove()

    @queue.task(name="notifications_alerts")
    def check_alerts(organisation_id: int | None = None):
        """Check alerts for one organisation (after an import) or all of them."""
        with app.app_context():
            try:
                today = adapters.today_utc()
                if organisation_id is None:
                    found = alerts.check_all(today)
                else:
                    found = alerts.check(organisation_id, today)
                if found:
                    drain()
            finally:
                db.session.remove()

    @queue.periodic_task(DAILY_ALERTS, name="notifications_daily_alerts")
    def daily_alerts():
        """The daily alert check of every organisation."""
        check_alerts()

    @queue.periodic_task(SWEEP, name="notifications_sweep")
    def sweep():
        """Statements whose build did not finish, and anything due in the outbox."""
        with app.app_context():
            try:
                for invoice_id in statements.pending():
                    build_statement(invoice_id)
                if alerts.run_requested_checks(adapters.today_utc(), take_request):
                    drain()
            finally:
                db.session.remove()
        drain()

    def take_request(organisation_id: int) -> bool:
        return queue.get(_request_key(organisation_id)) is not None

    @queue.on_startup(name="notifications_startup")
    def on_startup():
        drain()

    app.extensions["notifications_tasks"] = Tasks(drain, build_statement, check_alerts, sweep)
    return {task.name: task for task in (drain, build_statement, check_alerts, sweep)}


def drain_now(app: Flask) -> outbox.DrainResult:
    """Drain the outbox here and now, and schedule the next drain if anything waits."""
    config = app.config
    result = outbox.drain(
        config.get("SMTP_URL"),
        lease=config["MAIL_LEASE_SECONDS"],
        timeout=config["SMTP_TIMEOUT"],
    )
    if result.sent or result.failed or result.retrying:
        log.info(
            "outbox: %d sent, %d failed for good, %d to retry",
            result.sent,
            result.failed,
            result.retrying,
        )
    if result.next_wake is not None:
        _wake_at(app, result.next_wake)
    return result


def _wake_at(app: Flask, moment: dt.datetime) -> None:
    """Schedule one drain at `moment` (not another if one is scheduled as early already)."""
    queue = adapters.queue(app)
    at = moment.timestamp() + 0.2
    planned = queue.get(WAKE_KEY, peek=True)
    if planned is not None and time.time() < planned <= at:
        return
    queue.put(WAKE_KEY, at)
    tasks(app).drain.schedule(delay=max(0.0, at - time.time()))


def tasks(app: Flask | None = None) -> Tasks:
    """The app's notification tasks (registered with its queue)."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    adapters.queue(app)
    return app.extensions["notifications_tasks"]


def kick() -> None:
    """Have the worker drain the outbox soon: called after a commit that queued mail."""
    tasks().drain()


def check_alerts_soon(organisation_id: int) -> None:
    """Have the worker check the organisation's alerts (after the caller's commit)."""
    tasks().check_alerts(organisation_id)


def _request_key(organisation_id: int) -> str:
    return f"notifications-alert-check:{organisation_id}"


def after_import(organisation_id: int) -> None:
    """Every import runs the alert check (after its commit), even one that changed nothing:
    it leaves a request in the queue's store, which the worker's sweep (every minute) takes
    and runs; many imports in a minute make one check. (Neither a database write, so an import
    that changes nothing writes nothing, nor a task, so the queue holds only real work.)"""
    adapters.queue_store(current_app).put(_request_key(organisation_id), time.time())


def after_invoice_finalized(invoice_id: str) -> None:
    tasks().build_statement(invoice_id)
