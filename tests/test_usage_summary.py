"""The Usage page's figures: `calculator.month_totals` (the month's usage without per-user
lines) and their cache in `figures.cache`, keyed by the organisation's usage revision, which
imports bump when usage data changes."""

from __future__ import annotations

import copy
import datetime as dt
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
import redis
from flask_caching.backends import RedisCache, SimpleCache
from sqlalchemy import event, func, select, text

from billing_app import config, create_app
from billing_app.extensions import cache, db
from billing_app.figures import cache as figures_cache
from billing_app.figures.calculator import (
    MonthTotals,
    MonthUsage,
    month_totals,
    month_totals_on,
    month_usage,
)
from billing_app.figures.calculator import monthly_totals as uncached_monthly_totals
from billing_app.figures.months import Month, available_months
from billing_app.figures.revisions import month_revision
from billing_app.importer import ANALYZE_AFTER, import_file
from billing_app.models import Identity, Organisation
from dev.sample_data import organisation_data
from tests.factories import ALWAYS, add_tenant, northwind
from tests.pages import rows, summary_region

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SUMMARY = "/settings/usage/summary"
HTMX = {"HX-Request": "true"}
TODAY = dt.date(2026, 11, 24)


def figures(usage: MonthUsage | MonthTotals) -> tuple:
    """Everything the month summary shows, from either result."""
    return (
        usage.organisation_id,
        usage.month,
        usage.month_to_date,
        usage.counted_end,
        usage.last_counted_day,
        usage.days_in_month,
        usage.unit_price,
        usage.currency,
        usage.billable_users,
        usage.billable_days,
        usage.units,
        usage.cost,
        [
            (
                t.tenant_id,
                t.external_id,
                t.name,
                t.onboarded_on,
                t.offboarded_on,
                t.onboarded_in_month,
                t.offboarded_in_month,
                t.paused_in_month,
                t.billable_users,
                t.billable_days,
                t.units,
                t.cost,
            )
            for t in usage.tenants
        ],
    )


@contextmanager
def counted_queries() -> Iterator[list[str]]:
    statements: list[str] = []

    def record(_connection, _cursor, statement, *_args) -> None:
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


def organisation(slug: str = "northwind-msp") -> Organisation:
    """The organisation as a request would load it: fresh from the database."""
    db.session.expire_all()
    return db.session.scalar(select(Organisation).where(Organisation.slug == slug))


@pytest.fixture
def ctx(app) -> Iterator[None]:
    with app.app_context():
        yield


@pytest.fixture
def sample(ctx) -> Organisation:
    """A sample organisation with what real usage has: tenants onboarded, paused and
    offboarded mid-month, overlapping periods, a price change in July 2026."""
    import_file(organisation_data(slug="sample-msp", tenants=12, identities_per_tenant=8, seed=3))
    return organisation("sample-msp")


# --- month_totals: month_usage without the lines ---------------------------------------------


def days_to_count_on(month: Month) -> list[dt.date]:
    """Today as the month's first, a middle and its last day, and a day after it."""
    return [
        month.first_day,
        month.first_day + dt.timedelta(days=14),
        month.end - dt.timedelta(1),
        month.end + dt.timedelta(days=3),
    ]


def test_month_totals_are_month_usage_without_the_lines(sample):
    months = available_months(TODAY)
    assert sum(t.billable_users for t in month_totals(sample, months[0], TODAY).tenants) > 0
    for month in months:
        for today in days_to_count_on(month):
            assert figures(month_totals(sample, month, today)) == figures(
                month_usage(sample, month, today)
            ), (month, today)


def test_month_totals_on_several_days_are_those_of_each_day(sample):
    """The projection is counted from the same read as month to date: each day's figures are
    those counted on that day alone, for the whole month and for a few tenants."""
    months = available_months(TODAY)
    some = sorted(t.tenant_id for t in month_totals(sample, months[0], TODAY).tenants)[:3]
    for month in (months[0], months[4]):
        days = days_to_count_on(month)
        for tenants in (None, some):
            together = month_totals_on(sample, month, days, tenants)
            assert list(together) == days
            for day in days:
                assert figures(together[day]) == figures(month_totals(sample, month, day, tenants))


def test_month_totals_of_tenants_without_users_or_days(ctx):
    import_file(northwind())
    northwind_ = organisation()
    add_tenant(
        northwind_,
        "Paused all month",
        pauses=(("2026-03-01", "2026-04-01"),),
        users=(("Grace", ALWAYS),),
    )
    add_tenant(northwind_, "Nobody", onboarded_on="2026-03-10")
    for today in (dt.date(2026, 3, 1), dt.date(2026, 3, 20), TODAY):
        totals = month_totals(northwind_, Month(2026, 3), today)
        assert figures(totals) == figures(month_usage(northwind_, Month(2026, 3), today))
    by_name = {t.name: t for t in totals.tenants}
    assert by_name["Paused all month"].billable_users == 0
    assert by_name["Paused all month"].paused_in_month
    assert (by_name["Nobody"].billable_users, by_name["Nobody"].cost) == (0, Decimal(0))


def test_month_totals_take_four_queries(sample):
    with counted_queries() as statements:
        month_totals(sample, Month(2026, 7), TODAY)
    assert len(statements) <= 4


# --- The cache -------------------------------------------------------------------------------


def test_cached_summary_equals_the_computation_and_is_read_without_queries(sample):
    month = Month(2026, 7)
    first = figures_cache.month_summary(sample, month, TODAY)
    assert first == month_totals(sample, month, TODAY)
    with counted_queries() as statements:
        again = figures_cache.month_summary(organisation("sample-msp"), month, TODAY)
    assert again == first
    assert [s for s in statements if "billable_periods" in s] == []

    chart = figures_cache.chart_totals(sample, TODAY)
    assert chart == uncached_monthly_totals(sample, TODAY)
    with counted_queries() as statements:
        assert figures_cache.chart_totals(sample, TODAY) == chart
    # One look at the revision (an index), nothing of the usage itself.
    assert [s for s in statements if "usage_changes" not in s] == []


def test_month_to_date_is_keyed_by_the_day(sample):
    current = Month.of(TODAY)
    tomorrow = TODAY + dt.timedelta(days=1)
    today_figures = figures_cache.month_summary(sample, current, TODAY)
    tomorrow_figures = figures_cache.month_summary(sample, current, tomorrow)
    assert today_figures == month_totals(sample, current, TODAY)
    assert tomorrow_figures == month_totals(sample, current, tomorrow)
    assert today_figures.last_counted_day == TODAY
    assert tomorrow_figures.last_counted_day == tomorrow
    assert tomorrow_figures.billable_days > today_figures.billable_days

    # On the 1st the previous month is complete: no longer month to date, same figures.
    first = current.end
    last_day = figures_cache.month_summary(sample, current, current.end - dt.timedelta(1))
    complete = figures_cache.month_summary(sample, current, first)
    assert last_day.month_to_date and not complete.month_to_date
    assert complete.cost == last_day.cost

    chart_today = figures_cache.chart_totals(sample, TODAY)
    chart_tomorrow = figures_cache.chart_totals(sample, tomorrow)
    assert chart_tomorrow == uncached_monthly_totals(sample, tomorrow) != chart_today


def test_past_months_do_not_depend_on_the_day(sample):
    figures_cache.month_summary(sample, Month(2026, 3), TODAY)
    with counted_queries() as statements:
        later = figures_cache.month_summary(sample, Month(2026, 3), TODAY + dt.timedelta(days=9))
    assert [s for s in statements if "usage_changes" not in s] == []
    assert later == month_totals(sample, Month(2026, 3), TODAY)


def test_each_organisation_has_its_own_entries(sample):
    import_file(northwind())
    other = organisation()
    mine = figures_cache.month_summary(sample, Month(2026, 7), TODAY)
    theirs = figures_cache.month_summary(other, Month(2026, 7), TODAY)
    assert theirs == month_totals(other, Month(2026, 7), TODAY) != mine


def test_a_missing_entry_is_computed_once_however_many_ask(app):
    calls: list[int] = []
    results: list[Any] = []

    def compute() -> list[int]:
        calls.append(1)
        time.sleep(0.3)
        return [42]

    def ask() -> None:
        with app.app_context():
            results.append(figures_cache._cached("test:single-flight", compute))

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results == [[42]] * 6
    assert len(calls) == 1
    with app.app_context():
        assert cache.get("test:single-flight:computing") is None


def test_a_failed_computation_does_not_hold_others_back(ctx):
    def fail() -> None:
        raise LookupError("no price")

    with pytest.raises(LookupError):
        figures_cache._cached("test:failing", fail)
    assert figures_cache._cached("test:failing", lambda: "computed") == "computed"


def test_figures_are_served_when_the_cache_fails(sample, monkeypatch):
    def broken(*_args, **_kwargs):
        raise ConnectionError("cache down")

    for method in ("get", "set", "add", "delete"):
        monkeypatch.setattr(cache, method, broken)
    month = Month(2026, 7)
    assert figures_cache.month_summary(sample, month, TODAY) == month_totals(sample, month, TODAY)
    assert figures_cache.chart_totals(sample, TODAY) == uncached_monthly_totals(sample, TODAY)


# --- The usage revision ----------------------------------------------------------------------


def changed(mutate: Callable[[dict], None]) -> dict:
    data = northwind()
    mutate(data)
    return data


def _price(data: dict) -> None:
    data["organisation"]["prices"][1]["unit_price"] = "3.50"


def _new_price(data: dict) -> None:
    data["organisation"]["prices"].append(
        {"from_month": "2026-10", "unit_price": "4.00", "currency": "usd"}
    )


def _tenant_name(data: dict) -> None:
    data["tenants"][0]["name"] = "Contoso Limited"


def _offboarding(data: dict) -> None:
    data["tenants"][0]["offboarded_on"] = "2026-10-01"


def _pause(data: dict) -> None:
    data["tenants"][0]["pauses"].append({"from": "2026-04-01", "until": "2026-04-03"})


def _period(data: dict) -> None:
    data["tenants"][0]["identities"][0]["billable_periods"][0]["until"] = "2026-06-01"


def _new_identity(data: dict) -> None:
    data["tenants"][2]["identities"].append(
        {
            "id": "u-9",
            "display_name": "New",
            "user_principal_name": "new@x.example",
            "billable_periods": [{"from": "2026-06-01", "until": None}],
        }
    )


def _moved_identity(data: dict) -> None:
    data["tenants"][2]["identities"].append(data["tenants"][1]["identities"].pop())


def _new_tenant(data: dict) -> None:
    tenant = copy.deepcopy(data["tenants"][2])
    tenant.update(id="t-9", microsoft_tenant_id="00000000-0000-0000-0000-000000000009")
    data["tenants"].append(tenant)


@pytest.mark.parametrize(
    "mutate",
    [
        _price,
        _new_price,
        _tenant_name,
        _offboarding,
        _pause,
        _period,
        _new_identity,
        _moved_identity,
        _new_tenant,
    ],
)
def test_import_bumps_the_revision_when_usage_data_changed(ctx, mutate):
    import_file(northwind())
    before = organisation().usage_revision
    import_file(changed(mutate))
    assert organisation().usage_revision == before + 1


def _member(data: dict) -> None:
    data["members"][1]["name"] = "Fiona F."


def _billing_email(data: dict) -> None:
    data["organisation"]["billing_email"] = "accounts@northwind.example"


def _whitelist(data: dict) -> None:
    data["organisation"]["portal_direct_access"] = True


@pytest.mark.parametrize("mutate", [lambda data: None, _member, _billing_email, _whitelist])
def test_import_keeps_the_revision_when_usage_data_did_not_change(ctx, mutate):
    import_file(northwind())
    before = organisation().usage_revision
    assert before == 1
    import_file(changed(mutate))
    assert organisation().usage_revision == before


def test_large_import_refreshes_the_planner_statistics(ctx):
    data = organisation_data(slug="big-msp", tenants=10, identities_per_tenant=100, seed=1)
    summary = import_file(data)
    assert summary.records.created >= ANALYZE_AFTER
    if db.engine.dialect.name == "postgresql":
        estimated = db.session.scalar(
            text("SELECT reltuples FROM pg_class WHERE oid = 'identities'::regclass")
        )
    else:
        stat = db.session.scalar(
            text("SELECT stat FROM sqlite_stat1 WHERE tbl = 'identities' LIMIT 1")
        )
        estimated = int(stat.split()[0])
    assert estimated == db.session.scalar(select(func.count()).select_from(Identity)) == 1000


def test_same_file_again_keeps_the_cached_summary(app, auth):
    with app.app_context():
        import_file(northwind())
    auth.login("admin@northwind.example", "demo-admin")
    first = auth.client.get(f"{SUMMARY}?month=2026-07", headers=HTMX).get_data(as_text=True)
    with app.app_context():
        import_file(northwind())
        assert organisation().usage_revision == 1
        with counted_queries() as statements:
            again = auth.client.get(f"{SUMMARY}?month=2026-07", headers=HTMX)
    assert again.get_data(as_text=True) == first
    assert [s for s in statements if "billable_periods" in s] == []


def test_summary_shows_an_imported_change_at_once(app, auth):
    with app.app_context():
        import_file(northwind())
    auth.login("admin@northwind.example", "demo-admin")

    def total_shown() -> str:
        response = auth.client.get(f"{SUMMARY}?month=2026-07", headers=HTMX)
        [total] = rows(summary_region(response).by_id("usage-table"), "tfoot")
        return total[1]

    assert total_shown() == "$6.50"  # Grace and Alan, all July at 3.25
    assert total_shown() == "$6.50"  # now from the cache
    # Grace's period ends on 1 June instead of staying open: July loses her.
    with app.app_context():
        import_file(changed(_period))
        assert organisation().usage_revision == 2
        assert month_usage(organisation(), Month(2026, 7), TODAY).cost == Decimal("3.25")
    assert total_shown() == "$3.25"


# --- Settings, and a cache shared through Redis ----------------------------------------------


def test_cache_settings(monkeypatch):
    monkeypatch.delenv("CACHE_KEY_PREFIX", raising=False)
    assert config._cache("") == {
        "CACHE_TYPE": "SimpleCache",
        "CACHE_KEY_PREFIX": "petra-cache:",
        "CACHE_THRESHOLD": config.CACHE_THRESHOLD,
    }
    redis_settings = config._cache("redis://cache.internal:6379/2")
    assert redis_settings["CACHE_TYPE"] == "RedisCache"
    assert redis_settings["CACHE_REDIS_URL"] == "redis://cache.internal:6379/2"
    monkeypatch.setenv("CACHE_KEY_PREFIX", "staging:")
    assert config._cache("rediss://cache.internal")["CACHE_KEY_PREFIX"] == "staging:"
    with pytest.raises(config.ConfigError, match="CACHE_URL must be a Redis URL"):
        config._cache("memcached://cache.internal")


def test_factory_makes_the_cache_from_cache_url(monkeypatch, tmp_path):
    monkeypatch.delenv("CACHE_URL", raising=False)
    database = {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
    app = create_app(database)
    assert isinstance(app.extensions["cache"][cache], SimpleCache)
    monkeypatch.setenv("CACHE_URL", REDIS_URL)
    app = create_app(database)
    assert isinstance(app.extensions["cache"][cache], RedisCache)


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    store = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    store.ping()
    prefix = f"petra-test-{uuid.uuid4().hex}:"
    yield prefix
    keys = list(store.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        store.delete(*keys)
    store.close()


def test_workers_share_the_figures_through_redis(app, sample, redis_prefix):
    """Two apps (as two gunicorn workers) on one Redis: what one computed, the other reads."""
    month = Month(2026, 7)
    first, second = (
        create_app(
            {
                "TESTING": True,
                "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
                "CACHE_TYPE": "RedisCache",
                "CACHE_REDIS_URL": REDIS_URL,
                "CACHE_KEY_PREFIX": redis_prefix,
            }
        )
        for _ in range(2)
    )
    with first.app_context():
        computed = figures_cache.month_summary(organisation("sample-msp"), month, TODAY)
    with second.app_context():
        with counted_queries() as statements:
            read = figures_cache.month_summary(organisation("sample-msp"), month, TODAY)
        assert [s for s in statements if "billable_periods" in s] == []
        db.engine.dispose()
    with first.app_context():
        db.engine.dispose()
    assert read == computed == month_totals(sample, month, TODAY)
    store = redis.Redis.from_url(REDIS_URL)
    keys = [key.decode() for key in store.scan_iter(match=f"{redis_prefix}*")]
    store.close()
    revision = month_revision(sample.id, month)
    prefix = f"{redis_prefix}usage{figures_cache.KEY_VERSION}"
    month_key = f"{prefix}:month:{sample.id}:{revision}:{month}:closed"
    # The month whole and each of its tenants (from which a month is assembled when that is
    # gone); the newest totals each process brings up to date stay in that process.
    assert month_key in keys
    tenant_keys = [key for key in keys if ":tenant:" in key]
    assert len(tenant_keys) == len(keys) - 1 >= len(read.tenants)


def test_after_a_sync_a_second_worker_reads_the_synced_tenant_from_redis(app, redis_prefix):
    """Two apps that both hold a month: after a one-tenant sync, the first to view it computes
    the tenant once; the other takes its figures from Redis and reads no billable period."""
    month = Month.of(TODAY)
    data = organisation_data(slug="sync-msp", tenants=6, identities_per_tenant=4, seed=5)
    settings = {
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
        "CACHE_TYPE": "RedisCache",
        "CACHE_REDIS_URL": REDIS_URL,
        "CACHE_KEY_PREFIX": redis_prefix,
    }
    first, second = create_app(settings), create_app(settings)
    with first.app_context():
        import_file(data)
        figures_cache.month_summary(organisation("sync-msp"), month, TODAY)
    with second.app_context():
        figures_cache.month_summary(organisation("sync-msp"), month, TODAY)
    synced = copy.deepcopy(data)
    synced["tenants"] = [synced["tenants"][1]]
    synced["tenants"][0]["identities"].append(
        {
            "id": "u-synced",
            "display_name": "Synced",
            "user_principal_name": "synced@sync.example",
            "billable_periods": [{"from": TODAY.isoformat(), "until": None}],
        }
    )
    synced["members"] = []
    with first.app_context():
        import_file(synced)
        with counted_queries() as statements:
            computed = figures_cache.month_summary(organisation("sync-msp"), month, TODAY)
        assert len([s for s in statements if "billable_periods" in s]) == 1
        db.engine.dispose()
    with second.app_context():
        with counted_queries() as statements:
            read = figures_cache.month_summary(organisation("sync-msp"), month, TODAY)
        assert [s for s in statements if "billable_periods" in s] == []
        assert read == computed == month_totals(organisation("sync-msp"), month, TODAY)
        db.engine.dispose()


def test_microsoft_tenant_ids_follow_a_sync_that_changes_one(ctx):
    data = organisation_data(slug="ids-msp", tenants=4, identities_per_tenant=2, seed=2)
    import_file(data)
    before = dict(figures_cache.microsoft_tenant_ids(organisation("ids-msp")))
    one = copy.deepcopy(data)
    one["tenants"] = [one["tenants"][2]]
    one["tenants"][0]["microsoft_tenant_id"] = "11111111-2222-3333-4444-555555555555"
    one["members"] = []
    import_file(one)
    after = figures_cache.microsoft_tenant_ids(organisation("ids-msp"))
    changed = {tenant_id for tenant_id in before if before[tenant_id] != after[tenant_id]}
    assert len(changed) == 1 and after[changed.pop()] == "11111111-2222-3333-4444-555555555555"
    assert after.keys() == before.keys()
