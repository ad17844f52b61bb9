"""Liveness."""

from flask import Blueprint
from sqlalchemy import text

from billing_app.extensions import db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """Answer 200 when the database answers, 503 otherwise."""
    try:
        db.session.execute(text("SELECT 1"))
    except Exception:
        db.session.rollback()
        return {"status": "database unavailable"}, 503
    return {"status": "ok"}
