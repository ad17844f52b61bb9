"""The one way the app talks to Stripe: the official SDK, with explicit timeouts and retries."""

from __future__ import annotations

from dataclasses import dataclass

import stripe
from flask import Flask, current_app


class StripeUnavailable(RuntimeError):
    """Stripe could not be reached or refused the request; the message says so for a person."""


@dataclass
class StripeGateway:
    """Billing operations on the organisation's Stripe customer."""

    client: stripe.StripeClient

    def create_customer(self, *, name: str, email: str, slug: str) -> str:
        """Create a Stripe customer for an organisation and return its id."""
        customer = self.client.v1.customers.create(
            params={"name": name, "email": email, "metadata": {"organisation": slug}}
        )
        return customer.id

    def customer_exists(self, customer_id: str) -> bool:
        """Whether Stripe knows this customer (and it is not deleted)."""
        try:
            customer = self.client.v1.customers.retrieve(customer_id)
        except stripe.InvalidRequestError as error:
            if error.code == "resource_missing" or error.http_status == 404:
                return False
            raise
        return not getattr(customer, "deleted", False)


def build_client(app: Flask) -> stripe.StripeClient:
    """A Stripe client configured from the app's settings."""
    base = app.config.get("STRIPE_API_BASE")
    return stripe.StripeClient(
        app.config.get("STRIPE_SECRET_KEY") or "sk_missing",
        base_addresses={"api": base} if base else None,
        max_network_retries=app.config["STRIPE_MAX_RETRIES"],
        http_client=stripe.RequestsClient(timeout=app.config["STRIPE_TIMEOUT"]),
    )


def init_app(app: Flask) -> None:
    app.extensions["stripe_gateway"] = StripeGateway(build_client(app))


def gateway() -> StripeGateway:
    """The app's Stripe gateway."""
    return current_app.extensions["stripe_gateway"]
