"""What the parts of the local Stripe server share: its constants, localstripe (imported
when a server is built, so that the controller needs only the standard library), and the
helpers that read requests and write Stripe's errors."""

from __future__ import annotations

import functools
import secrets
import string
import warnings
from types import SimpleNamespace
from typing import Any

try:
    from aiohttp import web
except ImportError:  # the controller needs only the standard library
    web = None

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8420
API_KEY = "sk_test_local"
PORTAL_LOGIN_CONFIG = "test_local"
PORTAL_SESSION_TTL = 300.0

_ALNUM = string.ascii_letters + string.digits


@functools.cache
def localstripe() -> SimpleNamespace:
    """localstripe's resources, server and UserError, its store kept in memory only."""
    if web is None:
        raise RuntimeError("the local Stripe server needs aiohttp and localstripe installed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from localstripe import resources, server
        from localstripe.errors import UserError
    resources.Store.dump_to_disk = lambda self: None
    resources.Store.try_load_from_disk = lambda self: None
    return SimpleNamespace(resources=resources, server=server, UserError=UserError)


def random_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(length))


def stripe_error(status: int, type_: str, message: str) -> web.Response:
    return web.json_response({"error": {"type": type_, "message": message}}, status=status)


def request_error(message: str, code: str | None = None, param: str | None = None):
    """A localstripe UserError answered as Stripe's 400 ``invalid_request_error``."""
    contents: dict[str, Any] = {}
    if code is not None:
        contents["code"] = code
    if param is not None:
        contents["param"] = param
    return localstripe().UserError(400, message, contents)


async def read_params(request: web.Request) -> dict:
    """The request's parameters: the form or JSON body of a POST, else the query string."""
    if "stripe_local.params" not in request:
        data: Any
        if request.method in ("POST", "PUT", "PATCH"):
            if request.content_type == "application/json":
                try:
                    data = await request.json()
                except ValueError:
                    data = {}
            else:
                data = localstripe().server.unflatten_data(await request.post())
        else:
            data = localstripe().server.unflatten_data(request.query)
        request["stripe_local.params"] = data if isinstance(data, dict) else {}
    return request["stripe_local.params"]


def is_control(path: str) -> bool:
    return path.startswith("/_")


def is_api(path: str) -> bool:
    return path.startswith("/v1/")


def middleware(func):
    """An aiohttp middleware of a bound method ``func(request, handler)``."""

    async def wrapped(request, handler):
        return await func(request, handler)

    wrapped.__middleware_version__ = 1
    return wrapped
