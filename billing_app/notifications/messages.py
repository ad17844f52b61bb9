"""What each message says, and how it is put in the outbox: the confirmation link, the monthly
statement and the alerts. Links come from `PUBLIC_URL`, never from a request."""

from __future__ import annotations

import html
from dataclasses import dataclass

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer

from billing_app.models import Organisation
from billing_app.notifications import mail, outbox

UNSUBSCRIBE_SALT = "petra-billing-unsubscribe"


@dataclass(frozen=True, slots=True)
class MailSettings:
    mail_from: str
    public_url: str | None


def mail_settings() -> MailSettings:
    config = current_app.config
    return MailSettings(config["MAIL_FROM"], config.get("PUBLIC_URL"))


def path_for(endpoint: str, **values: object) -> str:
    """The path of a route, without any host: links in mail are put on `PUBLIC_URL`."""
    return current_app.url_map.bind("localhost").build(endpoint, values)


def link(endpoint: str, **values: object) -> str:
    return mail.public_link(mail_settings().public_url, path_for(endpoint, **values))


# --- Unsubscribe tokens -----------------------------------------------------------------------


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=UNSUBSCRIBE_SALT)


def unsubscribe_token(organisation_id: int, contact_id: int | None) -> str:
    """A token that unsubscribes one contact, or (None) the billing email from alerts."""
    payload = {"o": organisation_id, "c": contact_id} if contact_id else {"o": organisation_id}
    return _serializer().dumps(payload)


def read_unsubscribe_token(token: str) -> tuple[int, int | None] | None:
    """(organisation id, contact id or None for the billing email); None when tampered."""
    try:
        payload = _serializer().loads(token)
    except BadSignature:
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("o"), int):
        return None
    contact = payload.get("c")
    return payload["o"], contact if isinstance(contact, int) else None


# --- Putting a message in the outbox ------------------------------------------------------------


def queue(
    organisation: Organisation,
    kind: str,
    draft: mail.Draft,
    key: str,
) -> None:
    """Build `draft` and add it to the outbox, in the caller's transaction."""
    message = mail.build(draft, mail_settings().mail_from)
    outbox.queue_message(
        organisation_id=organisation.id,
        kind=kind,
        recipient=draft.recipient,
        subject=draft.subject,
        message=bytes(message),
        key=key,
    )


def unsubscribe_link(organisation_id: int, contact_id: int | None) -> str:
    return link("notifications.unsubscribe", token=unsubscribe_token(organisation_id, contact_id))


def paragraphs(*lines: str) -> str:
    """Plain lines as HTML paragraphs, escaped."""
    return "".join(f"<p>{html.escape(line)}</p>" for line in lines)
