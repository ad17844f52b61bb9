"""The Usage page put together. Each feature with a section on the page adds, from the app
factory, a function that puts what its section shows into the page's context
(`add_section`); the page's views (the Usage page's own, and the billing email's without
JavaScript, which show the page with the form in place) render it whole with `render_page`.
Nothing here imports a feature: the features' views import this."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, current_app, render_template
from flask_login import current_user
from markupsafe import Markup

SECTIONS = "usage_page_sections"

Section = Callable[[dict], None]
"""Puts what a section of the page shows into the page's context, leaving what the view
passed as it is."""


def add_section(app: Flask, section: Section) -> None:
    """Have `section` fill in its part of the Usage page's context on every render."""
    app.extensions.setdefault(SECTIONS, []).append(section)


def render_page(status: int = 200, **context):
    """The whole Usage page: the view passes what it has (the month asked for, the
    billing-email form), and each section adds the rest."""
    context.setdefault("organisation", current_user.organisation)
    for section in current_app.extensions.get(SECTIONS, ()):
        section(context)
    return render_template("usage.html", **context), status


def rendered(template: str, **context) -> Markup:
    """A fragment's HTML, to include in another as it is (Jinja escaped what it wrote)."""
    return Markup(render_template(template, **context))  # noqa: S704
