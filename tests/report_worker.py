"""The report queue in tests: each app gets a queue of its own (a fresh SQLite file, or a
uniquely named queue on the machine's Redis) and a folder of kept reports; `report_worker`
runs the real worker process (`flask reports worker`) against them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from billing_app.reports.queue import jobs
from tests.gunicorn import stop

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
QUEUES = ["sqlite", "redis"]


def report_config(folder: Path) -> dict:
    """Report settings of a test app: everything in `folder`, a queue no other run uses, and
    requests that do not wait for builds (tests poll, as browsers do)."""
    return {
        "QUEUE_URL": f"sqlite:///{folder / 'report-queue.sqlite3'}",
        "QUEUE_NAME": f"test-reports-{uuid.uuid4().hex[:12]}",
        "REPORT_DIR": str(folder / "kept"),
        "REPORT_WAIT": 0.0,
    }


class Worker:
    """`flask reports worker` in a process of its own, on the app's database and queue, with
    a system temporary folder (`TMPDIR`) of its own, `tmpdir`: a build must not use it."""

    def __init__(self, app, tmpdir: Path) -> None:
        self.app = app
        self.tmpdir = tmpdir
        self.scratch = Path(app.config["REPORT_DIR"]) / ".tmp"
        self.process: subprocess.Popen | None = None
        self.log_path = tmpdir.parent / f"{tmpdir.name}-worker.log"

    def environment(self) -> dict[str, str]:
        config = self.app.config
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("QUEUE_", "REPORT_", "CACHE_", "DATABASE_"))
        }
        env |= {
            "DATABASE_URL": config["SQLALCHEMY_DATABASE_URI"],
            "QUEUE_URL": config["QUEUE_URL"],
            "QUEUE_NAME": config["QUEUE_NAME"],
            "REPORT_DIR": config["REPORT_DIR"],
            "REPORT_LEASE": str(config["REPORT_LEASE"]),
            "TMPDIR": str(self.tmpdir),
            "SECRET_KEY": config["SECRET_KEY"],
            "PETRA_ENV": "development",
            "PYTHONUNBUFFERED": "1",
        }
        return env

    def start(self) -> Worker:
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "flask", "--app", "wsgi", "reports", "worker"],
                cwd=ROOT,
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def kill(self) -> None:
        """Kill the worker at once (SIGKILL), as the machine or the kernel would."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()
        self.process = None

    def stop(self) -> None:
        if self.process is None:
            return
        stop(self.process, timeout=20)
        self.process = None

    def temporary_files_left(self, timeout: float = 60.0) -> list[Path]:
        """What the builds left in their temporary folders under REPORT_DIR, and in the
        system's temporary folder, once they have finished: nothing, unless one leaks. (The
        worker's schedule may be building another month meanwhile; its files go when that
        build ends.)"""
        deadline = time.monotonic() + timeout
        while (left := self.temporary_files()) and time.monotonic() < deadline:
            time.sleep(0.2)
        return left

    def temporary_files(self) -> list[Path]:
        scratch = list(self.scratch.rglob("*")) if self.scratch.is_dir() else []
        return scratch + list(self.tmpdir.rglob("*"))

    @property
    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""


@pytest.fixture(params=QUEUES)
def queue_backend(request, app) -> str:
    """The app's queue on the embedded SQLite file, then on the machine's Redis."""
    if request.param == "redis":
        app.config["QUEUE_URL"] = REDIS_URL
    return request.param


@pytest.fixture
def report_queue(app):
    """The app's report queue, emptied afterwards (its Redis keys removed)."""
    queue = jobs(app).queue
    yield queue
    queue.flush()


@pytest.fixture
def worker_factory(app, report_queue, tmp_path_factory) -> Iterator:
    """Starts workers on the app's queue; all are stopped at the end of the test."""
    started: list[Worker] = []

    def start() -> Worker:
        worker = Worker(app, tmp_path_factory.mktemp("worker-tmp")).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def report_worker(worker_factory) -> Worker:
    """A real worker process building the app's reports."""
    return worker_factory()


def download(client, url: str, timeout: float = 60.0, **kwargs):
    """GET `url` as a browser on the progress page does: again while it answers 202."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(url, **kwargs)
        if response.status_code != 202 or time.monotonic() > deadline:
            return response
        response.close()
        time.sleep(0.1)


def builds_pending(queue) -> int:
    """Report builds waiting in the queue (the worker's schedule may add other tasks, such as
    the mail sweep each minute, which the report tests do not count)."""
    return sum(1 for task in queue.pending() if task.name == "build_report")
