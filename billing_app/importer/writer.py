"""Import an organisation's members, prices and usage from the JSON import format.

The whole file is validated before anything is written, then written in one
transaction: a bad file is refused with `InvalidImportFile`, whose message names
each offending entry, and the database is left as it was.

Importing is idempotent and updates by the ids the file carries:

- the organisation by `slug`; `stripe_customer_id` and `portal_direct_access` change
  only when the file gives a value (absent or null keeps the stored one); a changed
  whitelisting is recorded as an audit event with source "import";
- the billing email is kept in step with Stripe once the organisation is linked to a
  Stripe customer, so the file's address is then left aside (the import says so);
  before that, a changed address is recorded as an audit event with source "import";
- members by email, ignoring case; a member's password hash is kept while the
  file's password still matches it, and a member without `password` keeps theirs;
- prices by `from_month`;
- tenants and identities by `id`; an identity may move to another tenant of the
  organisation by appearing under it;
- a tenant's pauses and an identity's billable periods are replaced by the file's
  lists when they differ (their order does not matter).

Members, prices, tenants and identities absent from the file are left as they are:
importing never deletes them. Only what differs is written, so the same file
imported twice writes nothing the second time.

When a price, tenant, pause, identity or billable period was created or changed, the
organisation's `usage_revision` goes up by one in the same transaction, so that usage
summaries cached under the old revision are no longer used (see `billing_app.figures.cache`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.exc import SQLAlchemyError

from billing_app.billing_email.service import AUDIT_ACTION as BILLING_EMAIL_CHANGED
from billing_app.billing_email.service import MAX_LENGTH as EMAIL_MAX_LENGTH
from billing_app.billing_email.service import InvalidEmail, normalise
from billing_app.extensions import db
from billing_app.models import (
    AuditEvent,
    BillablePeriod,
    Identity,
    Member,
    Organisation,
    Price,
    Tenant,
    TenantPause,
)
from billing_app.permissions import Role
from billing_app.portal.service import WHITELIST_AUDIT_ACTION

log = logging.getLogger(__name__)

MAX_PROBLEMS = 20
CHUNK = 5000
ANALYZE_AFTER = 1000
"""Records created or updated from which an import refreshes PostgreSQL's statistics."""

SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*", re.ASCII)
MONTH = re.compile(r"[0-9]{4}-[0-9]{2}", re.ASCII)
DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
GUID = re.compile(r"[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}", re.ASCII | re.IGNORECASE)
AMOUNT = re.compile(r"-?[0-9]+(?:\.[0-9]+)?", re.ASCII)
CURRENCY = re.compile(r"[a-z]{3}", re.ASCII | re.IGNORECASE)
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
UNIT_PRICE_DECIMALS = 4
UNIT_PRICE_LIMIT = Decimal(10) ** 8
ROLES = tuple(role.value for role in Role)

DateRange = tuple[dt.date, dt.date | None]


class InvalidImportFile(ValueError):
    """The file was refused as a whole; `problems` names each offending entry."""

    def __init__(self, problems: Sequence[str], more: int = 0) -> None:
        self.problems = list(problems)
        self.more = more
        super().__init__(str(self))

    def __str__(self) -> str:
        if len(self.problems) == 1 and not self.more:
            return self.problems[0]
        total = len(self.problems) + self.more
        lines = [f"{total} problems:", *(f"- {problem}" for problem in self.problems)]
        if self.more:
            lines.append(f"- and {self.more} more")
        return "\n".join(lines)


# The file, validated.


@dataclass(frozen=True)
class PriceData:
    from_month: dt.date
    unit_price: Decimal
    currency: str


@dataclass(frozen=True)
class OrganisationData:
    slug: str
    name: str
    billing_email: str
    stripe_customer_id: str | None
    portal_direct_access: bool | None
    prices: tuple[PriceData, ...]


@dataclass(frozen=True)
class MemberData:
    where: str
    email: str
    name: str
    role: str
    password: str | None


@dataclass(frozen=True)
class IdentityData:
    external_id: str
    display_name: str
    user_principal_name: str
    billable_periods: tuple[DateRange, ...]


@dataclass(frozen=True)
class TenantData:
    external_id: str
    name: str
    microsoft_tenant_id: str
    onboarded_on: dt.date
    offboarded_on: dt.date | None
    pauses: tuple[DateRange, ...]
    identities: tuple[IdentityData, ...]


@dataclass(frozen=True)
class ImportFile:
    organisation: OrganisationData
    members: tuple[MemberData, ...]
    tenants: tuple[TenantData, ...]


# Reading and checking the file.


def _quote(value: str) -> str:
    shown = value if len(value) <= 60 else value[:57] + "..."
    return json.dumps(shown, ensure_ascii=False)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


class _Refusals:
    """The problems found so far, each prefixed with the entry it is about."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.more = 0

    def add(self, where: str, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(f"{where}: {message}")
        else:
            self.more += 1

    def raise_any(self) -> None:
        if self.problems:
            raise InvalidImportFile(self.problems, self.more)


class _Entry:
    """One object of the file, read field by field; a bad field is refused with its path."""

    def __init__(
        self, refusals: _Refusals, where: str, value: object, fields: Iterable[str]
    ) -> None:
        self.refusals = refusals
        self.where = where
        self.failed = False
        self.is_object = isinstance(value, dict)
        if isinstance(value, dict):
            self.data: dict[str, Any] = value
            for key in value:
                if key not in fields:
                    self.refuse(f"unknown field {_quote(str(key))}")
        else:
            self.data = {}
            self.refuse(f"must be an object, not {_json_type(value)}")

    def refuse(self, message: str) -> None:
        self.failed = True
        self.refusals.add(self.where, message)

    def raw(self, key: str, required: bool = False) -> Any:
        """The field's JSON value; a required one that is absent or null is refused."""
        value = self.data.get(key)
        if value is None and required and self.is_object:
            if key in self.data:
                self.refuse(f'"{key}" must not be null')
            else:
                self.refuse(f'missing required field "{key}"')
        return value

    def text(self, key: str, *, max_length: int, required: bool = True) -> str | None:
        value = self.raw(key, required)
        if value is None:
            return None
        if not isinstance(value, str):
            self.refuse(f'"{key}" must be a string, not {_json_type(value)}')
            return None
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            self.refuse(f'"{key}" is not valid Unicode')
            return None
        if not value.strip():
            self.refuse(f'"{key}" must not be empty')
        elif CONTROL.search(value):
            self.refuse(f'"{key}" {_quote(value)} contains a control character')
        elif len(value) > max_length:
            self.refuse(f'"{key}" is longer than {max_length} characters')
        else:
            return value
        return None

    def matching(
        self, key: str, pattern: re.Pattern[str], expected: str, *, max_length: int
    ) -> str | None:
        value = self.text(key, max_length=max_length)
        if value is not None and not pattern.fullmatch(value):
            self.refuse(f'"{key}" {_quote(value)} is not {expected}')
            return None
        return value

    def email(self, key: str) -> str | None:
        value = self.text(key, max_length=EMAIL_MAX_LENGTH)
        if value is None:
            return None
        try:
            normalized = validate_email(value, check_deliverability=False).normalized
        except EmailNotValidError as error:
            self.refuse(f'"{key}" {_quote(value)} is not a valid email address: {error}')
            return None
        if len(normalized) > EMAIL_MAX_LENGTH:
            self.refuse(f'"{key}" is longer than {EMAIL_MAX_LENGTH} characters')
            return None
        return normalized

    def billing_email(self, key: str) -> str | None:
        """An address that the Usage page would accept as the billing email, normalised."""
        value = self.text(key, max_length=EMAIL_MAX_LENGTH)
        if value is None:
            return None
        try:
            return normalise(value)
        except InvalidEmail as error:
            self.refuse(f'"{key}" {_quote(value)} is not accepted: {error}')
            return None

    def date(self, key: str, *, required: bool = True) -> dt.date | None:
        value = self.raw(key, required)
        if value is None:
            return None
        if not isinstance(value, str):
            self.refuse(f'"{key}" must be a date string (YYYY-MM-DD), not {_json_type(value)}')
            return None
        try:
            if not DATE.fullmatch(value):
                raise ValueError
            return dt.date.fromisoformat(value)
        except ValueError:
            self.refuse(f'"{key}" {_quote(value)} is not a date (YYYY-MM-DD)')
            return None

    def month(self, key: str) -> dt.date | None:
        value = self.raw(key, True)
        if value is None:
            return None
        if not isinstance(value, str):
            self.refuse(f'"{key}" must be a month string (YYYY-MM), not {_json_type(value)}')
            return None
        try:
            if not MONTH.fullmatch(value):
                raise ValueError
            return dt.date.fromisoformat(value + "-01")
        except ValueError:
            self.refuse(f'"{key}" {_quote(value)} is not a month (YYYY-MM)')
            return None

    def amount(self, key: str) -> Decimal | None:
        value = self.raw(key, True)
        if value is None:
            return None
        if isinstance(value, float):
            example = f"{value:.2f}" if math.isfinite(value) else "3.00"
            self.refuse(
                f'"{key}" {value!r} is a JSON number with a fraction, which is not exact: '
                f'write it as a string, e.g. "{example}"'
            )
            return None
        if isinstance(value, bool) or not isinstance(value, int | str):
            self.refuse(f'"{key}" must be a string such as "3.00", not {_json_type(value)}')
            return None
        text = str(value)
        if not AMOUNT.fullmatch(text):
            self.refuse(f'"{key}" {_quote(text)} is not an amount such as "3.00"')
            return None
        amount = Decimal(text)
        if amount < 0:
            self.refuse(f'"{key}" {text} is negative')
        elif -amount.as_tuple().exponent > UNIT_PRICE_DECIMALS:  # type: ignore[operator]
            self.refuse(f'"{key}" {text} has more than {UNIT_PRICE_DECIMALS} decimal places')
        elif amount >= UNIT_PRICE_LIMIT:
            self.refuse(f'"{key}" {text} is too large')
        else:
            return amount
        return None

    def boolean(self, key: str) -> bool | None:
        value = self.data.get(key)
        if value is not None and not isinstance(value, bool):
            self.refuse(f'"{key}" must be true or false, not {_json_type(value)}')
            return None
        return value

    def array(self, key: str, *, required: bool = False) -> list[Any]:
        value = self.raw(key, required)
        if value is None:
            return []
        if not isinstance(value, list):
            self.refuse(f'"{key}" must be an array, not {_json_type(value)}')
            return []
        return value


def _labelled(where: str, value: object, key: str) -> str:
    """`where`, followed by the entry's own id when it has a string one."""
    if isinstance(value, dict) and isinstance(value.get(key), str):
        return f"{where} ({key} {_quote(value[key])})"
    return where


def _range(refusals: _Refusals, where: str, value: object) -> DateRange | None:
    entry = _Entry(refusals, where, value, ("from", "until"))
    start = entry.date("from")
    until = entry.date("until", required=False)
    if start is not None and until is not None and until <= start:
        entry.refuse(f'"until" {until} is not after "from" {start}')
    return None if entry.failed or start is None else (start, until)


def _ranges(refusals: _Refusals, entry: _Entry, key: str) -> tuple[DateRange, ...]:
    ranges = (
        _range(refusals, f"{entry.where} {key}[{index}]", value)
        for index, value in enumerate(entry.array(key))
    )
    return tuple(item for item in ranges if item is not None)


def _organisation(refusals: _Refusals, value: object) -> OrganisationData | None:
    entry = _Entry(
        refusals,
        "organisation",
        value,
        ("slug", "name", "billing_email", "stripe_customer_id", "portal_direct_access", "prices"),
    )
    slug = entry.matching(
        "slug", SLUG, "a slug (lowercase letters, digits and single hyphens)", max_length=100
    )
    name = entry.text("name", max_length=200)
    billing_email = entry.billing_email("billing_email")
    stripe_customer_id = entry.text("stripe_customer_id", max_length=255, required=False)
    portal_direct_access = entry.boolean("portal_direct_access")
    prices: list[PriceData] = []
    months: dict[dt.date, str] = {}
    for index, item in enumerate(entry.array("prices")):
        where = _labelled(f"organisation.prices[{index}]", item, "from_month")
        price = _price(refusals, where, item)
        if price is None:
            continue
        if price.from_month in months:
            refusals.add(
                where,
                f"duplicate from_month, also used by {months[price.from_month]}",
            )
        months.setdefault(price.from_month, where)
        prices.append(price)
    if entry.failed or not (slug and name and billing_email):
        return None
    return OrganisationData(
        slug, name, billing_email, stripe_customer_id, portal_direct_access, tuple(prices)
    )


def _price(refusals: _Refusals, where: str, value: object) -> PriceData | None:
    entry = _Entry(refusals, where, value, ("from_month", "unit_price", "currency"))
    from_month = entry.month("from_month")
    unit_price = entry.amount("unit_price")
    currency = entry.matching(
        "currency", CURRENCY, "a three-letter currency code such as usd", max_length=100
    )
    if entry.failed or from_month is None or unit_price is None or currency is None:
        return None
    return PriceData(from_month, unit_price, currency.lower())


def _member(refusals: _Refusals, where: str, value: object) -> MemberData | None:
    entry = _Entry(refusals, where, value, ("email", "name", "role", "password"))
    email = entry.email("email")
    name = entry.text("name", max_length=200)
    role = entry.text("role", max_length=100)
    if role is not None and role not in ROLES:
        entry.refuse(f'"role" {_quote(role)} is not one of {", ".join(ROLES)}')
    password = entry.raw("password")
    if password is not None and (not isinstance(password, str) or not password):
        entry.refuse('"password" must be a non-empty string')
    elif password is not None and len(password) > 1024:
        entry.refuse('"password" is longer than 1024 characters')
    if entry.failed or email is None or name is None or role is None:
        return None
    return MemberData(where, email, name, role, password)


def _tenant(
    refusals: _Refusals, where: str, value: object, identity_ids: dict[str, str]
) -> TenantData | None:
    entry = _Entry(
        refusals,
        where,
        value,
        (
            "id",
            "name",
            "microsoft_tenant_id",
            "onboarded_on",
            "offboarded_on",
            "pauses",
            "identities",
        ),
    )
    external_id = entry.text("id", max_length=100)
    name = entry.text("name", max_length=500)
    microsoft_tenant_id = entry.matching(
        "microsoft_tenant_id",
        GUID,
        "a GUID such as 00000000-0000-0000-0000-000000000001",
        max_length=100,
    )
    onboarded_on = entry.date("onboarded_on")
    offboarded_on = entry.date("offboarded_on", required=False)
    if onboarded_on and offboarded_on and offboarded_on <= onboarded_on:
        entry.refuse(f'"offboarded_on" {offboarded_on} is not after "onboarded_on" {onboarded_on}')
    pauses = _ranges(refusals, entry, "pauses")
    identities = []
    for index, item in enumerate(entry.array("identities")):
        identity_where = _labelled(f"{where} identities[{index}]", item, "id")
        identity = _identity(refusals, identity_where, item)
        if identity is None:
            continue
        if identity.external_id in identity_ids:
            refusals.add(
                identity_where,
                f"duplicate id, also used by {identity_ids[identity.external_id]}",
            )
        identity_ids.setdefault(identity.external_id, identity_where)
        identities.append(identity)
    if entry.failed or not (external_id and name and microsoft_tenant_id and onboarded_on):
        return None
    return TenantData(
        external_id,
        name,
        microsoft_tenant_id.lower(),
        onboarded_on,
        offboarded_on,
        _sorted(pauses),
        tuple(identities),
    )


def _identity(refusals: _Refusals, where: str, value: object) -> IdentityData | None:
    entry = _Entry(
        refusals, where, value, ("id", "display_name", "user_principal_name", "billable_periods")
    )
    external_id = entry.text("id", max_length=100)
    display_name = entry.text("display_name", max_length=500)
    user_principal_name = entry.text("user_principal_name", max_length=500)
    periods = _ranges(refusals, entry, "billable_periods")
    if entry.failed or not (external_id and display_name and user_principal_name):
        return None
    return IdentityData(external_id, display_name, user_principal_name, _sorted(periods))


def _sorted(ranges: Iterable[DateRange]) -> tuple[DateRange, ...]:
    """Date ranges in a canonical order, so that lists can be compared."""
    return tuple(sorted(ranges, key=lambda r: (r[0], r[1] is None, r[1] or r[0])))


def parse_file(data: object) -> ImportFile:
    """Check a whole import file, returning it validated or raising `InvalidImportFile`."""
    refusals = _Refusals()
    top = _Entry(refusals, "file", data, ("organisation", "members", "tenants"))
    if not top.is_object:
        refusals.raise_any()
    organisation_value = top.raw("organisation", required=True)
    organisation = None
    if organisation_value is not None:
        organisation = _organisation(refusals, organisation_value)

    members = []
    emails: dict[str, str] = {}
    for index, item in enumerate(top.array("members")):
        where = _labelled(f"members[{index}]", item, "email")
        member = _member(refusals, where, item)
        if member is None:
            continue
        key = member.email.lower()
        if key in emails:
            refusals.add(where, f"duplicate email, also used by {emails[key]}")
        emails.setdefault(key, where)
        members.append(member)

    tenants = []
    tenant_ids: dict[str, str] = {}
    identity_ids: dict[str, str] = {}
    for index, item in enumerate(top.array("tenants")):
        where = _labelled(f"tenants[{index}]", item, "id")
        tenant = _tenant(refusals, where, item, identity_ids)
        if tenant is None:
            continue
        if tenant.external_id in tenant_ids:
            refusals.add(where, f"duplicate id, also used by {tenant_ids[tenant.external_id]}")
        tenant_ids.setdefault(tenant.external_id, where)
        tenants.append(tenant)

    refusals.raise_any()
    assert organisation is not None
    return ImportFile(organisation, tuple(members), tuple(tenants))


# Writing.


@dataclass
class Tally:
    """How many records of one kind the file held, by what the import did to them."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0

    @property
    def total(self) -> int:
        return self.created + self.updated + self.unchanged

    def count(self, *, created: bool = False, updated: bool = False) -> None:
        if created:
            self.created += 1
        elif updated:
            self.updated += 1
        else:
            self.unchanged += 1


@dataclass
class ImportSummary:
    """What an import did: per kind of record, and for the organisation itself."""

    slug: str
    organisation: str = "unchanged"
    members: Tally = field(default_factory=Tally)
    prices: Tally = field(default_factory=Tally)
    tenants: Tally = field(default_factory=Tally)
    identities: Tally = field(default_factory=Tally)
    billing_email_kept: str | None = None

    @property
    def records(self) -> Tally:
        kinds = (self.members, self.prices, self.tenants, self.identities)
        return Tally(
            created=sum(kind.created for kind in kinds),
            updated=sum(kind.updated for kind in kinds),
            unchanged=sum(kind.unchanged for kind in kinds),
        )

    @property
    def usage_changed(self) -> bool:
        """Whether anything the usage figures depend on was created or changed: prices,
        tenants (and their pauses), identities (and their billable periods)."""
        kinds = (self.prices, self.tenants, self.identities)
        return any(kind.created or kind.updated for kind in kinds)

    @property
    def changed(self) -> bool:
        return self.organisation != "unchanged" or self.records.unchanged != self.records.total

    def __str__(self) -> str:
        records = self.records
        text = (
            f"{self.slug}: {_plural(self.members.total, 'member')}, "
            f"{_plural(self.prices.total, 'price')}, {_plural(self.tenants.total, 'tenant')}, "
            f"{_plural(self.identities.total, 'identity', 'identities')} "
            f"({records.created} created, {records.updated} updated, "
            f"{records.unchanged} unchanged)"
        )
        if self.organisation != "unchanged":
            text += f"; organisation {self.organisation}"
        if self.billing_email_kept:
            text += (
                f"; billing email kept as {self.billing_email_kept} (it follows Stripe;"
                " change it on the Usage page)"
            )
        return text


def _plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else many or one + 's'}"


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def import_file(data: object) -> ImportSummary:
    """Validate an import file, then write it in one transaction; see the module docstring."""
    parsed = parse_file(data)
    try:
        summary = _write(parsed)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    records = summary.records
    if records.created + records.updated >= ANALYZE_AFTER:
        _analyze()
    return summary


def _analyze() -> None:
    """Refresh the planner statistics of the usage tables after a large import.

    Until autovacuum gets round to it (if it is on at all), the planner would still see the
    tables as they were, e.g. empty, and plan the usage queries as nested loops that take
    seconds instead of a fraction of one. The import is committed by then: if this fails,
    it is logged and left to autovacuum.
    """
    tables = (Tenant, TenantPause, Identity, BillablePeriod)
    try:
        for table in tables:
            db.session.execute(text(f"ANALYZE {table.__tablename__}"))
        db.session.commit()
    except SQLAlchemyError:
        db.session.rollback()
        log.warning("could not refresh the planner statistics after the import", exc_info=True)


def _write(file: ImportFile) -> ImportSummary:
    summary = ImportSummary(file.organisation.slug)
    organisation = db.session.scalar(
        select(Organisation).where(Organisation.slug == file.organisation.slug).with_for_update()
    )
    members = _existing_members(file, organisation)
    organisation = _write_organisation(file.organisation, organisation, summary)
    _write_members(file.members, members, organisation.id, summary.members)
    _write_prices(file.organisation.prices, organisation.id, summary.prices)
    tenant_ids = _write_tenants(file.tenants, organisation.id, summary)
    _write_identities(file.tenants, tenant_ids, organisation.id, summary.identities)
    if summary.usage_changed:
        organisation.bump_usage_revision()
    return summary


def _existing_members(file: ImportFile, organisation: Organisation | None) -> dict[str, Member]:
    """Existing members by lowercased email; refuses addresses or Stripe customers of others."""
    refusals = _Refusals()
    customer = file.organisation.stripe_customer_id
    if customer is not None:
        other = db.session.scalar(
            select(Organisation.slug).where(
                Organisation.stripe_customer_id == customer,
                Organisation.slug != file.organisation.slug,
            )
        )
        if other is not None:
            refusals.add(
                "organisation",
                f'"stripe_customer_id" {_quote(customer)} belongs to organisation {_quote(other)}',
            )
    emails = [member.email.lower() for member in file.members]
    existing: dict[str, Member] = {}
    for chunk in _chunks(emails):
        for member in db.session.scalars(select(Member).where(func.lower(Member.email).in_(chunk))):
            existing[member.email.lower()] = member
    for row in file.members:
        member = existing.get(row.email.lower())
        if member is not None and (
            organisation is None or member.organisation_id != organisation.id
        ):
            refusals.add(row.where, "the address belongs to a member of another organisation")
    refusals.raise_any()
    return existing


def _write_organisation(
    row: OrganisationData, organisation: Organisation | None, summary: ImportSummary
) -> Organisation:
    if organisation is None:
        organisation = Organisation(
            slug=row.slug,
            name=row.name,
            billing_email=row.billing_email,
            stripe_customer_id=row.stripe_customer_id,
            portal_direct_access=bool(row.portal_direct_access),
        )
        db.session.add(organisation)
        db.session.flush()
        summary.organisation = "created"
        return organisation
    if organisation.billing_email != row.billing_email and organisation.stripe_customer_id:
        summary.billing_email_kept = organisation.billing_email
    elif organisation.billing_email != row.billing_email:
        db.session.add(
            AuditEvent(
                organisation_id=organisation.id,
                action=BILLING_EMAIL_CHANGED,
                source="import",
                old_value=organisation.billing_email,
                new_value=row.billing_email,
            )
        )
        organisation.billing_email = row.billing_email
        summary.organisation = "updated"
    if (
        row.portal_direct_access is not None
        and organisation.portal_direct_access != row.portal_direct_access
    ):
        db.session.add(
            AuditEvent(
                organisation_id=organisation.id,
                action=WHITELIST_AUDIT_ACTION,
                source="import",
                old_value=str(organisation.portal_direct_access).lower(),
                new_value=str(row.portal_direct_access).lower(),
            )
        )
        organisation.portal_direct_access = row.portal_direct_access
        summary.organisation = "updated"
    for attribute, value in (("name", row.name), ("stripe_customer_id", row.stripe_customer_id)):
        if value is not None and getattr(organisation, attribute) != value:
            setattr(organisation, attribute, value)
            summary.organisation = "updated"
    return organisation


def _write_members(
    rows: Sequence[MemberData], existing: dict[str, Member], organisation_id: int, tally: Tally
) -> None:
    for row in rows:
        member = existing.get(row.email.lower())
        if member is None:
            member = Member(
                organisation_id=organisation_id, email=row.email, name=row.name, role=row.role
            )
            if row.password is not None:
                member.set_password(row.password)
            db.session.add(member)
            tally.count(created=True)
            continue
        updated = False
        for attribute in ("email", "name", "role"):
            if getattr(member, attribute) != getattr(row, attribute):
                setattr(member, attribute, getattr(row, attribute))
                updated = True
        if row.password is not None and not member.check_password(row.password):
            member.set_password(row.password)
            updated = True
        tally.count(updated=updated)


def _write_prices(rows: Sequence[PriceData], organisation_id: int, tally: Tally) -> None:
    existing = {
        price.from_month: price
        for price in db.session.scalars(
            select(Price).where(Price.organisation_id == organisation_id)
        )
    }
    for row in rows:
        price = existing.get(row.from_month)
        if price is None:
            db.session.add(
                Price(
                    organisation_id=organisation_id,
                    from_month=row.from_month,
                    unit_price=row.unit_price,
                    currency=row.currency,
                )
            )
            tally.count(created=True)
        elif price.unit_price != row.unit_price or price.currency != row.currency:
            price.unit_price = row.unit_price
            price.currency = row.currency
            tally.count(updated=True)
        else:
            tally.count()


def _replace_ranges(
    model: type[TenantPause] | type[BillablePeriod],
    owner_column: str,
    replaced: Sequence[int],
    ranges: dict[int, tuple[DateRange, ...]],
) -> None:
    """Delete the date ranges of the `replaced` owners, then insert theirs from `ranges`."""
    owner = getattr(model, owner_column)
    for chunk in _chunks(replaced):
        db.session.execute(
            delete(model).where(owner.in_(chunk)).execution_options(synchronize_session=False)
        )
    rows = [
        {owner_column: owner_id, "from_date": start, "until_date": until}
        for owner_id, owned in ranges.items()
        for start, until in owned
    ]
    if rows:
        db.session.execute(insert(model.__table__), rows)


def _write_tenants(
    rows: Sequence[TenantData], organisation_id: int, summary: ImportSummary
) -> dict[str, int]:
    """Write the tenants and their pauses; returns every tenant's primary key by external id."""
    existing = {
        row.external_id: row
        for row in db.session.execute(
            select(
                Tenant.id,
                Tenant.external_id,
                Tenant.name,
                Tenant.microsoft_tenant_id,
                Tenant.onboarded_on,
                Tenant.offboarded_on,
            ).where(Tenant.organisation_id == organisation_id)
        )
    }
    stored_pauses: dict[int, list[DateRange]] = defaultdict(list)
    for tenant_id, start, until in db.session.execute(
        select(TenantPause.tenant_id, TenantPause.from_date, TenantPause.until_date)
        .join(Tenant)
        .where(Tenant.organisation_id == organisation_id)
    ):
        stored_pauses[tenant_id].append((start, until))

    new: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    replaced: list[int] = []
    pauses: dict[int, tuple[DateRange, ...]] = {}
    new_pauses: dict[str, tuple[DateRange, ...]] = {}
    for row in rows:
        values = {
            "name": row.name,
            "microsoft_tenant_id": row.microsoft_tenant_id,
            "onboarded_on": row.onboarded_on,
            "offboarded_on": row.offboarded_on,
        }
        current = existing.get(row.external_id)
        if current is None:
            new.append(
                {"organisation_id": organisation_id, "external_id": row.external_id, **values}
            )
            new_pauses[row.external_id] = row.pauses
            summary.tenants.count(created=True)
            continue
        fields_differ = any(getattr(current, key) != value for key, value in values.items())
        if fields_differ:
            changed.append({"id": current.id, **values})
        pauses_differ = _sorted(stored_pauses.get(current.id, ())) != row.pauses
        if pauses_differ:
            replaced.append(current.id)
            pauses[current.id] = row.pauses
        summary.tenants.count(updated=fields_differ or pauses_differ)

    ids = {external_id: row.id for external_id, row in existing.items()}
    if new:
        ids.update(_insert_with_ids(Tenant, new, organisation_id))
    if changed:
        db.session.execute(update(Tenant), changed)
    pauses.update({ids[external_id]: owned for external_id, owned in new_pauses.items()})
    _replace_ranges(TenantPause, "tenant_id", replaced, pauses)
    return ids


def _insert_with_ids(
    model: type[Tenant] | type[Identity], rows: list[dict[str, Any]], organisation_id: int
) -> dict[str, int]:
    """Insert rows in bulk; returns their new primary keys by external id.

    The keys are read back with one query rather than through RETURNING, which
    makes PostgreSQL drivers expand a statement per batch of rows.
    """
    db.session.execute(insert(model.__table__), rows)
    new = {row["external_id"] for row in rows}
    stored = db.session.execute(
        select(model.external_id, model.id).where(model.organisation_id == organisation_id)
    )
    return {external_id: key for external_id, key in stored if external_id in new}


def _write_identities(
    tenants: Sequence[TenantData], tenant_ids: dict[str, int], organisation_id: int, tally: Tally
) -> None:
    existing = {
        row.external_id: row
        for row in db.session.execute(
            select(
                Identity.id,
                Identity.external_id,
                Identity.tenant_id,
                Identity.display_name,
                Identity.user_principal_name,
            ).where(Identity.organisation_id == organisation_id)
        )
    }
    stored_periods: dict[int, list[DateRange]] = defaultdict(list)
    for identity_id, start, until in db.session.execute(
        select(BillablePeriod.identity_id, BillablePeriod.from_date, BillablePeriod.until_date)
        .join(Identity)
        .where(Identity.organisation_id == organisation_id)
    ):
        stored_periods[identity_id].append((start, until))

    new: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    replaced: list[int] = []
    periods: dict[int, tuple[DateRange, ...]] = {}
    new_periods: dict[str, tuple[DateRange, ...]] = {}
    for tenant in tenants:
        tenant_id = tenant_ids[tenant.external_id]
        for row in tenant.identities:
            values = {
                "tenant_id": tenant_id,
                "display_name": row.display_name,
                "user_principal_name": row.user_principal_name,
            }
            current = existing.get(row.external_id)
            if current is None:
                new.append(
                    {"organisation_id": organisation_id, "external_id": row.external_id, **values}
                )
                new_periods[row.external_id] = row.billable_periods
                tally.count(created=True)
                continue
            fields_differ = any(getattr(current, key) != value for key, value in values.items())
            if fields_differ:
                changed.append({"id": current.id, **values})
            periods_differ = _sorted(stored_periods.get(current.id, ())) != row.billable_periods
            if periods_differ:
                replaced.append(current.id)
                periods[current.id] = row.billable_periods
            tally.count(updated=fields_differ or periods_differ)

    ids = _insert_with_ids(Identity, new, organisation_id) if new else {}
    if changed:
        db.session.execute(update(Identity), changed)
    periods.update({ids[external_id]: owned for external_id, owned in new_periods.items()})
    _replace_ranges(BillablePeriod, "identity_id", replaced, periods)
