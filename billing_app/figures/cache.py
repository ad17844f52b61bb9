"""The Usage page's figures, cached: a month's totals per tenant (from which its headline is
made), and the chart's monthly totals.

Computing them reads every billable period of the organisation (a second or more for 100,000
identities), while they change only when the organisation's usage data does or a day passes.
So they are kept in the app's cache (Flask-Caching: in each process, or in Redis shared by all
workers when `CACHE_URL` says so) under keys made of:

- the organisation's id and its `usage_revision`, which the importer bumps whenever a price,
  tenant, pause, identity or billable period changed: a changed figure is never shown stale,
  and entries of older revisions simply expire (anything else that ever changes usage data
  must call `Organisation.bump_usage_revision()` in the same transaction);
- the month, and for the current month today's date, so that month to date moves on each
  day; past months do not depend on the day;
- for the chart, today's date (the months shown and the current month's total depend on it).

Only one request computes a missing entry at a time (per key, across workers when the cache
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
from billing_app.figures import headline
from billing_app.figures.calculator import MonthTotals, month_totals, monthly_totals
from billing_app.figures.month_request import month_before
from billing_app.figures.months import Month
from billing_app.figures.proration import NoPriceError
from billing_app.models import Organisation, Tenant

log = logging.getLogger(__name__)

T = TypeVar("T")

KEY_VERSION = 3
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


def month_summary(organisation: Organisation, month: Month, today: dt.date) -> MonthTotals:
    """The month's figures per tenant (`calculator.month_totals`), counted on `today`.
    Raises `proration.NoPriceError` when the month has no price."""
    # A month that is over no longer changes with the day; any other does.
    day = "closed" if today >= month.end else today.isoformat()
    key = _key("month", organisation, str(month), day)
    return _cached(key, lambda: month_totals(organisation, month, today))


def month_headline(organisation: Organisation, month: Month, today: dt.date) -> headline.Headline:
    """The month's headline (`headline.headline`), from the cached totals of the month, of
    the month before and, for the current month, of the month counted to its last day."""
    return headline.headline(organisation, month, today, month_summary)


def chart_totals(organisation: Organisation, today: dt.date) -> list[tuple[Month, Decimal]]:
    """Each month's total from January 2026 to today (`calculator.monthly_totals`)."""
    key = _key("monthly", organisation, today.isoformat())
    return _cached(key, lambda: monthly_totals(organisation, today))


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
    """Each tenant's Microsoft tenant id by its database id, in one query, kept in this
    process for the organisation's usage revision (the importer bumps it on any change)."""

    def load() -> dict[int, str]:
        statement = select(Tenant.id, Tenant.microsoft_tenant_id).where(
            Tenant.organisation_id == organisation.id
        )
        return {row.id: row.microsoft_tenant_id for row in db.session.execute(statement)}

    key = ("microsoft-tenant-ids", organisation.id, organisation.usage_revision)
    return _memo().get_or_compute(key, load)


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
_MEMOS_LOCK = threading.Lock()


def _memo() -> Memo:
    """The memo in front of this app's cache (a new app, e.g. in each test, has a cache and so
    a memo of its own)."""
    backend = cache.cache
    memo = _MEMOS.get(backend)
    if memo is None:
        with _MEMOS_LOCK:
            memo = _MEMOS.setdefault(backend, Memo())
    return memo


def clear_memo() -> None:
    """Forget what this app's memo keeps (benchmarks measuring a cold start)."""
    _MEMOS.pop(cache.cache, None)


def _key(kind: str, organisation: Organisation, *parts: str) -> str:
    return ":".join(
        (
            f"usage{KEY_VERSION}",
            kind,
            str(organisation.id),
            str(organisation.usage_revision),
            *parts,
        )
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
