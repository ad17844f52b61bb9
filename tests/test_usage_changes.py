"""Syncs cost what they change: the importer records which tenants' figures changed and from
which day (`usage_changes`), figures are kept per tenant and month under those revisions and
stay exact after any series of syncs, and a one-tenant import reads one tenant."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import random
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

import pytest
from sqlalchemy import event, select

from billing_app.extensions import db
from billing_app.figures import cache as figures_cache
from billing_app.figures.calculator import MonthTotals, month_totals, monthly_totals
from billing_app.figures.months import Month
from billing_app.figures.revisions import month_revision, tenant_revision
from billing_app.importer import InvalidImportFile, import_file
from billing_app.importer.writer import first_difference
from billing_app.models import Organisation, Tenant, UsageChange
from dev.sample_data import organisation_data
from tests.factories import d, northwind

TODAY = dt.date(2026, 11, 24)


def recorded(data: dict) -> dict[str | None, dt.date]:
    """Import `data`; the changes that import recorded, by tenant id (None: every tenant)."""
    latest = db.session.scalar(select(UsageChange.id).order_by(UsageChange.id.desc()).limit(1))
    summary = import_file(copy.deepcopy(data))
    rows = db.session.execute(
        select(Tenant.external_id, UsageChange.from_day)
        .outerjoin(Tenant, Tenant.id == UsageChange.tenant_id)
        .where(UsageChange.id > (latest or 0))
    ).all()
    changes = {external_id: day for external_id, day in rows}
    assert len(changes) == len(rows)  # one per tenant and import
    assert summary.earliest_change == min(changes.values(), default=None)
    return changes


def tenant(data: dict, external_id: str) -> dict:
    return next(t for t in data["tenants"] if t["id"] == external_id)


@pytest.fixture
def imported(app) -> Iterator[dict]:
    with app.app_context():
        data = northwind()
        assert recorded(data) == {
            "t-001": d("2026-01-12"),
            "t-002": d("2026-02-10"),
            "t-003": d("2026-05-20"),
            None: d("2026-01-01"),  # the prices, new
        }
        yield data


# --- What changed is known ------------------------------------------------------------------


def test_the_same_file_again_records_nothing(imported):
    assert recorded(imported) == {}


def test_a_new_user_billable_from_today_changes_this_month_only(imported):
    tenant(imported, "t-001")["identities"].append(
        {
            "id": "u-new",
            "display_name": "New Person",
            "user_principal_name": "new@contoso.example",
            "billable_periods": [{"from": TODAY.isoformat(), "until": None}],
        }
    )
    assert recorded(imported) == {"t-001": TODAY}
    organisation_id = db.session.scalar(select(Organisation.id))
    assert month_revision(organisation_id, Month(2026, 10)) < month_revision(
        organisation_id, Month(2026, 11)
    )


def test_a_price_from_a_month_changes_every_tenant_from_that_month(imported):
    imported["organisation"]["prices"][1]["unit_price"] = "3.50"
    assert recorded(imported) == {None: d("2026-07-01")}
    organisation_id = db.session.scalar(select(Organisation.id))
    t1 = db.session.scalar(select(Tenant.id).filter_by(external_id="t-001"))
    june, july = (
        month_revision(organisation_id, Month(2026, 6)),
        month_revision(organisation_id, Month(2026, 7)),
    )
    assert june < july == tenant_revision(organisation_id, t1, Month(2026, 7))


def test_a_pause_back_dated_into_march_changes_march_and_after(imported):
    tenant(imported, "t-001")["pauses"].append({"from": "2026-03-20", "until": "2026-04-02"})
    assert recorded(imported) == {"t-001": d("2026-03-20")}


def test_lengthening_a_pause_changes_from_its_old_end(imported):
    tenant(imported, "t-001")["pauses"] = [{"from": "2026-03-01", "until": "2026-03-15"}]
    assert recorded(imported) == {"t-001": d("2026-03-08")}


def test_an_offboarding_changes_from_its_day(imported):
    tenant(imported, "t-001")["offboarded_on"] = "2026-10-05"
    assert recorded(imported) == {"t-001": d("2026-10-05")}


def test_a_removed_user_changes_from_the_day_it_stopped(imported):
    grace = tenant(imported, "t-001")["identities"][0]
    grace["billable_periods"] = [{"from": "2026-01-12", "until": "2026-08-03"}]
    assert recorded(imported) == {"t-001": d("2026-08-03")}


def test_a_rename_changes_every_month_the_tenant_is_shown_in(imported):
    tenant(imported, "t-002")["name"] = "Fabrikam Ltd"
    assert recorded(imported) == {"t-002": d("2026-02-10")}


def test_a_renamed_user_changes_every_month_it_was_billable(imported):
    tenant(imported, "t-002")["identities"][0]["display_name"] = "Sam Sum"
    assert recorded(imported) == {"t-002": d("2026-02-10")}


def test_a_user_moved_to_another_tenant_changes_both(imported):
    moved = tenant(imported, "t-002")["identities"].pop()
    tenant(imported, "t-003")["identities"].append(moved)
    assert recorded(imported) == {"t-002": d("2026-02-10"), "t-003": d("2026-02-10")}


def test_periods_split_differently_over_the_same_days_change_nothing(imported):
    alan = tenant(imported, "t-001")["identities"][1]
    alan["billable_periods"] = [{"from": "2026-01-15", "until": None}]
    # Stored differently, billed the same: written, but no figure changed.
    assert recorded(imported) == {}


def test_first_difference_of_date_ranges():
    assert first_difference([], []) is None
    assert first_difference([(d("2026-03-01"), None)], []) == d("2026-03-01")
    assert first_difference([(d("2026-03-01"), d("2026-03-09"))], [(d("2026-03-01"), None)]) == d(
        "2026-03-09"
    )
    split = [(d("2026-03-01"), d("2026-03-05")), (d("2026-03-05"), None)]
    assert first_difference(split, [(d("2026-03-01"), None)]) is None


# --- A bad one-tenant file changes nothing ---------------------------------------------------


def test_a_bad_one_tenant_file_changes_nothing(imported):
    before = db.session.scalar(select(UsageChange.id).order_by(UsageChange.id.desc()).limit(1))
    one = copy.deepcopy(imported)
    one["tenants"] = [tenant(one, "t-001")]
    one["tenants"][0]["identities"][0]["billable_periods"] = [
        {"from": "2026-05-01", "until": "2026-04-01"}
    ]
    with pytest.raises(InvalidImportFile):
        import_file(one)
    latest = db.session.scalar(select(UsageChange.id).order_by(UsageChange.id.desc()).limit(1))
    assert latest == before
    assert month_totals(db.session.scalar(select(Organisation)), Month(2026, 5), TODAY).cost > 0


# --- A one-tenant import reads one tenant ----------------------------------------------------


@contextmanager
def selected() -> Iterator[list[tuple[str, object]]]:
    """The SELECT statements sent inside the block, with their parameters."""
    statements: list[tuple[str, object]] = []

    def record(_connection, _cursor, statement, parameters, _context, _executemany) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


def test_a_one_tenant_import_reads_only_that_tenant(app):
    with app.app_context():
        whole = organisation_data(slug="big-msp", tenants=40, identities_per_tenant=5, seed=3)
        import_file(copy.deepcopy(whole))
        one = copy.deepcopy(whole)
        one["tenants"] = one["tenants"][7:8]
        one["tenants"][0]["identities"].append(
            {
                "id": "u-synced",
                "display_name": "Synced",
                "user_principal_name": "synced@big-msp.example",
                "billable_periods": [{"from": TODAY.isoformat(), "until": None}],
            }
        )
        with selected() as statements:
            summary = import_file(one)
        assert summary.identities.created == 1
        usage_tables = ("tenants", "identities", "billable_periods", "tenant_pauses")
        for statement, parameters in statements:
            if any(f"FROM {table}" in statement for table in usage_tables):
                # Every read of usage data is limited to the ids the file carries.
                assert " IN (" in statement or "external_id" in statement, statement
                values = parameters.values() if isinstance(parameters, dict) else parameters
                assert len(values) <= 2 + len(one["tenants"][0]["identities"]), statement


# --- Figures per tenant and month stay exact -------------------------------------------------


def _sync(rng: random.Random, data: dict) -> dict:
    """A sync: a file of a few tenants of `data`, each changed at random (in place)."""
    chosen = rng.sample(data["tenants"], rng.randint(1, 3))
    for row in chosen:
        kind = rng.choice(["add", "remove", "pause", "offboard", "rename", "move"])
        day = dt.date(2026, 1, 1) + dt.timedelta(days=rng.randrange(0, 340))
        identities = row["identities"]
        if kind == "add" or not identities:
            row["identities"].append(
                {
                    "id": f"u-sync-{rng.randrange(10**9)}",
                    "display_name": "Synced User",
                    "user_principal_name": "synced@example.com",
                    "billable_periods": [{"from": day.isoformat(), "until": None}],
                }
            )
        elif kind == "remove":
            identity = rng.choice(identities)
            start = dt.date.fromisoformat(identity["billable_periods"][0]["from"])
            if day > start:
                identity["billable_periods"] = [
                    {"from": start.isoformat(), "until": day.isoformat()}
                ]
        elif kind == "pause":
            onboarded = dt.date.fromisoformat(row["onboarded_on"])
            if day > onboarded:
                until = day + dt.timedelta(days=rng.randrange(1, 40))
                row["pauses"] = [{"from": day.isoformat(), "until": until.isoformat()}]
        elif kind == "offboard":
            onboarded = dt.date.fromisoformat(row["onboarded_on"])
            if day > onboarded:
                row["offboarded_on"] = day.isoformat()
        elif kind == "rename":
            row["name"] = f"Renamed {rng.randrange(1000)}"
        else:
            other = rng.choice(data["tenants"])
            if other is not row and other not in chosen:
                other["identities"].append(identities.pop())
                chosen.append(other)
    if rng.random() < 0.15:
        price = rng.choice(data["organisation"]["prices"])
        price["unit_price"] = str(Decimal(price["unit_price"]) + Decimal("0.25"))
    file = copy.deepcopy(data)
    file["tenants"] = [copy.deepcopy(row) for row in chosen]
    file["members"] = []
    return file


def shown(totals: MonthTotals) -> MonthTotals:
    """The totals as a month shows them: a tenant's onboarding and offboarding days only in
    the month they fall in (an offboarding in September changes September and after; the
    months before never show it)."""
    return dataclasses.replace(
        totals,
        tenants=tuple(
            dataclasses.replace(
                t,
                onboarded_on=t.onboarded_on if t.onboarded_in_month else None,
                offboarded_on=t.offboarded_on if t.offboarded_in_month else None,
            )
            for t in totals.tenants
        ),
    )


def test_incremental_figures_equal_a_computation_from_scratch(app):
    rng = random.Random(19)
    months = [Month(2026, m) for m in (1, 3, 6, 9, 10, 11)]
    with app.app_context():
        data = organisation_data(slug="sync-msp", tenants=12, identities_per_tenant=4, seed=19)
        data["members"] = []
        for row in data["tenants"]:
            row.setdefault("pauses", [])
        import_file(copy.deepcopy(data))
        organisation = db.session.scalar(select(Organisation).filter_by(slug="sync-msp"))
        for month in months:  # warm: every month kept per tenant
            figures_cache.month_summary(organisation, month, TODAY)
        figures_cache.chart_totals(organisation, TODAY)
        for _ in range(12):
            import_file(_sync(rng, data))
            db.session.expire_all()
            for month in months:
                for today in (TODAY, month.end - dt.timedelta(days=1)):
                    if today < month.first_day:
                        continue
                    kept = figures_cache.month_summary(organisation, month, today)
                    fresh = month_totals(organisation, month, today)
                    assert shown(kept) == shown(fresh), (month, today)
            assert figures_cache.chart_totals(organisation, TODAY) == monthly_totals(
                organisation, TODAY
            )


def test_a_sync_of_one_tenant_keeps_the_other_tenants_and_untouched_months(app):
    with app.app_context():
        data = northwind()
        import_file(copy.deepcopy(data))
        organisation = db.session.scalar(select(Organisation))
        march, november = Month(2026, 3), Month(2026, 11)
        figures_cache.month_summary(organisation, march, TODAY)
        figures_cache.month_summary(organisation, november, TODAY)
        march_revision = month_revision(organisation.id, march)
        t2 = db.session.scalar(select(Tenant.id).filter_by(external_id="t-002"))
        t2_revision = tenant_revision(organisation.id, t2, november)

        tenant(data, "t-001")["identities"].append(
            {
                "id": "u-today",
                "display_name": "Today",
                "user_principal_name": "today@contoso.example",
                "billable_periods": [{"from": TODAY.isoformat(), "until": None}],
            }
        )
        one = copy.deepcopy(data)
        one["tenants"] = [tenant(one, "t-001")]
        import_file(one)
        assert month_revision(organisation.id, march) == march_revision
        assert tenant_revision(organisation.id, t2, november) == t2_revision
        statements = []

        def record(_c, _cursor, statement, _p, _ctx, _many) -> None:
            statements.append(statement)

        event.listen(db.engine, "before_cursor_execute", record)
        try:
            figures_cache.clear_memo()
            kept_march = figures_cache.month_summary(organisation, march, TODAY)
            assert [s for s in statements if "billable_periods" in s] == []
            kept = figures_cache.month_summary(organisation, november, TODAY)
        finally:
            event.remove(db.engine, "before_cursor_execute", record)
        assert kept_march == month_totals(organisation, march, TODAY)
        assert kept == month_totals(organisation, november, TODAY)
        # Only the synced tenant was computed again.
        reads = [s for s in statements if "billable_periods" in s]
        assert len(reads) == 1
        assert " IN (" in reads[0] or "tenants.id = " in reads[0]
