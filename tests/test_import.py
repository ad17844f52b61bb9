"""`flask usage import`: refusals, idempotency, updates by id, all-or-nothing, the command,
the database's own constraints, and the sample data."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import IntegrityError

from billing_app.extensions import db
from billing_app.importer import InvalidImportFile, import_file, parse_file
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
from billing_app.portal.service import WHITELIST_AUDIT_ACTION
from dev.sample_data import organisation_data
from tests.factories import make_organisation, northwind


def snapshot() -> dict[str, list[tuple]]:
    """Every row of every table, by primary key."""
    db.session.expire_all()
    return {
        table.name: [
            tuple(row)
            for row in db.session.execute(select(table).order_by(*table.primary_key.columns))
        ]
        for table in db.metadata.sorted_tables
    }


@contextmanager
def recorded_writes() -> Iterator[list[str]]:
    """The INSERT, UPDATE and DELETE statements sent to the database inside the block."""
    writes: list[str] = []

    def record(_connection, _cursor, statement, _parameters, _context, _executemany) -> None:
        if statement.lstrip().split(None, 1)[0].upper() in {"INSERT", "UPDATE", "DELETE"}:
            writes.append(statement)

    engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield writes
    finally:
        event.remove(engine, "before_cursor_execute", record)


def tenant(data: dict, external_id: str) -> dict:
    return next(item for item in data["tenants"] if item["id"] == external_id)


def stored_tenant(external_id: str) -> Tenant:
    return db.session.scalar(select(Tenant).where(Tenant.external_id == external_id))


def stored_identity(external_id: str) -> Identity:
    return db.session.scalar(select(Identity).where(Identity.external_id == external_id))


# Refusals: each names the offending entry and leaves the database as it was.


def _set(path: str, value: Any) -> Callable[[dict], None]:
    """A change to the file: set the value at a dotted path (list indexes as numbers)."""

    def change(data: dict) -> None:
        *parents, last = path.split(".")
        target: Any = data
        for key in parents:
            target = target[int(key)] if key.isdigit() else target[key]
        if last.isdigit():
            target[int(last)] = value
        elif value is _DELETE:
            del target[last]
        else:
            target[last] = value

    return change


_DELETE = object()

REFUSALS = [
    (
        "unknown role",
        _set("members.1.role", "owner"),
        'members[1] (email "finance@northwind.example"): "role" "owner" is not one of admin, '
        "full_member, billing, external_guest",
    ),
    (
        "malformed date",
        _set("tenants.1.onboarded_on", "2026-02-30"),
        'tenants[1] (id "t-002"): "onboarded_on" "2026-02-30" is not a date (YYYY-MM-DD)',
    ),
    (
        "date in another format",
        _set("tenants.0.identities.0.billable_periods.0.from", "12/01/2026"),
        'tenants[0] (id "t-001") identities[0] (id "u-001") billable_periods[0]: "from" '
        '"12/01/2026" is not a date',
    ),
    (
        "date as a number",
        _set("tenants.0.onboarded_on", 20260112),
        'tenants[0] (id "t-001"): "onboarded_on" must be a date string (YYYY-MM-DD), not a number',
    ),
    (
        "period until before from",
        _set(
            "tenants.0.identities.1.billable_periods.0",
            {"from": "2026-03-01", "until": "2026-02-01"},
        ),
        'tenants[0] (id "t-001") identities[1] (id "u-002") billable_periods[0]: "until" '
        '2026-02-01 is not after "from" 2026-03-01',
    ),
    (
        "empty period",
        _set(
            "tenants.0.identities.1.billable_periods.1",
            {"from": "2026-03-01", "until": "2026-03-01"},
        ),
        'identities[1] (id "u-002") billable_periods[1]: "until" 2026-03-01 is not after "from"',
    ),
    (
        "pause until before from",
        _set("tenants.0.pauses.0", {"from": "2026-03-08", "until": "2026-03-01"}),
        'tenants[0] (id "t-001") pauses[0]: "until" 2026-03-01 is not after "from" 2026-03-08',
    ),
    (
        "offboarded before onboarded",
        _set("tenants.1.offboarded_on", "2026-02-10"),
        'tenants[1] (id "t-002"): "offboarded_on" 2026-02-10 is not after "onboarded_on" '
        "2026-02-10",
    ),
    (
        "duplicate tenant id",
        _set("tenants.2.id", "t-001"),
        'tenants[2] (id "t-001"): duplicate id, also used by tenants[0] (id "t-001")',
    ),
    (
        "duplicate identity id across tenants",
        _set("tenants.1.identities.0.id", "u-002"),
        'tenants[1] (id "t-002") identities[0] (id "u-002"): duplicate id, also used by '
        'tenants[0] (id "t-001") identities[1] (id "u-002")',
    ),
    (
        "duplicate member email, ignoring case",
        _set("members.1.email", "Admin@Northwind.example"),
        'members[1] (email "Admin@Northwind.example"): duplicate email, also used by members[0]',
    ),
    (
        "duplicate price month",
        _set("organisation.prices.1.from_month", "2026-01"),
        'organisation.prices[1] (from_month "2026-01"): duplicate from_month, also used by '
        'organisation.prices[0] (from_month "2026-01")',
    ),
    (
        "price without currency",
        _set("organisation.prices.0.currency", _DELETE),
        'organisation.prices[0] (from_month "2026-01"): missing required field "currency"',
    ),
    (
        "price with a bad currency",
        _set("organisation.prices.0.currency", "dollars"),
        '"currency" "dollars" is not a three-letter currency code',
    ),
    (
        "price with a two-letter currency",
        _set("organisation.prices.0.currency", "us"),
        '"currency" "us" is not a three-letter currency code',
    ),
    (
        "negative price",
        _set("organisation.prices.1.unit_price", "-3.25"),
        'organisation.prices[1] (from_month "2026-07"): "unit_price" -3.25 is negative',
    ),
    (
        "malformed price",
        _set("organisation.prices.0.unit_price", "3,00"),
        '"unit_price" "3,00" is not an amount such as "3.00"',
    ),
    (
        "price in exponent notation",
        _set("organisation.prices.0.unit_price", "3e0"),
        '"unit_price" "3e0" is not an amount',
    ),
    (
        "price that is not a number",
        _set("organisation.prices.0.unit_price", "NaN"),
        '"unit_price" "NaN" is not an amount',
    ),
    (
        "price as a float",
        _set("organisation.prices.1.unit_price", 3.25),
        '"unit_price" 3.25 is a JSON number with a fraction, which is not exact: write it as a '
        'string, e.g. "3.25"',
    ),
    (
        "price with too many decimals",
        _set("organisation.prices.0.unit_price", "3.00001"),
        '"unit_price" 3.00001 has more than 4 decimal places',
    ),
    (
        "price as a boolean",
        _set("organisation.prices.0.unit_price", True),
        '"unit_price" must be a string such as "3.00", not a boolean',
    ),
    (
        "malformed from_month",
        _set("organisation.prices.1.from_month", "2026-13"),
        'organisation.prices[1] (from_month "2026-13"): "from_month" "2026-13" is not a month '
        "(YYYY-MM)",
    ),
    (
        "from_month with a day",
        _set("organisation.prices.1.from_month", "2026-07-01"),
        '"from_month" "2026-07-01" is not a month (YYYY-MM)',
    ),
    (
        "tenant without name",
        _set("tenants.1.name", _DELETE),
        'tenants[1] (id "t-002"): missing required field "name"',
    ),
    (
        "identity with a null display name",
        _set("tenants.0.identities.0.display_name", None),
        'tenants[0] (id "t-001") identities[0] (id "u-001"): "display_name" must not be null',
    ),
    (
        "organisation without slug",
        _set("organisation.slug", _DELETE),
        'organisation: missing required field "slug"',
    ),
    (
        "file without organisation",
        _set("organisation", _DELETE),
        'file: missing required field "organisation"',
    ),
    (
        "tenants not an array",
        _set("tenants", {"t-001": {}}),
        'file: "tenants" must be an array, not an object',
    ),
    (
        "identity that is not an object",
        _set("tenants.0.identities.1", "u-002"),
        'tenants[0] (id "t-001") identities[1]: must be an object, not a string',
    ),
    (
        "display name as a number",
        _set("tenants.0.identities.0.display_name", 42),
        '"display_name" must be a string, not a number',
    ),
    (
        "tenant id as a number",
        _set("tenants.0.id", 1),
        'tenants[0]: "id" must be a string, not a number',
    ),
    (
        "portal access as a string",
        _set("organisation.portal_direct_access", "yes"),
        'organisation: "portal_direct_access" must be true or false, not a string',
    ),
    (
        "invalid member email",
        _set("members.0.email", "ada at northwind"),
        'members[0] (email "ada at northwind"): "email" "ada at northwind" is not a valid email '
        "address",
    ),
    (
        "invalid billing email",
        _set("organisation.billing_email", "billing@northwind"),
        'organisation: "billing_email" "billing@northwind" is not accepted: The domain after '
        "the @ needs a dot, as in example.com (like billing@example.com).",
    ),
    (
        "billing email with a display name",
        _set("organisation.billing_email", "Billing <billing@northwind.example>"),
        'organisation: "billing_email" "Billing <billing@northwind.example>" is not accepted',
    ),
    (
        "slug with spaces and capitals",
        _set("organisation.slug", "Northwind MSP"),
        'organisation: "slug" "Northwind MSP" is not a slug',
    ),
    (
        "unknown field",
        _set("tenants.1.offboarded", "2026-09-15"),
        'tenants[1] (id "t-002"): unknown field "offboarded"',
    ),
    (
        "tenant id that climbs out of the tenant pages",
        _set("tenants.0.id", "../../x"),
        'tenants[0] (id "../../x"): "id" "../../x" is not a tenant id (letters, digits and '
        '- _ . ~ : @ only; no "/", "\\", "?", "#", "%" or spaces; not "." or ".." alone)',
    ),
    (
        "tenant id with a slash",
        _set("tenants.0.id", "contoso/eu"),
        '"id" "contoso/eu" is not a tenant id',
    ),
    (
        "tenant id that is a single dot",
        _set("tenants.0.id", "."),
        '"id" "." is not a tenant id',
    ),
    (
        "tenant id with a question mark",
        _set("tenants.0.id", "t?1"),
        '"id" "t?1" is not a tenant id',
    ),
    (
        "tenant id with a percent sign",
        _set("tenants.0.id", "t%2F1"),
        '"id" "t%2F1" is not a tenant id',
    ),
    (
        "tenant id with a space",
        _set("tenants.0.id", "t 1"),
        '"id" "t 1" is not a tenant id',
    ),
    (
        "Microsoft tenant id that is not a GUID",
        _set("tenants.2.microsoft_tenant_id", "contoso.onmicrosoft.com"),
        'tenants[2] (id "t-003"): "microsoft_tenant_id" "contoso.onmicrosoft.com" is not a GUID',
    ),
    (
        "control character in a name",
        _set("tenants.0.name", "Contoso\x00Ltd"),
        'tenants[0] (id "t-001"): "name" "Contoso\\u0000Ltd" contains a control character',
    ),
    (
        "blank name",
        _set("tenants.0.name", "   "),
        'tenants[0] (id "t-001"): "name" must not be empty',
    ),
    (
        "name longer than the column",
        _set("tenants.0.name", "x" * 501),
        'tenants[0] (id "t-001"): "name" is longer than 500 characters',
    ),
    (
        "empty password",
        _set("members.0.password", ""),
        'members[0] (email "admin@northwind.example"): "password" must be a non-empty string',
    ),
]


@pytest.mark.parametrize(
    ("change", "message"),
    [pytest.param(change, message, id=name) for name, change, message in REFUSALS],
)
def test_bad_file_is_refused_naming_the_entry_and_nothing_changes(app, change, message):
    with app.app_context():
        import_file(northwind())
        before = snapshot()
        data = northwind()
        data["tenants"][0]["name"] = "Contoso Renamed"
        change(data)
        with pytest.raises(InvalidImportFile) as refused:
            import_file(data)
        assert message in str(refused.value)
        assert snapshot() == before


@pytest.mark.parametrize(
    ("name", "change", "message"), [pytest.param(*case, id=case[0]) for case in REFUSALS[:12]]
)
def test_bad_file_into_an_empty_database_leaves_it_empty(app, name, change, message):
    with app.app_context():
        data = northwind()
        change(data)
        with pytest.raises(InvalidImportFile) as refused:
            import_file(data)
        assert message in str(refused.value)
        assert all(rows == [] for rows in snapshot().values()), name


def test_file_that_is_not_an_object_is_refused(app):
    with app.app_context(), pytest.raises(InvalidImportFile, match="file: must be an object"):
        import_file([northwind()])


def test_every_problem_is_listed(app):
    data = northwind()
    data["members"][0]["role"] = "owner"
    data["tenants"][1]["offboarded_on"] = "2026-01-01"
    data["tenants"][2]["id"] = "t-001"
    with app.app_context(), pytest.raises(InvalidImportFile) as refused:
        import_file(data)
    assert len(refused.value.problems) == 3
    assert str(refused.value).startswith("3 problems:\n- members[0]")


def test_member_of_another_organisation_is_refused(app):
    with app.app_context():
        make_organisation("other-msp")
        before = snapshot()
        data = northwind()
        data["members"][1]["email"] = "Admin@other-msp.example"
        with pytest.raises(InvalidImportFile) as refused:
            import_file(data)
        assert str(refused.value) == (
            'members[1] (email "Admin@other-msp.example"): '
            "the address belongs to a member of another organisation"
        )
        assert snapshot() == before


def test_stripe_customer_of_another_organisation_is_refused(app):
    with app.app_context():
        make_organisation("other-msp", stripe_customer_id="cus_taken")
        before = snapshot()
        data = northwind()
        data["organisation"]["stripe_customer_id"] = "cus_taken"
        with pytest.raises(InvalidImportFile, match='belongs to organisation "other-msp"'):
            import_file(data)
        assert snapshot() == before


def test_price_as_a_whole_number_or_string_is_exact(app):
    data = northwind()
    data["organisation"]["prices"][0]["unit_price"] = 3
    data["organisation"]["prices"][1]["unit_price"] = "3.1234"
    data["organisation"]["prices"][1]["currency"] = "EUR"
    with app.app_context():
        import_file(data)
        prices = db.session.scalars(select(Price).order_by(Price.from_month)).all()
        assert [(p.unit_price, p.currency) for p in prices] == [
            (Decimal("3"), "usd"),
            (Decimal("3.1234"), "eur"),
        ]
        assert prices[1].from_month == dt.date(2026, 7, 1)


# Importing, idempotency and updates by id.


def test_import_creates_everything_and_says_so(app):
    with app.app_context():
        summary = import_file(northwind())
        assert str(summary) == (
            "northwind-msp: 2 members, 2 prices, 3 tenants, 3 identities "
            "(10 created, 0 updated, 0 unchanged); organisation created"
        )
        organisation = db.session.scalar(select(Organisation))
        assert (organisation.slug, organisation.name, organisation.billing_email) == (
            "northwind-msp",
            "Northwind MSP",
            "billing@northwind.example",
        )
        assert organisation.stripe_customer_id is None
        assert organisation.portal_direct_access is False
        contoso = stored_tenant("t-001")
        assert contoso.onboarded_on == dt.date(2026, 1, 12)
        assert [(p.from_date, p.until_date) for p in contoso.pauses] == [
            (dt.date(2026, 3, 1), dt.date(2026, 3, 8))
        ]
        assert stored_tenant("t-002").offboarded_on == dt.date(2026, 9, 15)
        alan = stored_identity("u-002")
        assert alan.tenant is contoso
        assert [(p.from_date, p.until_date) for p in alan.billable_periods] == [
            (dt.date(2026, 1, 15), dt.date(2026, 2, 20)),
            (dt.date(2026, 2, 1), None),
        ]
        admin = db.session.scalar(select(Member).where(Member.role == "admin"))
        assert admin.check_password("demo-admin")
        finance = db.session.scalar(select(Member).where(Member.role == "billing"))
        assert finance.password_hash is None


def test_imported_member_signs_in(app, auth):
    with app.app_context():
        import_file(northwind())
    assert auth.login("admin@northwind.example", "demo-admin").status_code == 303


def test_same_file_twice_changes_nothing(app):
    with app.app_context():
        import_file(northwind())
        before = snapshot()
        with recorded_writes() as writes:
            summary = import_file(northwind())
        assert writes == []
        assert not summary.changed
        assert str(summary) == (
            "northwind-msp: 2 members, 2 prices, 3 tenants, 3 identities "
            "(0 created, 0 updated, 10 unchanged)"
        )
        assert snapshot() == before


def test_order_of_periods_and_pauses_does_not_matter(app):
    with app.app_context():
        import_file(northwind())
        data = northwind()
        data["tenants"][0]["identities"][1]["billable_periods"].reverse()
        data["tenants"].reverse()
        with recorded_writes() as writes:
            summary = import_file(data)
        assert writes == [] and not summary.changed


def test_password_hash_is_kept_while_the_password_matches(app):
    with app.app_context():
        import_file(northwind())
        stored = db.session.scalar(select(Member.password_hash).where(Member.role == "admin"))
        import_file(northwind())
        assert db.session.scalar(select(Member.password_hash).where(Member.role == "admin")) == (
            stored
        )

        data = northwind()
        del data["members"][0]["password"]
        import_file(data)
        assert db.session.scalar(select(Member.password_hash).where(Member.role == "admin")) == (
            stored
        )

        data["members"][0]["password"] = "a-new-secret"
        summary = import_file(data)
        assert summary.members.updated == 1
        admin = db.session.scalar(select(Member).where(Member.role == "admin"))
        assert admin.password_hash != stored
        assert admin.check_password("a-new-secret")


def test_updated_file_updates_by_id_and_keeps_row_ids(app):
    with app.app_context():
        import_file(northwind())
        ids_before = {
            "tenants": dict(db.session.execute(select(Tenant.external_id, Tenant.id)).all()),
            "identities": dict(db.session.execute(select(Identity.external_id, Identity.id)).all()),
            "prices": dict(db.session.execute(select(Price.from_month, Price.id)).all()),
            "members": dict(db.session.execute(select(Member.email, Member.id)).all()),
        }
        untouched_periods = db.session.execute(
            select(BillablePeriod.id).join(Identity).where(Identity.external_id == "u-001")
        ).all()

        data = northwind()
        contoso, fabrikam = data["tenants"][0], data["tenants"][1]
        contoso["name"] = "Contoso Limited"
        contoso["pauses"] = [{"from": "2026-04-01", "until": None}]
        alan = contoso["identities"].pop(1)
        alan["display_name"] = "Alan M. Turing"
        alan["billable_periods"] = [{"from": "2026-03-03", "until": "2026-04-04"}]
        fabrikam["identities"].append(alan)
        fabrikam["identities"][0]["billable_periods"] = []
        data["organisation"]["prices"][1]["unit_price"] = "3.50"
        data["organisation"]["prices"].append(
            {"from_month": "2026-09", "unit_price": "3.75", "currency": "usd"}
        )
        data["members"][1]["role"] = "full_member"
        data["members"].append(
            {"email": "guest@northwind.example", "name": "Gus", "role": "external_guest"}
        )
        data["tenants"].append(
            {
                "id": "t-004",
                "name": "+44 Telecom",
                "microsoft_tenant_id": "00000000-0000-0000-0000-000000000004",
                "onboarded_on": "2026-10-01",
                "identities": [
                    {
                        "id": "u-004",
                        "display_name": "Zoë",
                        "user_principal_name": "zoe@telecom.example",
                        "billable_periods": [{"from": "2026-10-02", "until": None}],
                    }
                ],
            }
        )
        del data["tenants"][2]

        summary = import_file(data)

        assert (summary.tenants.created, summary.tenants.updated, summary.tenants.unchanged) == (
            1,
            1,
            1,
        )
        assert (summary.identities.created, summary.identities.updated) == (1, 2)
        assert (summary.prices.created, summary.prices.updated, summary.prices.unchanged) == (
            1,
            1,
            1,
        )
        assert (summary.members.created, summary.members.updated) == (1, 1)

        for external_id, row_id in ids_before["tenants"].items():
            assert stored_tenant(external_id).id == row_id
        for external_id, row_id in ids_before["identities"].items():
            assert stored_identity(external_id).id == row_id
        price_ids = dict(db.session.execute(select(Price.from_month, Price.id)).all())
        assert {month: price_ids[month] for month in ids_before["prices"]} == ids_before["prices"]
        member_ids = dict(db.session.execute(select(Member.email, Member.id)).all())
        assert {email: member_ids[email] for email in ids_before["members"]} == (
            ids_before["members"]
        )

        contoso_row = stored_tenant("t-001")
        assert contoso_row.name == "Contoso Limited"
        assert [(p.from_date, p.until_date) for p in contoso_row.pauses] == [
            (dt.date(2026, 4, 1), None)
        ]
        alan_row = stored_identity("u-002")
        assert alan_row.tenant.external_id == "t-002"
        assert alan_row.display_name == "Alan M. Turing"
        assert [(p.from_date, p.until_date) for p in alan_row.billable_periods] == [
            (dt.date(2026, 3, 3), dt.date(2026, 4, 4))
        ]
        assert stored_identity("u-003").billable_periods == []
        assert (
            db.session.execute(
                select(BillablePeriod.id).join(Identity).where(Identity.external_id == "u-001")
            ).all()
            == untouched_periods
        )
        # Absent from the file: left as it was.
        assert stored_tenant("t-003").name == "Müller & Söhne GmbH"
        prices = {p.from_month: p.unit_price for p in db.session.scalars(select(Price))}
        assert prices == {
            dt.date(2026, 1, 1): Decimal("3.00"),
            dt.date(2026, 7, 1): Decimal("3.50"),
            dt.date(2026, 9, 1): Decimal("3.75"),
        }
        finance = db.session.scalar(
            select(Member).where(Member.email == "finance@northwind.example")
        )
        assert finance.role == "full_member"
        assert stored_identity("u-004").tenant.external_id == "t-004"


def test_changed_billing_email_is_audited(app):
    with app.app_context():
        import_file(northwind())
        data = northwind()
        data["organisation"]["billing_email"] = "Accounts@Northwind.Example"
        summary = import_file(data)
        assert summary.organisation == "updated"
        assert str(summary).endswith("; organisation updated")
        organisation = db.session.scalar(select(Organisation))
        assert organisation.billing_email == "Accounts@northwind.example"
        event_row = db.session.scalar(select(AuditEvent))
        assert (event_row.action, event_row.source, event_row.old_value, event_row.new_value) == (
            "billing_email_changed",
            "import",
            "billing@northwind.example",
            "Accounts@northwind.example",
        )
        assert event_row.organisation_id == organisation.id
        import_file(data)
        assert len(db.session.scalars(select(AuditEvent)).all()) == 1


def test_billing_email_of_a_linked_organisation_follows_stripe_not_the_file(app):
    with app.app_context():
        import_file(northwind())
        organisation = db.session.scalar(select(Organisation))
        organisation.stripe_customer_id = "cus_linked"
        organisation.billing_email = "accounts@northwind.example"
        db.session.commit()
        with recorded_writes() as writes:
            summary = import_file(northwind())
        assert writes == []
        assert "billing email kept as accounts@northwind.example" in str(summary)
        organisation = db.session.scalar(select(Organisation))
        assert organisation.billing_email == "accounts@northwind.example"
        assert db.session.scalars(select(AuditEvent)).all() == []


def test_stripe_link_and_whitelist_are_kept_unless_the_file_sets_them(app):
    with app.app_context():
        import_file(northwind())
        organisation = db.session.scalar(select(Organisation))
        organisation.stripe_customer_id = "cus_linked"
        organisation.portal_direct_access = True
        db.session.commit()

        data = northwind()
        del data["organisation"]["portal_direct_access"]
        with recorded_writes() as writes:
            import_file(data)
        assert writes == []
        organisation = db.session.scalar(select(Organisation))
        assert (organisation.stripe_customer_id, organisation.portal_direct_access) == (
            "cus_linked",
            True,
        )

        data["organisation"]["stripe_customer_id"] = "cus_other"
        data["organisation"]["portal_direct_access"] = False
        import_file(data)
        organisation = db.session.scalar(select(Organisation))
        assert (organisation.stripe_customer_id, organisation.portal_direct_access) == (
            "cus_other",
            False,
        )
        whitelisting = db.session.scalar(select(AuditEvent))
        assert (whitelisting.action, whitelisting.source) == (WHITELIST_AUDIT_ACTION, "import")
        assert (whitelisting.old_value, whitelisting.new_value) == ("true", "false")


def test_member_email_is_matched_ignoring_case(app):
    with app.app_context():
        import_file(northwind())
        member_id = db.session.scalar(
            select(Member.id).where(Member.email == "admin@northwind.example")
        )
        data = northwind()
        data["members"][0]["email"] = "Admin@northwind.example"
        summary = import_file(data)
        assert summary.members.updated == 1
        member = db.session.get(Member, member_id)
        assert member.email == "Admin@northwind.example"
        assert len(db.session.scalars(select(Member)).all()) == 2


# All or nothing.


def test_bad_entry_late_in_the_file_leaves_nothing(app):
    data = organisation_data(slug="late-msp", tenants=30, identities_per_tenant=20, seed=3)
    data["tenants"][-1]["identities"][-1]["billable_periods"].append(
        {"from": "2026-05-01", "until": "2026-04-01"}
    )
    with app.app_context():
        with pytest.raises(InvalidImportFile) as refused:
            import_file(data)
        assert str(refused.value).startswith('tenants[29] (id "t-0030") identities[19] (id ')
        assert all(rows == [] for rows in snapshot().values())


# The command.


def test_command_imports_a_file(app, tmp_path):
    path = tmp_path / "northwind.json"
    path.write_text(json.dumps(northwind()), encoding="utf-8")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["usage", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("northwind-msp: 2 members, 2 prices, 3 tenants, 3 identities")
    result = runner.invoke(args=["usage", "import", str(path)])
    assert result.exit_code == 0
    assert "(0 created, 0 updated, 10 unchanged)" in result.output


def test_command_refuses_a_bad_file(app, tmp_path):
    data = northwind()
    data["members"][0]["role"] = "owner"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    result = app.test_cli_runner().invoke(args=["usage", "import", str(path)])
    assert result.exit_code == 1
    assert f"{path} was not imported: members[0]" in result.output
    assert '"role" "owner" is not one of' in result.output
    with app.app_context():
        assert all(rows == [] for rows in snapshot().values())


def test_command_refuses_invalid_json(app, tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"organisation": {"slug": "northwind-msp",', encoding="utf-8")
    result = app.test_cli_runner().invoke(args=["usage", "import", str(path)])
    assert result.exit_code == 1
    assert f"{path} is not valid JSON" in result.output


# Constraints live in the database, not only in the importer.


def test_database_refuses_a_member_with_an_unknown_role(app):
    with app.app_context():
        organisation = make_organisation()
        db.session.add(
            Member(organisation_id=organisation.id, email="x@y.example", name="X", role="owner")
        )
        with pytest.raises(IntegrityError):
            db.session.commit()
        db.session.rollback()


@pytest.mark.parametrize(
    "until", [dt.date(2026, 3, 1), dt.date(2026, 2, 1)], ids=["equal", "before"]
)
def test_database_refuses_a_period_that_ends_before_it_starts(app, until):
    with app.app_context():
        import_file(northwind())
        identity = stored_identity("u-001")
        db.session.add(
            BillablePeriod(identity_id=identity.id, from_date=dt.date(2026, 3, 1), until_date=until)
        )
        with pytest.raises(IntegrityError):
            db.session.commit()
        db.session.rollback()


def test_database_refuses_pauses_offboarding_and_prices_that_cannot_be(app):
    with app.app_context():
        import_file(northwind())
        contoso = stored_tenant("t-001")
        bad_rows = [
            TenantPause(
                tenant_id=contoso.id, from_date=dt.date(2026, 5, 2), until_date=dt.date(2026, 5, 1)
            ),
            Price(
                organisation_id=contoso.organisation_id,
                from_month=dt.date(2027, 1, 1),
                unit_price=Decimal("-1"),
                currency="usd",
            ),
        ]
        for row in bad_rows:
            db.session.add(row)
            with pytest.raises(IntegrityError):
                db.session.commit()
            db.session.rollback()
        contoso = stored_tenant("t-001")
        contoso.offboarded_on = contoso.onboarded_on
        with pytest.raises(IntegrityError):
            db.session.commit()
        db.session.rollback()


# Sample and demo data.


def test_sample_data_is_deterministic_and_valid():
    first = organisation_data(slug="sample-msp", tenants=40, identities_per_tenant=10, seed=7)
    assert first == organisation_data(
        slug="sample-msp", tenants=40, identities_per_tenant=10, seed=7
    )
    assert first != organisation_data(
        slug="sample-msp", tenants=40, identities_per_tenant=10, seed=8
    )
    parsed = parse_file(json.loads(json.dumps(first)))
    assert len(parsed.tenants) == 40
    assert sum(len(t.identities) for t in parsed.tenants) == 400


def test_sample_data_has_the_hard_cases():
    data = organisation_data(slug="sample-msp", tenants=60, identities_per_tenant=20, seed=1)
    names = [t["name"] for t in data["tenants"]]
    assert any(len(name) > 31 for name in names)
    assert any(set(name) & set("[]:*?/\\") for name in names)
    assert any(name.startswith(("=", "+")) for name in names)
    assert any(not name.isascii() for name in names)
    assert any(t["offboarded_on"] for t in data["tenants"])
    assert any(not t["onboarded_on"].endswith("-01") for t in data["tenants"])

    def month(day: str) -> str:
        return day[:7]

    pauses = [p for t in data["tenants"] for p in t["pauses"]]
    assert any(p["until"] and month(p["from"]) != month(p["until"]) for p in pauses)
    identities = [i for t in data["tenants"] for i in t["identities"]]
    assert {len(i["billable_periods"]) for i in identities} == {1, 2}
    assert any(
        p["until"] and not p["until"].endswith("-01")
        for i in identities
        for p in i["billable_periods"]
    )

    def overlapping(periods: list[dict]) -> bool:
        (a, b) = sorted(periods, key=lambda p: p["from"])
        return a["until"] is None or a["until"] > b["from"]

    assert any(
        overlapping(i["billable_periods"]) for i in identities if len(i["billable_periods"]) == 2
    )
    assert [p["unit_price"] for p in data["organisation"]["prices"]] == ["3.00", "3.25"]
    assert {m["role"] for m in data["members"]} == {
        "admin",
        "full_member",
        "billing",
        "external_guest",
    }
