"""API tokens of an organisation: created by admins, shown once, kept only as a hash.

A token is `petra_` followed by 43 URL-safe characters (256 random bits), so that secret
scanners recognise a leaked one. The database keeps its SHA-256 (a lookup by hash finds it;
the secret itself is never stored, logged or shown again) and its first characters, which tell
tokens apart in the list. Tokens carry scopes (`usage:read`, `invoices:read`) and may expire;
revoking one takes effect on the next request. Creating and revoking are recorded in the
organisation's audit history (`AuditEvent`, like billing-email changes).

`authenticate` is what every API request calls: one query, which also reads the
organisation's usage revision (the API's ETags need it). The last use is written at most once
a minute per token, so polling costs no write per request. Nothing here knows about Flask.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.orm import joinedload

from billing_app.extensions import db
from billing_app.models import ApiToken, AuditEvent, Member, Organisation, utcnow

PREFIX = "petra_"
TOKEN = re.compile(r"petra_[A-Za-z0-9_-]{32,200}")
"""What a token looks like; anything else is refused before the database is asked."""
VISIBLE = len(PREFIX) + 6
"""How many of a token's first characters are kept and shown (`petra_AbC12x`)."""
SECRET_BYTES = 32

USAGE_READ = "usage:read"
INVOICES_READ = "invoices:read"
SCOPES = (USAGE_READ, INVOICES_READ)
EXPIRY_DAYS = (30, 90, 365)
NAME_LENGTH = 100
LAST_USED_EVERY = dt.timedelta(minutes=1)
"""The last use is recorded at most this often per token."""

CREATED = "api_token_created"
REVOKED = "api_token_revoked"


class TokenState(enum.StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class TokenView:
    """A token as the list shows it: never its secret."""

    id: int
    name: str
    prefix: str
    scopes: tuple[str, ...]
    created_by: str | None
    created_at: dt.datetime
    expires_at: dt.datetime | None
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None
    state: TokenState


@dataclass(frozen=True, slots=True)
class Created:
    """A token just created: its row, and its secret, which is shown this once."""

    token: TokenView
    secret: str


@dataclass(frozen=True, slots=True)
class Authenticated:
    """Who an API request acts for: the token's organisation, within its scopes."""

    token_id: int
    organisation_id: int
    usage_revision: int
    scopes: frozenset[str]


class Refusal(enum.StrEnum):
    """Why a token signs nobody in."""

    MISSING = "missing"
    MALFORMED = "malformed"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    REVOKED = "revoked"


def digest(secret: str) -> str:
    """The SHA-256 of a token, as kept in the database."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _as_utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _state(token: ApiToken, now: dt.datetime) -> TokenState:
    if token.revoked_at is not None:
        return TokenState.REVOKED
    expires_at = _as_utc(token.expires_at)
    if expires_at is not None and expires_at <= now:
        return TokenState.EXPIRED
    return TokenState.ACTIVE


def _view(token: ApiToken, now: dt.datetime) -> TokenView:
    return TokenView(
        id=token.id,
        name=token.name,
        prefix=token.prefix,
        scopes=tuple(token.scopes.split()),
        created_by=token.created_by.name if token.created_by is not None else None,
        created_at=_as_utc(token.created_at) or now,
        expires_at=_as_utc(token.expires_at),
        last_used_at=_as_utc(token.last_used_at),
        revoked_at=_as_utc(token.revoked_at),
        state=_state(token, now),
    )


def create(
    organisation_id: int,
    member: Member,
    name: str,
    scopes: Iterable[str],
    expires_in_days: int | None,
    now: dt.datetime | None = None,
) -> Created:
    """A new token of the organisation, recorded in its audit history; its secret is in the
    answer and nowhere else. `ValueError` for scopes or an expiry the form does not offer."""
    now = now or utcnow()
    granted = tuple(scope for scope in SCOPES if scope in set(scopes))
    if not granted or set(scopes) - set(SCOPES):
        raise ValueError(f"scopes must be some of {', '.join(SCOPES)}")
    if expires_in_days is not None and expires_in_days not in EXPIRY_DAYS:
        raise ValueError(f"expiry must be one of {EXPIRY_DAYS} days, or none")
    name = name.strip()
    if not name or len(name) > NAME_LENGTH:
        raise ValueError(f"a name of 1 to {NAME_LENGTH} characters is needed")
    secret = PREFIX + secrets.token_urlsafe(SECRET_BYTES)
    token = ApiToken(
        organisation_id=organisation_id,
        name=name,
        prefix=secret[:VISIBLE],
        token_hash=digest(secret),
        scopes=" ".join(granted),
        created_by_id=member.id,
        created_at=now,
        expires_at=now + dt.timedelta(days=expires_in_days) if expires_in_days else None,
    )
    db.session.add(token)
    db.session.flush()
    db.session.add(
        AuditEvent(
            organisation_id=organisation_id,
            member_id=member.id,
            action=CREATED,
            source="app",
            new_value=name,
            detail={
                "token_id": token.id,
                "prefix": token.prefix,
                "scopes": list(granted),
                "expires_at": token.expires_at.isoformat() if token.expires_at else None,
            },
            created_at=now,
        )
    )
    db.session.commit()
    token = db.session.get(ApiToken, token.id, options=[joinedload(ApiToken.created_by)])
    return Created(_view(token, now), secret)


def tokens(organisation_id: int, now: dt.datetime | None = None) -> list[TokenView]:
    """The organisation's tokens, newest first, revoked ones included (marked so)."""
    now = now or utcnow()
    rows = db.session.scalars(
        select(ApiToken)
        .where(ApiToken.organisation_id == organisation_id)
        .options(joinedload(ApiToken.created_by))
        .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    )
    return [_view(token, now) for token in rows]


def revoke(
    organisation_id: int, member: Member, token_id: int, now: dt.datetime | None = None
) -> TokenView | None:
    """Revoke one of the organisation's tokens (None: it has no such token). Revoking a
    revoked token changes nothing and records nothing."""
    now = now or utcnow()
    token = db.session.scalar(
        select(ApiToken)
        .where(ApiToken.id == token_id, ApiToken.organisation_id == organisation_id)
        .with_for_update(of=ApiToken)
    )
    if token is None:
        return None
    if token.revoked_at is None:
        token.revoked_at = now
        db.session.add(
            AuditEvent(
                organisation_id=organisation_id,
                member_id=member.id,
                action=REVOKED,
                source="app",
                old_value=token.name,
                detail={"token_id": token.id, "prefix": token.prefix},
                created_at=now,
            )
        )
        db.session.commit()
    return _view(token, now)


_BY_HASH = (
    select(
        ApiToken.id,
        ApiToken.organisation_id,
        ApiToken.scopes,
        ApiToken.expires_at,
        ApiToken.revoked_at,
        ApiToken.last_used_at,
        Organisation.usage_revision,
    )
    .join(Organisation, Organisation.id == ApiToken.organisation_id)
    .where(ApiToken.token_hash == bindparam("token_hash"))
)


def authenticate(secret: str | None, now: dt.datetime | None = None) -> Authenticated | Refusal:
    """The token's organisation and scopes, or why it is refused: one query, and a write at
    most once a minute to record the last use."""
    if not secret:
        return Refusal.MISSING
    if not TOKEN.fullmatch(secret):
        return Refusal.MALFORMED
    now = now or utcnow()
    # Core on the session's connection: the ORM adds nothing to a row of plain columns.
    row = db.session.connection().execute(_BY_HASH, {"token_hash": digest(secret)}).first()
    if row is None:
        return Refusal.UNKNOWN
    token_id, organisation_id, scopes, expires_at, revoked_at, last_used_at, revision = row
    if revoked_at is not None:
        return Refusal.REVOKED
    expires_at = _as_utc(expires_at)
    if expires_at is not None and expires_at <= now:
        return Refusal.EXPIRED
    last_used_at = _as_utc(last_used_at)
    if last_used_at is None or now - last_used_at >= LAST_USED_EVERY:
        _record_use(token_id, now)
    return Authenticated(token_id, organisation_id, revision, frozenset(scopes.split()))


def _record_use(token_id: int, now: dt.datetime) -> None:
    """Set the last use, unless another request did within the minute."""
    db.session.execute(
        update(ApiToken)
        .where(
            ApiToken.id == token_id,
            or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at < now - LAST_USED_EVERY),
        )
        .values(last_used_at=now)
    )
    db.session.commit()
