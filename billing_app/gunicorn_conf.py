"""gunicorn settings: `gunicorn -c python:billing_app.gunicorn_conf wsgi:app`.

Read from the environment:

- `BIND`: address to listen on (default `127.0.0.1:8000`; behind a proxy on another host,
  e.g. `0.0.0.0:8000`).
- `WEB_CONCURRENCY`: worker processes (default two per core plus one).
- `GUNICORN_THREADS`: threads per worker (default 2; 1 gives plain sync workers). A report
  takes seconds of CPU and shares its worker's interpreter lock with the other threads: with
  more threads, page requests in that worker slow down the report (and the other way round).
- `GUNICORN_TIMEOUT`: seconds a request may take before its worker is replaced (default 120,
  so that the largest usage reports finish).

Proxies: `TRUSTED_PROXIES` (see README) is the one setting. gunicorn itself believes no
forwarded header from anyone (`forwarded_allow_ips` empty; its default trusts 127.0.0.1):
with `TRUSTED_PROXIES=0` a request's `X-Forwarded-*` headers are ignored, whoever sends them,
and with `TRUSTED_PROXIES=N` the app's ProxyFix alone reads them, from the last N proxies.

The app itself reads `DATABASE_URL`, `SECRET_KEY`, `RATELIMIT_STORAGE_URI`, the Stripe
settings and the rest (see README), and refuses to start in production without
`SECRET_KEY` and `STRIPE_WEBHOOK_SECRET`.
"""

import multiprocessing
import os

from billing_app.config import trusted_proxies

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("GUNICORN_THREADS", "2"))
worker_class = "gthread" if threads > 1 else "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
# A stopping worker (on a deploy, or recycled below) first finishes the requests it has
# started, as long as each may take: a report being written is not cut off.
graceful_timeout = timeout
# A worker takes only as many connections as it has threads, and closes each after its
# response (no keep-alive; the proxy in front keeps its own connections to clients): a
# request waits in the listening socket's queue until a thread of any worker is free,
# rather than inside the worker that accepted it, behind reports that take many seconds.
worker_connections = threads
keepalive = 0

# Recycle workers now and then so that a slow leak cannot grow without bound. Page requests
# take milliseconds, so this is every few minutes under load, not every few seconds.
max_requests = 10000
max_requests_jitter = 1000

# No runtime control socket: it lives at one path per user, so servers side by side clash.
control_socket_disable = True

# Forwarded headers are the app's to read (ProxyFix, only when TRUSTED_PROXIES > 0), so that
# one setting says which proxies are believed; reading it here refuses a bad value at start.
trusted_proxies()
forwarded_allow_ips = ""

accesslog = "-"
errorlog = "-"
access_log_format = (
    '%(h)s - %(t)s "%(r)s" %(s)s %(B)s %(M)sms "%(a)s" pid=%(p)s request_id=%({x-request-id}o)s'
)
