"""The CSV exports read back with csv.DictReader and compared, to the cent and every month,
with the proration rules applied to the proration fixtures (tests/rebilling.py); header,
filename, RFC 4180 quoting, formula text, the month rules of the report, the tenant filter."""

from __future__ import annotations

import csv
import io
import re
from decimal import ROUND_HALF_UP, Decimal

import pytest
from sqlalchemy import select

from billing_app.exports.csv import CHUNK, neutralised
from billing_app.extensions import db
from billing_app.figures.months import Month, available_months, today_utc
from billing_app.figures.proration import prorated_cost
from billing_app.models import Identity, Organisation, Tenant
from tests import rebilling
from tests.factories import ALWAYS, add_tenant, billable_days, make_organisation
from tests.pages import without_csrf_tokens

TENANT_HEADER = (
    "month,tenant_id,tenant_name,microsoft_tenant_id,billable_users,prorated_units,unit_price,"
    "currency,prorated_cost,previous_billable_users,previous_prorated_cost"
)
USER_HEADER = (
    "month,tenant_id,tenant_name,microsoft_tenant_id,identity_id,display_name,"
    "user_principal_name,billable_from,billable_to,billable_days,days_in_month,prorated_units,"
    "unit_price,currency,prorated_cost"
)
NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?")
TEXT_COLUMNS = ("tenant_id", "tenant_name", "microsoft_tenant_id", "identity_id")


# --- The one neutralising function -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("=SUM(A1:A2)", "'=SUM(A1:A2)"),
        ("+44 20 7946 0000", "'+44 20 7946 0000"),
        ("-Shared Mailbox", "'-Shared Mailbox"),
        ("-12", "'-12"),
        ("@channel", "'@channel"),
        ("\tTabbed", "'\tTabbed"),
        ("\rReturned", "'\rReturned"),
        ('=HYPERLINK("https://evil.example","x")', '\'=HYPERLINK("https://evil.example","x")'),
        ("Grace Hopper", "Grace Hopper"),
        ("a=b", "a=b"),
        (" =not first", " =not first"),
        ("'already quoted", "'already quoted"),
        ("\nnew line first", "\nnew line first"),
        ("1.49", "1.49"),
        ("2026-04-01", "2026-04-01"),
        ("", ""),
    ],
)
def test_neutralised(text, expected):
    assert neutralised(text) == expected


# --- Reading the files back ------------------------------------------------------------------


@pytest.fixture
def fixtures(app, organisation) -> None:
    with app.app_context():
        rebilling.build(db.session.get(Organisation, organisation.id))


def download(auth, name: str, **params):
    return auth.client.get(f"/settings/usage/export/{name}", query_string=params)


def read(response) -> tuple[str, list[dict[str, str]]]:
    """The header line and the rows of a CSV response."""
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/csv"
    assert response.mimetype_params == {"charset": "utf-8"}
    text = response.get_data().decode("utf-8")
    return text.split("\r\n", 1)[0], list(csv.DictReader(io.StringIO(text, newline="")))


def unneutralised(value: str) -> str:
    return value[1:] if value.startswith("'") else value


def expected_users(month: Month) -> dict[str, dict[str, str]]:
    """Every billable user's row of `month`, from the proration rules applied identity by
    identity (`billable_days`, `prorated_cost`), by identity id."""
    today = today_utc()
    price = Decimal("3.00") if month < Month(2026, 7) else Decimal("3.33")
    found = {}
    for identity in db.session.scalars(select(Identity)):
        tenant = identity.tenant
        days = billable_days(
            [(p.from_date, p.until_date) for p in identity.billable_periods],
            month,
            onboarded_on=tenant.onboarded_on,
            offboarded_on=tenant.offboarded_on,
            pauses=[(p.from_date, p.until_date) for p in tenant.pauses],
            today=today,
        )
        if not days.days:
            continue
        found[identity.external_id] = {
            "month": str(month),
            "tenant_id": tenant.external_id,
            "tenant_name": tenant.name,
            "microsoft_tenant_id": tenant.microsoft_tenant_id,
            "identity_id": identity.external_id,
            "display_name": identity.display_name,
            "user_principal_name": identity.user_principal_name,
            "billable_from": days.first.isoformat(),
            "billable_to": days.last.isoformat(),
            "billable_days": str(days.days),
            "days_in_month": str(month.days),
            "prorated_units": str(
                (Decimal(days.days) / month.days).quantize(Decimal("0.0001"), ROUND_HALF_UP)
            ),
            "unit_price": f"{price:.2f}",
            "currency": "USD",
            "prorated_cost": str(prorated_cost(price, days.days, month.days)),
        }
    return found


def onboarded_tenants(month: Month) -> list[Tenant]:
    return [
        t
        for t in db.session.scalars(select(Tenant))
        if t.onboarded_on < month.end
        and (t.offboarded_on is None or t.offboarded_on > month.first_day)
    ]


def test_users_csv_equals_the_proration_every_month(app, auth, fixtures):
    auth.as_role("full_member")
    checked = 0
    for month in available_months(today_utc()):
        header, found = read(download(auth, "users.csv", month=str(month)))
        assert header == USER_HEADER
        with app.app_context():
            expected = expected_users(month)
        assert len(found) == len(expected)
        for row in found:
            want = expected[unneutralised(row["identity_id"])]
            for column in ("display_name", "user_principal_name", *TEXT_COLUMNS):
                assert row[column] == neutralised(want[column]), column
                row[column] = want[column]
            assert row == want
            checked += 1
    assert checked > 100


def test_tenants_csv_equals_the_users_and_the_month_before_every_month(app, auth, fixtures):
    auth.as_role("billing")
    months = sorted(available_months(today_utc()))
    for month in months:
        header, found = read(download(auth, "tenants.csv", month=str(month)))
        assert header == TENANT_HEADER
        with app.app_context():
            expected = expected_users(month)
            before = expected_users(month.previous()) if month > months[0] else None
            tenants = onboarded_tenants(month)
            names = {t.external_id: t for t in tenants}
        # Every tenant onboarded at some point in the month, in the summary's order.
        assert sorted(unneutralised(r["tenant_id"]) for r in found) == sorted(names)
        for row in found:
            tenant = names[unneutralised(row["tenant_id"])]
            mine = [u for u in expected.values() if u["tenant_id"] == tenant.external_id]
            cost = sum((Decimal(u["prorated_cost"]) for u in mine), Decimal(0))
            days = sum(int(u["billable_days"]) for u in mine)
            assert row["month"] == str(month)
            assert row["tenant_name"] == neutralised(tenant.name)
            assert row["microsoft_tenant_id"] == tenant.microsoft_tenant_id
            assert row["billable_users"] == str(len(mine))
            assert row["prorated_units"] == str(
                (Decimal(days) / month.days).quantize(Decimal("0.0001"), ROUND_HALF_UP)
            )
            assert row["unit_price"] == ("3.00" if month < Month(2026, 7) else "3.33")
            assert row["currency"] == "USD"
            assert row["prorated_cost"] == f"{cost:.2f}"
            if before is None:
                assert (row["previous_billable_users"], row["previous_prorated_cost"]) == ("", "")
                continue
            earlier = [u for u in before.values() if u["tenant_id"] == tenant.external_id]
            assert row["previous_billable_users"] == str(len(earlier))
            previous = sum((Decimal(u["prorated_cost"]) for u in earlier), Decimal(0))
            assert row["previous_prorated_cost"] == f"{previous:.2f}"
        for row in found:
            for column in ("billable_users", "prorated_units", "unit_price", "prorated_cost"):
                assert NUMBER.fullmatch(row[column]), (column, row[column])


def test_a_tenant_without_billable_users_has_a_row_of_zeros(auth, fixtures):
    auth.as_role("admin")
    _, found = read(download(auth, "tenants.csv", month="2026-06"))
    [empty] = [row for row in found if row["tenant_name"] == "Empty Tenant"]
    assert (empty["billable_users"], empty["prorated_units"], empty["prorated_cost"]) == (
        "0",
        "0.0000",
        "0.00",
    )
    assert (empty["previous_billable_users"], empty["previous_prorated_cost"]) == ("0", "0.00")


def test_filenames_and_headers(auth, fixtures):
    auth.as_role("admin")
    for name, kind in (("tenants.csv", "tenants"), ("users.csv", "users")):
        response = download(auth, name, month="2026-04")
        assert response.headers["Content-Disposition"] == (
            f'attachment; filename="usage-northwind-msp-2026-04-{kind}.csv"'
        )
        assert response.headers["Cache-Control"] == "no-store"
        assert response.is_streamed
        assert not response.get_data().startswith(b"\xef\xbb\xbf")


def test_rfc_4180_quoting_and_formula_text(auth, fixtures):
    auth.as_role("admin")
    raw = download(auth, "users.csv", month="2026-08").get_data().decode("utf-8")
    # Commas and quotes: the field quoted, quotes doubled; a line break stays inside quotes.
    assert ',"Smith, Jones & ""Partners""",' in raw
    assert ',"Line\nbreak Ltd",' in raw
    assert ",Müller & Söhne GmbH 😀," in raw
    # Formula text prefixed with ' (a carriage return also makes the field quoted).
    assert ",'=SUM(A1:A2),'=sum(a1:a2)@example.com," in raw
    assert ",'+44 20 7946 0000," in raw
    assert ",'-Shared Mailbox," in raw
    assert ",'@channel," in raw
    assert ",'\tTabbed," in raw
    assert ',"\'\rReturned",' in raw
    assert ',"\'=HYPERLINK(""https://evil.example"",""x"")",' in raw
    # Every record ends with CRLF; bare line breaks only inside quoted fields.
    records = list(csv.reader(io.StringIO(raw, newline="")))
    assert all(len(record) == 15 for record in records)
    assert raw.endswith("\r\n")
    tenants = download(auth, "tenants.csv", month="2026-08").get_data().decode("utf-8")
    assert "\r\n2026-08,t-" in tenants
    assert ",'=HYPERLINK(" in tenants.replace('"', "")


def test_users_csv_of_one_tenant(app, auth, organisation):
    with app.app_context():
        org = db.session.get(Organisation, organisation.id)
        mine = add_tenant(org, "Mine", users=(("Grace", ALWAYS), ("Alan", ALWAYS))).external_id
        add_tenant(org, "Not mine", users=(("Ada", ALWAYS),))
        other = make_organisation("other-msp")
        theirs = add_tenant(other, "Theirs", users=(("Someone", ALWAYS),)).external_id
    auth.as_role("admin")
    _, found = read(download(auth, "users.csv", month="2026-04", tenant=mine))
    assert sorted(row["display_name"] for row in found) == ["Alan", "Grace"]
    assert {row["tenant_id"] for row in found} == {mine}
    _, whole = read(download(auth, "users.csv", month="2026-04"))
    assert len(whole) == 3
    assert download(auth, "users.csv", month="2026-04", tenant=theirs).status_code == 404
    assert download(auth, "users.csv", month="2026-04", tenant="t-unknown").status_code == 404
    assert without_csrf_tokens(
        download(auth, "users.csv", month="2026-04", tenant=theirs)
    ) == without_csrf_tokens(download(auth, "users.csv", month="2026-04", tenant="t-unknown"))


@pytest.mark.parametrize("name", ["tenants.csv", "users.csv"])
@pytest.mark.parametrize(
    "month", [None, "", "2025-12", "2099-01", "2026-13", "march", "2026-4", "x" * 40]
)
def test_the_same_month_rules_and_400s_as_the_report(auth, fixtures, name, month):
    auth.as_role("admin")
    params = {} if month is None else {"month": month}
    export = download(auth, name, **params)
    report = auth.client.get("/settings/usage/report", query_string=params)
    assert export.status_code == report.status_code == 400
    message = re.search(r"<p>(.*?)</p>", report.get_data(as_text=True)).group(1)
    assert message in export.get_data(as_text=True)
    assert "text/csv" not in export.headers["Content-Type"]


@pytest.mark.parametrize("name", ["tenants.csv", "users.csv"])
def test_a_month_without_price_is_the_reports_answer(app, auth, organisation, name):
    with app.app_context():
        org = db.session.get(Organisation, organisation.id)
        org.prices[0].from_month = Month(2026, 3).first_day
        db.session.commit()
        add_tenant(org, "Contoso", users=(("Grace", ALWAYS),))
    auth.as_role("admin")
    export = download(auth, name, month="2026-02")
    report = auth.client.get("/settings/usage/report", query_string={"month": "2026-02"})
    assert export.status_code == report.status_code == 409
    assert "no unit price for February 2026" in export.get_data(as_text=True)
    # March is priced; February, the month before, is not: no previous figures.
    _, found = read(download(auth, "tenants.csv", month="2026-03"))
    assert [(r["previous_billable_users"], r["previous_prorated_cost"]) for r in found] == [
        ("", "")
    ]


@pytest.mark.parametrize("role", ["admin", "full_member", "billing"])
def test_every_role_that_may_download_gets_both_files(auth, fixtures, role):
    auth.as_role(role)
    for name in ("tenants.csv", "users.csv"):
        assert read(download(auth, name, month="2026-05"))[1]


def test_written_in_chunks_as_it_is_streamed(app, auth, organisation):
    with app.app_context():
        org = db.session.get(Organisation, organisation.id)
        for n in range(4):
            add_tenant(
                org, f"Tenant {n}", users=tuple((f"User {n}-{k}", ALWAYS) for k in range(400))
            )
    auth.as_role("admin")
    response = auth.client.get(
        "/settings/usage/export/users.csv", query_string={"month": "2026-04"}, buffered=False
    )
    pieces = list(response.response)
    response.close()
    assert len(pieces) > 2
    assert all(len(piece) < 2 * CHUNK for piece in pieces)
    body = b"".join(pieces).decode()
    assert len(list(csv.DictReader(io.StringIO(body, newline="")))) == 1600


def test_the_usage_page_offers_both_files_beside_the_report(auth, fixtures):
    auth.as_role("full_member")
    html = auth.client.get("/settings/usage", query_string={"month": "2026-04"}).get_data(
        as_text=True
    )
    assert 'href="/settings/usage/export/tenants.csv?month=2026-04"' in html
    assert 'href="/settings/usage/export/users.csv?month=2026-04"' in html
    assert 'href="/settings/usage/report?month=2026-04"' in html


def test_a_download_token_comes_back_as_a_cookie_the_page_can_read(auth, fixtures):
    auth.as_role("admin")
    token = "0123456789abcdef" * 2
    for name in ("tenants.csv", "users.csv"):
        response = download(auth, name, month="2026-04", download_token=token)
        assert response.status_code == 200
        [cookie] = response.headers.getlist("Set-Cookie")
        assert cookie.startswith(f"petra_download_{token}=200;")
        assert "Path=/" in cookie and "SameSite=Lax" in cookie
        assert "HttpOnly" not in cookie
        assert response.get_data().startswith(b"month,")
    # A failed export answers its token too, so the page stops saying "Preparing".
    refused = download(auth, "users.csv", month="2019-01", download_token=token)
    assert refused.status_code == 400
    assert refused.headers["Set-Cookie"].startswith(f"petra_download_{token}=400;")


@pytest.mark.parametrize("token", ["", "short", "0123456789ABCDEF" * 2, "x" * 32, "0" * 33])
def test_no_cookie_without_a_well_formed_token(auth, fixtures, token):
    auth.as_role("admin")
    response = download(auth, "tenants.csv", month="2026-04", download_token=token)
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers
    assert response.get_data().startswith(b"month,")
