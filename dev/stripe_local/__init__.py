"""The local Stripe server used in development and tests (not part of the product).

It wraps ``localstripe`` (a stateful Stripe emulator) and adds what Petra needs from Stripe on
the same port: billing portal sessions, a portal page, the portal login page, idempotency keys,
switchable faults and a request log. State lives in memory only, so instances run side by side.

Run it with ``python -m dev.stripe_local --host 127.0.0.1 --port 8420``, wait for one
with ``python -m dev.stripe_local --wait http://127.0.0.1:8420 [--webhook URL]``, and
start one from tests and scripts with :class:`LocalStripe`.

Split by concern: ``server`` (the app, request log, API keys, errors), ``portal`` (portal
sessions and pages), ``faults`` (the fault switch), ``idempotency`` (idempotency keys),
``controller`` (:class:`LocalStripe`, standard library only) and ``__main__`` (the command).

Test-only endpoints (no API key needed):

- ``POST /_faults`` adds a fault rule (JSON: ``method``, ``path`` regex, ``status``, ``error``,
  ``delay``, ``times``, ``should_retry``, ``retry_after``); ``GET`` lists, ``DELETE`` clears.
- ``GET /_requests`` lists the requests received (newest last); ``DELETE`` clears.
- ``DELETE /_config/data`` empties the store; ``POST /_config/webhooks/{id}`` registers a webhook.
- ``GET /_health`` answers ``ok``.
"""

from .controller import LocalStripe, LocalStripeError

__all__ = ["LocalStripe", "LocalStripeError"]
