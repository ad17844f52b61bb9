"""Building reports on a job queue, in a worker process separate from the web servers.

The queue is Huey's: a file of its SQLite storage by default (`QUEUE_URL` unset; `make run`
needs no server), Redis when `QUEUE_URL` is a Redis URL (production: every app server and
worker share it). The worker is `flask --app wsgi reports worker` (`commands`).

A request for a report (`requests.request_report`) answers at once with the kept file when there is
one (see `store`). Otherwise it claims the build of that report in the queue's store
(`put_if_empty`, atomic on both storages: however many members ask, one build per month and
data is queued) and enqueues it, then waits a few seconds (`REPORT_WAIT`) for it, so that
small reports still arrive on the first click; after that it answers with the progress the
worker records (sheets written out of total), and the member's browser asks again.

The claim records the build's state: queued, building (with progress), or failed (with the
reason, shown until the member retries). A build that is done leaves the file and no record.
While it builds, the worker records its progress every `HEARTBEAT` seconds from a thread of
its own, whatever the build is doing: that record is the build's heartbeat. A build whose
heartbeat is older than the lease (`REPORT_LEASE`, 30 s) has lost its worker (killed, or its
machine gone) and is taken over by the next request, or by the next `retry`; a claim still
queued after `STALE_AFTER` (its task was lost before a worker started it) likewise, and with
`retry` after the lease. The build the old claim enqueued, should it ever run, finds the
claim is not its own and stops; the build that takes over removes the temporary files of
the one it replaces.

A build's temporary files (XlsxWriter's, and the workbook until it is complete) live in a
folder of its own under `REPORT_DIR` (`store.ReportStore.scratch`), removed when the build
ends; what a killed worker left there is swept when a worker starts and on schedule.

The worker (`worker`) registers its tasks with the queue (`add_tasks`, as every feature with
background jobs does): it builds each report; a periodic task builds the reports of the month
that closed last for every organisation, ahead of the first click, and removes kept files no
request can be answered with any more.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

from flask import Flask, current_app
from huey import RedisHuey, SqliteHuey
from huey.api import Huey, TaskWrapper

from billing_app.config import QUEUE_SCHEMES
from billing_app.reports.store import ReportKey, ReportStore

log = logging.getLogger("billing_app.reports")


STALE_AFTER = 10 * 60
"""Seconds after which a claim still queued is taken for one whose task was lost."""


LEASE = 30.0
"""The default of `REPORT_LEASE`: seconds after which a build whose heartbeat has stopped is
taken for one whose worker died."""


POLL = 0.1


HEARTBEAT = 0.5
"""Seconds between the progress records of a build: its heartbeat."""


CHUNK_USERS = 50_000
"""Users read from the database at a time while the tenant sheets are written."""


QUEUED, BUILDING, FAILED, READY = "queued", "building", "failed", "ready"


@dataclass(frozen=True, slots=True)
class ReportStatus:
    """Where a month's report stands: ready (with the kept file opened for reading), queued,
    building (sheets written out of total) or failed (with the reason)."""

    key: ReportKey
    state: str
    written: int = 0
    total: int = 0
    message: str | None = None
    file: BinaryIO | None = None

    @property
    def ready(self) -> bool:
        return self.state == READY


@dataclass(frozen=True, slots=True)
class Jobs:
    """An app's job queue, its tasks by name, and its kept reports."""

    queue: Huey
    tasks: Mapping[str, TaskWrapper]
    store: ReportStore


BUILD_REPORT = "build_report"
"""The task that builds one report (`worker.register`), which a claim enqueues."""

QUEUE_TASKS = "queue_tasks"
"""Where each feature lists the function that adds its tasks to the one queue (reports, mail,
alerts), so that one worker runs every job without this module importing any of them."""

Register = Callable[[Huey, Flask], Mapping[str, TaskWrapper]]
"""Adds a feature's tasks (and schedules) to the queue; answers its tasks by name."""


def add_tasks(app: Flask, register: Register) -> None:
    """Have `register(queue, app)` add tasks to the app's queue when it is set up."""
    app.extensions.setdefault(QUEUE_TASKS, []).append(register)


def jobs(app: Flask | None = None) -> Jobs:
    """The app's job queue and report store, set up from its config on first use."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    found = app.extensions.get("reports")
    if found is None:
        found = app.extensions.setdefault("reports", _create(app))
    return found


def _create(app: Flask) -> Jobs:
    url, name = app.config["QUEUE_URL"], app.config["QUEUE_NAME"]
    if url.startswith(QUEUE_SCHEMES):
        queue: Huey = RedisHuey(name, url=url, results=False)
    else:
        queue = SqliteHuey(name, filename=url.removeprefix("sqlite:///"), results=False)
    tasks: dict[str, TaskWrapper] = {}
    for register in app.extensions.get(QUEUE_TASKS, ()):
        tasks.update(register(queue, app))
    return Jobs(queue, tasks, ReportStore(app.config["REPORT_DIR"]))


def state_key(key: ReportKey) -> str:
    return f"report-build:{key.token}"


def record_of(queue: Huey, key: ReportKey) -> dict[str, Any] | None:
    return queue.get(state_key(key), peek=True)


def status_of(key: ReportKey, record: dict[str, Any]) -> ReportStatus:
    return ReportStatus(
        key,
        record["state"],
        written=record.get("written", 0),
        total=record.get("total", 0),
        message=record.get("message"),
    )


def lease(app: Flask | None = None) -> float:
    """Seconds a build's heartbeat may be silent before the build is taken for abandoned."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    return float(app.config.get("REPORT_LEASE", LEASE))


def abandoned(record: dict[str, Any], *, retry: bool = False) -> bool:
    """Whether the claim `record` may be taken over: a build whose heartbeat is older than
    the lease; a claim still queued after `STALE_AFTER`, or after the lease when the member
    asks to retry."""
    silent = time.time() - record.get("updated", 0)
    if record.get("state") == QUEUED and not retry:
        return silent > STALE_AFTER
    return silent > lease()


def claim(app_jobs: Jobs, key: ReportKey, replacing: dict[str, Any] | None = None) -> bool:
    """Claim the build of `key` and queue it, unless someone else claimed it first; a claim
    `replacing` another names the build it replaces, whose temporary files the new build
    removes."""
    token = secrets.token_hex(8)
    record = {"state": QUEUED, "token": token, "written": 0, "total": 0, "updated": time.time()}
    if replacing is not None:
        record["replaces"] = replacing.get("token")
        app_jobs.queue.delete(state_key(key))
    if not app_jobs.queue.put_if_empty(state_key(key), record):
        return False
    app_jobs.tasks[BUILD_REPORT](key.organisation_id, key.revision, key.month, key.day, token)
    log.info("usage report queued: organisation_id=%s month=%s", key.organisation_id, key.month)
    return True
