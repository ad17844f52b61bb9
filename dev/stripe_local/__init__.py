"""The local Stripe server for development and tests: ``python -m dev.stripe_local``."""

from .server import LocalStripe, LocalStripeError

__all__ = ["LocalStripe", "LocalStripeError"]
