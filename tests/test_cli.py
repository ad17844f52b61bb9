"""Staff commands: linking an organisation to its Stripe customer, and the demo sign-ins."""

import json

import pytest
from sqlalchemy import select

from billing_app.extensions import db
from billing_app.models import Organisation
from dev.demo import cli as demo_cli
from tests.factories import make_organisation

pytestmark = pytest.mark.stripe_customer


def _organisation(app) -> Organisation:
    with app.app_context():
        organisation = db.session.scalar(select(Organisation))
        db.session.expunge(organisation)
        return organisation


def test_link_stripe_creates_a_customer_with_the_billing_email(app, stripe_client):
    with app.app_context():
        make_organisation()
    result = app.test_cli_runner().invoke(args=["billing", "link-stripe", "northwind-msp"])
    assert result.exit_code == 0, result.output
    customer_id = _organisation(app).stripe_customer_id
    assert customer_id and customer_id in result.output
    customer = stripe_client.v1.customers.retrieve(customer_id)
    assert customer.email == "billing@northwind.example"
    assert customer.metadata["organisation"] == "northwind-msp"


def test_link_stripe_keeps_a_customer_stripe_knows(app, organisation, stripe_server):
    stripe_server.clear_requests()
    result = app.test_cli_runner().invoke(args=["billing", "link-stripe", "northwind-msp"])
    assert result.exit_code == 0
    assert "is linked to Stripe customer" in result.output
    assert _organisation(app).stripe_customer_id == organisation.stripe_customer_id
    assert [r["method"] for r in stripe_server.requests("/v1/customers")] == ["GET"]


def test_link_stripe_replaces_a_customer_stripe_does_not_know(app):
    with app.app_context():
        make_organisation(stripe_customer_id="cus_gone")
    result = app.test_cli_runner().invoke(args=["billing", "link-stripe", "northwind-msp"])
    assert result.exit_code == 0
    assert _organisation(app).stripe_customer_id not in (None, "cus_gone")


def test_link_stripe_when_stripe_fails_says_so_and_changes_nothing(app, stripe_server):
    with app.app_context():
        make_organisation()
    stripe_server.fault(method="POST", path="^/v1/customers$", status=500)
    result = app.test_cli_runner().invoke(args=["billing", "link-stripe", "northwind-msp"])
    assert result.exit_code == 1
    assert "could not be linked: Stripe had a problem on its side." in result.output
    assert _organisation(app).stripe_customer_id is None


def test_link_stripe_unknown_organisation(app):
    result = app.test_cli_runner().invoke(args=["billing", "link-stripe", "nobody"])
    assert result.exit_code == 1
    assert "No organisation with slug 'nobody'." in result.output


def test_demo_sign_ins_lists_each_member(app, tmp_path):
    path = tmp_path / "demo.json"
    members = [
        {"email": "ada@x.example", "name": "Ada", "role": "admin", "password": "pw-ada"},
        {"email": "bo@x.example", "name": "Bo", "role": "billing", "password": "pw-bo"},
    ]
    path.write_text(json.dumps({"members": members}))
    demo_cli.init_app(app)
    result = app.test_cli_runner().invoke(args=["demo", "sign-ins", str(path)])
    assert result.exit_code == 0
    lines = result.output.splitlines()[1:]
    assert [line.split() for line in lines] == [
        ["ada@x.example", "pw-ada", "admin"],
        ["bo@x.example", "pw-bo", "billing"],
    ]
