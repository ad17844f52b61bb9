"""Sessions end when they should: a copied session cookie after sign-out, a password change or a
role change signs no one in; the CSRF secret is new at sign-in; `next` never leaves the site or
breaks the sign-in; and sign-in takes as long for an unknown email as for a member's."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from billing_app.extensions import db
from billing_app.importer import import_file
from billing_app.models import Member, Organisation
from tests.factories import CSRF_INPUT, PASSWORD, Auth

pytestmark = pytest.mark.stripe_customer

PAGE = "/settings/usage"
ADMIN = "admin@northwind-msp.example"


def copied(app, auth: Auth):
    """Another browser holding a copy of `auth`'s session cookie."""
    thief = app.test_client()
    thief.set_cookie("session", auth.client.get_cookie("session").value)
    return thief


def signed_in(client) -> bool:
    response = client.get(PAGE)
    if response.status_code == 200:
        return True
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    return False


def import_members(app, **admin) -> None:
    """Import northwind's members again, with the admin's entry changed by `admin`."""
    with app.app_context():
        organisation = db.session.scalar(select(Organisation))
        members = [
            {"email": m.email, "name": m.name, "role": m.role, "password": PASSWORD}
            for m in organisation.members
        ]
        for member in members:
            if member["email"] == ADMIN:
                member.update(admin)
        import_file(
            {
                "organisation": {
                    "slug": organisation.slug,
                    "name": organisation.name,
                    "billing_email": organisation.billing_email,
                },
                "members": members,
            }
        )


def test_a_copied_session_cookie_no_longer_signs_in_after_sign_out(app, auth, organisation):
    auth.as_role("admin")
    thief = copied(app, auth)
    assert signed_in(thief)
    response = auth.post("/logout")
    assert response.status_code == 303
    assert not signed_in(auth.client)
    assert not signed_in(thief)


def test_signing_out_ends_the_members_other_sessions_and_nobody_elses(app, organisation):
    laptop = Auth(app.test_client()).as_role("admin")
    phone = Auth(app.test_client()).as_role("admin")
    colleague = Auth(app.test_client()).as_role("billing")
    assert laptop.post("/logout").status_code == 303
    assert not signed_in(phone.client)
    assert signed_in(colleague.client)
    # Signing in again works, and starts a session that counts.
    assert Auth(app.test_client()).as_role("admin")


def test_a_password_change_by_import_ends_the_members_sessions(app, auth, organisation):
    auth.as_role("admin")
    thief = copied(app, auth)
    colleague = Auth(app.test_client()).as_role("billing")
    import_members(app, password="a new password for ada")
    assert not signed_in(auth.client)
    assert not signed_in(thief)
    assert signed_in(colleague.client)
    assert Auth(app.test_client()).login(ADMIN, "a new password for ada").status_code == 303


def test_a_role_change_by_import_ends_the_members_sessions(app, auth, organisation):
    auth.as_role("admin")
    thief = copied(app, auth)
    import_members(app, role="full_member")
    assert not signed_in(auth.client)
    assert not signed_in(thief)


def test_importing_the_same_members_again_keeps_their_sessions(app, auth, organisation):
    auth.as_role("admin")
    import_members(app)
    assert signed_in(auth.client)


def test_a_password_changed_in_code_ends_the_sessions_too(app, auth, organisation):
    """The session version follows the password hash itself, whoever sets it."""
    auth.as_role("admin")
    with app.app_context():
        member = db.session.scalar(select(Member).where(Member.email == ADMIN))
        before = member.session_version
        member.set_password("another password")
        db.session.commit()
        assert db.session.get(Member, member.id).session_version == before + 1
    assert not signed_in(auth.client)


@pytest.mark.parametrize("session_id", ["1", "1:x", "x:0", "1:0:0", "", "\u0661:0"])
def test_session_ids_of_other_shapes_sign_no_one_in(app, organisation, session_id):
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = session_id
        session["_fresh"] = True
    assert not signed_in(client)


def test_the_csrf_secret_is_renewed_at_sign_in(app, client, organisation):
    page = client.get("/login").get_data(as_text=True)
    before = CSRF_INPUT.search(page).group(1)
    response = client.post(
        "/login", data={"email": ADMIN, "password": PASSWORD, "csrf_token": before}
    )
    assert response.status_code == 303
    # The token of the sign-in page (which someone else may have seen) no longer works.
    assert client.post("/logout", data={"csrf_token": before}).status_code == 400
    assert signed_in(client)
    after = CSRF_INPUT.search(client.get(PAGE).get_data(as_text=True)).group(1)
    assert after != before
    assert client.post("/logout", data={"csrf_token": after}).status_code == 303


# `next`.

HOSTILE_NEXT = [
    "/settings/usage\r\nSet-Cookie: session=x",
    "/\r\n/evil.example",
    "/settings/usage\n",
    "/\t/evil.example",
    "/ /evil.example",
    "//evil.example/",
    "/\\evil.example",
    "https://evil.example/",
    "javascript:alert(1)",
    "settings/usage",
    " /settings/usage",
    "/settings/usage\x00",
    "/settings/usage\u2028",
    "/" + "a" * 5000,
]


@pytest.mark.parametrize("next_path", HOSTILE_NEXT)
def test_a_hostile_next_falls_back_to_the_usage_page(client, organisation, next_path):
    page = client.get("/login", query_string={"next": next_path})
    assert page.status_code == 200
    token = CSRF_INPUT.search(page.get_data(as_text=True)).group(1)
    response = client.post(
        "/login",
        query_string={"next": next_path},
        data={"email": ADMIN, "password": PASSWORD, "csrf_token": token},
    )
    assert response.status_code == 303
    assert response.headers["Location"] == PAGE
    # Signed in already, the same link leads to the page too.
    again = client.get("/login", query_string={"next": next_path})
    assert again.status_code == 302
    assert again.headers["Location"] == PAGE


def test_a_plain_next_is_kept(client, organisation):
    wanted = "/settings/usage?month=2026-02"
    token = CSRF_INPUT.search(client.get("/login").get_data(as_text=True)).group(1)
    response = client.post(
        "/login",
        query_string={"next": wanted},
        data={"email": ADMIN, "password": PASSWORD, "csrf_token": token},
    )
    assert response.headers["Location"] == wanted


def test_an_anonymous_request_with_line_breaks_goes_to_the_login_page_keeping_them_encoded(
    client, organisation
):
    response = client.get("/settings/usage?month=2026-01%0d%0aSet-Cookie:%20x=1")
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith("/login?next=")
    assert "\r" not in location and "\n" not in location


# Timing.


def _sign_in_work(client, token: str, emails: list[str], rounds: int = 7) -> list[float]:
    """The least work a refused sign-in of each email took, taking turns between them: the
    processor time of this thread, which runs the request in the test client (other processes
    on a loaded machine do not count in it, the password check's hashing does)."""
    fastest = [float("inf")] * len(emails)
    for _ in range(rounds):
        for index, email in enumerate(emails):
            started = time.thread_time()
            response = client.post(
                "/login", data={"email": email, "password": "not the password", "csrf_token": token}
            )
            fastest[index] = min(fastest[index], time.thread_time() - started)
            assert response.status_code == 401
    return fastest


def test_sign_in_takes_as_long_for_an_unknown_email_as_for_a_member(app, client, organisation):
    with app.app_context():
        # The admin's password hashed as the app hashes it, not as the test factories do.
        admin = db.session.scalar(select(Member).filter_by(email=ADMIN))
        admin.set_password(PASSWORD)
        db.session.add(
            Member(
                organisation_id=organisation.id,
                email="nopassword@northwind-msp.example",
                name="No",
                role="billing",
            )
        )
        db.session.commit()
    token = CSRF_INPUT.search(client.get("/login").get_data(as_text=True)).group(1)
    _sign_in_work(client, token, ["warm-up@nowhere.example"], rounds=1)
    member, unknown, without_password = _sign_in_work(
        client, token, [ADMIN, "nobody@nowhere.example", "nopassword@northwind-msp.example"]
    )
    # Checking a password hash takes tens of milliseconds; not checking one, a few.
    assert unknown / member > 0.5, (unknown, member)
    assert without_password / member > 0.5, (without_password, member)
