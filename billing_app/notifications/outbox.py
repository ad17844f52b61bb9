"""The outbox: every message to every recipient is a row, sent by the worker, never inside a
web request.

`queue_message` adds a row in the caller's transaction (a `dedupe_key` never queues the same
message twice). `drain` sends what is due: it claims one row at a time with a conditional
UPDATE (state queued, due, and not claimed by a live worker), with a token and a lease
(`MAIL_LEASE_SECONDS`), commits the claim, hands the message to SMTP, and marks it sent in its
own commit right after the server accepts it. A worker killed while it holds a claim leaves
the row queued; when the lease lapses another drain sends it. A message is sent twice only if
the process dies in the instant between the server's acceptance and that commit (the
at-least-once window of one message; the retried copy carries the same Message-ID).

A temporary failure (the server unreachable, or answering 4xx) puts the row back with the
next attempt 2, 4, 8, 16, then every 30 seconds (an unreachable server ends this drain: the
others wait for the retry too); a permanent one (5xx for that recipient) marks that row failed
and the drain goes on with the others.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from dataclasses import dataclass
from email import message_from_bytes

from sqlalchemy import and_, func, or_, select, update

from billing_app.extensions import db
from billing_app.models import utcnow
from billing_app.notifications.mail import POLICY, MailNotConfigured
from billing_app.notifications.models import FAILED, QUEUED, SENT, OutboxMessage
from billing_app.notifications.smtp import Relay, SendFailed, send

log = logging.getLogger("billing_app.notifications")

FIRST_RETRY = 2
LONGEST_RETRY = 30


def backoff(attempts: int) -> int:
    """Seconds before attempt `attempts + 1`: 2, 4, 8, 16, 30, 30, …"""
    return min(LONGEST_RETRY, FIRST_RETRY * 2 ** max(0, attempts - 1))


def queue_message(
    *, organisation_id: int, kind: str, recipient: str, subject: str, message: bytes, key: str
) -> OutboxMessage:
    """Add a message to the outbox in the current transaction."""
    row = OutboxMessage(
        organisation_id=organisation_id,
        kind=kind,
        recipient=recipient,
        subject=subject,
        message=message,
        dedupe_key=key,
        state=QUEUED,
        next_attempt_at=utcnow(),
    )
    db.session.add(row)
    return row


@dataclass(frozen=True, slots=True)
class DrainResult:
    sent: int
    failed: int
    retrying: int
    next_wake: dt.datetime | None
    """When a queued message is next due (or a live claim lapses); None when nothing waits."""


def drain(smtp_url: str | None, *, lease: float, timeout: float, limit: int = 500) -> DrainResult:
    """Send every message that is due, one claim at a time; see the module docstring."""
    sent = failed = retrying = 0
    relay = None
    for _ in range(limit):
        claimed = _claim_next(lease)
        if claimed is None:
            break
        row_id, token, attempts, raw = claimed
        try:
            relay = relay or Relay.parse(smtp_url)
            send(relay, message_from_bytes(raw, policy=POLICY), timeout)
        except MailNotConfigured as problem:
            log.error("mail not sent: %s (outbox message %s stays queued)", problem, row_id)
            _retry(row_id, token, attempts, str(problem))
            retrying += 1
            break
        except SendFailed as problem:
            if problem.permanent:
                _finish(row_id, token, FAILED, error=str(problem))
                failed += 1
                log.warning("mail refused for good: outbox message %s: %s", row_id, problem)
            else:
                _retry(row_id, token, attempts, str(problem))
                retrying += 1
                log.info("mail not delivered yet: outbox message %s: %s", row_id, problem)
                if problem.unreachable:
                    break  # the server is down: the others wait for the retry too
            continue
        _finish(row_id, token, SENT)
        sent += 1
    return DrainResult(sent, failed, retrying, next_wake())


def _claim_next(lease: float) -> tuple[int, str, int, bytes] | None:
    """Claim the next due message for this worker: (id, token, attempts, message), or None."""
    while True:
        now = utcnow()
        candidate = db.session.scalar(
            select(OutboxMessage.id)
            .where(_claimable(now))
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(1)
        )
        if candidate is None:
            db.session.commit()
            return None
        token = secrets.token_hex(16)
        claimed = db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == candidate, _claimable(now))
            .values(
                claim_token=token,
                claimed_until=now + dt.timedelta(seconds=lease),
                attempts=OutboxMessage.attempts + 1,
            )
            .execution_options(synchronize_session=False)
        ).rowcount
        db.session.commit()
        if claimed == 1:
            row = db.session.execute(
                select(OutboxMessage.attempts, OutboxMessage.message).where(
                    OutboxMessage.id == candidate
                )
            ).one()
            db.session.commit()
            return candidate, token, row.attempts, row.message
        # Another worker claimed it first: look again.


def _claimable(now: dt.datetime):
    return and_(
        OutboxMessage.state == QUEUED,
        OutboxMessage.next_attempt_at <= now,
        or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now),
    )


def _finish(row_id: int, token: str, state: str, error: str | None = None) -> None:
    values: dict = {"state": state, "claim_token": None, "claimed_until": None}
    if state == SENT:
        values["sent_at"] = utcnow()
    if error is not None:
        values["last_error"] = error
    _update_mine(row_id, token, values)


def _retry(row_id: int, token: str, attempts: int, error: str) -> None:
    due = utcnow() + dt.timedelta(seconds=backoff(attempts))
    _update_mine(
        row_id,
        token,
        {"next_attempt_at": due, "last_error": error, "claim_token": None, "claimed_until": None},
    )


def _update_mine(row_id: int, token: str, values: dict) -> None:
    db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == row_id, OutboxMessage.claim_token == token)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def next_wake() -> dt.datetime | None:
    """When the drain has work next: the earliest due message, or a live claim's lapse."""
    due = db.session.scalar(
        select(func.min(OutboxMessage.next_attempt_at)).where(
            OutboxMessage.state == QUEUED, OutboxMessage.claimed_until.is_(None)
        )
    )
    lapse = db.session.scalar(
        select(func.min(OutboxMessage.claimed_until)).where(OutboxMessage.state == QUEUED)
    )
    db.session.commit()
    moments = [_aware(m) for m in (due, lapse) if m is not None]
    return min(moments) if moments else None


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def recent(organisation_id: int, limit: int = 50) -> list[OutboxMessage]:
    """The organisation's latest messages, newest first: what the page shows."""
    return list(
        db.session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.organisation_id == organisation_id)
            .order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc())
            .limit(limit)
        )
    )
