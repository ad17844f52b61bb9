"""Revisions of the usage figures, per tenant and month, from the changes the importer records
(`models.UsageChange`): a tenant's figures of a month are those of the newest change of that
tenant, or of every tenant, from a day before the month's end. A month's revision is the
newest of its tenants'. A month a sync did not touch keeps its revision, and so its cached
figures, fragments and kept reports.

A change from a day counts for that day's month and every later one, so revisions only grow
from one month to the next: the current month's revision covers every month before it."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import func, or_, select

from billing_app.extensions import db
from billing_app.figures.months import Month
from billing_app.models import UsageChange


def month_revision(organisation_id: int, month: Month) -> int:
    """The newest change touching `month` (0: none): one indexed query."""
    found = db.session.scalar(
        select(func.max(UsageChange.id)).where(
            UsageChange.organisation_id == organisation_id, UsageChange.from_day < month.end
        )
    )
    return found or 0


def month_revisions(organisation_id: int, months: Sequence[Month]) -> dict[Month, int]:
    """The revision of each of `months`, in one query: the newest change from each day (read
    from the index alone), each month's revision being the newest from a day before its end."""
    if not months:
        return {}
    rows = db.session.execute(
        select(UsageChange.from_day, func.max(UsageChange.id))
        .where(
            UsageChange.organisation_id == organisation_id,
            UsageChange.from_day < max(month.end for month in months),
        )
        .group_by(UsageChange.from_day)
        .order_by(UsageChange.from_day)
    ).all()
    revisions = {}
    newest, index = 0, 0
    for month in sorted(months):
        while index < len(rows) and rows[index][0] < month.end:
            newest = max(newest, rows[index][1])
            index += 1
        revisions[month] = newest
    return {month: revisions[month] for month in months}


def latest_revision(organisation_id: int) -> int:
    """The newest change of the organisation's usage data, whatever its day (0: none)."""
    found = db.session.scalar(
        select(func.max(UsageChange.id)).where(UsageChange.organisation_id == organisation_id)
    )
    return found or 0


def tenant_revisions(
    organisation_id: int, month: Month, tenant_ids: Collection[int] | None = None
) -> tuple[int, dict[int, int]]:
    """The revision of every tenant's figures of `month` (or of those of `tenant_ids`): the
    revision of the changes of every tenant, and each tenant's own newest change if newer (one
    grouped query)."""
    chosen = (
        ()
        if tenant_ids is None
        else (or_(UsageChange.tenant_id.is_(None), UsageChange.tenant_id.in_(list(tenant_ids))),)
    )
    rows = db.session.execute(
        select(UsageChange.tenant_id, func.max(UsageChange.id))
        .where(
            UsageChange.organisation_id == organisation_id,
            UsageChange.from_day < month.end,
            *chosen,
        )
        .group_by(UsageChange.tenant_id)
    ).all()
    every = max((revision for tenant_id, revision in rows if tenant_id is None), default=0)
    return every, {
        tenant_id: max(revision, every) for tenant_id, revision in rows if tenant_id is not None
    }


def changed_tenants(
    organisation_id: int, month: Month | None, after: int, until: int
) -> dict[int | None, int]:
    """The tenants (None: every tenant) whose figures of `month` (None: of any month)
    changed after revision `after`, up to `until`, each with its newest change in between
    (with `until` the month's revision and no change of every tenant in between, that is the
    tenant's revision): one indexed query, of the few changes in between."""
    of_month = () if month is None else (UsageChange.from_day < month.end,)
    rows = db.session.execute(
        select(UsageChange.tenant_id, func.max(UsageChange.id))
        .where(
            UsageChange.organisation_id == organisation_id,
            UsageChange.id > after,
            UsageChange.id <= until,
            *of_month,
        )
        .group_by(UsageChange.tenant_id)
    )
    return dict(rows.tuples().all())


def tenant_revision(organisation_id: int, tenant_id: int, month: Month) -> int:
    """The revision of one tenant's figures of `month` (and of every month before it)."""
    found = db.session.scalar(
        select(func.max(UsageChange.id)).where(
            UsageChange.organisation_id == organisation_id,
            UsageChange.from_day < month.end,
            or_(UsageChange.tenant_id.is_(None), UsageChange.tenant_id == tenant_id),
        )
    )
    return found or 0
