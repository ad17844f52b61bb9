"""Petra Billing: the Settings → Usage area of Petra."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine
from werkzeug.middleware.proxy_fix import ProxyFix

from billing_app import access, config, logs, security
from billing_app.extensions import cache, csrf, db, limiter, login_manager, migrate

ROOT = Path(__file__).resolve().parent.parent


def create_app(test_config: dict | None = None) -> Flask:
    """Create and configure the app."""
    app = Flask(
        __name__,
        instance_path=str(ROOT / "instance"),
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.config.from_mapping(
        SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": True},
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        WTF_CSRF_HEADERS=["X-CSRFToken"],
        WTF_CSRF_TIME_LIMIT=None,
        RATELIMIT_HEADERS_ENABLED=True,
        HTMX_URL=config.HTMX_URL,
        HTMX_INTEGRITY=config.HTMX_INTEGRITY,
    )
    app.config.from_mapping(config.from_environment(Path(app.instance_path)))
    if test_config is not None:
        app.config.from_mapping(test_config)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(Path(__file__).parent / "migrations"))
    login_manager.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)
    cache.init_app(app)
    logs.init_app(app)
    security.init_app(app)
    access.init_app(app)
    if proxies := app.config.get("TRUSTED_PROXIES"):
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)

    from billing_app import stripe_gateway

    stripe_gateway.init_app(app)

    from billing_app import errors, health
    from billing_app.api import views as api
    from billing_app.api_tokens import views as api_tokens
    from billing_app.auth import views as auth
    from billing_app.billing_email import views as billing_email
    from billing_app.exports import views as exports
    from billing_app.invoices import views as invoices
    from billing_app.notifications import views as notifications
    from billing_app.portal import views as portal
    from billing_app.reports import views as reports
    from billing_app.tenants import views as tenants
    from billing_app.usage import views as usage
    from billing_app.web import page as usage_page
    from billing_app.webhooks import views as webhooks

    app.register_blueprint(auth.bp)
    app.register_blueprint(usage.bp)
    app.register_blueprint(reports.bp)
    app.register_blueprint(tenants.bp)
    app.register_blueprint(portal.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(billing_email.bp)
    app.register_blueprint(invoices.bp)
    app.register_blueprint(exports.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(api_tokens.bp)
    # The Usage page's sections, in no particular order (each fills in its own part).
    for section in (usage.page_section, billing_email.page_section, notifications.page_section):
        usage_page.add_section(app, section)
    api.init_app(app)
    notifications.init_app(app)
    errors.init_app(app)

    from billing_app import cli
    from billing_app.reports import commands as report_commands

    cli.init_app(app)
    report_commands.init_app(app)
    register_template_globals(app)
    return app


def register_template_globals(app: Flask) -> None:
    """Everything templates may call besides their context, registered here alone."""
    from billing_app.access import can
    from billing_app.formats import register_filters
    from billing_app.permissions import Action
    from billing_app.portal.views import portal_flow
    from billing_app.usage.views import tenant_row

    app.jinja_env.globals.update(
        can=can, Action=Action, portal_flow=portal_flow, tenant_row=tenant_row
    )
    register_filters(app)


@event.listens_for(Engine, "connect")
def _sqlite_foreign_keys(dbapi_connection, _record) -> None:
    """SQLite enforces foreign keys only when asked, per connection."""
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
