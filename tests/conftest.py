"""Fixtures: the app on SQLite (and PostgreSQL when TEST_DATABASE_URL is set), the local
Stripe server, signed-in clients per role, and organisations to test against."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import secrets
import threading
import uuid
from collections.abc import Iterator

import pytest
import stripe
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from werkzeug.serving import make_server

from billing_app import create_app, logs
from billing_app.extensions import db
from billing_app.models import Organisation
from dev.stripe_local import LocalStripe
from tests.factories import Auth, make_organisation

BACKENDS = ["sqlite"] + (["postgresql"] if os.environ.get("TEST_DATABASE_URL") else [])


@pytest.fixture(scope="session")
def stripe_server() -> Iterator[LocalStripe]:
    """The local Stripe server, started once for the whole run."""
    server = LocalStripe()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request, tmp_path_factory) -> Iterator[str]:
    """A database with the app's schema: a SQLite file, or a private PostgreSQL schema."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'billing.sqlite3'}"
        yield url
        return
    with private_schema("test") as url:
        yield url


@contextlib.contextmanager
def private_schema(prefix: str) -> Iterator[str]:
    """A new schema on the PostgreSQL of TEST_DATABASE_URL, dropped afterwards: its URL."""
    base = make_url(os.environ["TEST_DATABASE_URL"])
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = base.update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="session")
def _schema(database_url: str) -> str:
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "TESTING": True})
    with app.app_context():
        db.create_all()
        db.engine.dispose()
    return database_url


def app_config(database_url: str, stripe_server: LocalStripe) -> dict:
    return {
        "TESTING": True,
        "SECRET_KEY": secrets.token_hex(16),
        "SQLALCHEMY_DATABASE_URI": database_url,
        "STRIPE_SECRET_KEY": stripe_server.api_key,
        "STRIPE_API_BASE": stripe_server.api_base,
        "STRIPE_PORTAL_LOGIN_URL": stripe_server.portal_login_url,
        "STRIPE_WEBHOOK_SECRET": "whsec_test_" + secrets.token_hex(8),
        "STRIPE_TIMEOUT": 2.0,
        "STRIPE_MAX_RETRIES": 0,
        "STRIPE_READ_TIMEOUT": 1.0,
        "STRIPE_READ_MAX_RETRIES": 0,
        "RATELIMIT_STORAGE_URI": "memory://",
        # A cache of the app's own, whatever CACHE_URL says: each test starts with it empty.
        "CACHE_TYPE": "SimpleCache",
        "SERVER_NAME": None,
    }


@pytest.fixture
def app(_schema: str, stripe_server: LocalStripe, tmp_path_factory):
    """The app on a clean database, talking to the local Stripe server, with a report queue
    and kept reports of its own."""
    from tests.report_worker import report_config

    config = app_config(_schema, stripe_server)
    app = create_app(config | report_config(tmp_path_factory.mktemp("reports")))
    with app.app_context():
        _empty_tables()
    stripe_server.clear_faults()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    stripe_server.clear_faults()


def _empty_tables() -> None:
    for table in reversed(db.metadata.sorted_tables):
        db.session.execute(table.delete())
    db.session.commit()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def stripe_client(stripe_server: LocalStripe) -> stripe.StripeClient:
    """A Stripe SDK client on the local Stripe server, for looking at what the app did."""
    return stripe.StripeClient(
        stripe_server.api_key,
        base_addresses={"api": stripe_server.api_base},
        max_network_retries=0,
    )


@pytest.fixture
def organisation(request, app) -> Organisation:
    """Northwind MSP. With a Stripe customer on the local Stripe server only for a test that
    talks to Stripe: one marked `stripe_customer` (or in a module marked so)."""
    customer_id = None
    if request.node.get_closest_marker("stripe_customer") is not None:
        stripe_client = request.getfixturevalue("stripe_client")
        customer_id = stripe_client.v1.customers.create(
            params={"email": "billing@northwind.example", "name": "Northwind MSP"}
        ).id
    with app.app_context():
        organisation = make_organisation(stripe_customer_id=customer_id)
        db.session.refresh(organisation)
        db.session.expunge_all()
    return organisation


@pytest.fixture
def auth(client) -> Auth:
    return Auth(client)


class BillingLog(logging.Handler):
    """What the `billing_app.billing` logger wrote: the records, and the app's JSON lines."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []
        self.stream = io.StringIO()
        self.json = logs.json_handler(self.stream)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.json.handle(record)

    @property
    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]

    @property
    def text(self) -> str:
        """Every message and every field of every record."""
        return "\n".join(f"{r.getMessage()} {vars(r)}" for r in self.records)


@pytest.fixture
def billing_log() -> Iterator[BillingLog]:
    """What the billing logger writes at INFO and above, however logging is configured."""
    logger = logging.getLogger("billing_app.billing")
    disabled, level = logger.disabled, logger.level
    logger.disabled = False
    logger.setLevel(logging.INFO)
    log = BillingLog()
    logger.addHandler(log)
    yield log
    logger.removeHandler(log)
    logger.disabled = disabled
    logger.setLevel(level)


class LiveServer:
    """The app served by werkzeug in a thread, on a free loopback port."""

    def __init__(self, app):
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)


@pytest.fixture
def live_server(app) -> Iterator[LiveServer]:
    server = LiveServer(app).start()
    yield server
    server.stop()


pytest_plugins = ["tests.gunicorn", "tests.report_worker", "tests.mail_server"]
