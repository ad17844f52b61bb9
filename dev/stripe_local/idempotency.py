"""Idempotency keys as Stripe keeps them: a POST with a key seen before (per API key) is
answered with the saved response, or refused when its endpoint or parameters differ or the
first request has not finished; keys expire after a day."""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field

from .base import is_api, read_params, stripe_error, web

IDEMPOTENCY_TTL = 24 * 3600
IDEMPOTENCY_MAX_KEYS = 10_000


@dataclass
class _Saved:
    """A request seen with an idempotency key, and its response once it finished."""

    method: str
    path: str
    params: dict
    created: float = field(default_factory=time.monotonic)
    status: int | None = None
    body: bytes = b""
    content_type: str = "application/json"
    charset: str | None = "utf-8"


class Idempotency:
    """The saved requests, and the middleware that replays them."""

    def __init__(self) -> None:
        self.saved: collections.OrderedDict[tuple[str, str], _Saved] = collections.OrderedDict()

    def clear(self) -> None:
        self.saved.clear()

    async def apply(self, request: web.Request, handler) -> web.StreamResponse:
        key = request.headers.get("Idempotency-Key")
        if request.method != "POST" or not is_api(request.path) or key is None:
            return await handler(request)
        if not key or len(key) > 255:
            return stripe_error(
                400,
                "invalid_request_error",
                "Invalid idempotency key: it must be 1 to 255 characters long.",
            )
        scope = (request.get("stripe_local.api_key", ""), key)
        params = await read_params(request)
        saved = self.saved.get(scope)
        if saved is not None:
            return self._replay(saved, request, key, params)
        saved = self.saved[scope] = _Saved(request.method, request.path, params)
        self._prune()
        try:
            response = await handler(request)
        except BaseException:
            self.saved.pop(scope, None)
            raise
        status = response.status
        body = getattr(response, "body", None)
        if isinstance(body, bytes) and (status < 400 or status >= 500 or status == 402):
            saved.status = status
            saved.body = body
            saved.content_type = response.content_type
            saved.charset = response.charset
        else:
            self.saved.pop(scope, None)
        response.headers["Idempotency-Key"] = key
        return response

    def _replay(self, saved: _Saved, request: web.Request, key: str, params: dict):
        retry_hint = (
            f"Try using a key other than '{key}' if you meant to execute a different request."
        )
        if saved.status is None:
            return stripe_error(
                409,
                "idempotency_error",
                "There is currently another in-progress request using this Stripe API key "
                "and idempotency key (that means the same key and the same endpoint). "
                + retry_hint,
            )
        if (saved.method, saved.path) != (request.method, request.path):
            return stripe_error(
                400,
                "idempotency_error",
                "Keys for idempotent requests can only be used for the same endpoint they were "
                f"first used for ('{saved.method} {saved.path}' vs "
                f"'{request.method} {request.path}'). {retry_hint}",
            )
        if saved.params != params:
            return stripe_error(
                400,
                "idempotency_error",
                "Keys for idempotent requests can only be used with the same parameters they "
                f"were first used with. {retry_hint}",
            )
        return web.Response(
            body=saved.body,
            status=saved.status,
            content_type=saved.content_type,
            charset=saved.charset,
            headers={"Idempotent-Replayed": "true", "Idempotency-Key": key},
        )

    def _prune(self) -> None:
        cutoff = time.monotonic() - IDEMPOTENCY_TTL
        while self.saved:
            oldest = next(iter(self.saved.values()))
            if len(self.saved) <= IDEMPOTENCY_MAX_KEYS and oldest.created > cutoff:
                break
            self.saved.popitem(last=False)
