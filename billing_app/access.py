"""The Flask side of the permission matrix, in one module: the guard on views (`requires`),
the question templates ask (`can`), how htmx requests are told apart (`is_htmx`,
`htmx_target`), and the one place that sets `Vary: HX-Request` (and `HX-Target`) on answers
that depend on it."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, abort, g, request
from flask_login import current_user

from billing_app.extensions import login_manager
from billing_app.permissions import Action, role_may

HTMX_DEPENDENT_PREFIX = "/settings/usage"
"""Every answer under this path may be a page or a fragment, depending on `HX-Request`."""


def can(action: Action | str) -> bool:
    """Whether the signed-in member may take this action (False for anonymous visitors)."""
    if not current_user.is_authenticated:
        return False
    return role_may(current_user.role, action)


def requires(action: Action) -> Callable:
    """Refuse the view unless the signed-in member may take `action`.

    Anonymous visitors go to the login page (htmx requests are told with a 401
    and an `HX-Redirect`); members without the permission get 403.
    """

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if not role_may(current_user.role, action):
                abort(403)
            return view(*args, **kwargs)

        wrapped.required_action = action  # type: ignore[attr-defined]
        return wrapped

    return decorator


def is_htmx() -> bool:
    """Whether the current request was sent by htmx; the answer then varies with it."""
    g.varies_with_htmx = True
    return request.headers.get("HX-Request") == "true"


def htmx_target() -> str | None:
    """The id of the element an htmx request will swap (None for other requests); the
    answer then varies with it."""
    g.varies_with_htmx_target = True
    return request.headers.get("HX-Target") if is_htmx() else None


def _vary(response: Response) -> Response:
    if g.get("varies_with_htmx") or request.path.startswith(HTMX_DEPENDENT_PREFIX):
        response.vary.add("HX-Request")
    if g.get("varies_with_htmx_target"):
        response.vary.add("HX-Target")
    return response


def init_app(app: Flask) -> None:
    app.after_request(_vary)
