"""Starting a local Stripe server in a subprocess and driving its test controls, with the
standard library only: what tests, benchmarks and ``make run`` use."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from .base import API_KEY, DEFAULT_HOST, PORTAL_LOGIN_CONFIG


class LocalStripeError(RuntimeError):
    """The local Stripe server could not be started or refused a control request."""


class LocalStripe:
    """A local Stripe server in a subprocess, and its test controls.

    >>> with LocalStripe().start() as server:
    ...     server.fault(method="POST", path="^/v1/customers", status=500, times=1)
    """

    api_key = API_KEY

    def __init__(
        self, host: str = DEFAULT_HOST, *, portal_session_ttl: float | None = None
    ) -> None:
        self.host = host
        self.port: int | None = None
        self.portal_session_ttl = portal_session_ttl
        self.process: subprocess.Popen | None = None
        self.log_path: Path | None = None
        self._base: str | None = None

    @classmethod
    def attach(cls, api_base: str) -> LocalStripe:
        """Controls for a server that is already running at ``api_base``."""
        server = cls(urllib.parse.urlsplit(api_base).hostname or DEFAULT_HOST)
        server.port = urllib.parse.urlsplit(api_base).port
        server._base = api_base.rstrip("/")
        return server

    @property
    def api_base(self) -> str:
        """The address to give the Stripe SDK (``base_addresses={"api": ...}``)."""
        if self._base is None:
            raise LocalStripeError("the local Stripe server is not started")
        return self._base

    @property
    def portal_login_url(self) -> str:
        return f"{self.api_base}/p/login/{PORTAL_LOGIN_CONFIG}"

    def start(self, port: int = 0, timeout: float = 15.0) -> LocalStripe:
        """Start the server (on a free port when ``port`` is 0) and wait until it answers."""
        if self.process is not None:
            raise LocalStripeError("the local Stripe server is already started")
        attempts = 3 if port == 0 else 1
        for attempt in range(1, attempts + 1):
            try:
                self._launch(port or _free_port(self.host), timeout)
                break
            except LocalStripeError:
                if attempt == attempts:
                    raise
        return self

    def _launch(self, port: int, timeout: float) -> None:
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        command = [sys.executable, "-m", "dev.stripe_local"]
        command += ["--host", self.host, "--port", str(port)]
        if self.portal_session_ttl is not None:
            command += ["--portal-session-ttl", str(self.portal_session_ttl)]
        fd, log_name = tempfile.mkstemp(prefix="stripe-local-", suffix=".log")
        self.log_path = Path(log_name)
        with os.fdopen(fd, "wb") as log:
            self.process = subprocess.Popen(  # noqa: S603
                command, stdout=log, stderr=subprocess.STDOUT, env=env
            )
        self.port = port
        self._base = f"http://{_url_host(self.host)}:{port}"
        try:
            wait_until_healthy(self._base, timeout, process=self.process)
        except LocalStripeError as exc:
            output = self.log_path.read_text(errors="replace")[-2000:]
            self.stop()
            raise LocalStripeError(f"{exc}\n{output}") from None

    def stop(self) -> None:
        """Stop the server started by :meth:`start`."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process is not None and self.log_path is not None:
            self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> LocalStripe:
        if self.process is None and self._base is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def fault(self, **rule: Any) -> dict:
        """Add a fault rule; see the package docstring for its fields."""
        return self._control("POST", "/_faults", rule)

    def faults(self) -> list[dict]:
        return self._control("GET", "/_faults")

    def clear_faults(self) -> None:
        self._control("DELETE", "/_faults")

    def requests(self, path_prefix: str | None = None) -> list[dict]:
        """The requests received, oldest first, optionally only those under ``path_prefix``."""
        query = "?" + urllib.parse.urlencode({"path_prefix": path_prefix}) if path_prefix else ""
        return self._control("GET", "/_requests" + query)

    def clear_requests(self) -> None:
        self._control("DELETE", "/_requests")

    def clear_data(self) -> None:
        """Forget all Stripe objects, portal sessions and idempotency keys."""
        self._control("DELETE", "/_config/data")

    def reset(self) -> None:
        """Clear data, faults and the request log."""
        self.clear_data()
        self.clear_faults()
        self.clear_requests()

    def register_webhook(
        self, url: str, secret: str, events: list[str] | None = None, name: str = "petra"
    ) -> None:
        """Have events POSTed to ``url``, signed with ``secret`` (``Stripe-Signature``)."""
        body: dict[str, Any] = {"url": url, "secret": secret}
        if events is not None:
            body["events"] = events
        self._control("POST", f"/_config/webhooks/{urllib.parse.quote(name, safe='')}", body)

    def _control(self, method: str, path: str, body: Any = None) -> Any:
        return _http_json(method, self.api_base + path, body)


def _http_json(method: str, url: str, body: Any = None, timeout: float = 10.0) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            text = response.read().decode()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        raise LocalStripeError(f"{method} {url} answered {exc.code}: {detail}") from None
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def wait_until_healthy(
    api_base: str, timeout: float = 15.0, process: subprocess.Popen | None = None
) -> None:
    """Wait until the server at ``api_base`` answers ``/_health``; raise LocalStripeError if not."""
    deadline = time.monotonic() + timeout
    url = api_base.rstrip("/") + "/_health"
    while True:
        if process is not None and process.poll() is not None:
            raise LocalStripeError(f"the local Stripe server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310
                if response.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        if time.monotonic() > deadline:
            raise LocalStripeError(f"no answer from {url} within {timeout:g} s")
        time.sleep(0.05)
