"""The Usage page's figures, cached: a month's totals per tenant (from which its headline is
made), and the chart's monthly totals.

Computing them reads every billable period of the organisation (a second or more for 100,000
identities), while a sync changes only a few tenants from a day on. So they are kept in the
app's cache (Flask-Caching: in each process, or in Redis shared by every app server and the
report worker when `CACHE_URL` says so) per tenant and month, under keys made of:

- the organisation, the tenant and the tenant's revision for the month (`figures.revisions`:
  the newest change the importer recorded for that tenant, or for every tenant, from a day
  before the month's end), so a changed figure is never shown stale and an untouched one is
  kept (anything else that ever changes usage data must call
  `Organisation.bump_usage_revision()`, which touches everything, in the same transaction);
- the month, and for the current month today's date, so that month to date moves on each
  day; past months do not depend on the day.

A month's totals are assembled from its tenants' entries (one `get_many`), computing only
the tenants missing, and kept whole under the month's own revision, so a warm view is one
lookup. After a sync, each process brings the month's newest totals it keeps up to date with
the changed tenants' entries (a one-tenant sync: one tenant's queries, once for every
process). The chart is kept under the current
month's revision (which covers every month before it) and made of the months' totals.

Only one request computes a missing month at a time (per key, across workers when the cache
is shared); others wait for it rather than computing the same figures side by side. When the
cache itself fails, the figures are computed and served without it.

In front of that cache, each process also keeps the entries it used last as they are (`Memo`,
one per app's cache): since a key never changes its value, they need no invalidation, and a
request then costs neither a trip to Redis nor unpickling a thousand tenants. Rendered HTML
is the web side's to keep (`billing_app.web.fragments`), with the same `Memo`.

The report does not come from here: it needs every user's line and is computed afresh.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from decimal import Decimal
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

from sqlalchemy import select

from billing_app.extensions import cache, db
from billing_app.figures import headline, queries, revisions
from billing_app.figures.calculator import (
    MonthTotals,
    TenantTotals,
    assembled_totals,
    month_totals_on,
)
from billing_app.figures.month_request import month_before
from billing_app.figures.months import Month, available_months
from billing_app.figures.proration import NoPriceError, price_for
from billing_app.models import Organisation, Tenant

log = logging.getLogger(__name__)

T = TypeVar("T")

KEY_VERSION = 4
"""Part of every key: bump it when the cached types change shape, so that a deploy never
reads entries pickled by the previous code."""
TIMEOUT = 24 * 60 * 60
"""Seconds an entry is kept; it is never stale before (the keys say what it depends on)."""
LOCK_TIMEOUT = 120
"""Seconds after which a computation that never finished (a killed worker) no longer holds
others back."""
WAIT = 60.0
"""Seconds a request waits for another one's computation before computing itself."""
POLL = 0.05
MEMO_SIZE = 64
"""Entries each process keeps in memory: a month of 1,000 tenants is about a third of a MB as
figures, a quarter of a MB as HTML."""
TENANT_MEMO_SIZE = 40_000
"""Tenants' month figures each process keeps in memory (a few hundred bytes each): a year of
1,000 tenants, counted on two days, and then some."""


def month_summary(organisation: Organisation, month: Month, today: dt.date) -> MonthTotals:
    """The month's figures per tenant (`calculator.month_totals`), counted on `today`.
    Raises `proration.NoPriceError` when the month has no price."""
    return _summary(organisation, month, today, revisions.month_revision(organisation.id, month))


def _summary(
    organisation: Organisation, month: Month, today: dt.date, revision: int
) -> MonthTotals:
    """`month_summary` of the month at `revision` (its revision now)."""
    key = _key("month", organisation, revision, str(month), _day(month, today))
    return _memo().get_or_compute(key, lambda: _newest(organisation, month, today, revision))


def _newest(organisation: Organisation, month: Month, today: dt.date, revision: int) -> MonthTotals:
    """The month's totals at `revision`: the newest totals this process keeps of the month
    with only the tenants changed since taken anew, or else assembled from the tenants' kept
    totals (one request at a time). The newest totals stay in this process (a pickled month
    of 1,000 tenants costs more to store than one tenant costs to compute); what other
    processes share is each tenant's figures."""
    latest_key = _key("month-newest", organisation, 0, str(month), _day(month, today))
    latest = _memo().get(latest_key)
    totals = None
    if latest is not None and latest[0] <= revision:
        totals = _updated(organisation, month, today, latest[1], latest[0], revision)
    if totals is None:
        key = _key("month", organisation, revision, str(month), _day(month, today))
        totals = _shared(key, lambda: _assemble(organisation, month, today))
    if latest is None or latest[0] != revision:
        _memo().put(latest_key, (revision, totals))
    return totals


def _updated(
    organisation: Organisation,
    month: Month,
    today: dt.date,
    base: MonthTotals,
    base_revision: int,
    revision: int,
) -> MonthTotals | None:
    """`base` (the month's totals at `base_revision`) brought to `revision` with the figures
    of the tenants changed in between; None when every tenant changed (a price)."""
    changed = revisions.changed_tenants(organisation.id, month, base_revision, revision)
    if None in changed:
        return None
    if not changed:
        return base
    revision_of = {tenant_id: rev for tenant_id, rev in changed.items() if tenant_id is not None}
    fresh = _tenant_figures(organisation, month, today, revision_of)
    kept = [tenant for tenant in base.tenants if tenant.tenant_id not in changed]
    return assembled_totals(
        organisation.id, month, today, base.unit_price, base.currency, [*kept, *fresh]
    )


def _day(month: Month, today: dt.date) -> str:
    """A month that is over no longer changes with the day; any other does."""
    return "closed" if today >= month.end else today.isoformat()


ABSENT = "absent"
"""Kept for a tenant with no figures in a month (not onboarded in it)."""


def _assemble(organisation: Organisation, month: Month, today: dt.date) -> MonthTotals:
    """The month's totals from its tenants' kept totals, computing only those missing."""
    unit_price, currency = price_for(queries.prices(organisation.id, month.end), month)
    tenants = _tenant_figures(organisation, month, today)
    return assembled_totals(organisation.id, month, today, unit_price, currency, tenants)


def _tenant_figures(
    organisation: Organisation,
    month: Month,
    today: dt.date,
    revision_of: dict[int, int] | None = None,
) -> list[TenantTotals]:
    """The month's figures of the tenants of `revision_of` at those revisions (None: every
    tenant onboarded in the month, at their revisions now), from this process's memo, else
    the shared cache; only those found in neither are computed (in one run), and kept in
    both. Tenants computed for month to date are computed for the month's last day too (its
    projection, which the page shows beside it) from the same read."""
    if revision_of is None:
        every, revised = revisions.tenant_revisions(organisation.id, month)
        tenant_ids = queries.tenant_ids(organisation.id, month.first_day, month.end)
        revision_of = {tenant_id: revised.get(tenant_id, every) for tenant_id in tenant_ids}
        all_of_month = True
    else:
        all_of_month = False

    def keys_on(day: dt.date) -> dict[int, str]:
        return {
            tenant_id: _key(
                "tenant", organisation, revision, tenant_id, str(month), _day(month, day)
            )
            for tenant_id, revision in revision_of.items()
        }

    keys = keys_on(today)
    memo = _tenant_memo()
    found = {tenant_id: memo.get(key) for tenant_id, key in keys.items()}
    unknown = [tenant_id for tenant_id, value in found.items() if value is None]
    for tenant_id, value in zip(unknown, _get_many([keys[t] for t in unknown]), strict=True):
        if value is not None:
            found[tenant_id] = value
            memo.put(keys[tenant_id], value)
    missing = [tenant_id for tenant_id, value in found.items() if value is None]
    if missing:
        last_day = month.end - dt.timedelta(days=1)
        days = [today, last_day] if month.first_day <= today < last_day else [today]
        whole = all_of_month and len(missing) == len(keys)
        computed = month_totals_on(organisation, month, days, None if whole else missing)
        entries: dict[str, object] = {}
        for day, totals in computed.items():
            by_id = {tenant.tenant_id: tenant for tenant in totals.tenants}
            day_keys = keys if day == today else keys_on(day)
            for tenant_id in missing:
                entries[day_keys[tenant_id]] = by_id.get(tenant_id, ABSENT)
            if day == today:
                found.update({tenant_id: by_id.get(tenant_id, ABSENT) for tenant_id in missing})
        _set_many(entries)
        for key, value in entries.items():
            memo.put(key, value)
    return [value for value in found.values() if value != ABSENT]


def month_headline(organisation: Organisation, month: Month, today: dt.date) -> headline.Headline:
    """The month's headline (`headline.headline`), from the cached totals of the month, of
    the month before and, for the current month, of the month counted to its last day."""
    return headline.headline(organisation, month, today, month_summary)


def chart_totals(organisation: Organisation, today: dt.date) -> list[tuple[Month, Decimal]]:
    """Each month's total from January 2026 to today (`calculator.monthly_totals`), made of
    the months' kept totals; months without a price are left out."""
    current = Month.of(today)
    key = _key(
        "monthly", organisation, revisions.month_revision(organisation.id, current), str(today)
    )

    def compute() -> list[tuple[Month, Decimal]]:
        months = available_months(today)[::-1]
        totals = []
        for month, revision in revisions.month_revisions(organisation.id, months).items():
            try:
                totals.append((month, _summary(organisation, month, today, revision).cost))
            except NoPriceError:
                continue
        return totals

    return _cached(key, compute)


def previous_totals(organisation: Organisation, month: Month, today: dt.date) -> MonthTotals | None:
    """The cached totals of the month before `month`; None for January 2026, or when that
    month has no price."""
    before = month_before(month)
    if before is None:
        return None
    try:
        return month_summary(organisation, before, today)
    except NoPriceError:
        return None


def microsoft_tenant_ids(organisation: Organisation) -> dict[int, str]:
    """Each tenant's Microsoft tenant id by its database id, kept in this process for the
    organisation's latest usage revision; after a sync, only the tenants it changed are read
    again (a tenant's new Microsoft tenant id is a change the importer records)."""
    latest = revisions.latest_revision(organisation.id)
    key = ("microsoft-tenant-ids", organisation.id)
    kept = _memo().get(key)
    if kept is not None and kept[0] == latest:
        return kept[1]
    changed: dict[int | None, int] = {None: latest}
    if kept is not None and kept[0] < latest:
        changed = revisions.changed_tenants(organisation.id, None, kept[0], latest)
    statement = select(Tenant.id, Tenant.microsoft_tenant_id).where(
        Tenant.organisation_id == organisation.id
    )
    if None in changed:
        ids = {}
    else:
        ids = dict(kept[1])
        statement = statement.where(Tenant.id.in_(list(changed)))
    ids.update(db.session.execute(statement).tuples().all())
    _memo().put(key, (latest, ids))
    return ids


class Memo:
    """The last entries used in this process, least recently used dropped first."""

    def __init__(self, size: int = MEMO_SIZE) -> None:
        self.size = size
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: Hashable, value: object) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def get_or_compute(self, key: Hashable, compute: Callable[[], T]) -> T:
        value = self.get(key)
        if value is None:
            value = compute()
            self.put(key, value)
        return value


_MEMOS: WeakKeyDictionary[object, Memo] = WeakKeyDictionary()
_TENANT_MEMOS: WeakKeyDictionary[object, Memo] = WeakKeyDictionary()
_MEMOS_LOCK = threading.Lock()


def _memo(memos: WeakKeyDictionary[object, Memo] = _MEMOS, size: int = MEMO_SIZE) -> Memo:
    """The memo in front of this app's cache (a new app, e.g. in each test, has a cache and so
    a memo of its own)."""
    backend = cache.cache
    memo = memos.get(backend)
    if memo is None:
        with _MEMOS_LOCK:
            memo = memos.setdefault(backend, Memo(size))
    return memo


def _tenant_memo() -> Memo:
    """The memo of tenants' month figures in front of this app's cache."""
    return _memo(_TENANT_MEMOS, TENANT_MEMO_SIZE)


def clear_memo() -> None:
    """Forget what this app's memos keep (benchmarks measuring a cold start)."""
    _MEMOS.pop(cache.cache, None)
    _TENANT_MEMOS.pop(cache.cache, None)


def _key(kind: str, organisation: Organisation, revision: int, *parts: object) -> str:
    return ":".join(
        (f"usage{KEY_VERSION}", kind, str(organisation.id), str(revision), *map(str, parts))
    )


def _cached(key: str, compute: Callable[[], T]) -> T:
    """The value of `key` from this process's memo, else from the cache, else computed (by
    one request at a time) and stored in both."""
    return _memo().get_or_compute(key, lambda: _shared(key, compute))


def _shared(key: str, compute: Callable[[], T]) -> T:
    """The cached value of `key`, computed (by one request at a time) when missing."""
    value = _get(key)
    if value is not None:
        return value
    lock = f"{key}:computing"
    token = secrets.token_hex(8)
    deadline = time.monotonic() + WAIT
    while True:
        try:
            locked = cache.add(lock, token, timeout=LOCK_TIMEOUT)
        except Exception:
            log.warning("usage cache unavailable; computing without it", exc_info=True)
            return compute()
        if locked:
            try:
                # Another request may have stored it between the first look and the lock.
                value = _get(key)
                if value is None:
                    value = compute()
                    _set(key, value)
                return value
            finally:
                _release(lock, token)
        time.sleep(POLL)
        value = _get(key)
        if value is not None:
            return value
        if time.monotonic() > deadline:
            log.warning("usage cache: gave up waiting for %s; computing it here", key)
            value = compute()
            _set(key, value)
            return value


def _get(key: str):
    try:
        return cache.get(key)
    except Exception:
        log.warning("usage cache unavailable; computing without it", exc_info=True)
        return None


def _get_many(keys: list[str]) -> list[Any]:
    if not keys:
        return []
    try:
        return list(cache.get_many(*keys))
    except Exception:
        log.warning("usage cache unavailable; computing without it", exc_info=True)
        return [None] * len(keys)


def _set_many(entries: dict[str, object]) -> None:
    if not entries:
        return
    try:
        cache.set_many(entries, timeout=TIMEOUT)
    except Exception:
        log.warning("usage cache unavailable; not storing tenants' figures", exc_info=True)


def _set(key: str, value: object) -> None:
    try:
        cache.set(key, value, timeout=TIMEOUT)
    except Exception:
        log.warning("usage cache unavailable; not storing %s", key, exc_info=True)


def _release(lock: str, token: str) -> None:
    """Remove the lock if it is still ours (it may have timed out and been taken since)."""
    try:
        if cache.get(lock) == token:
            cache.delete(lock)
    except Exception:
        log.warning("usage cache unavailable; lock %s left to expire", lock, exc_info=True)
