"""The billing email's audit trail: each change recorded (`record_change`) and the latest
ones read back for the page (`history`)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from billing_app.extensions import db
from billing_app.logs import billing_log as log
from billing_app.models import AuditEvent, Member, Organisation, utcnow

AUDIT_ACTION = "billing_email_changed"


HISTORY_LENGTH = 10


def record_change(
    organisation: Organisation,
    new: str,
    *,
    old: str,
    source: str,
    member: Member | None = None,
    detail: dict | None = None,
) -> None:
    """Add the audit event of a change and log it (without the addresses)."""
    db.session.add(
        AuditEvent(
            organisation_id=organisation.id,
            member_id=member.id if member is not None else None,
            action=AUDIT_ACTION,
            source=source,
            old_value=old,
            new_value=new,
            detail=detail,
        )
    )
    log.info(
        "billing email changed: organisation=%s member=%s source=%s",
        organisation.slug,
        member.id if member is not None else None,
        source,
    )


@dataclass(frozen=True)
class HistoryEntry:
    when: dt.datetime
    who: str
    old: str | None
    new: str | None


SOURCE_NAMES = {"stripe": "Stripe", "import": "Data import", "staff": "Petra staff"}


def history(organisation_id: int, limit: int = HISTORY_LENGTH) -> list[HistoryEntry]:
    """The latest billing-email changes, newest first."""
    events = db.session.scalars(
        select(AuditEvent)
        .where(AuditEvent.organisation_id == organisation_id, AuditEvent.action == AUDIT_ACTION)
        .options(joinedload(AuditEvent.member))
        .order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
        .limit(limit)
    )
    return [
        HistoryEntry(
            when=_as_utc(event.created_at),
            who=event.member.name
            if event.member is not None
            else SOURCE_NAMES.get(event.source, "Petra"),
            old=event.old_value,
            new=event.new_value,
        )
        for event in events
    ]


def _as_utc(value: dt.datetime | None) -> dt.datetime:
    if value is None:
        return utcnow()
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
