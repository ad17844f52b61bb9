"""The mail of the tests: a real SMTP server (aiosmtpd, dev/mail_local.py) on a free loopback
port, which the app's `SMTP_URL` points at, and which the tests stop, start and make fail."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dev.mail_local import LocalMail

PUBLIC_URL = "https://billing.petra.example"
MAIL_FROM = "Petra Billing <billing@petra.example>"


@pytest.fixture
def mail_server(app) -> Iterator[LocalMail]:
    """A local SMTP server for this test; the app sends to it, with links on PUBLIC_URL."""
    server = LocalMail().start()
    app.config.update(
        SMTP_URL=server.url,
        PUBLIC_URL=PUBLIC_URL,
        MAIL_FROM=MAIL_FROM,
        SMTP_TIMEOUT=5.0,
        MAIL_LEASE_SECONDS=30.0,
    )
    yield server
    server.stop()
