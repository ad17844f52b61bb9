"""The app under gunicorn on a free loopback port, as production serves it, and requests to it."""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ACCESS_LINE = re.compile(r'"POST /login HTTP/1\.[01]" (\d{3}) .* pid=<(\d+)> request_id=(\S+)')


def environment(**settings: str) -> dict[str, str]:
    """The current environment without the app's settings, plus `settings`."""
    app_settings = (
        "PETRA_ENV",
        "SECRET_KEY",
        "DATABASE_URL",
        "STRIPE_SECRET_KEY",
        "STRIPE_API_BASE",
        "STRIPE_PORTAL_LOGIN_URL",
        "STRIPE_WEBHOOK_SECRET",
        "RATELIMIT_STORAGE_URI",
        "RATELIMIT_KEY_PREFIX",
        "CACHE_URL",
        "CACHE_KEY_PREFIX",
        "QUEUE_URL",
        "QUEUE_NAME",
        "REPORT_DIR",
        "REPORT_WAIT",
        "REPORT_LEASE",
        "TRUSTED_PROXIES",
        "SERVER_NAME",
        "TRUSTED_HOSTS",
        "SMTP_URL",
        "MAIL_FROM",
        "PUBLIC_URL",
        "BIND",
        "WEB_CONCURRENCY",
        "GUNICORN_THREADS",
    )
    env = {key: value for key, value in os.environ.items() if key not in app_settings}
    return env | settings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Gunicorn:
    process: subprocess.Popen
    host: str
    port: int
    access_log: Path

    def request(self, method: str, path: str, body: str | None = None, headers=None):
        """One request on a connection of its own, closed afterwards."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read().decode()
        finally:
            connection.close()

    def answered_by(self) -> dict[str, tuple[int, int]]:
        """Request id -> (status, worker pid), from the access log."""
        return {
            match.group(3): (int(match.group(1)), int(match.group(2)))
            for match in ACCESS_LINE.finditer(self.access_log.read_text())
        }


def wait_until_up(server: Gunicorn, error_log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"gunicorn exited:\n{error_log.read_text()}")
        try:
            if server.request("GET", "/healthz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    pytest.fail(f"gunicorn did not answer:\n{error_log.read_text()}")


@contextlib.contextmanager
def running_gunicorn(env: dict[str, str], folder: Path) -> Iterator[Gunicorn]:
    """gunicorn with the production settings module on a free loopback port, its logs in
    `folder`; stopped (SIGTERM, then killed after 30 s) afterwards."""
    host, port = "127.0.0.1", free_port()
    access_log = folder / "access.log"
    with access_log.open("w") as out, (folder / "error.log").open("w") as err:
        process = subprocess.Popen(
            [BIN / "gunicorn", "-c", "python:billing_app.gunicorn_conf", "wsgi:app"],
            cwd=ROOT,
            env=env | {"BIND": f"{host}:{port}"},
            stdout=out,
            stderr=err,
        )
    server = Gunicorn(process, host, port, access_log)
    try:
        wait_until_up(server, folder / "error.log")
        yield server
    finally:
        stop(process, timeout=30)


def stop(process: subprocess.Popen, timeout: float) -> None:
    """Stop a server or worker as its supervisor would: SIGTERM, and SIGKILL if it has not
    ended after `timeout` seconds."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def served(app, organisation, database_url, stripe_server, tmp_path):
    """The app under gunicorn, two worker processes of one thread, on this run's database."""
    env = environment(
        DATABASE_URL=database_url,
        SECRET_KEY=secrets.token_hex(32),
        STRIPE_SECRET_KEY=stripe_server.api_key,
        STRIPE_API_BASE=stripe_server.api_base,
        STRIPE_WEBHOOK_SECRET="whsec_" + secrets.token_hex(8),
        RATELIMIT_STORAGE_URI="memory://",
        WEB_CONCURRENCY="2",
        GUNICORN_THREADS="1",
        STRIPE_MAX_RETRIES="0",
    )
    with running_gunicorn(env, tmp_path) as server:
        yield server
