"""Messages built with the standard library's `email` package: one recipient each, a text and
an HTML part, the organisation's name in the subject, `MAIL_FROM` as sender, links from
`PUBLIC_URL`, and one-click unsubscribe (RFC 8058) in the headers and the body.

A header value with a line break is refused (`HeaderInjection`), whatever it came from."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid, parseaddr

LINE_BREAKS = frozenset("\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029\x00")


class HeaderInjection(ValueError):
    """A header value holds a line break (or NUL): it would add headers of its own."""


class MailNotConfigured(RuntimeError):
    """`PUBLIC_URL` or `SMTP_URL` is not set where mail must be built or sent."""


def one_line(value: str, what: str) -> str:
    """`value` for a header, refused if it holds a line break."""
    if any(char in LINE_BREAKS for char in value):
        raise HeaderInjection(f"The {what} holds a line break, so it cannot go in a mail header.")
    return value


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content: bytes
    maintype: str = "text"
    subtype: str = "csv"


@dataclass(frozen=True, slots=True)
class Draft:
    """A message before it is built: to one recipient, with its parts and links."""

    recipient: str
    subject: str
    text: str
    html: str
    unsubscribe_url: str | None = None
    attachments: tuple[Attachment, ...] = field(default_factory=tuple)


def subject_for(organisation_name: str, topic: str) -> str:
    """`topic` with the organisation's name: "Budget alert: 80 % — Northwind MSP". An imported
    name with a line break is written on one line rather than carried into the header."""
    name = " ".join("".join(" " if c in LINE_BREAKS else c for c in organisation_name).split())
    return f"{topic} — {name}"


POLICY = SMTP.clone(max_line_length=998)
"""SMTP's line endings, with lines up to RFC 5322's limit: a long header made of one word (the
List-Unsubscribe link) stays as it is, where the default 78 would rewrite it as an encoded word
that mail clients do not read as a link."""


def build(draft: Draft, mail_from: str, domain: str | None = None) -> EmailMessage:
    """The message of `draft`, from `mail_from`, ready for SMTP."""
    recipient = one_line(draft.recipient, "recipient")
    sender = one_line(mail_from, "sender")
    message = EmailMessage(policy=POLICY)
    message["From"] = sender
    message["To"] = str(Address(addr_spec=recipient))
    message["Subject"] = one_line(draft.subject, "subject")
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=domain or _domain(sender))
    message["Auto-Submitted"] = "auto-generated"
    if draft.unsubscribe_url:
        url = one_line(draft.unsubscribe_url, "unsubscribe link")
        message["List-Unsubscribe"] = f"<{url}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    text, body = draft.text, draft.html
    if draft.unsubscribe_url:
        text += f"\n\n--\nTo stop these messages: {draft.unsubscribe_url}\n"
        body += (
            '<hr><p style="font-size:12px">'
            f'<a href="{html.escape(draft.unsubscribe_url)}">Unsubscribe</a> from these messages.'
            "</p>"
        )
    message.set_content(text)
    message.add_alternative(_html_document(draft.subject, body), subtype="html")
    for attachment in draft.attachments:
        message.add_attachment(
            attachment.content,
            maintype=attachment.maintype,
            subtype=attachment.subtype,
            filename=one_line(attachment.filename, "attachment name"),
        )
    return message


def _domain(sender: str) -> str:
    address = parseaddr(sender)[1]
    return address.rpartition("@")[2] or "petra.localhost"


def _html_document(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head><body>{body}</body></html>"
    )


def public_link(public_url: str | None, path: str) -> str:
    """`path` on `PUBLIC_URL` (never the request's host)."""
    if not public_url:
        raise MailNotConfigured("PUBLIC_URL is not set, so mail cannot link back to the app.")
    return public_url.rstrip("/") + path
