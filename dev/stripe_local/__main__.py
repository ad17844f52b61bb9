"""``python -m dev.stripe_local``: serve the local Stripe server, or with ``--wait`` wait for
one (and register a webhook)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from . import __doc__ as package_doc
from .base import DEFAULT_HOST, DEFAULT_PORT, PORTAL_SESSION_TTL, web
from .controller import LocalStripe, LocalStripeError, _url_host, wait_until_healthy
from .server import create_app


def main(argv: list[str] | None = None) -> None:
    """Serve the local Stripe server, or with ``--wait`` wait for one (and register a webhook)."""
    parser = argparse.ArgumentParser(
        prog="python -m dev.stripe_local", description=package_doc.splitlines()[0]
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to bind (loopback)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument(
        "--portal-session-ttl",
        type=float,
        default=PORTAL_SESSION_TTL,
        help="seconds a billing portal session link stays valid",
    )
    parser.add_argument("--wait", metavar="API_BASE", help="wait for a running server instead")
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds to --wait")
    parser.add_argument("--webhook", metavar="URL", help="with --wait: send webhooks to URL")
    parser.add_argument(
        "--webhook-secret",
        default=os.environ.get("STRIPE_WEBHOOK_SECRET"),
        help="signing secret for --webhook (default: $STRIPE_WEBHOOK_SECRET)",
    )
    parser.add_argument(
        "--webhook-event",
        action="append",
        dest="webhook_events",
        metavar="TYPE",
        help="with --webhook: only send this event type (repeatable; default: all)",
    )
    args = parser.parse_args(argv)

    if args.wait:
        try:
            wait_until_healthy(args.wait, args.timeout)
            if args.webhook:
                if not args.webhook_secret:
                    parser.error("--webhook needs --webhook-secret or $STRIPE_WEBHOOK_SECRET")
                LocalStripe.attach(args.wait).register_webhook(
                    args.webhook, args.webhook_secret, args.webhook_events
                )
        except LocalStripeError as exc:
            sys.exit(f"local Stripe server: {exc}")
        return

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    web.run_app(
        create_app(portal_session_ttl=args.portal_session_ttl),
        host=args.host,
        port=args.port,
        print=lambda _: print(
            f"Local Stripe server on http://{_url_host(args.host)}:{args.port}", flush=True
        ),
    )


main()
