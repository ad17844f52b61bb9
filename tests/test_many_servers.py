"""Many app servers: two gunicorn servers and two report workers on one database (PostgreSQL
where TEST_DATABASE_URL is set, and a SQLite file) and one Redis (the report queue, the
figures' cache and the rate limits, under key prefixes of this run's own), with the kept
reports on a folder all of them see. A sync through either is seen at once by the other, and
a report built on one server's request is a file send from the other."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import re
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

import openpyxl
import pytest
import redis

from billing_app.figures.months import Month, today_utc
from tests.conftest import BACKENDS, private_schema
from tests.factories import PASSWORD
from tests.gunicorn import BIN, ROOT, Gunicorn, environment, running_gunicorn, stop
from tests.test_report_jobs import organisation_file

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CSRF_INPUT = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')
COST = re.compile(r'id="headline-cost">([^<]+)<')
ADMIN = "admin@jobs.example"


@pytest.fixture(params=BACKENDS)
def shared_database(request, tmp_path) -> Iterator[str]:
    """An empty database of this test's own: a SQLite file, or a PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'billing.sqlite3'}"
        return
    with private_schema("servers") as url:
        yield url


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this run's own in the machine's Redis; its keys removed afterwards."""
    store = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    store.ping()
    prefix = f"petra-servers-{uuid.uuid4().hex}"
    yield prefix
    keys = list(store.scan_iter(match=f"*{prefix}*", count=1000))
    if keys:
        store.delete(*keys)
    store.close()


def flask(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [BIN / "flask", "--app", "wsgi", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@contextlib.contextmanager
def report_worker(env: dict[str, str], folder: Path) -> Iterator[subprocess.Popen]:
    """`flask reports worker` on `env`, with a system temporary folder of its own."""
    folder.mkdir()
    (folder / "tmp").mkdir()
    with (folder / "worker.log").open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "reports", "worker"],
            cwd=ROOT,
            env=env | {"TMPDIR": str(folder / "tmp"), "PYTHONUNBUFFERED": "1"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        stop(process, timeout=20)


class Member:
    """A signed-in member's session, usable on any of the servers (they share SECRET_KEY)."""

    def __init__(self, server: Gunicorn) -> None:
        status, headers, body = self.get(server, "/login")
        assert status == 200
        self.cookies = self._cookies(headers)
        form = {"email": ADMIN, "password": PASSWORD, "csrf_token": CSRF_INPUT.search(body)[1]}
        status, headers, body = self.request(
            server,
            "POST",
            "/login",
            urlencode(form),
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert status == 303, body
        self.cookies |= self._cookies(headers)

    @staticmethod
    def _cookies(headers: http.client.HTTPMessage) -> dict[str, str]:
        pairs = (value.split(";", 1)[0] for value in headers.get_all("Set-Cookie") or [])
        return dict(pair.split("=", 1) for pair in pairs)

    def request(self, server: Gunicorn, method: str, path: str, body=None, headers=None):
        connection = http.client.HTTPConnection(server.host, server.port, timeout=60)
        cookies = "; ".join(f"{k}={v}" for k, v in getattr(self, "cookies", {}).items())
        try:
            connection.request(method, path, body, {"Cookie": cookies, **(headers or {})})
            response = connection.getresponse()
            data = response.read()
            text = data.decode() if "text" in response.getheader("Content-Type", "") else data
            return response.status, response.msg, text
        finally:
            connection.close()

    def get(self, server: Gunicorn, path: str):
        return self.request(server, "GET", path)

    def cost(self, server: Gunicorn, month: Month) -> str:
        status, _headers, body = self.get(server, f"/settings/usage?month={month}")
        assert status == 200
        return COST.search(body)[1]

    def report(self, server: Gunicorn, month: Month, timeout: float = 90) -> bytes:
        """The report as the progress page gets it: asked again while it answers 202."""
        deadline = time.monotonic() + timeout
        while True:
            status, headers, body = self.get(server, f"/settings/usage/report?month={month}")
            if status != 202:
                assert status == 200, body
                assert headers["Content-Disposition"].startswith("attachment;")
                return body
            assert time.monotonic() < deadline, "the report was not built"
            time.sleep(0.2)


def report_total(body: bytes) -> Decimal:
    summary = openpyxl.load_workbook(io.BytesIO(body), data_only=True)["Summary"]
    [total] = [row for row in summary.iter_rows(values_only=True) if row[0] == "Total"]
    return Decimal(str(total[3]))


def test_two_servers_and_two_workers_share_figures_and_kept_reports(
    shared_database, redis_prefix, stripe_server, tmp_path
):
    reports = tmp_path / "shared-reports"  # the folder every server and worker mounts
    env = environment(
        DATABASE_URL=shared_database,
        SECRET_KEY=secrets.token_hex(32),
        STRIPE_SECRET_KEY=stripe_server.api_key,
        STRIPE_API_BASE=stripe_server.api_base,
        STRIPE_WEBHOOK_SECRET="whsec_" + secrets.token_hex(8),
        RATELIMIT_STORAGE_URI=REDIS_URL,
        RATELIMIT_KEY_PREFIX=redis_prefix,
        CACHE_URL=REDIS_URL,
        CACHE_KEY_PREFIX=f"{redis_prefix}-cache:",
        QUEUE_URL=REDIS_URL,
        QUEUE_NAME=f"{redis_prefix}-reports",
        REPORT_DIR=str(reports),
        REPORT_WAIT="0",
        WEB_CONCURRENCY="1",
        GUNICORN_THREADS="1",
    )
    flask(env, "db", "upgrade")
    data_file = tmp_path / "organisation.json"
    data_file.write_text(json.dumps(organisation_file(identities=2)))
    flask(env, "usage", "import", str(data_file))
    month = Month.of(today_utc()).previous()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()

    with (
        running_gunicorn(env, tmp_path / "a") as one,
        running_gunicorn(env, tmp_path / "b") as other,
        report_worker(env, tmp_path / "worker-1") as first_worker,
        report_worker(env, tmp_path / "worker-2") as second_worker,
    ):
        member = Member(one)
        # Both servers show the month's figures, kept in the one Redis cache.
        assert member.cost(one, month) == member.cost(other, month) == "$6.00"
        cache = redis.Redis.from_url(REDIS_URL)
        assert list(cache.scan_iter(match=f"{redis_prefix}-cache:*"))

        # A report built on one server's request is a file send from the other at once.
        built = member.report(one, month)
        assert report_total(built) == Decimal("6.00")
        status, headers, sent = member.get(other, f"/settings/usage/report?month={month}")
        assert status == 200 and sent == built
        assert headers["Content-Disposition"] == f"attachment; filename=usage-jobs-msp-{month}.xlsx"
        [kept] = [p for p in reports.rglob(f"{month}.*.xlsx")]
        assert kept.read_bytes() == built

        # A sync (an import adding a user from the month's first day) lands: both servers
        # show it on their next request, figures and report alike.
        data_file.write_text(json.dumps(organisation_file(identities=3)))
        flask(env, "usage", "import", str(data_file))
        assert member.cost(other, month) == "$9.00"
        assert member.cost(one, month) == "$9.00"
        rebuilt = member.report(other, month)
        assert report_total(rebuilt) == Decimal("9.00")
        status, headers, sent = member.get(one, f"/settings/usage/report?month={month}")
        assert status == 200 and sent == rebuilt
        assert headers["Content-Disposition"] == f"attachment; filename=usage-jobs-msp-{month}.xlsx"
        assert not kept.exists()

        assert first_worker.poll() is None and second_worker.poll() is None
    logs = [(tmp_path / f"worker-{n}" / "worker.log").read_text() for n in (1, 2)]
    built_logs = [line for log in logs for line in log.splitlines() if "report built" in line]
    assert sum(f"month={month} " in line for line in built_logs) >= 2, logs
    # Their builds' temporary files were under the shared folder, and are gone.
    assert not any((reports / ".tmp").iterdir())
    for n in (1, 2):
        assert list((tmp_path / f"worker-{n}" / "tmp").iterdir()) == []
