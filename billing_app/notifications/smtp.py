"""Sending one message over SMTP to `SMTP_URL` with the standard library's `smtplib`:
`smtp://[user:pass@]host:port`, `smtps://…` (TLS from the start), `smtp+starttls://…`.

A failure is either temporary (the server cannot be reached, drops the connection, or answers
4xx: try again later) or permanent (a 5xx for this recipient or message: never retried)."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

from billing_app.notifications.mail import MailNotConfigured

DEFAULT_PORTS = {"smtp": 25, "smtps": 465, "smtp+starttls": 587}


class SendFailed(Exception):
    """The message was not accepted; `permanent` when trying again cannot help."""

    def __init__(self, reason: str, *, permanent: bool, unreachable: bool = False) -> None:
        super().__init__(reason)
        self.permanent = permanent
        self.unreachable = unreachable
        """The server could not be reached at all: other messages would fail the same way."""


@dataclass(frozen=True, slots=True)
class Relay:
    scheme: str
    host: str
    port: int
    username: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str | None) -> Relay:
        if not url:
            raise MailNotConfigured("SMTP_URL is not set, so mail cannot be sent.")
        parts = urlsplit(url)
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            raise MailNotConfigured(
                "SMTP_URL must be smtp://[user:pass@]host:port, smtps://… or smtp+starttls://…"
            )
        return cls(
            parts.scheme,
            parts.hostname,
            parts.port or DEFAULT_PORTS[parts.scheme],
            unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password else None,
        )

    def __str__(self) -> str:
        """The relay without its password, for logs."""
        return f"{self.scheme}://{self.host}:{self.port}"


def send(relay: Relay, message: EmailMessage, timeout: float) -> None:
    """Hand `message` to the relay for its one recipient; SendFailed when it is not accepted."""
    try:
        if relay.scheme == "smtps":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                relay.host, relay.port, timeout=timeout, context=ssl.create_default_context()
            )
        else:
            client = smtplib.SMTP(relay.host, relay.port, timeout=timeout)
        with client:
            if relay.scheme == "smtp+starttls":
                client.starttls(context=ssl.create_default_context())
            if relay.username:
                client.login(relay.username, relay.password or "")
            refused = client.send_message(message)
    except smtplib.SMTPAuthenticationError as error:
        # The relay's settings are wrong: every message would fail until they are fixed.
        raise SendFailed(_reason(error.smtp_code, error.smtp_error), permanent=False) from None
    except smtplib.SMTPRecipientsRefused as error:
        code, reason = next(iter(error.recipients.values()))
        raise SendFailed(_reason(code, reason), permanent=code >= 500) from None
    except smtplib.SMTPResponseException as error:
        raise SendFailed(
            _reason(error.smtp_code, error.smtp_error), permanent=error.smtp_code >= 500
        ) from None
    except (smtplib.SMTPException, OSError) as error:
        reason = f"{type(error).__name__}: {error}"
        raise SendFailed(reason, permanent=False, unreachable=True) from None
    if refused:  # one recipient per message: refused means not sent
        code, reason = next(iter(refused.values()))
        raise SendFailed(_reason(code, reason), permanent=code >= 500)


def _reason(code: int, reason: bytes | str) -> str:
    text = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
    return f"{code} {text}".strip()[:500]
