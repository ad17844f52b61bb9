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
import records in the same transaction what that changed (`UsageChange`): per tenant, the
earliest day whose figures changed (a new user billable from today: today; a pause
back-dated into March: its first day; a rename: the tenant's onboarding, as names are shown
in every month), and for a price, every tenant from its month. Figures, fragments and
reports are kept per tenant and month under these revisions (see `billing_app.figures`), so a
sync costs what it changed. The organisation's `usage_revision` still goes up by one.

Only what the file carries is read: its tenants and identities by their ids, with their
pauses and billable periods, so importing one tenant costs one tenant's work.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.exc import SQLAlchemyError

from billing_app.billing_email.history import AUDIT_ACTION as BILLING_EMAIL_CHANGED
from billing_app.extensions import db
from billing_app.importer.schema import (
    ANALYZE_AFTER,
    CHUNK,
    DateRange,
    ImportFile,
    MemberData,
    OrganisationData,
    PriceData,
    TenantData,
)
from billing_app.importer.validation import Refusals, parse_file, quote, sorted_ranges
from billing_app.models import (
    AuditEvent,
    BillablePeriod,
    Identity,
    Member,
    Organisation,
    Price,
    Tenant,
    TenantPause,
    UsageChange,
)
from billing_app.portal.service import WHITELIST_AUDIT_ACTION

log = logging.getLogger(__name__)


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
    organisation_id: int | None = None
    changed_from: dict[int | None, dt.date] = field(default_factory=dict)
    """The earliest changed day of each tenant whose figures changed (by its id; None: every
    tenant, a price), as recorded in `usage_changes`."""

    def touch(self, tenant_id: int | None, day: dt.date | None) -> None:
        """Record that the figures of `tenant_id` (None: of every tenant) changed from `day`."""
        if day is None:
            return
        known = self.changed_from.get(tenant_id)
        if known is None or day < known:
            self.changed_from[tenant_id] = day

    @property
    def earliest_change(self) -> dt.date | None:
        """The earliest day whose figures changed; None when no figure did."""
        return min(self.changed_from.values(), default=None)

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
    _after_import(summary.slug)
    return summary


def _after_import(slug: str) -> None:
    """Every import, even one that changes nothing, has the worker check the alerts."""
    from billing_app.notifications.tasks import after_import

    organisation_id = db.session.scalar(select(Organisation.id).where(Organisation.slug == slug))
    if organisation_id is not None:
        after_import(organisation_id)


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
    summary.organisation_id = organisation.id
    _write_prices(file.organisation.prices, organisation.id, summary)
    tenant_ids = _write_tenants(file.tenants, organisation.id, summary)
    _write_identities(file.tenants, tenant_ids, organisation.id, summary)
    if summary.usage_changed:
        organisation.usage_revision = Organisation.usage_revision + 1
    if summary.changed_from:
        db.session.execute(
            insert(UsageChange.__table__),
            [
                {"organisation_id": organisation.id, "tenant_id": tenant_id, "from_day": day}
                for tenant_id, day in sorted(
                    summary.changed_from.items(), key=lambda item: item[0] or 0
                )
            ],
        )
    return summary


def first_difference(old: Iterable[DateRange], new: Iterable[DateRange]) -> dt.date | None:
    """The earliest day covered by one list of date ranges and not by the other; None when
    both cover the same days (however they are split or ordered)."""
    old, new = list(old), list(new)
    points = sorted({day for ranges in (old, new) for r in ranges for day in r if day is not None})

    def covers(ranges: list[DateRange], day: dt.date) -> bool:
        return any(start <= day and (until is None or day < until) for start, until in ranges)

    for day in points:
        if covers(old, day) != covers(new, day):
            return day
    return None


def _earliest(*days: dt.date | None) -> dt.date | None:
    return min((day for day in days if day is not None), default=None)


def _existing_members(file: ImportFile, organisation: Organisation | None) -> dict[str, Member]:
    """Existing members by lowercased email; refuses addresses or Stripe customers of others."""
    refusals = Refusals()
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
                f'"stripe_customer_id" {quote(customer)} belongs to organisation {quote(other)}',
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


def _write_prices(rows: Sequence[PriceData], organisation_id: int, summary: ImportSummary) -> None:
    tally = summary.prices
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
            summary.touch(None, row.from_month)
        elif price.unit_price != row.unit_price or price.currency != row.currency:
            price.unit_price = row.unit_price
            price.currency = row.currency
            tally.count(updated=True)
            summary.touch(None, row.from_month)
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


@dataclass(frozen=True)
class _Owner:
    """A tenant or an identity as the file gives it: its id, its columns and its date ranges
    (pauses or billable periods)."""

    external_id: str
    values: dict[str, Any]
    ranges: tuple[DateRange, ...]


@dataclass(frozen=True)
class _Written:
    """An owner the import created or changed: its values and date ranges before (None and
    () when created) and after."""

    id: int
    old: dict[str, Any] | None
    new: dict[str, Any]
    old_ranges: tuple[DateRange, ...]
    new_ranges: tuple[DateRange, ...]


def _write_owners(
    model: type[Tenant] | type[Identity],
    range_model: type[TenantPause] | type[BillablePeriod],
    owner_column: str,
    owners: Iterable[_Owner],
    columns: Sequence[str],
    organisation_id: int,
    tally: Tally,
) -> tuple[dict[str, int], list[_Written]]:
    """Write tenants or identities by external id, each with its date ranges, writing only
    what differs. Reads only the owners the file carries. Returns their primary keys by
    external id, and what was created or changed."""
    owners = list(owners)
    existing = {}
    for chunk in _chunks([owner.external_id for owner in owners]):
        for row in db.session.execute(
            select(model.id, model.external_id, *(getattr(model, name) for name in columns)).where(
                model.organisation_id == organisation_id, model.external_id.in_(chunk)
            )
        ):
            existing[row.external_id] = row
    stored: dict[int, list[DateRange]] = defaultdict(list)
    owner = getattr(range_model, owner_column)
    for chunk in _chunks([row.id for row in existing.values()]):
        for owner_id, start, until in db.session.execute(
            select(owner, range_model.from_date, range_model.until_date).where(owner.in_(chunk))
        ):
            stored[owner_id].append((start, until))

    new: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    replaced: list[int] = []
    ranges: dict[int, tuple[DateRange, ...]] = {}
    new_ranges: dict[str, tuple[DateRange, ...]] = {}
    written: list[_Written] = []
    for item in owners:
        current = existing.get(item.external_id)
        if current is None:
            row = {"organisation_id": organisation_id, "external_id": item.external_id}
            new.append(row | item.values)
            new_ranges[item.external_id] = item.ranges
            tally.count(created=True)
            continue
        old_values = {key: getattr(current, key) for key in item.values}
        fields_differ = old_values != item.values
        if fields_differ:
            changed.append({"id": current.id, **item.values})
        old_ranges = sorted_ranges(stored.get(current.id, ()))
        ranges_differ = old_ranges != item.ranges
        if ranges_differ:
            replaced.append(current.id)
            ranges[current.id] = item.ranges
        if fields_differ or ranges_differ:
            written.append(_Written(current.id, old_values, item.values, old_ranges, item.ranges))
        tally.count(updated=fields_differ or ranges_differ)

    ids = {external_id: row.id for external_id, row in existing.items()}
    if new:
        ids.update(_insert_with_ids(model, new, organisation_id))
        written.extend(
            _Written(ids[row["external_id"]], None, row, (), new_ranges[row["external_id"]])
            for row in new
        )
    if changed:
        db.session.execute(update(model), changed)
    ranges.update({ids[external_id]: owned for external_id, owned in new_ranges.items()})
    _replace_ranges(range_model, owner_column, replaced, ranges)
    return ids, written


_TENANT_COLUMNS = ("name", "microsoft_tenant_id", "onboarded_on", "offboarded_on")
_IDENTITY_COLUMNS = ("tenant_id", "display_name", "user_principal_name")


def _write_tenants(
    rows: Sequence[TenantData], organisation_id: int, summary: ImportSummary
) -> dict[str, int]:
    """Write the tenants and their pauses; returns the file's tenants' keys by external id."""
    owners = (
        _Owner(row.external_id, {name: getattr(row, name) for name in _TENANT_COLUMNS}, row.pauses)
        for row in rows
    )
    ids, written = _write_owners(
        Tenant, TenantPause, "tenant_id", owners, _TENANT_COLUMNS, organisation_id, summary.tenants
    )
    for tenant in written:
        summary.touch(tenant.id, _tenant_changed_from(tenant))
    return ids


def _tenant_changed_from(tenant: _Written) -> dt.date | None:
    """The earliest day of a tenant's figures that its new values or pauses change."""
    new = tenant.new
    if tenant.old is None:
        return new["onboarded_on"]
    old = tenant.old
    named = any(old[key] != new[key] for key in ("name", "microsoft_tenant_id"))
    return _earliest(
        # Names are shown in every month the tenant is onboarded in.
        min(old["onboarded_on"], new["onboarded_on"]) if named else None,
        first_difference(
            [(old["onboarded_on"], old["offboarded_on"])],
            [(new["onboarded_on"], new["offboarded_on"])],
        ),
        first_difference(tenant.old_ranges, tenant.new_ranges),
    )


def _write_identities(
    tenants: Sequence[TenantData],
    tenant_ids: dict[str, int],
    organisation_id: int,
    summary: ImportSummary,
) -> None:
    """Write the identities under their tenants, and their billable periods."""
    owners = (
        _Owner(
            row.external_id,
            {
                "tenant_id": tenant_ids[tenant.external_id],
                "display_name": row.display_name,
                "user_principal_name": row.user_principal_name,
            },
            row.billable_periods,
        )
        for tenant in tenants
        for row in tenant.identities
    )
    _, written = _write_owners(
        Identity,
        BillablePeriod,
        "identity_id",
        owners,
        _IDENTITY_COLUMNS,
        organisation_id,
        summary.identities,
    )
    for identity in written:
        first = _earliest(*(start for start, _ in identity.old_ranges + identity.new_ranges))
        new_tenant = identity.new["tenant_id"]
        if identity.old is None:
            summary.touch(new_tenant, first)
            continue
        old = identity.old
        if old["tenant_id"] != new_tenant:
            # Its lines leave one tenant and join another, in every month it was billable.
            summary.touch(old["tenant_id"], first)
            summary.touch(new_tenant, first)
        elif any(old[key] != identity.new[key] for key in ("display_name", "user_principal_name")):
            summary.touch(new_tenant, first)
        else:
            summary.touch(new_tenant, first_difference(identity.old_ranges, identity.new_ranges))


def _insert_with_ids(
    model: type[Tenant] | type[Identity], rows: list[dict[str, Any]], organisation_id: int
) -> dict[str, int]:
    """Insert rows in bulk; returns their new primary keys by external id.

    The keys are read back with one query rather than through RETURNING, which
    makes PostgreSQL drivers expand a statement per batch of rows.
    """
    db.session.execute(insert(model.__table__), rows)
    ids: dict[str, int] = {}
    for chunk in _chunks([row["external_id"] for row in rows]):
        ids.update(
            db.session.execute(
                select(model.external_id, model.id).where(
                    model.organisation_id == organisation_id, model.external_id.in_(chunk)
                )
            ).all()
        )
    return ids
