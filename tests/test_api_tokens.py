"""API tokens in Settings → Usage: created by admins and shown once, kept as a hash, listed,
revoked with one POST, recorded in the audit history; refused to other roles."""

from __future__ import annotations

import datetime as dt
import hashlib
import re

import pytest
from sqlalchemy import select

from billing_app.api_tokens import service as tokens
from billing_app.extensions import db
from billing_app.models import ApiToken, AuditEvent, Member
from tests.api_client import ApiClient, make_token
from tests.factories import make_organisation

PAGE = "/settings/usage/api-tokens"
SECRET = re.compile(r"petra_[A-Za-z0-9_-]{32,}")


def _create(auth, htmx=False, **fields):
    data = {"name": "ConnectWise sync", "scopes": ["usage:read"], "expires_in_days": "90"}
    data.update(fields)
    return auth.post(PAGE, data=data, htmx=htmx)


def _rows(app):
    with app.app_context():
        return db.session.scalars(select(ApiToken)).all()


def _audit(app):
    with app.app_context():
        events = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action.like("api_token%")).order_by(AuditEvent.id)
        ).all()
        return [(e.action, e.new_value or e.old_value, e.member_id, e.detail) for e in events]


def test_created_token_is_shown_once_and_kept_only_as_a_hash(app, auth, organisation):
    auth.as_role("admin")
    response = _create(auth)
    html = response.get_data(as_text=True)
    assert response.status_code == 201
    assert "<html" in html  # without JavaScript: the page, with the token on it
    secret = SECRET.search(html).group(0)
    assert "shown only this once" in html
    [row] = _rows(app)
    assert row.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert row.prefix == secret[:12] and secret.startswith("petra_")
    stored = " ".join(str(getattr(row, c.key)) for c in ApiToken.__table__.columns)
    assert secret not in stored and secret[12:] not in stored
    again = auth.client.get(PAGE).get_data(as_text=True)
    assert secret not in again
    assert row.prefix in again and "ConnectWise sync" in again


def test_create_with_htmx_answers_the_section(app, auth, organisation):
    auth.as_role("admin")
    response = _create(auth, htmx=True, scopes=["usage:read", "invoices:read"])
    html = response.get_data(as_text=True)
    assert response.status_code == 201
    assert "<html" not in html and 'id="api-tokens"' in html
    assert SECRET.search(html)
    assert 'data-copy-from="api-token-secret"' in html
    [row] = _rows(app)
    assert row.scopes == "usage:read invoices:read"
    assert "HX-Request" in response.headers.get("Vary", "")


@pytest.mark.parametrize(("days", "expected"), [("30", 30), ("90", 90), ("365", 365), ("", None)])
def test_expiry_is_what_was_chosen(app, auth, organisation, days, expected):
    auth.as_role("admin")
    before = dt.datetime.now(dt.UTC)
    assert _create(auth, expires_in_days=days).status_code == 201
    [row] = _rows(app)
    if expected is None:
        assert row.expires_at is None
    else:
        expires = (
            row.expires_at.replace(tzinfo=dt.UTC)
            if row.expires_at.tzinfo is None
            else row.expires_at
        )
        assert abs(expires - before - dt.timedelta(days=expected)) < dt.timedelta(minutes=1)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "   "}, "Give the token a name"),
        ({"name": "x" * 101}, "Keep the name to 100 characters"),
        ({"scopes": []}, "Choose at least one kind of access"),
        ({"scopes": ["usage:write"]}, "Choose from the kinds of access listed"),
        ({"expires_in_days": "7"}, "Choose 30, 90 or 365 days"),
    ],
)
def test_bad_input_is_refused_and_the_form_keeps_what_was_typed(
    app, auth, organisation, fields, message
):
    auth.as_role("admin")
    typed = {"name": "Halo PSA", "scopes": ["invoices:read"], "expires_in_days": "365"}
    response = _create(auth, **(typed | fields))
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert message in html
    assert not SECRET.search(html)
    assert _rows(app) == [] and _audit(app) == []
    if "name" not in fields:
        assert 'value="Halo PSA"' in html
    if "expires_in_days" not in fields:
        assert '<option value="365" selected>' in html
    if "scopes" not in fields:
        assert re.search(r'value="invoices:read" checked', html)


def test_create_without_csrf_token_changes_nothing(app, auth, organisation):
    auth.as_role("admin")
    response = auth.client.post(PAGE, data={"name": "x", "scopes": "usage:read"})
    assert response.status_code == 400
    assert _rows(app) == []


def test_list_shows_name_prefix_scopes_creator_and_dates(app, auth, organisation):
    secret = make_token(app, name="Rewst <b>flows</b>", expires_in_days=30)
    ApiClient(auth.client, secret).get("months")
    auth.as_role("admin")
    html = auth.client.get(PAGE, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "Rewst &lt;b&gt;flows&lt;/b&gt;" in html
    assert secret[:12] + "…" in html and secret not in html
    assert "usage:read, invoices:read" in html
    assert "by Admin" in html
    assert "Never" not in html.split("api-tokens-table", 1)[1].split("</tbody>")[0]


def test_creation_and_revocation_are_in_the_audit_history(app, auth, organisation):
    auth.as_role("admin")
    _create(auth, name="Gradient")
    [row] = _rows(app)
    response = auth.post(f"{PAGE}/{row.id}/revoke")
    assert response.status_code == 303
    assert response.headers["Location"] == PAGE
    with app.app_context():
        admin = db.session.scalar(select(Member).filter_by(role="admin"))
    events = _audit(app)
    assert [(a, n, m) for a, n, m, _ in events] == [
        ("api_token_created", "Gradient", admin.id),
        ("api_token_revoked", "Gradient", admin.id),
    ]
    assert events[0][3]["prefix"] == row.prefix and events[0][3]["scopes"] == ["usage:read"]
    # Revoking again changes nothing and records nothing.
    assert auth.post(f"{PAGE}/{row.id}/revoke").status_code == 303
    assert len(_audit(app)) == 2


def test_revoked_token_is_refused_on_the_next_request(app, auth, organisation):
    secret = make_token(app)
    api = ApiClient(auth.client, secret)
    assert api.get("months").status_code == 200
    auth.as_role("admin")
    [row] = _rows(app)
    response = auth.post(f"{PAGE}/{row.id}/revoke", htmx=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in html
    assert 'data-state="revoked"' in html
    refused = ApiClient(app.test_client(), secret).get("months")
    assert refused.status_code == 401
    assert "revoked" in refused.get_json()["error"]["message"]


def test_another_organisations_token_cannot_be_revoked(app, auth, organisation):
    with app.app_context():
        make_organisation("other-msp")
    secret = make_token(app, slug="other-msp")
    auth.as_role("admin")
    [row] = _rows(app)
    assert auth.post(f"{PAGE}/{row.id}/revoke").status_code == 404
    assert _rows(app)[0].revoked_at is None
    assert ApiClient(app.test_client(), secret).get("months").status_code == 200
    assert "other" not in auth.client.get(PAGE).get_data(as_text=True).lower().split("<main")[1]


def test_usage_page_has_the_section_for_admins_only(app, auth, organisation):
    auth.as_role("admin")
    html = auth.client.get("/settings/usage").get_data(as_text=True)
    assert 'id="api-tokens"' in html and f'href="{PAGE}"' in html
    for role in ("full_member", "billing"):
        auth.client.post("/logout", data={"csrf_token": auth.csrf_token})
        auth.as_role(role)
        html = auth.client.get("/settings/usage").get_data(as_text=True)
        assert 'id="api-tokens"' not in html and PAGE not in html


@pytest.mark.parametrize("role", ["full_member", "billing", "external_guest"])
def test_other_roles_are_refused(app, auth, organisation, role):
    auth.as_role(role)
    assert auth.client.get(PAGE).status_code == 403
    assert _create(auth).status_code == 403
    assert _rows(app) == []


def test_last_use_is_recorded_at_most_once_a_minute(app, organisation):
    secret = make_token(app)
    with app.app_context():
        start = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
        assert isinstance(tokens.authenticate(secret, start), tokens.Authenticated)
        tokens.authenticate(secret, start + dt.timedelta(seconds=30))
        row = db.session.scalar(select(ApiToken))
        assert row.last_used_at.replace(tzinfo=dt.UTC) == start
        db.session.remove()
        tokens.authenticate(secret, start + dt.timedelta(seconds=61))
        row = db.session.scalar(select(ApiToken))
        assert row.last_used_at.replace(tzinfo=dt.UTC) == start + dt.timedelta(seconds=61)


def test_authenticate_says_why_a_token_is_refused(app, organisation):
    secret = make_token(app, expires_in_days=30)
    with app.app_context():
        now = dt.datetime.now(dt.UTC)
        assert tokens.authenticate(None) is tokens.Refusal.MISSING
        assert tokens.authenticate("sk_live_abc") is tokens.Refusal.MALFORMED
        assert tokens.authenticate("petra_" + "A" * 43) is tokens.Refusal.UNKNOWN
        later = now + dt.timedelta(days=31)
        assert tokens.authenticate(secret, later) is tokens.Refusal.EXPIRED
        found = tokens.authenticate(secret, now)
        assert found.scopes == {"usage:read", "invoices:read"}
