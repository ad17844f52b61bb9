"""The demo organisation of `make run`: what its script writes, that it imports, and that it
looks like a real MSP's year (hostile names belong to the sample data of the tests)."""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from billing_app.extensions import db
from billing_app.figures.calculator import month_usage
from billing_app.figures.months import Month
from billing_app.importer import import_file
from billing_app.models import Member, Organisation
from dev.demo import make_demo
from dev.sample_data import SPECIAL_TENANT_NAMES, organisation_data

ROOT = Path(__file__).resolve().parent.parent
DEMO_FILE = Path(make_demo.__file__).with_name("northwind.json")
HOSTILE = re.compile(r"^[=+\-@'\s]|[\[\]:*?/\\\x00-\x1f\x7f]|^(history|summary)$", re.I)


@pytest.fixture(scope="module")
def demo() -> dict:
    return json.loads(DEMO_FILE.read_text(encoding="utf-8"))


def _billable_on(identity: dict, day: str) -> bool:
    return any(
        p["from"] <= day and (p["until"] is None or day < p["until"])
        for p in identity["billable_periods"]
    )


def _counted_on(tenant: dict, day: str) -> bool:
    if day < tenant["onboarded_on"] or (tenant["offboarded_on"] or "9999") <= day:
        return False
    return not any(
        p["from"] <= day and (p["until"] is None or day < p["until"]) for p in tenant["pauses"]
    )


def test_demo_file_is_what_the_script_writes(demo):
    assert demo == make_demo.demo_data()
    assert make_demo.demo_data() == make_demo.demo_data()


def test_demo_has_no_hostile_names(demo):
    tenant_names = [t["name"] for t in demo["tenants"]]
    display_names = [i["display_name"] for t in demo["tenants"] for i in t["identities"]]
    for name in [*tenant_names, *display_names]:
        assert not HOSTILE.search(name), name
    # Every tenant name is its own sheet name in the report.
    assert all(len(name) <= 31 for name in tenant_names)
    assert len({name.casefold() for name in tenant_names}) == len(tenant_names)
    addresses = [i["user_principal_name"] for t in demo["tenants"] for i in t["identities"]]
    assert len(set(addresses)) == len(addresses)
    assert all(re.fullmatch(r"[a-z0-9.]+@[a-z0-9-]+\.example", a) for a in addresses)


def test_hostile_names_live_in_the_sample_data_of_the_tests():
    data = organisation_data(slug="s", tenants=60, identities_per_tenant=1)
    names = {t["name"] for t in data["tenants"]}
    assert '=HYPERLINK("https://evil.example","Click me")' in SPECIAL_TENANT_NAMES
    assert set(SPECIAL_TENANT_NAMES) <= names


def test_demo_is_about_twenty_customers_of_realistic_sizes(demo):
    tenants = demo["tenants"]
    assert 18 <= len(tenants) <= 22
    for tenant in tenants:
        for month in range(1, 13):
            day = f"2026-{month:02d}-15"
            if _counted_on(tenant, day):
                users = sum(_billable_on(i, day) for i in tenant["identities"])
                assert 5 <= users <= 150, (tenant["name"], day, users)
    sizes = [len(t["identities"]) for t in tenants]
    assert min(sizes) <= 10 and max(sizes) >= 100


def test_demo_has_a_year_of_people_joining_and_leaving(demo):
    periods = [p for t in demo["tenants"] for i in t["identities"] for p in i["billable_periods"]]
    joined = {p["from"][:7] for p in periods}
    left = {p["until"][:7] for p in periods if p["until"]}
    months = {f"2026-{month:02d}" for month in range(1, 12)}
    assert months <= joined
    assert months <= left
    assert any(len(i["billable_periods"]) == 2 for t in demo["tenants"] for i in t["identities"]), (
        "someone leaves and comes back"
    )
    onboarded = sorted(t["onboarded_on"] for t in demo["tenants"])
    assert onboarded[0] < "2026-01-01" < onboarded[-1], "customers before and during the year"


def test_demo_has_a_paused_and_an_offboarded_tenant_and_a_price_change(demo):
    tenants = demo["tenants"]
    assert [t["name"] for t in tenants if t["offboarded_on"]] == ["Marlowe Insurance Brokers"]
    paused = {t["name"]: t["pauses"] for t in tenants if t["pauses"]}
    assert paused == {
        "St Aidan's Primary School": [{"from": "2026-07-25", "until": "2026-09-01"}],
        "Holloway Architects": [{"from": "2026-11-16", "until": None}],
    }
    prices = demo["organisation"]["prices"]
    assert [(p["from_month"], p["unit_price"]) for p in prices] == [
        ("2026-01", "3.00"),
        ("2026-07", "3.25"),
    ]


def test_demo_sign_ins_are_the_ones_the_readme_lists(demo):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    listed = re.findall(r"^\| `([^`]+@northwind\.example)` \| `([^`]+)` \|", readme, re.M)
    assert listed == [(m["email"], m["password"]) for m in demo["members"]]
    assert {m["role"] for m in demo["members"]} == {
        "admin",
        "full_member",
        "billing",
        "external_guest",
    }


def test_demo_imports_and_its_months_add_up(app, auth, demo):
    with app.app_context():
        summary = import_file(demo)
        assert summary.tenants.total == len(demo["tenants"])
        assert summary.identities.total == sum(len(t["identities"]) for t in demo["tenants"])
        assert set(db.session.scalars(select(Member.email))) == {
            m["email"] for m in demo["members"]
        }
        organisation = db.session.scalar(select(Organisation))
        september = month_usage(organisation, Month(2026, 9), dt.date(2026, 12, 1))
        august = month_usage(organisation, Month(2026, 8), dt.date(2026, 12, 1))
        october = month_usage(organisation, Month(2026, 10), dt.date(2026, 12, 1))
    by_name = {t.name: t for t in september.tenants}
    assert by_name["Marlowe Insurance Brokers"].offboarded_in_month
    assert "Marlowe Insurance Brokers" not in {t.name for t in october.tenants}
    school = {t.name: t for t in august.tenants}["St Aidan's Primary School"]
    assert school.billable_users == 0 and school.paused_in_month
    assert by_name["St Aidan's Primary School"].billable_users >= 50
    assert september.unit_price == august.unit_price == Decimal("3.25")
    assert 500 <= october.billable_users <= 1500
    assert october.cost == sum(t.cost for t in october.tenants)
    assert auth.login("finance@northwind.example", "demo-billing").status_code == 303
