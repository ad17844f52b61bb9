"""``python -m dev.stripe_local``: serve the local Stripe server, or wait for one."""

from .server import main

main()
