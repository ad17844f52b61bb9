"""What several views answer with alike: headers for what must not be kept, and the key that
rate-limits one member's actions."""

from __future__ import annotations

from collections.abc import Callable

from flask_login import current_user

NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
"""Headers of an answer that leads into Stripe or shows its links: kept by no cache, and
sending no Referer on."""


def member_key(scope: str) -> Callable[[], str]:
    """The rate-limit key of one member's `scope` actions (for Flask-Limiter's `key_func`)."""

    def key() -> str:
        return f"{scope}:{current_user.get_id()}"

    return key
