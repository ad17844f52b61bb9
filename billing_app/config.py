"""Settings, read from the environment with embedded defaults for development."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

HTMX_VERSION = "2.0.11"
HTMX_URL = f"https://cdn.jsdelivr.net/npm/htmx.org@{HTMX_VERSION}/dist/htmx.min.js"
HTMX_INTEGRITY = "sha384-2OatzQy1H+Zd/IIrjr1TcuDGqLXeHhbooAyJY1KdQMKnr4LZ22k31GBLdYKHmVjg"

LOCAL_STRIPE_BASE = "http://127.0.0.1:8420"
LOCAL_STRIPE_KEY = "sk_test_local"


class ConfigError(RuntimeError):
    """The environment does not hold what the app needs to start."""


def _secret_key(instance_path: Path) -> str:
    """The session signing key: `SECRET_KEY`, or one generated into the instance folder."""
    if key := os.environ.get("SECRET_KEY"):
        return key
    key_file = instance_path / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(48))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


def _count(name: str) -> int:
    """A non-negative whole number from the environment (0 when unset)."""
    value = os.environ.get(name, "").strip() or "0"
    if not (value.isascii() and value.isdigit()):
        raise ConfigError(f"{name} must be a whole number of proxies, not {value!r}.")
    return int(value)


def _seconds(name: str, default: float) -> float:
    """A positive number of seconds from the environment (`default` when unset)."""
    value = os.environ.get(name, "").strip()
    try:
        seconds = float(value) if value else default
    except ValueError:
        seconds = -1.0
    if not seconds > 0 or seconds == float("inf"):
        raise ConfigError(f"{name} must be a positive number of seconds, not {value!r}.")
    return seconds


def trusted_proxies() -> int:
    """`TRUSTED_PROXIES`: how many reverse proxies in front are believed (0: none, and no
    forwarded header is read, by the app or by gunicorn)."""
    return _count("TRUSTED_PROXIES")


CACHE_SCHEMES = ("redis://", "rediss://", "unix://")
CACHE_THRESHOLD = 100_000
"""Entries a process's own cache keeps (`CACHE_URL` unset) before it drops some."""


def _cache(url: str) -> dict:
    """Flask-Caching settings for `CACHE_URL`: unset, a cache in each process; a Redis URL,
    one Redis cache that every worker and app server shares."""
    prefix = os.environ.get("CACHE_KEY_PREFIX", "petra-cache:")
    if not url:
        # Figures are kept per tenant and month: room for a few organisations of 1,000
        # tenants over a year (a few hundred bytes each).
        return {
            "CACHE_TYPE": "SimpleCache",
            "CACHE_KEY_PREFIX": prefix,
            "CACHE_THRESHOLD": CACHE_THRESHOLD,
        }
    if not url.startswith(CACHE_SCHEMES):
        raise ConfigError(
            "CACHE_URL must be a Redis URL (redis://, rediss:// or unix://), or unset for a "
            "cache in each process."
        )
    return {
        "CACHE_TYPE": "RedisCache",
        "CACHE_REDIS_URL": url,
        "CACHE_KEY_PREFIX": prefix,
        # A cache that does not answer must not hold requests up for long: figures.cache
        # computes the figures itself when the cache fails.
        "CACHE_OPTIONS": {"socket_timeout": 2.0, "socket_connect_timeout": 2.0},
    }


MAX_CONTENT_LENGTH = 1024 * 1024
"""Request bodies larger than this (1 MB) are refused with 413 before they are read."""

SHARED_RATE_LIMIT_SCHEMES = (
    "redis://",
    "rediss://",
    "redis+unix://",
    "redis+sentinel://",
    "redis+cluster://",
    "memcached://",
    "valkey://",
    "valkeys://",
)


def _rate_limit_storage(production: bool) -> str:
    """`RATELIMIT_STORAGE_URI`; in production it must be a store every worker shares."""
    uri = os.environ.get("RATELIMIT_STORAGE_URI", "").strip()
    if production and not uri.startswith(SHARED_RATE_LIMIT_SCHEMES):
        raise ConfigError(
            "Refusing to start in production without a shared rate-limit store: set "
            "RATELIMIT_STORAGE_URI to a redis:// URL (memory:// counts in each process "
            "separately, so limits would not hold across workers)."
        )
    return uri or "memory://"


def _host_names(value: str) -> list[str]:
    return [name.strip().lower() for name in value.split(",") if name.strip()]


def _hosts(production: bool) -> dict:
    """`SERVER_NAME` and `TRUSTED_HOSTS`: the host names the app answers to (any when unset,
    which production refuses). The server name is always one of the trusted hosts."""
    server_name = os.environ.get("SERVER_NAME", "").strip().lower() or None
    trusted = _host_names(os.environ.get("TRUSTED_HOSTS", ""))
    if server_name is not None and server_name.split(":", 1)[0] not in trusted:
        trusted.insert(0, server_name.split(":", 1)[0])
    if production and not trusted:
        raise ConfigError(
            "Refusing to start in production without SERVER_NAME or TRUSTED_HOSTS "
            "(the host names the app answers to)."
        )
    return {"SERVER_NAME": server_name, "TRUSTED_HOSTS": trusted or None}


QUEUE_SCHEMES = ("redis://", "rediss://", "unix://")


def _queue(url: str, instance_path: Path) -> dict:
    """The report-building queue of `QUEUE_URL`: unset, an SQLite file in the instance folder
    (`sqlite:///PATH` another file); a Redis URL, Redis."""
    if not url:
        url = f"sqlite:///{instance_path / 'report-queue.sqlite3'}"
    elif not url.startswith((*QUEUE_SCHEMES, "sqlite:///")):
        raise ConfigError(
            "QUEUE_URL must be a Redis URL (redis://, rediss:// or unix://), sqlite:///PATH, "
            "or unset for a queue file in the instance folder."
        )
    return {"QUEUE_URL": url, "QUEUE_NAME": os.environ.get("QUEUE_NAME", "petra-reports")}


DEV_MAIL_FROM = "Petra Billing <billing@petra.localhost>"
DEV_PUBLIC_URL = "http://127.0.0.1:5000"
DEV_SMTP_URL = "smtp://127.0.0.1:8025"
MAIL_SCHEMES = ("smtp://", "smtps://", "smtp+starttls://")


def _mail(production: bool) -> dict:
    """`SMTP_URL`, `MAIL_FROM` and `PUBLIC_URL`. In production neither has a development
    default: without `PUBLIC_URL` (where every link in mail points) the app refuses to start;
    `SMTP_URL` is needed once any contact or alert exists, and checked when mail is sent (the
    worker logs a clear error and keeps the mail queued until it is set)."""
    smtp_url = os.environ.get("SMTP_URL", "").strip() or (None if production else DEV_SMTP_URL)
    if smtp_url and not smtp_url.startswith(MAIL_SCHEMES):
        raise ConfigError(
            "SMTP_URL must be smtp://[user:pass@]host:port, smtps://… or smtp+starttls://…"
        )
    public_url = os.environ.get("PUBLIC_URL", "").strip().rstrip("/")
    if public_url and not public_url.startswith(("https://", "http://")):
        raise ConfigError("PUBLIC_URL must be the app's address, like https://billing.example.")
    if production and not public_url:
        raise ConfigError(
            "Refusing to start in production without PUBLIC_URL, the app's address that links "
            "in mail point at (like https://billing.example)."
        )
    return {
        "SMTP_URL": smtp_url,
        "MAIL_FROM": os.environ.get("MAIL_FROM", "").strip() or DEV_MAIL_FROM,
        "PUBLIC_URL": public_url or (None if production else DEV_PUBLIC_URL),
        "MAIL_LEASE_SECONDS": float(os.environ.get("MAIL_LEASE_SECONDS", "120")),
        "SMTP_TIMEOUT": float(os.environ.get("SMTP_TIMEOUT", "20")),
    }


def from_environment(instance_path: Path) -> dict:
    """Build the app's configuration from environment variables."""
    env = os.environ.get("PETRA_ENV", "development")
    production = env == "production"
    if production:
        missing = [
            name for name in ("SECRET_KEY", "STRIPE_WEBHOOK_SECRET") if not os.environ.get(name)
        ]
        if missing:
            raise ConfigError(
                "Refusing to start in production without " + " and ".join(missing) + "."
            )
    local = {} if production else {"api": LOCAL_STRIPE_BASE, "key": LOCAL_STRIPE_KEY}
    return {
        "PETRA_ENV": env,
        "SECRET_KEY": _secret_key(instance_path),
        "SQLALCHEMY_DATABASE_URI": os.environ.get(
            "DATABASE_URL", f"sqlite:///{instance_path / 'billing.sqlite3'}"
        ),
        "STRIPE_SECRET_KEY": os.environ.get("STRIPE_SECRET_KEY", local.get("key")),
        "STRIPE_API_BASE": os.environ.get("STRIPE_API_BASE", local.get("api")),
        "STRIPE_PORTAL_LOGIN_URL": os.environ.get(
            "STRIPE_PORTAL_LOGIN_URL",
            None if production else f"{LOCAL_STRIPE_BASE}/p/login/test_local",
        ),
        "STRIPE_WEBHOOK_SECRET": os.environ.get("STRIPE_WEBHOOK_SECRET"),
        "STRIPE_TIMEOUT": float(os.environ.get("STRIPE_TIMEOUT", "10")),
        "STRIPE_MAX_RETRIES": int(os.environ.get("STRIPE_MAX_RETRIES", "2")),
        "STRIPE_READ_TIMEOUT": float(os.environ.get("STRIPE_READ_TIMEOUT", "2")),
        "STRIPE_READ_MAX_RETRIES": int(os.environ.get("STRIPE_READ_MAX_RETRIES", "1")),
        "RATELIMIT_STORAGE_URI": _rate_limit_storage(production),
        "RATELIMIT_KEY_PREFIX": os.environ.get("RATELIMIT_KEY_PREFIX", "petra"),
        "API_RATE_LIMIT": os.environ.get("API_RATE_LIMIT", "").strip() or "600/minute",
        **_cache(os.environ.get("CACHE_URL", "").strip()),
        **_hosts(production),
        "MAX_CONTENT_LENGTH": MAX_CONTENT_LENGTH,
        **_queue(os.environ.get("QUEUE_URL", "").strip(), instance_path),
        **_mail(production),
        "REPORT_DIR": os.environ.get("REPORT_DIR") or str(instance_path / "reports"),
        "REPORT_LEASE": _seconds("REPORT_LEASE", 30.0),
        "REPORT_WAIT": float(os.environ.get("REPORT_WAIT", "3")),
        "TRUSTED_PROXIES": trusted_proxies(),
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO").upper(),
        "SESSION_COOKIE_SECURE": production,
        "REMEMBER_COOKIE_SECURE": production,
    }
