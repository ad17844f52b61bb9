"""Serving under gunicorn: the production settings check, and sign-in limits that hold across
worker processes because they are counted in Redis."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
import redis

from dev.sample_data import organisation_data
from tests.gunicorn import (
    BIN,
    ROOT,
    Gunicorn,
    environment,
    free_port,
    running_gunicorn,
)

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SLUG = "limits-msp"
CSRF_INPUT = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')


@pytest.mark.parametrize(
    ("present", "missing"),
    [
        ({}, "SECRET_KEY and STRIPE_WEBHOOK_SECRET"),
        ({"SECRET_KEY": "s" * 32}, "STRIPE_WEBHOOK_SECRET"),
        ({"STRIPE_WEBHOOK_SECRET": "whsec_x"}, "SECRET_KEY"),
    ],
)
def test_production_refuses_to_start_without_secrets(tmp_path, present, missing):
    env = environment(
        PETRA_ENV="production", DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}", **present
    )
    result = subprocess.run(
        [sys.executable, "-c", "from billing_app import create_app; create_app()"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert (
        f"billing_app.config.ConfigError: Refusing to start in production without {missing}."
        in result.stderr
    )


def test_production_starts_with_its_secrets(tmp_path):
    env = environment(
        PETRA_ENV="production",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        SECRET_KEY="s" * 32,
        STRIPE_WEBHOOK_SECRET="whsec_x",
        RATELIMIT_STORAGE_URI=REDIS_URL,
        SERVER_NAME="billing.petra.example",
        PUBLIC_URL="https://billing.petra.example",
    )
    script = (
        "from billing_app import create_app; app = create_app();"
        "print(app.config['PETRA_ENV'], app.config['SESSION_COOKIE_SECURE'])"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == "production True"
    assert "s" * 32 not in result.stderr + result.stdout


def test_gunicorn_refuses_to_start_in_production_without_secrets(tmp_path):
    env = environment(
        PETRA_ENV="production",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        SECRET_KEY="s" * 32,
        BIND=f"127.0.0.1:{free_port()}",
        WEB_CONCURRENCY="1",
    )
    result = subprocess.run(
        [BIN / "gunicorn", "-c", "python:billing_app.gunicorn_conf", "wsgi:app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Refusing to start in production without STRIPE_WEBHOOK_SECRET." in result.stderr


def test_gunicorn_settings(default_gunicorn_settings):
    settings = default_gunicorn_settings
    assert settings["bind"] == "127.0.0.1:8000"
    assert settings["timeout"] >= 120
    assert settings["accesslog"] == "-"
    assert settings["workers"] >= 2 and settings["threads"] >= 2
    assert settings["worker_class"] == "gthread"
    # Requests wait for a free thread of any worker, not inside one busy with reports, and a
    # stopping or recycled worker lets the reports it is writing finish.
    assert settings["worker_connections"] == settings["threads"]
    assert settings["keepalive"] == 0
    assert settings["graceful_timeout"] >= settings["timeout"]


@pytest.fixture
def default_gunicorn_settings() -> dict:
    """The gunicorn settings module as loaded with none of its variables set."""
    script = (
        "import json, billing_app.gunicorn_conf as c;"
        "print(json.dumps({k: getattr(c, k) for k in "
        "('bind', 'timeout', 'accesslog', 'workers', 'threads', 'worker_class',"
        " 'worker_connections', 'keepalive', 'graceful_timeout')}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout)


def _flask(env: dict, *args: str) -> None:
    subprocess.run(
        [BIN / "flask", "--app", "wsgi", *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this run's own in the machine's Redis, whose keys are removed afterwards.

    Redis must be reachable: CI has it, and without it this check would prove nothing.
    """
    store = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    store.ping()
    prefix = f"petra-test-{uuid.uuid4().hex}"
    yield prefix
    keys = list(store.scan_iter(match=f"*{prefix}*", count=1000))
    if keys:
        store.delete(*keys)
    assert list(store.scan_iter(match=f"*{prefix}*")) == []
    store.close()


@pytest.fixture
def gunicorn(tmp_path, redis_prefix) -> Iterator[Gunicorn]:
    """gunicorn with two worker processes on a free loopback port, a SQLite database of a
    tiny organisation, and rate limits counted in Redis."""
    env = environment(
        DATABASE_URL=f"sqlite:///{tmp_path / 'billing.sqlite3'}",
        SECRET_KEY=secrets.token_hex(32),
        STRIPE_WEBHOOK_SECRET="whsec_" + secrets.token_hex(8),
        RATELIMIT_STORAGE_URI=REDIS_URL,
        RATELIMIT_KEY_PREFIX=redis_prefix,
        WEB_CONCURRENCY="2",
        GUNICORN_THREADS="1",
    )
    data_file = tmp_path / "organisation.json"
    data_file.write_text(
        json.dumps(organisation_data(slug=SLUG, tenants=1, identities_per_tenant=1, seed=6))
    )
    _flask(env, "db", "upgrade")
    _flask(env, "usage", "import", str(data_file))
    with running_gunicorn(env, tmp_path) as server:
        yield server


def _sign_in_form(server: Gunicorn) -> tuple[str, str]:
    """A session cookie and its CSRF token, from the login page."""
    status, headers, body = server.request("GET", "/login")
    assert status == 200
    cookie = headers["Set-Cookie"].split(";", 1)[0]
    return cookie, CSRF_INPUT.search(body).group(1)


def _wrong_password(server: Gunicorn, cookie: str, token: str, email: str, request_id: str):
    body = urlencode({"email": email, "password": "not-the-password", "csrf_token": token})
    return server.request(
        "POST",
        "/login",
        body=body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": cookie,
            "X-Request-ID": request_id,
        },
    )


def test_sign_in_limit_holds_across_two_workers(gunicorn):
    """Ten wrong passwords a minute, counted together by both workers: the 11th is refused."""
    cookie, token = _sign_in_form(gunicorn)
    for series in range(5):
        email = f"admin+{series}@{SLUG}.example"
        statuses = {}
        for attempt in range(1, 12):
            request_id = f"limit-{series}-{attempt}"
            status, headers, body = _wrong_password(gunicorn, cookie, token, email, request_id)
            statuses[request_id] = status
            if attempt <= 10:
                assert status == 401, body
                assert headers["X-RateLimit-Remaining"] == str(10 - attempt)
            else:
                assert status == 429
                assert "Too many attempts" in body
                assert int(headers["Retry-After"]) > 0
        time.sleep(0.2)
        answered = gunicorn.answered_by()
        pids = {answered[request_id][1] for request_id in statuses}
        assert {answered[request_id][0] for request_id in statuses} == {401, 429}
        if len(pids) == 2:
            break
    else:
        pytest.fail("every attempt of five series was answered by the same worker")
    assert len(pids) == 2
    # The other account's limit is its own.
    status, _headers, _body = _wrong_password(gunicorn, cookie, token, "other@x.example", "o-1")
    assert status == 401
