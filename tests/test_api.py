"""The usage API: the figures of the CSV exports for every month, paging that holds while a
sync lands, every refusal with its status and JSON shape, ETags answered without computing,
the per-token rate limit, and the OpenAPI document that every answer here is checked against
(tests/api_client.py)."""

from __future__ import annotations

import copy
import csv
import datetime as dt
import io
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import event, select

from billing_app.api_tokens import service as tokens
from billing_app.exports.csv import neutralised
from billing_app.extensions import db
from billing_app.figures.months import Month, available_months, today_utc
from billing_app.importer import import_file
from billing_app.models import ApiToken, Member, Organisation, UsageChange
from dev.sample_data import organisation_data
from tests.api_client import API, ApiClient, make_token
from tests.factories import PASSWORD, add_tenant, make_organisation
from tests.test_invoices import add_invoices

TODAY = today_utc()
CURRENT = Month.of(TODAY)
CLOSED = "2026-03"


@pytest.fixture
def api(app, organisation) -> ApiClient:
    """Northwind with a few tenants, and a client holding a token with both scopes."""
    with app.app_context():
        org = db.session.get(Organisation, organisation.id)
        add_tenant(org, "Contoso", users=(("Grace Hopper", (("2026-01-12", None),)),))
        add_tenant(
            org,
            "=Fabrikam",
            pauses=(("2026-03-01", "2026-03-08"),),
            users=(
                ("Alan Turing", (("2026-02-10", "2026-03-20"),)),
                ("Ada", (("2025-12-01", None),)),
            ),
        )
        add_tenant(org, "Empty Ltd")
        db.session.remove()
    return ApiClient(app.test_client(), make_token(app))


def _all_pages(api: ApiClient, path: str) -> list[dict]:
    rows, url = [], path
    while url:
        response = api.get(url)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        rows.extend(body["data"])
        assert body["has_more"] is (body["next"] is not None)
        url = body["next"]
    return rows


def _csv(client, kind: str, month: Month) -> list[dict]:
    response = client.get(f"/settings/usage/export/{kind}.csv?month={month}")
    assert response.status_code == 200
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def _as_csv(row: dict) -> dict:
    """An API row written as the CSV writes it: text neutralised, null as empty."""
    text = {"tenant_id", "tenant_name", "microsoft_tenant_id", "identity_id", "display_name",
            "user_principal_name"}  # fmt: skip
    return {
        name: "" if value is None else neutralised(value) if name in text else str(value)
        for name, value in row.items()
    }


def _sign_in(client, email: str, password: str) -> None:
    from tests.factories import Auth

    assert Auth(client).login(email, password).status_code == 303


# --- Figures equal the CSV's ---------------------------------------------------------------


def test_every_month_equals_the_csv_exports(app, api):
    """Northwind of the factories, and a sample organisation with hostile names, every month."""
    with app.app_context():
        import_file(
            organisation_data(slug="sample-msp", tenants=25, identities_per_tenant=6, seed=7)
        )
        db.session.remove()
    for slug, email, password in (
        ("sample-msp", "admin@sample-msp.example", "demo-admin"),
        ("northwind-msp", "admin@northwind-msp.example", PASSWORD),  # the `api` fixture's
    ):
        client = app.test_client()
        _sign_in(client, email, password)
        api = ApiClient(app.test_client(), make_token(app, slug=slug))
        compared = 0
        for month in available_months(TODAY):
            tenants = _all_pages(api, f"months/{month}/tenants?limit=7")
            users = _all_pages(api, f"months/{month}/users?limit=13")
            csv_tenants = _csv(client, "tenants", month)
            csv_users = _csv(client, "users", month)
            assert sorted(map(_as_csv, tenants), key=lambda r: r["tenant_id"]) == sorted(
                csv_tenants, key=lambda r: r["tenant_id"]
            )
            key = lambda r: (r["tenant_id"], r["identity_id"])  # noqa: E731
            assert sorted(map(_as_csv, users), key=key) == sorted(csv_users, key=key)
            assert [key(r) for r in users] == sorted(key(r) for r in users)
            compared += len(users)
        assert compared > 0
        months = {row["month"]: row for row in _all_pages(api, "months")}
        assert list(months) == [str(m) for m in available_months(TODAY)]


def test_months_sum_their_tenants_and_project_the_current_month(app, api, auth):
    months = _all_pages(api, "months?limit=2")
    assert [row["month"] for row in months] == [str(m) for m in available_months(TODAY)]
    auth.as_role("admin")
    for row in months:
        tenants = _all_pages(api, f"months/{row['month']}/tenants")
        assert Decimal(row["prorated_units"]) == sum(Decimal(t["prorated_units"]) for t in tenants)
        assert Decimal(row["prorated_cost"]) == sum(Decimal(t["prorated_cost"]) for t in tenants)
        assert row["billable_users"] == sum(t["billable_users"] for t in tenants)
        assert row["month_to_date"] is (row["month"] == str(CURRENT))
        if row["month"] == str(CURRENT):
            with app.test_request_context():
                from billing_app.figures import cache

                org = db.session.scalar(select(Organisation))
                expected = cache.month_headline(org, CURRENT, TODAY).projected_cost
            assert Decimal(row["projected_cost"]) == expected
        else:
            assert row["projected_cost"] is None
    march = next(r for r in months if r["month"] == CLOSED)
    assert march["unit_price"] == "3.00" and march["currency"] == "USD"


def test_text_is_as_stored_and_empty_values_are_null(api):
    rows = _all_pages(api, "months/2026-01/tenants")
    fabrikam = next(r for r in rows if r["tenant_name"] == "=Fabrikam")
    assert fabrikam["previous_billable_users"] is None  # no month before January 2026
    assert fabrikam["previous_prorated_cost"] is None
    later = _all_pages(api, f"months/{CLOSED}/tenants")
    assert {r["tenant_name"] for r in later} == {"Contoso", "=Fabrikam", "Empty Ltd"}
    empty = next(r for r in later if r["tenant_name"] == "Empty Ltd")
    assert empty["billable_users"] == 0 and empty["prorated_cost"] == "0.00"


def test_one_tenants_users_and_a_tenant_without_users(app, api):
    rows = _all_pages(api, f"months/{CLOSED}/tenants")
    by_name = {r["tenant_name"]: r["tenant_id"] for r in rows}
    users = _all_pages(api, f"months/{CLOSED}/users?tenant_id={by_name['=Fabrikam']}&limit=1")
    assert {u["display_name"] for u in users} == {"Alan Turing", "Ada"}
    assert all(u["tenant_id"] == by_name["=Fabrikam"] for u in users)
    assert _all_pages(api, f"months/{CLOSED}/users?tenant_id={by_name['Empty Ltd']}") == []


# --- Paging while a sync lands ----------------------------------------------------------------


def test_paging_a_thousand_tenants_while_a_sync_lands_repeats_and_skips_nothing(app, organisation):
    data = organisation_data(slug="big-msp", tenants=1000, identities_per_tenant=1, seed=11)
    with app.app_context():
        import_file(data)
        db.session.remove()
    api = ApiClient(app.test_client(), make_token(app, slug="big-msp"))
    month = "2026-10"
    before = {r["tenant_id"] for r in _all_pages(api, f"months/{month}/tenants?limit=1000")}
    assert len(before) > 900

    seen: list[str] = []
    users_seen: list[tuple[str, str]] = []
    url, users_url, page = f"months/{month}/tenants?limit=37", f"months/{month}/users?limit=29", 0
    while url:
        body = api.get(url).get_json()
        seen.extend(r["tenant_id"] for r in body["data"])
        url = body["next"]
        if users_url:
            users = api.get(users_url).get_json()
            users_seen.extend((r["tenant_id"], r["identity_id"]) for r in users["data"])
            users_url = users["next"]
        page += 1
        if page == 3:
            _sync(app, data, after=seen[-1])
    while users_url:
        users = api.get(users_url).get_json()
        users_seen.extend((r["tenant_id"], r["identity_id"]) for r in users["data"])
        users_url = users["next"]

    assert len(seen) == len(set(seen)), "a tenant was repeated"
    assert before <= set(seen), "a tenant was skipped"
    assert seen == sorted(seen)
    assert len(users_seen) == len(set(users_seen))
    assert users_seen == sorted(users_seen)
    assert {t for t, _ in users_seen} <= set(seen)


def _sync(app, data: dict, after: str) -> None:
    """A sync of a few tenants: renamed ones either side of the cursor, a new one at the start
    of the order and one at its end, a user added and one removed."""
    changed = copy.deepcopy(data)
    tenants = sorted(changed["tenants"], key=lambda t: t["id"])
    earlier = next(t for t in tenants if t["id"] < after)
    later = next(t for t in reversed(tenants) if t["id"] > after)
    earlier["name"] = "ZZZ renamed to the end"
    later["name"] = "AAA renamed to the start"
    later["identities"].append(
        {"id": "u-new-sync", "display_name": "New User", "user_principal_name": "new@x.example",
         "billable_periods": [{"from": "2026-10-02", "until": None}]}
    )  # fmt: skip
    first = copy.deepcopy(earlier) | {"id": "0-new-first", "name": "New first"}
    last = copy.deepcopy(later) | {"id": "~new-last", "name": "New last"}
    for new in (first, last):
        new["identities"] = [
            identity | {"id": f"{new['id']}-{identity['id']}"} for identity in new["identities"]
        ]
        new["microsoft_tenant_id"] = "11111111-1111-1111-1111-" + str(len(new["id"])).zfill(12)
    changed["tenants"] = [earlier, later, first, last]
    changed["members"] = []
    with app.app_context():
        revision = db.session.scalar(select(Organisation.usage_revision).filter_by(slug="big-msp"))
        import_file(changed)
        after_sync = db.session.scalar(
            select(Organisation.usage_revision).filter_by(slug="big-msp")
        )
        assert after_sync > revision
        db.session.remove()


# --- Refusals ---------------------------------------------------------------------------------


def _error(response, status: int, type_: str | None = None) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    if type_:
        assert body["error"]["type"] == type_
    return body["error"]["message"]


def test_a_session_cookie_signs_nobody_in(app, api, auth):
    auth.as_role("admin")
    api_with_cookie = ApiClient(auth.client, None)
    response = api_with_cookie.get("months")
    _error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "Location" not in response.headers
    assert "Set-Cookie" not in response.headers


@pytest.mark.parametrize(
    ("header", "says"),
    [
        (None, "Send a token"),
        ("Basic YWRtaW46cGFzcw==", "not `Bearer petra_…`"),
        ("Bearer", "not `Bearer petra_…`"),
        ("Bearer sk_live_123", "not `Bearer petra_…`"),
        ("Bearer petra_" + "A" * 43, "not known"),
    ],
)
def test_missing_malformed_or_unknown_token_is_401(api, header, says):
    headers = {"Authorization": header} if header else {}
    response = api.get("months", token=None, headers=headers)
    assert says in _error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="Petra API"')


def test_expired_token_is_401(app, api):
    secret = make_token(app, expires_in_days=30)
    with app.app_context():
        row = db.session.scalar(
            select(ApiToken).where(ApiToken.token_hash == tokens.digest(secret))
        )
        row.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        db.session.commit()
    response = api.get("months", token=secret)
    assert "expired" in _error(response, 401)
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_revoked_token_is_401(app, api):
    with app.app_context():
        row = db.session.scalar(select(ApiToken))
        admin = db.session.scalar(select(Member).filter_by(role="admin"))
        tokens.revoke(row.organisation_id, admin, row.id)
    assert "revoked" in _error(api.get("months"), 401)


def test_a_scope_the_token_lacks_is_403(app, api):
    usage_only = make_token(app, scopes=[tokens.USAGE_READ])
    invoices_only = make_token(app, scopes=[tokens.INVOICES_READ])
    assert "invoices:read" in _error(api.get("invoices", token=usage_only), 403, "forbidden")
    for path in ("months", f"months/{CLOSED}/tenants", f"months/{CLOSED}/users"):
        assert "usage:read" in _error(api.get(path, token=invoices_only), 403, "forbidden")


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("limit=0", "`limit`"),
        ("limit=5000", "`limit`"),
        ("limit=ten", "`limit`"),
        ("limit=10&limit=20", "`limit`"),
        ("colour=blue", "`colour`"),
        ("cursor=not-a-cursor", "`cursor`"),
    ],
)
def test_bad_parameters_are_400_naming_them(api, query, names):
    for path in ("months", f"months/{CLOSED}/tenants", f"months/{CLOSED}/users"):
        assert names in _error(api.get(f"{path}?{query}"), 400, "invalid_request")


@pytest.mark.parametrize(
    ("month", "says"),
    [("2026-13", "is not a month"), ("March", "is not a month"), ("2025-12", "earlier"),
     (str(CURRENT.next()), "has not started yet")],
)  # fmt: skip
def test_a_bad_month_is_400(api, month, says):
    for kind in ("tenants", "users"):
        assert says in _error(api.get(f"months/{month}/{kind}"), 400, "invalid_request")


def test_a_cursor_from_another_list_or_tampered_with_is_400(api):
    march = api.get(f"months/{CLOSED}/tenants?limit=1").get_json()["next"]
    cursor = parse_qs(urlsplit(march).query)["cursor"][0]
    # The same list goes on with it.
    assert api.get(f"months/{CLOSED}/tenants?limit=1&cursor={cursor}").status_code == 200
    for other in ("months/2026-04/tenants", f"months/{CLOSED}/users", "months"):
        says = _error(api.get(f"{other}?cursor={cursor}"), 400, "invalid_request")
        assert "another list" in says
    tampered = cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB")
    assert "`cursor`" in _error(api.get(f"months/{CLOSED}/tenants?cursor={tampered}"), 400)
    users = api.get(f"months/{CLOSED}/users?limit=1").get_json()["next"]
    one_tenant = parse_qs(urlsplit(users).query)["cursor"][0]
    tenant = api.get(f"months/{CLOSED}/tenants?limit=1").get_json()["data"][0]["tenant_id"]
    response = api.get(f"months/{CLOSED}/users?tenant_id={tenant}&cursor={one_tenant}")
    assert "another list" in _error(response, 400)


def test_another_organisations_tenant_is_404(app, api):
    with app.app_context():
        other = make_organisation("other-msp")
        theirs = add_tenant(other, "Theirs", users=(("Eve", (("2026-01-01", None),)),))
        theirs_id = theirs.external_id
        db.session.remove()
    says = _error(api.get(f"months/{CLOSED}/users?tenant_id={theirs_id}"), 404, "not_found")
    assert "no tenant" in says
    assert _error(api.get(f"months/{CLOSED}/users?tenant_id=t-unknown"), 404)
    # And their token sees none of Northwind's tenants.
    other_api = ApiClient(app.test_client(), make_token(app, slug="other-msp"))
    names = {r["tenant_name"] for r in _all_pages(other_api, f"months/{CLOSED}/tenants")}
    assert names == {"Theirs"}


def test_unknown_paths_and_other_methods_answer_json(api):
    _error(api.get("nothing-here"), 404, "not_found")
    response = api.client.post(f"{API}/months", headers={"Authorization": f"Bearer {api.token}"})
    _error(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]


def test_past_the_rate_limit_is_429_with_retry_after(app, api):
    app.config["API_RATE_LIMIT"] = "3/minute"
    for _ in range(3):
        assert api.get("months").status_code == 200
    response = api.get("months")
    _error(response, 429, "rate_limited")
    assert int(response.headers["Retry-After"]) > 0
    # The limit is the token's own: another token goes on.
    assert api.get("months", token=make_token(app)).status_code == 200


def test_the_default_limit_is_at_least_600_a_minute(app, api):
    from billing_app.api.views import DEFAULT_RATE_LIMIT

    count, per = DEFAULT_RATE_LIMIT.split("/")
    assert int(count) >= 600 and per == "minute"
    for _ in range(30):
        assert api.get("months").status_code == 200


# --- ETags ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["months", f"months/{CLOSED}/tenants", f"months/{CLOSED}/users?limit=2"]
)
def test_if_none_match_is_304_without_computing(app, api, path):
    first = api.get(path)
    etag = first.headers["ETag"]
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        response = api.get(path, headers={"If-None-Match": etag})
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert response.status_code == 304
    assert response.headers["ETag"] == etag
    # The client alone keeps the answer, and asks again each time with its ETag.
    for answer in (first, response):
        assert answer.headers["Cache-Control"] in ("private, no-cache", "no-cache, private")
    # The token (with the organisation's revision); for a month's list, the month's revision.
    assert len(statements) == (1 if path == "months" else 2), statements
    assert "api_tokens" in statements[0]
    assert all("usage_changes" in statement for statement in statements[1:])


def test_etag_changes_when_the_figures_can_change(app, api):
    path = f"months/{CLOSED}/tenants"
    etag = api.get(path).headers["ETag"]
    assert api.get(path).headers["ETag"] == etag
    assert api.get(f"{path}?limit=1").headers["ETag"] != etag
    assert api.get("months/2026-04/tenants").headers["ETag"] != etag
    with app.app_context():
        org = db.session.get(Organisation, db.session.scalar(select(Organisation.id)))
        org.bump_usage_revision()
        db.session.commit()
    changed = api.get(path, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag


def test_a_sync_that_did_not_touch_a_month_keeps_its_etag(app, api):
    closed, current = f"months/{CLOSED}/tenants", f"months/{Month.of(today_utc())}/tenants"
    closed_etag, current_etag = api.get(closed).headers["ETag"], api.get(current).headers["ETag"]
    with app.app_context():
        org = db.session.get(Organisation, db.session.scalar(select(Organisation.id)))
        db.session.add(UsageChange(organisation_id=org.id, tenant_id=None, from_day=today_utc()))
        db.session.commit()
    assert api.get(closed, headers={"If-None-Match": closed_etag}).status_code == 304
    assert api.get(current, headers={"If-None-Match": current_etag}).status_code == 200


@pytest.mark.stripe_customer
def test_invoices_are_the_pages_states_with_an_etag(app, api, organisation, stripe_server):
    last = (TODAY.replace(day=1) - dt.timedelta(days=1)).replace(day=1)
    add_invoices(
        stripe_server,
        organisation.stripe_customer_id,
        [
            {"period": "2025-08", "amount": 58311, "status": "paid"},
            {"period": "2025-09", "amount": 4000, "status": "open"},
            {"period": f"{last:%Y-%m}", "amount": 5000, "status": "open"},
        ],
    )
    rows = _all_pages(api, "invoices?limit=2")
    assert [r["status"] for r in rows] == ["open", "overdue", "paid"]
    assert rows[2]["amount"] == "583.11" and rows[2]["currency"] == "USD"
    assert rows[2]["period_start"] == "2025-08-01" and rows[2]["period_end"] == "2025-08-31"
    assert rows[0]["due_date"] is not None
    response = api.get("invoices")
    again = api.get("invoices", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304


def test_openapi_document_is_valid_and_lists_every_status(app, api):
    document = api.document  # validated with openapi-spec-validator as it is read
    assert document["openapi"] == "3.1.0"
    paths = document["paths"]
    assert set(paths) == {
        "/api/v1/months", "/api/v1/months/{month}/tenants", "/api/v1/months/{month}/users",
        "/api/v1/invoices", "/api/v1/openapi.json",
    }  # fmt: skip
    for path, item in paths.items():
        responses = item["get"]["responses"]
        assert {"200", "304", "429", "default"} <= set(responses), path
        if path != "/api/v1/openapi.json":
            assert {"400", "401", "403"} <= set(responses), path
    for path in ("/api/v1/months/{month}/tenants", "/api/v1/months/{month}/users"):
        assert "404" in paths[path]["get"]["responses"]
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    response = api.get("openapi.json", token=None)
    assert (
        api.get("openapi.json", headers={"If-None-Match": response.headers["ETag"]}).status_code
        == 304
    )


def test_every_answer_of_these_tests_was_checked(api):
    api.get("months")
    api.get(f"months/{CLOSED}/users")
    assert api.checked == 2


@pytest.mark.stripe_customer
def test_invoices_say_when_stripe_fails(api, stripe_server):
    stripe_server.fault(method="GET", path="^/v1/invoices$", status=500)
    says = _error(api.get("invoices"), 503, "stripe_unavailable")
    assert "Stripe had a problem" in says and "Try again" in says
    stripe_server.clear_faults()
    assert api.get("invoices").status_code == 200
